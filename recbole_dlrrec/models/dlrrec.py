"""DLRREC: DLRM + co-trained reduction of text vectors + SWING-positive InfoNCE heads.

    user / item text vector (B x T, e.g. T = 384)
        --ReductionTower--> B x R (R = reduction_dim) --adapter--> B x D  ... joins the DLRM
    interaction as one more feature vector per side (see dlrm.py for the rest).

    L = L_rec + w1 * L_ii + w2 * L_uu
    L_rec: BCE on the logit, positives weighted by pos_weight.
    L_ii / L_uu: InfoNCE over the batch's distinct items / users (at most cl_max_anchors):
        -log( e^{s(a,p)/tau} / (e^{s(a,p)/tau} + sum_n e^{s(a,n)/tau}) ),  s = cosine,
        p drawn from the anchor's top SWING neighbours (computed on TRAIN only),
        n random corpus ids (cl_negatives: random | shared), the other anchors' positives
        (in_batch) or ids close in text with no shared train interaction (hard, topped up with
        random ids: swing/hard_negatives.py). Anchors without a SWING neighbour are masked out.
        cl_similarity swaps SWING for a co-occurrence cosine or Jaccard (swing/similarity.py).
        Random / shared negatives come from all ids (cl_negative_pool: all) or only the ids of
        the TRAIN split (seen), uniformly (cl_negative_dist: uniform) or in proportion to the
        TRAIN count^0.75 (popularity); cl_mask_neighbours also masks every top-k SWING
        neighbour of the anchor out of its negatives (not only the drawn positive), for every
        cl_negatives mode. cl_projection: mlp puts a SimCLR projection head (per side) between
        the representations and s(.,.): only the loss sees through it.

Contrasted representation (`cl_repr`):
    id    the ID embedding (the item_id / user_id row of the SparseArch table), B x D
    text  the adapted reduced text vector, B x D
    fused id + text (their sum, B x D). Chosen as default because the sum is exactly what the
          interaction sees of a user or item through its two main vectors, so SWING shapes both
          the ID table and the reduction tower, and neither part can satisfy the loss alone
          while the other drifts (as it could with a concatenation).
    text_vs_id  cross-modal: the anchor's text against ID embeddings. The positive is the ID
          embedding of the anchor itself with probability 1/2 (TEXT_VS_ID_SELF_POSITIVE in
          models/dlrrec_strategies.py), else of its drawn SWING neighbour (swing_sample_mode);
          an anchor without a neighbour always takes its own ID, so no anchor is masked out.
          Negatives are ID embeddings (never the anchor's own). The text tower learns to point
          at its id's (and neighbours') ID rows, the ID table to agree with the text.

Variants by config alone: reduction none | linear | pca (V0: PCA fitted on the TRAIN split's
vectors, frozen) | mlp (default); w1 = 0 / w2 = 0 switch the heads off. The text's bottleneck is
min(reduction_dim, embedding_size) (see nn/text.py); `reduction_adapter: none` with reduction_dim
== embedding_size removes the trained R -> D adapter, so `reduction: pca` is then a truly
two-step V0 (a frozen PCA straight into the interaction). `text_dropout` drops raw text vector
entries before the tower; the tower's own dropout is `reduction_dropout`. A trained tower may
start from V0's PCA or its whitening (`reduction_init`, nn/text.py), stay frozen for
`reduction_warmup_epochs` and then learn at `reduction_lr_scale` x the learning rate (its own
optimizer param group: runtime/training.py ReductionSchedule; `reduction_parameters` names it).
`semantic_ids` > 0 adds the item's semantic IDs (models/semantic_ids.py: residual k-means codes of
the TRAIN items' text) as that many more feature vectors after the text's.

The heads' objective (`contrastive`, models/dlrrec_strategies.py OBJECTIVES): 'infonce' (above),
'catalog_softmax' (the item head: a softmax over the whole item catalogue with a log-frequency
correction, at cl_catalog_tau) or 'align_uniform' (alignment + cl_uniformity_weight x
uniformity, no negatives). The collapse monitor logs the mean pairwise cosine and the effective
rank of the representations, and of their projections when there is a projection head.

Which user text a row sees (`user_text`): a user's profile text (uservec) is built from ALL the
user's train reviews, so a train row's user vector holds that row's own review (its sentiment
predicts the label) while no valid/test row's does. 'before_row' gives each listed train row the
vector of its user's strictly earlier reviews ({dataset}.userhist.npz, looked up by (user, item)
on the device) and every other row the full vector; 'full' is the profile for every row (the
leaky one); 'none' builds no user tower; 'auto' is before_row when the file exists, else full.
`no_history: learned` replaces the tower's output for a row without any user text (a first
review, a cold user) by one learned vector instead of the tower's output of zeros. The
contrastive heads and the collapse monitor represent a user by id: the full per-user vector.
V0 (pca) fits on the train users' full vectors, as before; history vectors pass through it.
Unseen ids: with `oov_embedding` (DLRM's), `text_to_id` gives an unseen or ID-dropped id that has
text the output of a map from its text to the ID space (models/dlrrec_oov.py).
`item_review_text: true` adds the item's review vector (the mean of its train reviews, under the
same per-row rule) as one more feature vector through the item tower: models/dlrrec_item_reviews.py.
Built from parts: `DLRREC(config, dataset)` (RecBole's signature) types the config once
(DLRRECOptions), and the builder (models/dlrrec_parts.py) turns the options and the TRAIN
dataset into the text towers, the user-history lookup, the V0 PCA fit, the SWING / similarity and
hard-negative samplers with their negative weights and the collapse-monitor sample. `cl_repr` and
`cl_negatives` name strategies in the registries of models/dlrrec_strategies.py (REPRESENTATIONS,
NEGATIVES); this class keeps forward, the losses, predict, the monitoring and the parts.
Defaults: properties/model/DLRREC.yaml.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Dict, List, Optional

import torch
from torch import nn

from recbole_dlrrec.config.options import build_options
from recbole_dlrrec.models.dlrm import DLRM, DLRMOptions
from recbole_dlrrec.models.dlrrec_oov import build_text_to_id
from recbole_dlrrec.models.dlrrec_parts import build_parts, load_text_inputs
from recbole_dlrrec.models.semantic_ids import SemanticIdOptions, SemanticIds
from recbole_dlrrec.nn.contrastive import ContrastiveDraw, ProjectionHead, effective_rank, mean_pairwise_cosine


@dataclass(frozen=True)
class DLRRECOptions(DLRMOptions):
    """The config keys DLRREC reads beyond DLRM's, typed and checked (config/options.py
    build_options: values and defaults from the config and properties/model/DLRREC.yaml, valid
    values from the keys' notes there; nothing is defaulted or re-checked here)."""

    reduction: str
    reduction_dim: int
    reduction_adapter: str
    reduction_hidden: List[int]
    reduction_dropout: float
    reduction_norm: Optional[str]
    reduction_init: str
    reduction_warmup_epochs: int
    reduction_lr_scale: float
    text_dropout: float
    w1: float
    w2: float
    tau: float
    cl_repr: str
    cl_negatives: str
    cl_num_negatives: int
    cl_max_anchors: Optional[int]
    cl_projection: str
    cl_negative_pool: str
    cl_negative_dist: str
    cl_mask_neighbours: bool
    contrastive: str
    cl_catalog_tau: float
    cl_uniformity_weight: float
    collapse_sample: int
    user_text: str
    no_history: str
    text_to_id: bool
    text_to_id_hidden: List[int]
    item_review_text: bool


class DLRREC(DLRM, SemanticIds):
    """DLRM with co-trained text reduction and SWING contrastive heads (see module doc).

    The RecBole adapter: `DLRREC(config, dataset)` builds the typed options (config/options.py),
    hands them to the builder (models/dlrrec_parts.py) and keeps the parts it returns, as
    torchrec's DLRM keeps its arches: `text_sides` (side -> nn/text.py TextTower),
    `history_lookup`, `samplers` / `hard_samplers` (side -> swing/ samplers), the strategies
    `representation_strategy` (cl_repr) and `negative_strategy` (cl_negatives) from
    models/dlrrec_strategies.py. It computes RecBole's `calculate_loss` / `predict` and the
    collapse monitor. Build order: the text tables first (DLRM sizes its interaction for them:
    one extra feature vector per side with text), then DLRM's arches, then the text towers, then
    the projection heads (parameters registered in that order).
    """

    options_class = DLRRECOptions
    options: DLRRECOptions

    def __init__(self, config, dataset):
        options = build_options(self.options_class, config, type(self))
        text = load_text_inputs(options, config, dataset)
        levels = build_options(SemanticIdOptions, config, type(self)).semantic_ids
        super().__init__(config, dataset, num_extra_vectors=text.num_vectors + levels, options=options)
        self.USER_ID = config["USER_ID_FIELD"]
        self.ITEM_ID = config["ITEM_ID_FIELD"]
        self.user_text = text.user_text
        parts = build_parts(options, config, dataset, text)
        self.text_sides = parts.text_sides
        self.history_lookup = parts.history_lookup
        self.review_lookup = parts.review_lookup
        self.samplers = parts.samplers
        self.hard_samplers = parts.hard_samplers
        self.representation_strategy = parts.representation
        self.negative_strategy = parts.negatives
        self.objective = parts.objective
        self.weights = parts.weights
        self.collapse_history: List[Dict[str, float]] = []
        self._collapse_ids = parts.collapse_ids
        # Built last, and only when asked for: every other parameter keeps its initial values
        # (the global RNG draws them first) and the state_dict stays what it was without them.
        if options.cl_projection == "mlp":
            self.cl_projections = nn.ModuleDict({side: ProjectionHead(self.embedding_size) for side in self.samplers})
        # After them for the same reason (models/dlrrec_oov.py; None when text_to_id is off).
        self.text_to_id = build_text_to_id(options, text)
        # The item semantic IDs (models/semantic_ids.py) after it, likewise; semantic_ids 0 builds nothing.
        self.semantic_ids = self.semantic_id_arch(config, dataset, self.embedding_size)

    @property
    def cl_repr(self) -> str:
        """The name of the contrasted representation (cl_repr)."""
        return self.representation_strategy.name

    # -- DLRM hook -----------------------------------------------------------------------
    def tower_rows(self, side: str, interaction) -> torch.Tensor:
        """B rows of the side's text table for the batch's rows: the item ids; the user ids, or
        under user_text 'before_row' each listed train row's own history row."""
        if side == "item":
            return interaction[self.ITEM_ID]
        users = interaction[self.USER_ID]
        if self.history_lookup is None:
            return users
        return self.history_lookup(users, interaction[self.ITEM_ID])

    def extra_vectors(self, interaction) -> List[torch.Tensor]:
        text = [module(self.tower_rows(side, interaction)) for side, module in self.text_sides.items()]
        return text + self.semantic_vectors(interaction) + self.review_vectors(interaction)

    def semantic_vectors(self, interaction) -> List[torch.Tensor]:
        """The item's semantic ID vectors, one B x D per level ([] when semantic_ids is 0)."""
        if self.semantic_ids is None:
            return []
        return list(self.semantic_ids(interaction[self.ITEM_ID]).unbind(1))

    def review_vectors(self, interaction) -> List[torch.Tensor]:
        """[B x D]: each row's item review vector through the item tower (item_review_text,
        models/dlrrec_item_reviews.py); [] without the switch."""
        if self.review_lookup is None:
            return []
        rows = self.review_lookup(interaction[self.USER_ID], interaction[self.ITEM_ID])
        return [self.text_sides["item"](rows)]

    def oov_substitutes(self, interaction, extras: List[torch.Tensor]):
        """text_to_id: the map of each row's text (models/dlrrec_oov.py), else the OOV rows."""
        return None if self.text_to_id is None else self.text_to_id.substitutes(self, interaction, extras)

    def reduction_parameters(self) -> List[nn.Parameter]:
        """The reduction towers' parameters (each side's ReductionTower, not its adapter): what
        reduction_warmup_epochs freezes and reduction_lr_scale scales (runtime/training.py)."""
        return [param for module in self.text_sides.values() for param in module.tower.parameters()]

    # -- representations -----------------------------------------------------------------
    def id_field(self, side: str) -> str:
        """The id field of a side ('item' or 'user')."""
        return self.ITEM_ID if side == "item" else self.USER_ID

    def id_field_position(self, side: str) -> int:
        """The position of the side's id field among the token fields."""
        return self.fields.token.index(self.id_field(side))

    def _id_rows(self, side: str, ids: torch.Tensor) -> torch.Tensor:
        """Rows of the shared token table holding the ID embeddings of `ids`."""
        return self.sparse_arch.field_rows(self.id_field_position(side), ids)

    def id_embedding(self, side: str, ids: torch.Tensor) -> torch.Tensor:
        """The ID embedding rows of `ids` (B) -> B x D."""
        return self.token_table()(self._id_rows(side, ids))

    def _encoders(self, side: str):
        """(text_of, id_of): the side's text tower (None without one) and its ID embedding."""
        return self.text_sides[side] if side in self.text_sides else None, lambda ids: self.id_embedding(side, ids)

    def representation(
        self,
        side: str,
        ids: torch.Tensor,
        text: Optional[torch.Tensor] = None,
        id_vectors: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """The contrasted representation (cl_repr) of ids B -> B x D (text_vs_id: the text).
        `text` / `id_vectors`: the side's text vectors / ID embeddings of `ids` (B x D) when the
        caller has them."""
        return self.representation_strategy.of_ids(ids, *self._encoders(side), text, id_vectors)

    def draw_representations(
        self,
        side: str,
        draw: ContrastiveDraw,
        text: Optional[torch.Tensor] = None,
        id_vectors: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """The representations of `draw.ids()` (len x D) the loss reads (text_vs_id: the
        anchors' text, A x D, then the ID embeddings of the positives and negatives). `text`:
        the text of the ids the strategy reads text of (`text_ids`); `id_vectors`: the ID
        embeddings of `draw.ids()`."""
        return self.representation_strategy.of_draw(draw, *self._encoders(side), text, id_vectors)

    def _lookup_ids(self, token_ids: torch.Tensor, draws: Dict[str, ContrastiveDraw]):
        """One lookup of the token table for the batch's token fields (B x F_tok) and the ids
        the contrastive heads read. Each lookup of a table makes a table-sized dense gradient in
        backward (zero-filled, then added up), so one lookup instead of three saved ~4 ms of a
        ~40 ms CPU step on a 110k-row table. Returns (B x F_tok x D, {side: R x D})."""
        strategy = self.representation_strategy
        sides = [side for side in draws if strategy.reads_ids(side in self.text_sides)]
        if not sides:
            return None, {}
        rows = [self.sparse_arch.token_rows(token_ids)] + [self._id_rows(side, draws[side].ids()) for side in sides]
        flat = torch.cat([r.reshape(-1) for r in rows])
        vectors = self.token_table()(flat).split([r.numel() for r in rows])
        return vectors[0].view(*token_ids.shape, -1), dict(zip(sides, vectors[1:]))

    def _encode_side(
        self,
        side: str,
        batch_ids: torch.Tensor,
        draw: Optional[ContrastiveDraw],
        id_vectors: Optional[torch.Tensor] = None,
    ):
        """One pass of the side's text path over the batch's table rows (`batch_ids`: see
        tower_rows) and the ids the contrastive head needs (the anchors are batch ids, so most
        are shared; the tower runs once per distinct row). Returns (B x D text for the
        interaction or None, R x D contrasted representations of `draw.ids()` or None)."""
        text_side = self.text_sides[side] if side in self.text_sides else None
        batch_text = cl_text = None
        if text_side is not None:
            if draw is not None and self.representation_strategy.reads_text:
                cl_ids = self.representation_strategy.text_ids(draw)
                both = text_side(torch.cat([batch_ids, cl_ids]))
                batch_text, cl_text = both[: len(batch_ids)], both[len(batch_ids) :]
            else:
                batch_text = text_side(batch_ids)
        reps = self.draw_representations(side, draw, cl_text, id_vectors) if draw is not None else None
        return batch_text, reps

    # -- contrastive heads ---------------------------------------------------------------
    def contrastive_draw(self, side: str, batch_ids: torch.Tensor) -> ContrastiveDraw:
        """Anchors (the batch's distinct ids on one side, at most cl_max_anchors), their SWING
        positives and the negatives, all on the device."""
        sampler = self.samplers[side]
        anchors = torch.unique(batch_ids)
        if self.options.cl_max_anchors is not None and anchors.numel() > self.options.cl_max_anchors:
            pick = torch.randperm(anchors.numel(), generator=sampler.generator, device=sampler.device)
            anchors = anchors[pick[: int(self.options.cl_max_anchors)]]
        draw = self.objective.draw(
            side,
            self.negative_strategy,
            sampler,
            self.hard_samplers.get(side),
            anchors,
            self.options.cl_num_negatives,
            self.representation_strategy.self_positive,
        )
        if self.options.cl_mask_neighbours:
            draw = draw.excluding(sampler.neighbour_hits(anchors, draw.negatives))
        return draw

    def head_loss(self, side: str, draw: ContrastiveDraw, reps: torch.Tensor) -> torch.Tensor:
        """The head's loss (`contrastive`: InfoNCE, the catalogue softmax or align/uniform) of
        one side's draw from its representations (`draw_representations`), through the side's
        projection head when cl_projection is 'mlp'."""
        if self.options.cl_projection == "mlp":
            reps = self.cl_projections[side](reps)
        return self.objective.loss(side, draw, reps, self.options)

    def contrastive_loss(self, side: str, batch_ids: torch.Tensor) -> torch.Tensor:
        """InfoNCE over the distinct ids of the batch on one side (0-d tensor)."""
        draw = self.contrastive_draw(side, batch_ids)
        return self.head_loss(side, draw, self.draw_representations(side, draw))

    # -- RecBole API ---------------------------------------------------------------------
    def calculate_loss(self, interaction):
        """(L_rec, w1 * L_ii, w2 * L_uu), and the embedding penalty after them when
        embedding_l2 > 0: RecBole's trainer sums them and logs each part."""
        batch_ids = {"item": interaction[self.ITEM_ID], "user": interaction[self.USER_ID]}
        weights = self.weights
        draws = {side: self.contrastive_draw(side, batch_ids[side]) for side in weights if weights[side]}
        token_vectors, id_vectors = self._lookup_ids(self.sparse_input(interaction)[0], draws)
        if token_vectors is None and (self.options.embedding_l2 or self.text_to_id is not None):
            token_vectors = self.lookup_token_vectors(interaction)  # shared by forward, penalty and map fit
        encoded = {
            side: self._encode_side(side, self.tower_rows(side, interaction), draws.get(side), id_vectors.get(side))
            for side in weights
        }
        # The order extra_vectors uses: the sides' text, the semantic IDs, the item review vector.
        extras = (
            [encoded[side][0] for side in self.text_sides]
            + self.semantic_vectors(interaction)
            + self.review_vectors(interaction)
        )
        rec = self.rec_loss_value(self.forward(interaction, extras, token_vectors), interaction)
        heads = {
            side: weights[side] * self.head_loss(side, draws[side], encoded[side][1]) if side in draws else self._zero()
            for side in weights
        }
        parts = {"L_rec": rec, "w1*L_ii": heads["item"], "w2*L_uu": heads["user"]}
        if self.options.embedding_l2:
            parts["embedding_l2"] = self.embedding_penalty(interaction, token_vectors)
        if self.text_to_id is not None:
            parts["text_to_id"] = self.text_to_id.fit_loss(self, interaction, token_vectors, extras)
        if not bool(torch.isfinite(torch.stack(list(parts.values()))).all()):  # one host sync
            name, part = next((n, p) for n, p in parts.items() if not torch.isfinite(p))
            raise ValueError(
                f"DLRREC loss part {name} is {part.item()} (tau={self.options.tau}, w1={self.options.w1}, "
                f"w2={self.options.w2}, learning rate too high?); training stopped"
            )
        return tuple(parts.values())

    # -- monitoring ----------------------------------------------------------------------
    def _collapse_reps(self, side: str) -> torch.Tensor:
        """The contrasted representations (unprojected) of the side's fixed collapse sample."""
        ids = self._collapse_ids[side].to(self.over_arch.model[0].weight.device)
        return self.representation(side, ids)

    @torch.no_grad()
    def mean_pairwise_cosine(self, side: str) -> float:
        """Mean cosine over all pairs of a fixed sample of representations; near 1 = collapse."""
        if self._collapse_ids[side].numel() < 2:
            return float("nan")
        return mean_pairwise_cosine(self._collapse_reps(side))

    @torch.no_grad()
    def collapse_indicators(self, side: str) -> Dict[str, float]:
        """The side's collapse indicators on its fixed sample: mean pairwise cosine (near 1 =
        collapse) and effective rank (near 1 = collapse, up to D) of the representations, and,
        when the side has a projection head (cl_projection 'mlp'), of what the loss sees
        through it (`_projected`): a head can collapse its output while the representation the
        interaction reads stays spread, or the other way round."""
        if self._collapse_ids[side].numel() < 2:
            return {f"{side}_mean_cos": float("nan")}
        reps = self._collapse_reps(side)
        out = {f"{side}_mean_cos": mean_pairwise_cosine(reps), f"{side}_effective_rank": effective_rank(reps)}
        projections = getattr(self, "cl_projections", None)
        if projections is not None and side in projections:
            projected = projections[side](reps)
            out[f"{side}_mean_cos_projected"] = mean_pairwise_cosine(projected)
            out[f"{side}_effective_rank_projected"] = effective_rank(projected)
        return out

    def on_epoch_end(self, epoch: int, trainer=None) -> Dict[str, float]:
        """Called by quick_start.run after each validation: logs the collapse indicators."""
        was_training = self.training
        self.eval()
        record: Dict[str, float] = {"epoch": epoch}
        for side in ("item", "user"):
            record.update(self.collapse_indicators(side))
        self.train(was_training)
        self.collapse_history.append(record)
        logging.getLogger().info(
            f"epoch {epoch} collapse indicators ({self.cl_repr} repr): "
            + "; ".join(f"{name} {value:.3f}" for name, value in record.items() if name != "epoch")
        )
        return record
