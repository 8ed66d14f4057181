"""InfoNCE on cosine similarity, one batch's contrastive draw (anchors, positives, negatives) and
the SimCLR-style projection head the loss may see the representations through.

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
) -> torch.Tensor:
    """Per-anchor InfoNCE on cosine similarity:
    -log( e^{s(a,p)/tau} / (e^{s(a,p)/tau} + sum_n e^{s(a,n)/tau}) ).

    anchor, positive: A x D; negatives: A x N x D, or N x D shared by all anchors.
    negative_mask: A x N bool, False = not a negative for that anchor (excluded).
    Returns A losses.
    """
    a = F.normalize(anchor, dim=-1)
    p = F.normalize(positive, dim=-1)
    n = F.normalize(negatives, dim=-1)
    pos = (a * p).sum(-1, keepdim=True)  # A x 1
    neg = torch.einsum("ad,and->an", a, n) if n.dim() == 3 else a @ n.T  # A x N
    if negative_mask is not None:
        neg = neg.masked_fill(~negative_mask, float("-inf"))
    logits = torch.cat([pos, neg], dim=1) / tau
    return torch.logsumexp(logits, dim=1) - logits[:, 0]


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

    @classmethod
    def with_shared_negatives(
        cls, anchors: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor, mask: torch.Tensor
    ) -> "ContrastiveDraw":
        """A draw whose N negatives are shared by all anchors (a corpus pool, or the anchors'
        positives: in-batch): a shared id equal to an anchor or to its positive is masked out
        for that anchor."""
        negative_mask = (negatives[None, :] != anchors[:, None]) & (negatives[None, :] != positives[:, None])
        return cls(anchors, positives, negatives, negative_mask, mask)

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
            per_anchor = info_nce(a.float(), p.float(), n.float(), tau, self.negative_mask)
        weight = self.mask.to(per_anchor.dtype)
        return (per_anchor * weight).sum() / weight.sum().clamp(min=1.0)


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
