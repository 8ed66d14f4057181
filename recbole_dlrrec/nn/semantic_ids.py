"""Semantic IDs: residual k-means codes of text vectors, embedded as extra token fields.

    text vectors N x T --level 1 k-means--> code c1, residual r1 = x - centroid(c1)
                       --level 2 k-means on r1--> c2, r2 ... (L levels, C codes each)
    codes N x L --SemanticIdArch: one C+1 row table per level--> B x L x D

Items with similar text share codes, so they share the rows of those codes and what one item's
rows learn reaches its neighbours in text, including items never seen in training (their codes
come from their text). Code 0 is "no text": its row is learned like any other code's.

The centroids are fitted on the vectors the caller hands in (the TRAIN items' only) by Lloyd's
algorithm with k-means++ seeding from a torch.Generator of its own: the same vectors and seed
give the same codes, and the global random stream is left as it was.
"""

from __future__ import annotations

from typing import List

import torch
from torch import nn


def kmeans(points: torch.Tensor, codes: int, generator: torch.Generator, iters: int) -> torch.Tensor:
    """k-means of N x T points (float64) -> min(codes, N) x T centroids. k-means++ seeding; an
    emptied cluster keeps its centroid."""
    n = points.shape[0]
    k = min(codes, n)
    first = int(torch.randint(n, (1,), generator=generator))
    centroids = [points[first]]
    nearest = (points - points[first]).pow(2).sum(1)
    for _ in range(1, k):
        total = float(nearest.sum())
        if total <= 0:  # every point sits on a centroid already: fewer distinct points than codes
            break
        pick = int(torch.multinomial(nearest / total, 1, generator=generator))
        centroids.append(points[pick])
        nearest = torch.minimum(nearest, (points - points[pick]).pow(2).sum(1))
    centres = torch.stack(centroids)
    for _ in range(iters):
        assign = torch.cdist(points, centres).argmin(1)
        sums = torch.zeros_like(centres).index_add_(0, assign, points)
        counts = torch.bincount(assign, minlength=len(centres)).unsqueeze(1)
        moved = torch.where(counts > 0, sums / counts.clamp(min=1), centres)
        if torch.equal(moved, centres):
            break
        centres = moved
    return centres


def residual_kmeans(vectors: torch.Tensor, levels: int, codes: int, seed: int, iters: int = 50) -> List[torch.Tensor]:
    """Fit `levels` codebooks on N x T vectors: level l clusters the residuals left by levels
    1..l-1. Returns one (at most `codes`) x T float64 centroid matrix per level."""
    if vectors.shape[0] == 0:
        raise ValueError("semantic IDs need at least one vector to fit on")
    generator = torch.Generator().manual_seed(int(seed))
    residual = vectors.double()
    books = []
    for _ in range(levels):
        centres = kmeans(residual, codes, generator, iters)
        residual = residual - centres[torch.cdist(residual, centres).argmin(1)]
        books.append(centres)
    return books


def assign_codes(vectors: torch.Tensor, books: List[torch.Tensor]) -> torch.Tensor:
    """N x T vectors -> N x L codes in 1..C (the nearest centroid of each level's residual,
    plus one: 0 is kept for "no text")."""
    residual = vectors.double()
    out = []
    for centres in books:
        nearest = torch.cdist(residual, centres).argmin(1)
        residual = residual - centres[nearest]
        out.append(nearest + 1)
    return torch.stack(out, dim=1) if out else torch.zeros(len(vectors), 0, dtype=torch.long)


class SemanticIdArch(nn.Module):
    """Ids B -> their codes' embeddings B x L x D (and, with `first_order`, a per-code bias B x 1).

    Args:
        codes: N x L long, row i = id i's codes (0 = no text), from `assign_codes`.
        num_codes: C, the codes per level (tables hold C + 1 rows).
        dim: D.
        first_order: also hold one scalar weight per code (RecBole's first-order term of a
            token field), read by `first_order`.
    """

    codes: torch.Tensor  # buffer N x L

    def __init__(self, codes: torch.Tensor, num_codes: int, dim: int, first_order: bool = False):
        super().__init__()
        self.register_buffer("codes", codes.long(), persistent=False)
        self.levels = int(codes.shape[1])
        self.tables = nn.ModuleList(nn.Embedding(num_codes + 1, dim) for _ in range(self.levels))
        self.bias = nn.ModuleList(nn.Embedding(num_codes + 1, 1) for _ in range(self.levels)) if first_order else None

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        codes = self.codes[ids]
        return torch.stack([table(codes[:, level]) for level, table in enumerate(self.tables)], dim=1)

    def first_order(self, ids: torch.Tensor) -> torch.Tensor:
        """B x 1: the sum of the ids' codes' scalar weights."""
        assert self.bias is not None, "built without first_order"
        codes = self.codes[ids]
        return sum(table(codes[:, level]) for level, table in enumerate(self.bias))  # type: ignore[return-value]
