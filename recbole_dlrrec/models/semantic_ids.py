"""Semantic IDs of items for the plugin's models: a switch (`semantic_ids`, levels; 0 = off).

`SemanticIds` is a base class of every model that can take them (DLRREC, the text-aware
baselines of models/text_fields.py): it carries no state, only the builder below, and its place
in their MRO layers properties/model/SemanticIds.yaml (the keys' one declaration) under theirs.

The codes (nn/semantic_ids.py) are fitted on the item text vectors of the items in the TRAIN
split (`dataset` is the train dataset the models are built on), so a valid- or test-only item
moves no centroid; every item with a vector, seen or not, gets the codes of its text.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import torch

from recbole_dlrrec.config.options import build_options
from recbole_dlrrec.data.text_vectors import SIDES, TextVectorsMissingError, load_text_table
from recbole_dlrrec.nn.semantic_ids import SemanticIdArch, assign_codes, residual_kmeans


@dataclass(frozen=True)
class SemanticIdOptions:
    """The keys of properties/model/SemanticIds.yaml, typed and checked (config/options.py)."""

    semantic_ids: int
    semantic_id_codes: int


class SemanticIds:
    """Mixin: `semantic_id_arch` builds the switch's part (None when it is off)."""

    def semantic_id_arch(self, config, dataset, dim: int, first_order: bool = False) -> Optional[SemanticIdArch]:
        """The item codes' SemanticIdArch (B item ids -> B x L x D), or None for semantic_ids 0.
        Draws its initial weights from the global RNG, so call it after the model's other parts."""
        options = build_options(SemanticIdOptions, config, type(self))
        if options.semantic_ids == 0:
            return None
        codes = item_codes(config, dataset, options, int(config["seed"]))
        return SemanticIdArch(codes, options.semantic_id_codes, dim, first_order=first_order)


def item_codes(config, dataset, options: SemanticIdOptions, seed: int) -> torch.Tensor:
    """N_items x L codes (0 = no text): fitted on the TRAIN items' vectors, assigned to all."""
    table = load_text_table(config, dataset, "item")
    if table is None:
        raise TextVectorsMissingError(
            f"semantic_ids={options.semantic_ids} needs item text vectors, but {SIDES['item'][1]} is not set "
            f"for dataset {config['dataset']!r}"
        )
    train = torch.unique(dataset.inter_feat[config["ITEM_ID_FIELD"]])
    train = train[table.has_vector[train]]
    if train.numel() == 0:
        raise TextVectorsMissingError(f"semantic_ids: no item of the train split has a vector in {table.path}")
    books = residual_kmeans(table.vectors[train], options.semantic_ids, options.semantic_id_codes, seed)
    codes = torch.where(table.has_vector.unsqueeze(1), assign_codes(table.vectors, books), 0)
    used = [int(torch.unique(codes[table.has_vector, level]).numel()) for level in range(codes.shape[1])]
    logging.getLogger().info(
        f"semantic IDs: {options.semantic_ids} levels fitted on {train.numel()} train items' text, "
        f"codes in use per level {used}"
    )
    return codes
