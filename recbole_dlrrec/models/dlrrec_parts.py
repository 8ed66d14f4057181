"""DLRREC's builder: the typed options and the TRAIN dataset -> the parts the model holds.

Two steps, because DLRM sizes its interaction for the text (one extra feature vector per side
with text) and the parts' parameters must register after DLRM's arches:

1. `load_text_inputs` (before DLRM's arches): the text tables per side, the resolved
   `user_text` and the user-history vectors ({dataset}.itemvec / uservec / userhist.npz).
2. `build_parts` (after them): the TextTowers per side, the user-history lookup, the V0 PCA fit,
   the SWING / similarity samplers with their negative weights, the hard-negative samplers, the
   collapse-monitor sample, and the named strategies (models/dlrrec_strategies.py).

Typed options come from config/options.py; `config` is read only for what the options do not
hold (fields, seed, device, precision) and by the data / SWING caches that take it whole.
Random draws keep their order: the towers draw their initial weights from the global RNG right
after DLRM's arches; the samplers and the collapse sample have generators of their own, seeded
by config's seed.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, Optional, Protocol

import numpy as np
import torch
from torch import nn

from recbole_dlrrec.config.keys import ConfigKeyError
from recbole_dlrrec.data.text_vectors import (
    SIDES,
    ItemReviews,
    TextTable,
    TextVectorsMissingError,
    UserHistory,
    load_text_table,
    load_user_history,
    user_history_path,
)
from recbole_dlrrec.models.dlrrec_item_reviews import item_review_lookup, item_tower_table, load_item_review_inputs
from recbole_dlrrec.models.dlrrec_strategies import (
    NEGATIVES,
    OBJECTIVES,
    REPRESENTATIONS,
    CatalogSoftmaxObjective,
    Negatives,
    Objective,
    Representation,
)
from recbole_dlrrec.nn.text import RowHistoryLookup, TextTower

if TYPE_CHECKING:
    from recbole_dlrrec.models.dlrrec import DLRRECOptions
    from recbole_dlrrec.swing.hard_negatives import HardNegativeSampler
    from recbole_dlrrec.swing.sampler import SwingSampler

_LOGGED_AUTO: set = set()  # 'auto' choices already logged in this process (one line per dataset)


@dataclass
class TextInputs:
    """What DLRREC reads from the dataset's text side files. tables: side -> TextTable (N x T
    per side; no entry for a side without text); user_text: 'full' | 'before_row' | 'none';
    history: the user-history vectors (before_row only); item_reviews: the item review vectors
    (item_review_text only: models/dlrrec_item_reviews.py)."""

    tables: Dict[str, TextTable]
    user_text: str
    history: Optional[UserHistory] = None
    item_reviews: Optional[ItemReviews] = None

    @property
    def num_vectors(self) -> int:
        """The feature vectors the text adds to the interaction: one per side, one for reviews."""
        return len(self.tables) + (self.item_reviews is not None)


@dataclass
class DLRRECParts:
    """The built parts. text_sides: side -> TextTower (B ids -> B x D); history_lookup: (user,
    item) -> the user tower's row of each listed train row, None when rows read their user's
    row; samplers / hard_samplers: side -> sampler, only for the sides with a head;
    collapse_ids: side -> the fixed sample of ids the collapse monitor reads; review_lookup:
    (user, item) -> the item tower's review row of each row (item_review_text only)."""

    text_sides: nn.ModuleDict
    history_lookup: Optional[RowHistoryLookup]
    samplers: Dict[str, "SwingSampler"]
    hard_samplers: Dict[str, "HardNegativeSampler"]
    collapse_ids: Dict[str, torch.Tensor]
    representation: Representation
    negatives: Negatives
    objective: Objective
    weights: Dict[str, float] = field(default_factory=dict)
    review_lookup: Optional[RowHistoryLookup] = None


# -- step 1 ------------------------------------------------------------------------------------
def load_text_inputs(options: "DLRRECOptions", config, dataset) -> TextInputs:
    """The text tables, user_text and user history; ConfigKeyError / TextVectorsMissingError
    naming the key or file when they do not fit the options."""
    if options.reduction_adapter == "none" and options.reduction_dim != options.embedding_size:
        # A rule between two keys, which the keys' notes cannot state.
        raise ConfigKeyError(
            f"reduction_adapter: none needs reduction_dim == embedding_size, got reduction_dim="
            f"{options.reduction_dim} and embedding_size={options.embedding_size}"
        )
    if options.reduction_init != "random" and options.reduction not in ("mlp", "linear"):
        raise ConfigKeyError(
            f"reduction_init={options.reduction_init!r} starts a trained reduction ('mlp' or 'linear'), "
            f"but reduction is {options.reduction!r}"
        )
    tables = load_text_tables(options, config, dataset)
    user_text = resolve_user_text(options, config, tables)
    history = load_user_history(config, dataset, tables["user"].dim) if user_text == "before_row" else None
    reviews = load_item_review_inputs(options.item_review_text, options.reduction, config, dataset, tables.get("item"))
    return TextInputs(tables, user_text, history, reviews)


def load_text_tables(options: "DLRRECOptions", config, dataset) -> Dict[str, TextTable]:
    """side -> TextTable for the sides whose vectors the dataset sets ({} for reduction none)."""
    if options.reduction == "none":
        return {}
    loaded = {side: load_text_table(config, dataset, side) for side in SIDES}
    tables = {side: table for side, table in loaded.items() if table is not None}
    if not tables:
        keys = " / ".join(key for _, key in SIDES.values())
        raise TextVectorsMissingError(
            f"reduction={options.reduction!r} needs text vectors, but the dataset "
            f"{config['dataset']!r} sets neither {keys}; expected fields: item and user text "
            "vectors ({dataset}.itemvec.npz / {dataset}.uservec.npz); use reduction: none for plain DLRM"
        )
    for side, table in tables.items():
        if options.reduction_dim > table.dim:
            raise ConfigKeyError(
                f"reduction_dim={options.reduction_dim} is larger than the {side} text vectors' {table.dim} dimensions"
            )
    return tables


class UserTextChoice(Protocol):
    """What `resolve_user_text` reads of a model's options (DLRREC's, the text fields')."""

    @property
    def user_text(self) -> str: ...

    @property
    def reduction(self) -> str: ...


def resolve_user_text(options: UserTextChoice, config, tables: Dict[str, TextTable]) -> str:
    """user_text -> 'full' | 'before_row' | 'none' (drops the user table for 'none'). 'auto' is
    before_row when {dataset}.userhist.npz exists, else full (logged once per dataset)."""
    mode = options.user_text
    if mode == "none" or "user" not in tables:
        tables.pop("user", None)
        if mode == "before_row" and options.reduction != "none":
            raise TextVectorsMissingError(
                f"user_text='before_row' needs user text vectors, but user_text_vec is "
                f"{config['user_text_vec']!r} for dataset {config['dataset']!r}"
            )
        return "none"
    if mode == "auto":
        path = user_history_path(config)
        mode = "before_row" if os.path.isfile(path) else "full"
        if path not in _LOGGED_AUTO:
            _LOGGED_AUTO.add(path)
            found = "found" if mode == "before_row" else "absent"
            logging.getLogger().info(f"user_text: auto -> {mode} ({path} {found})")
    return mode


# -- step 2 ------------------------------------------------------------------------------------
def build_parts(options: "DLRRECOptions", config, dataset, text: TextInputs) -> DLRRECParts:
    """The parts, built in the order their random draws need (see the module doc)."""
    representation: Representation = REPRESENTATIONS[options.cl_repr]()
    negatives: Negatives = NEGATIVES[options.cl_negatives]()
    weights = {"item": options.w1, "user": options.w2}
    representation.check(text.tables, weights)
    text_sides = nn.ModuleDict(
        {
            side: text_tower(
                options,
                config,
                side,
                table,
                text.history if side == "user" else None,
                text.item_reviews if side == "item" else None,
            )
            for side, table in text.tables.items()
        }
    )
    history_lookup = user_history_lookup(text.tables["user"], text.history) if text.history is not None else None
    reviews = text.item_reviews
    review_lookup = item_review_lookup(len(text.tables["item"].vectors), reviews) if reviews is not None else None
    if options.reduction == "pca" or options.reduction_init != "random":
        fit_pca(config, dataset, text_sides)
    samplers = swing_samplers(config, dataset, weights)
    hard_samplers = hard_negative_samplers(config, dataset, samplers) if samplers and negatives.needs_hard_table else {}
    set_negative_weights(options, config, dataset, samplers)
    collapse_ids = collapse_sample(dataset, options.collapse_sample, int(config["seed"]))
    objective: Objective = OBJECTIVES[options.contrastive]()
    if isinstance(objective, CatalogSoftmaxObjective) and "item" in samplers:
        objective.set_catalogue("item", *item_catalogue(options, config, dataset))
    return DLRRECParts(
        text_sides,
        history_lookup,
        samplers,
        hard_samplers,
        collapse_ids,
        representation,
        negatives,
        objective,
        weights,
        review_lookup,
    )


def train_counts(config, dataset, side: str, size: int) -> torch.Tensor:
    """`size` int64 counts: the TRAIN split's (`dataset`) rows of each id of the side."""
    return torch.bincount(dataset.inter_feat[config[SIDES[side][0]]].long(), minlength=size)


def item_catalogue(options: "DLRRECOptions", config, dataset):
    """contrastive 'catalog_softmax': (the item catalogue: every item id, or only those of the
    TRAIN split under cl_negative_pool 'seen', never the padding id 0; log(1 + TRAIN count) per
    item id), on the training device."""
    counts = train_counts(config, dataset, "item", dataset.item_num)
    ids = torch.arange(len(counts))
    keep = ids > 0
    if options.cl_negative_pool == "seen":
        keep &= counts > 0
    device = config["device"]
    return ids[keep].to(device), torch.log1p(counts.float()).to(device)


def text_tower(
    options: "DLRRECOptions",
    config,
    side: str,
    table: TextTable,
    history: Optional[UserHistory] = None,
    reviews: Optional[ItemReviews] = None,
) -> TextTower:
    """One side's TextTower. Under bf16 autocast (train_precision) the table is stored in bf16
    (see TextTower). The user side's table is the per-user vectors followed by the history
    vectors (rows N..N+m-1), and with no_history 'learned' its rows without text (row 0, users
    without text) take the learned vector. With `reviews` (item_review_text) the item side's
    table is models/dlrrec_item_reviews.py's."""
    vectors, missing = table.vectors, None
    if history is not None:
        vectors = torch.cat([vectors, history.vectors])
    if side == "user" and options.no_history == "learned":
        missing = torch.cat([~table.has_vector, torch.zeros(len(vectors) - len(table.vectors), dtype=torch.bool)])
    if reviews is not None:
        vectors, missing = item_tower_table(table, reviews, options.no_history == "learned")
    return TextTower(
        vectors,
        options.reduction,
        options.reduction_dim,
        options.embedding_size,
        hidden=options.reduction_hidden,
        dropout=options.reduction_dropout,
        norm=options.reduction_norm,
        vector_dtype=torch.bfloat16 if config["enable_amp"] else None,
        adapter=options.reduction_adapter,
        text_dropout=options.text_dropout,
        missing=missing,
        init=options.reduction_init,
    )


def user_history_lookup(table: TextTable, history: UserHistory) -> RowHistoryLookup:
    """The listed rows' rows of the user tower's table: N + r for history vector r, and row 0
    (no text: the zero vector, or the learned one) for r = -1."""
    rows = torch.where(history.rows >= 0, history.rows + len(table.vectors), torch.zeros_like(history.rows))
    return RowHistoryLookup(history.keys, rows, history.num_items)


def fit_pca(config, dataset, text_sides: nn.ModuleDict) -> None:
    """Fit each side's PCA on the vectors of the ids present in the TRAIN split: V0's frozen
    projection, or the start of a reduction_init 'pca' / 'whiten' tower."""
    for side, module in text_sides.items():
        assert isinstance(module, TextTower)
        ids = torch.unique(dataset.inter_feat[config[SIDES[side][0]]])
        share = module.fit_pca(ids)
        what = "V0 PCA" if module.tower.kind == "pca" else f"reduction_init {module.tower.init}"
        logging.getLogger().info(f"{what} ({side}): {len(ids)} train ids, {share:.1%} variance kept")


def swing_samplers(config, dataset, weights: Dict[str, float]) -> Dict[str, "SwingSampler"]:
    """side -> SwingSampler over the TRAIN neighbour table (cl_similarity, through the disk
    cache), for the sides with a head (weight > 0)."""
    if not any(weights.values()):
        return {}
    from recbole_dlrrec.swing.cache import swing_for_dataset
    from recbole_dlrrec.swing.sampler import SwingSampler

    neighbours = swing_for_dataset(config, dataset, logger=logging.getLogger())
    common = dict(mode=config["swing_sample_mode"], seed=int(config["seed"]), device=config["device"])
    tables = {"item": (neighbours.items, dataset.item_num), "user": (neighbours.users, dataset.user_num)}
    return {side: SwingSampler.from_table(*tables[side], **common) for side in ("item", "user") if weights[side]}


def hard_negative_samplers(config, dataset, samplers: Dict[str, "SwingSampler"]) -> Dict[str, "HardNegativeSampler"]:
    """side -> HardNegativeSampler (swing/hard_negatives.py), for the sides of `samplers`."""
    from recbole_dlrrec.swing.hard_negatives import HardNegativeSampler, hard_negatives_for_dataset

    tables = hard_negatives_for_dataset(config, dataset, samplers, logger=logging.getLogger())
    n_corpus = {"item": dataset.item_num, "user": dataset.user_num}
    common = dict(seed=int(config["seed"]), device=config["device"])
    return {side: HardNegativeSampler.from_table(table, n_corpus[side], **common) for side, table in tables.items()}


def set_negative_weights(options: "DLRRECOptions", config, dataset, samplers: Dict[str, "SwingSampler"]) -> None:
    """cl_negative_pool / cl_negative_dist -> each sampler's negative weights, from the per-id
    row counts of the TRAIN split (`dataset`). Nothing to do for all + uniform: the samplers'
    own uniform draw over every id."""
    if (options.cl_negative_pool, options.cl_negative_dist) == ("all", "uniform"):
        return
    from recbole_dlrrec.swing.sampler import negative_weights

    for side, sampler in samplers.items():
        counts = train_counts(config, dataset, side, sampler.n_corpus)
        sampler.set_negative_weights(negative_weights(counts, options.cl_negative_pool, options.cl_negative_dist))


def collapse_sample(dataset, size: int, seed: int) -> Dict[str, torch.Tensor]:
    """side -> a sorted sample of min(size, N - 1) ids (never the padding id 0), drawn by a
    generator of its own."""
    rng = np.random.default_rng(seed)
    out = {}
    for side, count in (("item", dataset.item_num), ("user", dataset.user_num)):
        n = min(size, count - 1)
        out[side] = torch.from_numpy(np.sort(rng.choice(np.arange(1, count), n, replace=False)))
    return out
