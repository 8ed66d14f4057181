"""DLRREC's contrastive head, by name: what is contrasted (`cl_repr`), where the negatives come
from (`cl_negatives`) and what the head optimises (`contrastive`). Each registry maps a key's
declared choice (properties/model/DLRREC.yaml) to a small object (stateless, but for the item
catalogue of `catalog_softmax`); the model picks one of each when it is built and calls it, so
it holds no branch over these keys.

Shapes: B ids, A anchors, N negatives, D = embedding_size. A side's encoders are two callables:
`text_of(ids B) -> B x D` (None when the side has no text tower) and `id_of(ids B) -> B x D`
(its ID embedding rows).
"""

from __future__ import annotations

from typing import Callable, Dict, Iterable, Mapping, Optional

import torch

from recbole_dlrrec.config.keys import ConfigKeyError
from recbole_dlrrec.nn.contrastive import ContrastiveDraw

Encoder = Callable[[torch.Tensor], torch.Tensor]

# cl_repr text_vs_id: probability that the anchor's positive is its own ID embedding rather than
# a SWING neighbour's. Half and half: the text learns to point at its own id's row and at its
# SWING neighbourhood's in equal measure.
TEXT_VS_ID_SELF_POSITIVE = 0.5


# -- cl_repr -------------------------------------------------------------------------------
class Representation:
    """What one side's contrasted vectors are. `self_positive`: the probability that an
    anchor's positive is the anchor itself (sampler.sample); `reads_text`: whether the head
    reads the side's text at all."""

    name: str = ""
    self_positive: float = 0.0
    reads_text: bool = True

    def check(self, text_sides: Iterable[str], weights: Mapping[str, float]) -> None:
        """ConfigKeyError when the sides with a head (weight > 0) lack what this needs."""

    def reads_ids(self, has_text: bool) -> bool:
        """Whether the head reads ID embeddings of `draw.ids()` (one side; `has_text`: it has
        a text tower)."""
        return True

    def text_ids(self, draw: ContrastiveDraw) -> torch.Tensor:
        """The ids of `draw` whose text the head reads."""
        return draw.ids()

    def of_ids(
        self,
        ids: torch.Tensor,
        text_of: Optional[Encoder],
        id_of: Encoder,
        text: Optional[torch.Tensor] = None,
        id_vectors: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """The representations of ids B -> B x D; `text` / `id_vectors` (B x D): what the
        caller has already computed of them."""
        raise NotImplementedError

    def of_draw(
        self,
        draw: ContrastiveDraw,
        text_of: Optional[Encoder],
        id_of: Encoder,
        text: Optional[torch.Tensor] = None,
        id_vectors: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """The representations of `draw.ids()` (len x D) the loss reads. `text`: the text of
        `text_ids(draw)`; `id_vectors`: the ID embeddings of `draw.ids()`."""
        return self.of_ids(draw.ids(), text_of, id_of, text, id_vectors)


class IdRepresentation(Representation):
    """The ID embedding (the id's row of the SparseArch table)."""

    name = "id"
    reads_text = False

    def of_ids(self, ids, text_of, id_of, text=None, id_vectors=None):
        return id_of(ids) if id_vectors is None else id_vectors


class TextRepresentation(Representation):
    """The adapted reduced text vector; the ID embedding on a side without text."""

    name = "text"

    def check(self, text_sides, weights):
        if not list(text_sides) and any(weights.values()):
            raise ConfigKeyError("cl_repr='text' needs text vectors, but reduction is 'none'")

    def reads_ids(self, has_text):
        return not has_text

    def of_ids(self, ids, text_of, id_of, text=None, id_vectors=None):
        if text_of is None:
            return id_of(ids) if id_vectors is None else id_vectors
        return text_of(ids) if text is None else text


class FusedRepresentation(Representation):
    """ID embedding + text (their sum): what the interaction sees of the id."""

    name = "fused"

    def of_ids(self, ids, text_of, id_of, text=None, id_vectors=None):
        id_vectors = id_of(ids) if id_vectors is None else id_vectors
        if text_of is None:
            return id_vectors
        return (text_of(ids) if text is None else text) + id_vectors


class TextVsIdRepresentation(TextRepresentation):
    """Cross-modal: the anchors' text against the ID embeddings of their positives and
    negatives. Alone (the collapse monitor) an id is represented by its text."""

    name = "text_vs_id"
    self_positive = TEXT_VS_ID_SELF_POSITIVE

    def check(self, text_sides, weights):
        text_sides = set(text_sides)
        for side, key in (("item", "w1"), ("user", "w2")):
            if weights[side] and side not in text_sides:
                raise ConfigKeyError(
                    f"cl_repr='text_vs_id' needs {side} text vectors for its head ({key} > 0), but the {side} "
                    "side has none" + (" (reduction is 'none')" if not text_sides else "")
                )

    def reads_ids(self, has_text):
        return True

    def text_ids(self, draw):
        return draw.anchors

    def of_draw(self, draw, text_of, id_of, text=None, id_vectors=None):
        count = len(draw.anchors)
        text = text_of(draw.anchors) if text is None else text
        others = id_of(draw.ids()[count:]) if id_vectors is None else id_vectors[count:]
        return torch.cat([text, others.to(text.dtype)])


REPRESENTATIONS: Dict[str, type] = {
    cls.name: cls for cls in (FusedRepresentation, TextRepresentation, IdRepresentation, TextVsIdRepresentation)
}


# -- cl_negatives --------------------------------------------------------------------------
class Negatives:
    """Where one side's negatives come from. `needs_hard_table`: the builder builds the side's
    hard-negative sampler (swing/hard_negatives.py) for it."""

    name: str = ""
    needs_hard_table: bool = False

    def draw(self, sampler, hard_sampler, anchors: torch.Tensor, count: int, self_positive: float) -> ContrastiveDraw:
        """A draw for anchors A: positives from `sampler` (swing/sampler.py SwingSampler), and
        `count` negatives (per anchor, or one pool shared by all)."""
        raise NotImplementedError


class RandomNegatives(Negatives):
    """`count` corpus ids per anchor, drawn with the positive."""

    name = "random"

    def draw(self, sampler, hard_sampler, anchors, count, self_positive):
        positives, negatives, mask = sampler.sample(anchors, count, self_positive)
        return ContrastiveDraw(anchors, positives, negatives, None, mask)


class HardNegatives(Negatives):
    """Per anchor, ids close in text that share no train interaction with it, topped up with
    random ids."""

    name = "hard"
    needs_hard_table = True

    def draw(self, sampler, hard_sampler, anchors, count, self_positive):
        positives, _, mask = sampler.sample(anchors, 0, self_positive)
        return ContrastiveDraw(anchors, positives, hard_sampler.sample(anchors, positives, count), None, mask)


class InBatchNegatives(Negatives):
    """The other anchors' positives."""

    name = "in_batch"

    def draw(self, sampler, hard_sampler, anchors, count, self_positive):
        positives, _, mask = sampler.sample(anchors, 0, self_positive)
        return ContrastiveDraw.with_shared_negatives(anchors, positives, positives, mask)


class SharedNegatives(Negatives):
    """One pool of `count` corpus ids for the whole batch."""

    name = "shared"

    def draw(self, sampler, hard_sampler, anchors, count, self_positive):
        positives, _, mask = sampler.sample(anchors, 0, self_positive)
        negatives = sampler.sample_shared_negatives(count)
        return ContrastiveDraw.with_shared_negatives(anchors, positives, negatives, mask)


NEGATIVES: Dict[str, type] = {
    cls.name: cls for cls in (SharedNegatives, RandomNegatives, InBatchNegatives, HardNegatives)
}


# -- contrastive ---------------------------------------------------------------------------
class Objective:
    """What one side's head optimises over its draw. `draw` makes the draw (by default the
    negative strategy's), `loss` turns it and its representations into the head's loss."""

    name: str = ""

    def draw(self, side: str, negatives: Negatives, sampler, hard_sampler, anchors, count, self_positive):
        return negatives.draw(sampler, hard_sampler, anchors, count, self_positive)

    def loss(self, side: str, draw: ContrastiveDraw, reps: torch.Tensor, options) -> torch.Tensor:
        return draw.loss(reps, options.tau)


class InfoNCEObjective(Objective):
    """InfoNCE over the drawn negatives at temperature tau."""

    name = "infonce"


class CatalogSoftmaxObjective(Objective):
    """A softmax over the side's whole catalogue (`catalogues[side]`, N ids) at temperature
    cl_catalog_tau with the log-frequency correction -log(1 + TRAIN count) on every logit
    (ContrastiveDraw.over_catalogue). The builder sets `catalogues` / `log_counts` for the item
    side only (a catalogue is its hundreds to thousands of ids, read each step; the users are
    many more): a side without a catalogue keeps InfoNCE."""

    name = "catalog_softmax"

    def __init__(self):
        self.catalogues: Dict[str, torch.Tensor] = {}
        self.log_counts: Dict[str, torch.Tensor] = {}

    def set_catalogue(self, side: str, ids: torch.Tensor, log_counts: torch.Tensor) -> None:
        """The side's catalogue (N ids) and the correction's log counts (one per id)."""
        self.catalogues[side] = ids
        self.log_counts[side] = log_counts

    def draw(self, side, negatives, sampler, hard_sampler, anchors, count, self_positive):
        if side not in self.catalogues:
            return super().draw(side, negatives, sampler, hard_sampler, anchors, count, self_positive)
        positives, _, mask = sampler.sample(anchors, 0, self_positive)
        return ContrastiveDraw.over_catalogue(anchors, positives, mask, self.catalogues[side], self.log_counts[side])

    def loss(self, side, draw, reps, options):
        return draw.loss(reps, options.cl_catalog_tau if side in self.catalogues else options.tau)


class AlignUniformObjective(Objective):
    """Alignment of anchor and positive plus cl_uniformity_weight x uniformity (Wang & Isola
    2020; CL4CTR's alignment and uniformity terms): no negatives are drawn."""

    name = "align_uniform"

    def draw(self, side, negatives, sampler, hard_sampler, anchors, count, self_positive):
        positives, _, mask = sampler.sample(anchors, 0, self_positive)
        return ContrastiveDraw.with_shared_negatives(anchors, positives, anchors.new_empty((0,)), mask)

    def loss(self, side, draw, reps, options):
        return draw.align_uniform_loss(reps, options.cl_uniformity_weight)


OBJECTIVES: Dict[str, type] = {
    cls.name: cls for cls in (InfoNCEObjective, CatalogSoftmaxObjective, AlignUniformObjective)
}
