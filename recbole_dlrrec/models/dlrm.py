"""DLRM (Naumov et al. 2019) as a RecBole context-aware model.

    token / token_seq fields --SparseArch--> B x F_s x D --+       (+ FirstOrderArch: per-token bias)
    float fields (numerical_features) --DenseArch--> B x D -+--> interaction --> OverArch --> logit
    extra feature vectors (subclasses, e.g. DLRREC's text) B x F_x x D --+

Backbone switches (DLRMOptions): `interaction` dot (DLRM's pairwise dots) | dot_concat (the
vectors too) | dcn (a DCN-V2 cross network, `dcn_layers`, `dcn_low_rank`); `top_dropout` on the
top MLP's input; `embedding_l2`, an L2 penalty on the batch's embedding rows added to the loss;
`weight_decay` is RecBole's (its optimizer reads it; checked here). Unseen ids: `oov_embedding`
maps every user / item id absent from the TRAIN split to one learned row per side (nn/oov.py
OOVArch, swapped into the token rows before the SparseArch), trained by ID dropout
(`id_dropout_user`, `id_dropout_item`); `oov_substitutes` lets a subclass offer better vectors.

RecBole 1.2.1 has no DLRM. Defaults: properties/model/DLRM.yaml. The loss (class-weighted BCE on
the logit, plus the embedding penalty) is computed in `calculate_loss`, outside the arches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, List, Optional, Union, cast

import torch
from recbole.model.abstract_recommender import AbstractRecommender, ContextRecommender
from recbole.utils import FeatureSource, FeatureType, InputType
from torch import nn

from recbole_dlrrec import patches
from recbole_dlrrec.config.options import build_options
from recbole_dlrrec.nn.layers import DenseArch, FirstOrderArch, OverArch, SparseArch, interaction_arch
from recbole_dlrrec.nn.oov import OOVArch, Substitutes
from recbole_dlrrec.swing.sampler import default_rank, rank_seed


@dataclass
class FeatureFields:
    """The dataset fields a context model reads, split by how they are embedded.

    Follows RecBole's context-model rule: every token and token_seq field of the interaction,
    user and item features; float fields only when listed in `numerical_features`.
    """

    token: List[str] = field(default_factory=list)
    token_dims: List[int] = field(default_factory=list)
    token_seq: List[str] = field(default_factory=list)
    token_seq_dims: List[int] = field(default_factory=list)
    dense: List[str] = field(default_factory=list)

    @classmethod
    def from_dataset(cls, config, dataset) -> "FeatureFields":
        sources = [
            FeatureSource.INTERACTION,
            FeatureSource.USER,
            FeatureSource.USER_ID,
            FeatureSource.ITEM,
            FeatureSource.ITEM_ID,
        ]
        numerical = set(config["numerical_features"] or [])
        out = cls()
        for name in dataset.fields(source=sources):
            if name == config["LABEL_FIELD"]:
                continue
            ftype = dataset.field2type[name]
            if ftype == FeatureType.TOKEN:
                out.token.append(name)
                out.token_dims.append(dataset.num(name))
            elif ftype == FeatureType.TOKEN_SEQ:
                out.token_seq.append(name)
                out.token_seq_dims.append(dataset.num(name))
            elif ftype == FeatureType.FLOAT and name in numerical:
                out.dense.append(name)
        return out


def resolve_pos_weight(value: Union[float, str], dataset, label_field: str) -> float:
    """`pos_weight` (checked by the options: a number > 0 or 'auto') -> the weight of positive
    rows in the BCE loss. 'auto' balances the classes from the TRAIN labels: n_negative / n_positive."""
    if isinstance(value, str):
        labels = dataset.inter_feat[label_field]
        positives = float((labels > 0.5).sum())
        negatives = float(len(labels)) - positives
        if positives == 0 or negatives == 0:
            return 1.0
        return negatives / positives
    return float(value)


@dataclass(frozen=True)
class DLRMOptions:
    """The config keys DLRM reads, typed and checked (config/options.py build_options: values
    and their defaults come from the config and properties/model/DLRM.yaml, never from here).

    Backbone switches: `interaction`, `dcn_layers`, `dcn_low_rank`, `top_dropout`,
    `embedding_l2`; `weight_decay` is RecBole's (its optimizer reads it)."""

    embedding_size: int
    bottom_mlp: List[int]
    top_mlp: List[int]
    first_order: bool
    dropout_prob: float
    pos_weight: Union[float, str]
    interaction: str
    dcn_layers: int
    dcn_low_rank: Optional[int]
    top_dropout: float
    embedding_l2: float
    weight_decay: float
    oov_embedding: bool
    id_dropout_user: float
    id_dropout_item: float


class DLRM(ContextRecommender):
    """DLRM backbone: SparseArch + DenseArch -> InteractionArch -> OverArch.

    The RecBole adapter: reads the Config and the dataset's fields into the typed arguments of
    the nn/layers.py arches and computes RecBole's `calculate_loss` / `predict`.

    Args:
        num_extra_vectors: feature vectors a subclass adds to the interaction (B x D each,
            returned by its `extra_vectors`); the interaction is sized for them here, so a
            subclass passes the count it will produce (DLRREC: one per text side).
        options: the subclass's options (a DLRMOptions subclass) when it has built them; else
            DLRM builds its own from `config`.
    """

    input_type = InputType.POINTWISE
    options_class: ClassVar[type] = DLRMOptions  # the keys the model reads (config/options.py)

    def __init__(self, config, dataset, num_extra_vectors: int = 0, options: Optional[DLRMOptions] = None):
        patches.apply()  # a cheap guard for callers that built the Config themselves
        # ContextRecommender.__init__ builds RecBole's own embedding tables, which DLRM does not
        # use; skip it so parameter counts are honest, and keep its type / input_type.
        AbstractRecommender.__init__(self)
        self.config = config
        self.device = config["device"]
        self.LABEL = config["LABEL_FIELD"]
        self.options = options if options is not None else build_options(self.options_class, config, type(self))
        self.embedding_size = self.options.embedding_size
        self.fields = FeatureFields.from_dataset(config, dataset)
        dropout = self.options.dropout_prob
        self.num_extra_vectors = int(num_extra_vectors)

        self.sparse_arch = SparseArch(self.fields.token_dims, self.fields.token_seq_dims, self.embedding_size)
        self.dense_arch = (
            DenseArch(len(self.fields.dense), self.options.bottom_mlp, self.embedding_size, dropout)
            if self.fields.dense
            else None
        )
        # The dense output is both passed through and one of the interacting vectors, as in DLRM.
        num_vectors = self.sparse_arch.num_vectors + (1 if self.dense_arch else 0) + self.num_extra_vectors
        self.interaction_arch = interaction_arch(
            self.options.interaction,
            num_vectors,
            self.embedding_size,
            dcn_layers=self.options.dcn_layers,
            dcn_low_rank=self.options.dcn_low_rank,
        )
        dense_dim = self.embedding_size if self.dense_arch else 0
        self.over_arch = OverArch(
            self.interaction_arch.output_dim(dense_dim),
            self.options.top_mlp,
            dropout,
            input_dropout=self.options.top_dropout,
        )
        self.first_order_arch = (
            FirstOrderArch(self.fields.token_dims, self.fields.token_seq_dims, len(self.fields.dense))
            if self.options.first_order
            else None
        )

        self.pos_weight = resolve_pos_weight(self.options.pos_weight, dataset, self.LABEL)
        self.rec_loss = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(self.pos_weight))
        self.oov_arch = self.build_oov_arch(config, dataset) if self.options.oov_embedding else None

    def build_oov_arch(self, config, dataset) -> OOVArch:
        """The OOV rows of the user and item id fields: known = the ids of `dataset`'s
        interactions (the TRAIN split: RecBole builds the model from the train loader's dataset,
        the whole split on every DDP rank and under the fast loader)."""
        sides = (
            (config["USER_ID_FIELD"], self.options.id_dropout_user),
            (config["ITEM_ID_FIELD"], self.options.id_dropout_item),
        )
        fields, known, rates = [], [], []
        for name, rate in sides:
            counts = torch.bincount(dataset.inter_feat[name].long(), minlength=dataset.num(name))
            counts[0] = 0  # RecBole's padding id is never a known id
            fields.append(self.fields.token.index(name))
            known.append(counts > 0)
            rates.append(rate)
        # Each DDP rank drops its own rows with its own stream (rank 0: the seed), as the samplers do.
        seed = rank_seed(int(config["seed"]), default_rank())
        return OOVArch(fields, known, self.embedding_size, rates, seed, first_order=self.first_order_arch is not None)

    # -- feature vectors -------------------------------------------------------------------
    def extra_vectors(self, interaction) -> List[torch.Tensor]:
        """The `num_extra_vectors` additional B x D feature vectors for the interaction (none
        in DLRM)."""
        return []

    def dense_input(self, interaction) -> torch.Tensor:
        """B x F_dense float features. RecBole stores a numerical float field as (value, bucket)
        pairs (B x 2); the value is column 0."""
        cols = []
        for name in self.fields.dense:
            x = interaction[name]
            cols.append(x[:, 0] if x.dim() == 2 else x)
        return torch.stack(cols, dim=1).float()

    def sparse_input(self, interaction):
        """(token ids B x F_tok or None, list of token_seq tensors B x L)."""
        token_ids = torch.stack([interaction[name] for name in self.fields.token], dim=1) if self.fields.token else None
        return token_ids, [interaction[name] for name in self.fields.token_seq]

    def feature_vectors(
        self,
        interaction,
        extras: Optional[List[torch.Tensor]] = None,
        token_vectors: Optional[torch.Tensor] = None,
        oov_replaced: Optional[torch.Tensor] = None,
    ):
        """Returns (vectors B x F x D, dense B x D or None). Parts the caller has computed
        already: `extras` (this batch's `extra_vectors`), `token_vectors` (B x F_tok x D, the
        token fields' embedding rows) and, with oov_embedding, `oov_replaced` (B x 2, this
        step's OOV path of the user and item fields: OOVArch.replaced_rows); the others are
        computed here."""
        token_ids, token_seqs = self.sparse_input(interaction)
        if self.oov_arch is not None:  # the switch's branch only: off, the order of draws is as before
            extras = self.extra_vectors(interaction) if extras is None else extras
            if token_vectors is None:
                token_vectors = self.token_table()(self.sparse_arch.token_rows(token_ids))
            substitutes = self.oov_substitutes(interaction, extras)
            token_vectors = self.oov_arch(token_ids, token_vectors, oov_replaced, substitutes)
        parts = [self.sparse_arch(token_ids, token_seqs, token_vectors)] if self.sparse_arch.num_vectors else []
        dense = self.dense_arch(self.dense_input(interaction)) if self.dense_arch is not None else None
        extras = self.extra_vectors(interaction) if extras is None else extras
        vectors = [v for v in [dense, *extras] if v is not None]
        if vectors:
            parts.append(torch.stack(vectors, dim=1))
        return torch.cat(parts, dim=1), dense

    def oov_substitutes(self, interaction, extras: List[torch.Tensor]) -> Optional[Substitutes]:
        """What an id on the OOV path takes instead of its field's OOV row, per token field (none
        in DLRM; DLRREC: its text-to-ID map where the row's id has text)."""
        return None

    # -- RecBole API -----------------------------------------------------------------------
    def forward(
        self, interaction, extras: Optional[List[torch.Tensor]] = None, token_vectors: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Logits, shape B. `extras`, `token_vectors` as in `feature_vectors`."""
        replaced = None
        if self.oov_arch is not None:  # one draw for the vectors and the first-order weights
            replaced = self.oov_arch.replaced_rows(self.sparse_input(interaction)[0])
        vectors, dense = self.feature_vectors(interaction, extras, token_vectors, replaced)
        logits = self.over_arch(self.interaction_arch(vectors, dense))
        if self.first_order_arch is not None:
            token_ids, token_seqs = self.sparse_input(interaction)
            dense_in = self.dense_input(interaction) if self.fields.dense else None
            logits = logits + self.first_order_arch(token_ids, token_seqs, dense_in)
            if self.oov_arch is not None and replaced is not None:
                logits = logits + self.oov_first_order_shift(token_ids, replaced)
        return logits

    def oov_first_order_shift(self, token_ids: torch.Tensor, replaced: torch.Tensor) -> torch.Tensor:
        """B: the first-order term's change when the replaced user / item ids take their
        side's OOV bias instead of their own weight (an unseen id's own is its untrained 0)."""
        assert self.oov_arch is not None and self.first_order_arch is not None
        table = self.first_order_arch.weights.token_table
        assert table is not None, "the user and item ids are token fields"
        rows = self.first_order_arch.weights.token_rows(token_ids)[:, self.oov_arch.fields]
        return self.oov_arch.first_order_shift(table(rows).squeeze(-1), replaced)

    def rec_loss_value(self, logits: torch.Tensor, interaction) -> torch.Tensor:
        return self.rec_loss(logits, interaction[self.LABEL].float())

    def embedding_penalty(self, interaction, token_vectors: Optional[torch.Tensor] = None) -> torch.Tensor:
        """embedding_l2 * (sum of squares of the SparseArch rows this batch reads) / B: each
        token field's row and each non-padding token of a token_seq field, counted once per
        occurrence (so frequent ids are pulled harder, as in the usual batch-wise L2 of CTR
        models). `token_vectors`: the token rows B x F_tok x D when the caller has them. The
        first-order weights are not embeddings of the interaction and are left out."""
        token_ids, token_seqs = self.sparse_input(interaction)
        batch = len(interaction)
        total = self._zero()
        if self.sparse_arch.token_table is not None:
            if token_vectors is None:
                token_vectors = self.sparse_arch.token_table(self.sparse_arch.token_rows(token_ids))
            total = total + token_vectors.float().pow(2).sum()
        for table, seq in zip(self.sparse_arch.token_seq_tables, token_seqs):
            rows = cast(nn.Embedding, table).weight[seq]  # B x L x D; row 0 is padding
            total = total + (rows.pow(2).sum(-1) * (seq != 0)).sum()
        return self.options.embedding_l2 * total / batch

    def _zero(self) -> torch.Tensor:
        return torch.zeros((), device=next(self.over_arch.parameters()).device)

    def token_table(self) -> nn.Embedding:
        """The one table of the token fields' rows. Every model here has one: the user and item ids
        are token fields."""
        table = self.sparse_arch.token_table
        assert table is not None, "a model without token fields has no token table"
        return table

    def lookup_token_vectors(self, interaction) -> Optional[torch.Tensor]:
        """The token fields' rows B x F_tok x D (one lookup shared by forward and the penalty)."""
        token_ids, _ = self.sparse_input(interaction)
        if token_ids is None:
            return None
        return self.token_table()(self.sparse_arch.token_rows(token_ids))

    def calculate_loss(self, interaction):
        """L_rec, or (L_rec, embedding penalty) when embedding_l2 > 0 (RecBole's trainer sums a
        tuple and logs each part)."""
        if not self.options.embedding_l2:
            return self.rec_loss_value(self.forward(interaction), interaction)
        token_vectors = self.lookup_token_vectors(interaction)
        rec = self.rec_loss_value(self.forward(interaction, token_vectors=token_vectors), interaction)
        return rec, self.embedding_penalty(interaction, token_vectors)

    def predict(self, interaction):
        return torch.sigmoid(self.forward(interaction))
