"""InfoNCE on cosine similarity (with an optional per-candidate logit offset, which makes it a
full-catalogue softmax with a log-frequency correction when the negatives are the catalogue),
alignment and uniformity (Wang & Isola 2020), one batch's contrastive draw (anchors, positives,
negatives), the SimCLR-style projection head the loss may see the representations through, and
the collapse indicators (mean pairwise cosine, effective rank).

Shapes: A = anchors, N = negatives (per anchor or one shared pool), D = representation size.
Where the ids come from (SWING neighbours, the corpus) is the caller's business
(swing/sampler.py); what is contrasted (ID embedding, text, both) too (models/dlrrec.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


def info_nce(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negatives: torch.Tensor,
    tau: float,
    negative_mask: Optional[torch.Tensor] = None,
    positive_offset: Optional[torch.Tensor] = None,
    negative_offset: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Per-anchor InfoNCE on cosine similarity:
    -log( e^{l(a,p)} / (e^{l(a,p)} + sum_n e^{l(a,n)}) ),  l(a,c) = s(a,c)/tau + offset(c).

    anchor, positive: A x D; negatives: A x N x D, or N x D shared by all anchors.
    negative_mask: A x N bool, False = not a negative for that anchor (excluded).
    positive_offset: A, negative_offset: N or A x N: added to the logits after the division by
    tau (e.g. -log frequency, the sampled-softmax correction); None adds nothing.
    Returns A losses.
    """
    a = F.normalize(anchor, dim=-1)
    p = F.normalize(positive, dim=-1)
    n = F.normalize(negatives, dim=-1)
    pos = (a * p).sum(-1, keepdim=True)  # A x 1
    neg = torch.einsum("ad,and->an", a, n) if n.dim() == 3 else a @ n.T  # A x N
    if negative_mask is not None:
        neg = neg.masked_fill(~negative_mask, float("-inf"))
    pos, neg = pos / tau, neg / tau
    if positive_offset is not None:
        pos = pos + positive_offset.unsqueeze(1)
    if negative_offset is not None:
        neg = neg + negative_offset  # N broadcasts over the anchors
    logits = torch.cat([pos, neg], dim=1)
    return torch.logsumexp(logits, dim=1) - logits[:, 0]


#: Wang & Isola's exponents: alignment ||f(a) - f(p)||^2, uniformity Gaussian potential e^{-2 d^2}.
ALIGNMENT_ALPHA = 2
UNIFORMITY_T = 2.0


def alignment(anchor: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Per-anchor alignment ||a/|a| - p/|p| ||^ALIGNMENT_ALPHA of A x D rows. Returns A values."""
    a, p = F.normalize(anchor, dim=-1), F.normalize(positive, dim=-1)
    return (a - p).norm(dim=-1).pow(ALIGNMENT_ALPHA)


def uniformity(reps: torch.Tensor, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """log of the weighted mean over ordered pairs i != j of e^{-t ||x_i - x_j||^2}, x the
    L2-normalised rows of N x D `reps`, t = UNIFORMITY_T; pair (i, j) weighs weight_i weight_j
    (N, default 1). Lower = spread more evenly over the sphere. 0 when no pair has weight."""
    x = F.normalize(reps, dim=-1)
    w = torch.ones(len(x), dtype=x.dtype, device=x.device) if weight is None else weight.to(x.dtype)
    squared = (2 - 2 * x @ x.T).clamp(min=0)  # ||x_i - x_j||^2 of unit rows
    pair_weight = (w[:, None] * w[None, :]).fill_diagonal_(0)
    total = pair_weight.sum()
    if float(total) == 0.0:
        return x.sum() * 0.0
    # log-sum-exp with log weights: stable, and zero-weight pairs drop out (log 0 = -inf).
    logits = -UNIFORMITY_T * squared + pair_weight.log()
    return torch.logsumexp(logits.reshape(-1), 0) - total.log()


@dataclass
class ContrastiveDraw:
    """One side's InfoNCE inputs for one batch (A anchors, N negatives), as ids.

    anchors, positives: A; negatives: A x N (a draw per anchor) or N shared by all anchors;
    negative_mask: A x N (False = not a negative for that anchor) or None;
    mask: A, False where the anchor has no positive (its loss is left out).
    """

    anchors: torch.Tensor
    positives: torch.Tensor
    negatives: torch.Tensor
    negative_mask: Optional[torch.Tensor]
    mask: torch.Tensor
    positive_offset: Optional[torch.Tensor] = None  # A, added to the positive's logit
    negative_offset: Optional[torch.Tensor] = None  # N (shared) or A x N

    @classmethod
    def with_shared_negatives(
        cls, anchors: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor, mask: torch.Tensor
    ) -> "ContrastiveDraw":
        """A draw whose N negatives are shared by all anchors (a corpus pool, or the anchors'
        positives: in-batch): a shared id equal to an anchor or to its positive is masked out
        for that anchor."""
        negative_mask = (negatives[None, :] != anchors[:, None]) & (negatives[None, :] != positives[:, None])
        return cls(anchors, positives, negatives, negative_mask, mask)

    @classmethod
    def over_catalogue(
        cls,
        anchors: torch.Tensor,
        positives: torch.Tensor,
        mask: torch.Tensor,
        catalogue: torch.Tensor,
        log_counts: torch.Tensor,
    ) -> "ContrastiveDraw":
        """A full-catalogue softmax as a draw: the N `catalogue` ids are the shared negatives
        (the anchor itself and its positive masked out, so the positive's logit sits once in
        the denominator) and every logit is corrected by -log_counts[id] (`log_counts`: one
        value per id, e.g. log(1 + TRAIN count), the sampled-softmax log-frequency correction:
        popular ids do not win by being popular)."""
        draw = cls.with_shared_negatives(anchors, positives, catalogue, mask)
        return replace(draw, positive_offset=-log_counts[positives], negative_offset=-log_counts[catalogue])

    def excluding(self, excluded: torch.Tensor) -> "ContrastiveDraw":
        """The same draw with the A x N `excluded` negatives masked out too (e.g. every one of
        the anchor's SWING neighbours, not only its drawn positive)."""
        keep = ~excluded if self.negative_mask is None else self.negative_mask & ~excluded
        return replace(self, negative_mask=keep)

    def ids(self) -> torch.Tensor:
        """Every id the loss reads, in the order `loss` expects its representations:
        anchors (A), positives (A), negatives (flattened)."""
        return torch.cat([self.anchors, self.positives, self.negatives.reshape(-1)])

    def loss(self, reps: torch.Tensor, tau: float) -> torch.Tensor:
        """Mean InfoNCE over the masked-in anchors, from `reps` = representations of `ids()`
        (len(ids()) x D); 0 when no anchor has a positive. Masking by weight, not by indexing,
        keeps the step free of host syncs."""
        count = len(self.anchors)
        a, p = reps[:count], reps[count : 2 * count]
        n = reps[2 * count :].reshape(*self.negatives.shape, -1)
        # Similarities in fp32 even under bf16 autocast (train_precision): dividing cosines by a
        # small tau would magnify bf16's ~3-digit rounding.
        with torch.autocast(device_type=reps.device.type, enabled=False):
            per_anchor = info_nce(
                a.float(), p.float(), n.float(), tau, self.negative_mask, self.positive_offset, self.negative_offset
            )
        weight = self.mask.to(per_anchor.dtype)
        return (per_anchor * weight).sum() / weight.sum().clamp(min=1.0)

    def align_uniform_loss(self, reps: torch.Tensor, uniformity_weight: float) -> torch.Tensor:
        """Wang & Isola's objective over the masked-in anchors: mean alignment of anchor and
        positive + uniformity_weight x (uniformity of the anchors + of the positives) / 2. The
        negatives, if any, are not read. `reps` as in `loss`."""
        count = len(self.anchors)
        with torch.autocast(device_type=reps.device.type, enabled=False):
            a, p = reps[:count].float(), reps[count : 2 * count].float()
            weight = self.mask.to(a.dtype)
            aligned = (alignment(a, p) * weight).sum() / weight.sum().clamp(min=1.0)
            spread = (uniformity(a, weight) + uniformity(p, weight)) / 2
        return aligned + uniformity_weight * spread


class ProjectionHead(nn.Module):
    """SimCLR's projection head g(h) = W2 ReLU(W1 h), R x D -> R x D, between a representation
    and the contrastive loss only: the loss can shape g's space (e.g. drop what it finds
    useless for telling neighbours apart) while the representation the interaction reads keeps
    it (Chen et al. 2020: the space before g transfers better than the one after it)."""

    def __init__(self, dim: int, hidden: Optional[int] = None):
        super().__init__()
        hidden = dim if hidden is None else hidden
        self.model = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, reps: torch.Tensor) -> torch.Tensor:
        return self.model(reps)


def mean_pairwise_cosine(reps: torch.Tensor) -> float:
    """Mean cosine over all ordered pairs of distinct rows of N x D `reps` (N >= 2): near 1
    means the representations collapsed to one direction."""
    reps = F.normalize(reps, dim=-1)
    gram = reps @ reps.T
    n = reps.shape[0]
    return float((gram.sum() - gram.diagonal().sum()) / (n * (n - 1)))


def effective_rank(reps: torch.Tensor) -> float:
    """Effective rank (Roy & Vetterli 2007) of N x D `reps`: exp of the entropy of the
    normalised singular values of the centred, L2-normalised rows; from 1 (every row on one
    line: collapse) to min(N, D) (variance spread evenly over all axes). nan for N < 2."""
    if reps.shape[0] < 2:
        return float("nan")
    x = F.normalize(reps.float(), dim=-1)
    singular = torch.linalg.svdvals(x - x.mean(0))
    total = singular.sum()
    if float(total) == 0.0:
        return 1.0
    p = singular / total
    entropy = -(p * p.clamp(min=torch.finfo(p.dtype).tiny).log()).sum()
    return float(entropy.exp())
