"""Text-aware baselines: RecBole's context-aware models with the frozen text vectors as inputs.

    class DCNV2Text(DCNV2, TextFields)   # MRO: DCNV2Text, DCNV2, TextFields, ContextRecommender, ...

RecBole's baseline calls `super().__init__`, which reaches `TextFields.__init__`: it runs
ContextRecommender's, then adds the text fields to `num_feature_field` before the baseline sizes
its layers from it. The baseline reads its features through `concat_embed_input_fields` (B x F x
D) and `first_order_linear` (B x 1); TextFields appends the text fields to the first and adds
their first-order weights to the second, so every layer of the baseline sees them as it sees a
float field of the dataset:

    fields B x F x D  +  text fields B x F_t x D  (+ semantic ID fields B x L x D)  -> B x (F + F_t + L) x D

Text fields (nn/text_fields.py): each side's text vector (item, user) reduced by a frozen PCA of
`text_fields` (k) components, fitted on the vectors of the ids in the TRAIN split, scaled to the
spread of RecBole's own float fields (FIELD_STD over them); each component is one field. The user
vector of a row follows DLRREC's leak rule (`user_text`: under before_row a train row sees only
its user's earlier reviews; see models/dlrrec.py). An id without a vector gets zeros (the train
mean). With `semantic_ids` > 0 the items' semantic IDs (models/semantic_ids.py) are token fields
too, with a first-order weight per code as RecBole gives its token fields.

Each model keeps its RecBole model's defaults (RecBole's properties/model/<BASE>.yaml, layered by
the config stack through the MRO) and its search space (properties/tune/<BASE>.yaml, `tuned_as`).
Works for a model that reads its fields only through those two methods, and not double_tower.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Dict, List, Optional

import torch
from recbole.model.abstract_recommender import ContextRecommender
from recbole.model.context_aware_recommender import DCNV2, DeepFM, WideDeep
from torch import nn

from recbole_dlrrec.config.keys import ConfigKeyError
from recbole_dlrrec.config.options import build_options
from recbole_dlrrec.data.text_vectors import SIDES, TextVectorsMissingError, load_text_table, load_user_history
from recbole_dlrrec.models.dlrrec_parts import resolve_user_text, user_history_lookup
from recbole_dlrrec.models.semantic_ids import SemanticIds
from recbole_dlrrec.nn.text import ReductionTower, RowHistoryLookup
from recbole_dlrrec.nn.text_fields import TextFieldArch


@dataclass(frozen=True)
class TextFieldOptions:
    """The keys the text fields read (properties/model/TextFields.yaml), typed and checked."""

    text_fields: int
    user_text: str
    reduction: ClassVar[str] = "pca"  # what resolve_user_text asks: the text path is a frozen PCA


@dataclass
class TextFieldInputs:
    """side -> N_s x k value table (the user side's rows N.. are the history vectors), and the
    (user, item) -> user row lookup under user_text before_row."""

    tables: Dict[str, torch.Tensor]
    history_lookup: Optional[RowHistoryLookup]


#: The standard deviation of each text field over the train ids: that of a field spread evenly over
#: [0, 1], which is what RecBole's min-max scaling makes of its float fields. At unit variance the
#: text fields swamped DCNV2's cross layers (validation AUC on ml-100k: docs/model.md).
FIELD_STD = 12**-0.5


def frozen_pca_values(vectors: torch.Tensor, has_vector: torch.Tensor, fit_rows: torch.Tensor, k: int) -> torch.Tensor:
    """N x T vectors -> N x k: the PCA (DLRREC-V0's, nn/text.py) fitted on `fit_rows`, each
    component scaled to standard deviation FIELD_STD over them; rows without a vector are 0."""
    if fit_rows.numel() < 2:
        raise TextVectorsMissingError("text_fields: fewer than 2 train ids have a text vector to fit the PCA on")
    pca = ReductionTower("pca", int(vectors.shape[1]), k)
    pca.fit_pca(vectors[fit_rows].float())
    with torch.no_grad():
        values = pca(vectors.float())
    scale = values[fit_rows].std(0).clamp(min=1e-12)
    return torch.where(has_vector.unsqueeze(1), values / scale * FIELD_STD, torch.zeros(()))


def load_text_fields(options: TextFieldOptions, config, dataset) -> TextFieldInputs:
    """The value tables of the sides whose text vectors the dataset sets (TextVectorsMissingError
    when it sets none; ConfigKeyError when text_fields exceeds a side's vector width)."""
    tables = {side: t for side, t in ((s, load_text_table(config, dataset, s)) for s in SIDES) if t is not None}
    if not tables:
        raise TextVectorsMissingError(
            f"{config['model']} needs text vectors, but the dataset {config['dataset']!r} sets neither "
            "item_text_vec nor user_text_vec; run its baseline without 'Text' instead"
        )
    user_text = resolve_user_text(options, config, tables)
    history = load_user_history(config, dataset, tables["user"].dim) if user_text == "before_row" else None
    values = {}
    for side, table in tables.items():
        if options.text_fields > table.dim:
            raise ConfigKeyError(f"text_fields={options.text_fields} is larger than the {side} vectors' {table.dim}")
        vectors, has = table.vectors, table.has_vector
        if side == "user" and history is not None:  # rows N..: the history vectors (row -1 -> row 0, no text)
            vectors = torch.cat([vectors, history.vectors])
            has = torch.cat([has, torch.ones(len(history.vectors), dtype=torch.bool)])
        train = torch.unique(dataset.inter_feat[config[SIDES[side][0]]])
        values[side] = frozen_pca_values(vectors, has, train[table.has_vector[train]], options.text_fields)
    lookup = user_history_lookup(tables["user"], history) if history is not None else None
    return TextFieldInputs(values, lookup)


class FirstOrderWithText(nn.Module):
    """RecBole's first-order term of the dataset's fields plus that of the text fields: B x 1."""

    def __init__(self, base: nn.Module, text_term: Callable[[object], torch.Tensor]):
        super().__init__()
        self.base = base
        self.text_term = text_term  # a plain attribute: the owning model's method, not a submodule

    def forward(self, interaction) -> torch.Tensor:
        return self.base(interaction) + self.text_term(interaction)


class TextFields(ContextRecommender, SemanticIds):
    """Mixin between a RecBole context-aware model and ContextRecommender (module doc)."""

    tuned_as: ClassVar[str]  # the RecBole model whose search space this model is tuned on

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        if self.double_tower:
            raise ConfigKeyError(f"{type(self).__name__} does not support double_tower: True")
        options = build_options(TextFieldOptions, config, type(self))
        inputs = load_text_fields(options, config, dataset)
        self.USER_ID, self.ITEM_ID = config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]
        self.text_field_sides = list(inputs.tables)
        self.history_lookup = inputs.history_lookup
        self.text_field_arch = TextFieldArch(list(inputs.tables.values()), self.embedding_size)
        self.semantic_ids = self.semantic_id_arch(config, dataset, self.embedding_size, first_order=True)
        levels = self.semantic_ids.levels if self.semantic_ids is not None else 0
        self.num_feature_field += self.text_field_arch.num_fields + levels
        self.first_order_linear = FirstOrderWithText(self.first_order_linear, self.text_first_order)

    def text_rows(self, interaction) -> List[torch.Tensor]:
        """One B row tensor per text side: item ids; user ids, or each listed train row's history row."""
        users, items = interaction[self.USER_ID], interaction[self.ITEM_ID]
        if self.history_lookup is not None:
            users = self.history_lookup(users, items)
        return [items if side == "item" else users for side in self.text_field_sides]

    def text_first_order(self, interaction) -> torch.Tensor:
        """B x 1: the text fields' (and semantic IDs') first-order term."""
        out = self.text_field_arch.first_order(self.text_field_arch.values(self.text_rows(interaction)))
        if self.semantic_ids is not None:
            out = out + self.semantic_ids.first_order(interaction[self.ITEM_ID])
        return out

    def concat_embed_input_fields(self, interaction) -> torch.Tensor:
        """B x (F + F_t + L) x D: RecBole's fields, then the text fields, then the semantic IDs."""
        parts = [super().concat_embed_input_fields(interaction)]
        parts.append(self.text_field_arch(self.text_field_arch.values(self.text_rows(interaction))))
        if self.semantic_ids is not None:
            parts.append(self.semantic_ids(interaction[self.ITEM_ID]))
        return torch.cat(parts, dim=1)


class DCNV2Text(DCNV2, TextFields):
    """RecBole's DCNV2 with the text fields (module doc)."""

    tuned_as = "DCNV2"


class DeepFMText(DeepFM, TextFields):
    """RecBole's DeepFM with the text fields (module doc); its FM part crosses them too."""

    tuned_as = "DeepFM"


class WideDeepText(WideDeep, TextFields):
    """RecBole's WideDeep with the text fields (module doc); its wide part weighs each one."""

    tuned_as = "WideDeep"
