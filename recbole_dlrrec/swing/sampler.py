"""Positive / negative sampling for the SWING contrastive losses (L_uu, L_ii).

For an anchor (a user or an item id of the batch) :class:`SwingSampler` draws

* one positive among the anchor's top-k SWING neighbours, with probability proportional to
  the SWING score (``mode='score'``) or uniform over the valid neighbours (``mode='uniform'``);
* ``n`` negatives, independently and uniformly from the corpus ids
  ``[first_valid_id, n_corpus)`` minus {anchor, its drawn positive}. Draws are with
  replacement across the ``n`` columns. Exactness: values are drawn uniformly from the whole
  range and the excluded ones are redrawn (vectorised rejection over the batch, not a Python
  loop over it), which is exactly uniform on the allowed set.

A neighbour entry is *valid* when its id is in ``[first_valid_id, n_corpus)`` and its score is
``> 0``, so both padding conventions (id -1 or id 0 with score 0) work. Anchors without a valid
neighbour get ``mask = False`` and the anchor itself as a placeholder positive.

All tensors live on ``device``; randomness comes from the sampler's own ``torch.Generator`` on
that device, so the same seed gives the same draws (on the same device and torch version)
regardless of any other use of torch's global generator.

Distributed training: each rank draws only for the anchors of its own batch, from its own
stream. Rank 0 draws from ``seed`` itself (so one process gives the numbers it always gave);
rank r > 0 from a seed derived from (seed, r), so ranks never repeat each other's draws.
"""

from __future__ import annotations

import numbers
from typing import Optional, Tuple, Union

import numpy as np
import torch

__all__ = ["SAMPLE_MODES", "SwingSampler", "default_rank", "rank_seed"]

SAMPLE_MODES = ("score", "uniform")


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def default_rank() -> int:
    """This process's rank in torch.distributed's default group; 0 when there is none."""
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def rank_seed(seed: int, rank: int) -> int:
    """The generator seed of ``rank``'s stream: ``seed`` for rank 0, else one derived from both."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, rank]).generate_state(1, np.uint64)[0]) >> 1


class SwingSampler:
    """Draw SWING positives and uniform negatives for batches of anchor ids.

    Args:
        neighbour_ids: ``n_anchor_ids x k`` integer ids of each node's top-k neighbours (padded).
        neighbour_scores: ``n_anchor_ids x k`` non-negative SWING scores (padding: 0).
        n_corpus: ids ``< n_corpus`` can be negatives (and valid neighbours).
        mode: ``'score'`` or ``'uniform'`` (how the positive is picked among the neighbours).
        seed: seed of the sampler's generator.
        device: where the tables live and the draws happen.
        first_valid_id: lowest real id (RecBole: 1, id 0 is padding).
        rank: whose stream to draw from (see the module docstring); default: this process's
            rank in torch.distributed's default group, 0 when it has none.
    """

    def __init__(self, neighbour_ids, neighbour_scores, n_corpus: int, mode: str = "score",
                 seed: int = 0, device: Union[str, torch.device, None] = "cpu",
                 first_valid_id: int = 1, rank: Optional[int] = None):
        if mode not in SAMPLE_MODES:
            raise ValueError(f"swing_sample_mode must be one of {SAMPLE_MODES}, got {mode!r}")
        self.mode = mode
        self.first_valid_id = _check_int(first_valid_id, "first_valid_id", 0)
        self.n_corpus = _check_int(n_corpus, "n_corpus", self.first_valid_id + 1)
        self.seed = _check_int(seed, "seed", 0)
        self.rank = _check_int(default_rank() if rank is None else rank, "rank", 0)
        self.device = torch.device(device if device is not None else "cpu")

        ids = torch.as_tensor(neighbour_ids)
        scores = torch.as_tensor(neighbour_scores)
        if ids.dim() != 2 or ids.shape != scores.shape:
            raise ValueError("neighbour_ids and neighbour_scores must be equal n x k tensors, "
                             f"got {tuple(ids.shape)} and {tuple(scores.shape)}")
        if ids.is_floating_point() or ids.dtype == torch.bool:
            raise ValueError(f"neighbour_ids must be integers, got {ids.dtype}")
        scores = scores.to(torch.float64)
        if not torch.isfinite(scores).all() or (scores < 0).any():
            raise ValueError("neighbour_scores must be finite and >= 0")
        ids = ids.to(device=self.device, dtype=torch.long)
        scores = scores.to(self.device)

        valid = (ids >= self.first_valid_id) & (ids < self.n_corpus) & (scores > 0)
        weights = scores * valid if mode == "score" else valid.to(torch.float64)
        self.has_neighbour = valid.any(dim=1)  # n_anchor_ids
        if ids.shape[1] == 0:  # k = 0: nobody has a neighbour; keep one dummy column
            ids = torch.zeros((ids.shape[0], 1), dtype=torch.long, device=self.device)
            weights = torch.zeros((ids.shape[0], 1), dtype=torch.float64, device=self.device)
        # Rows without a neighbour get a dummy weight so every row has a positive total; masked later.
        weights[~self.has_neighbour, 0] = 1.0
        self.neighbour_ids = ids
        # Cumulative weights per row: a positive is drawn by inverting the row's CDF at one
        # uniform number (exact, and cheaper than torch.multinomial's one exponential per column).
        self._cdf = weights.to(torch.float32 if self.device.type == "mps" else torch.float64).cumsum(dim=1)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(rank_seed(self.seed, self.rank))

    @classmethod
    def from_table(cls, table, n_corpus: int, **kwargs) -> "SwingSampler":
        """From any object with ``ids`` and ``scores`` arrays, e.g. swing.NeighbourTable."""
        ids = torch.as_tensor(np.asarray(table.ids))
        scores = torch.as_tensor(np.asarray(table.scores))
        return cls(ids, scores, n_corpus, **kwargs)

    def manual_seed(self, seed: int) -> None:
        """Restart the draws from ``seed`` (this rank's stream of it)."""
        self.seed = _check_int(seed, "seed", 0)
        self.generator.manual_seed(rank_seed(self.seed, self.rank))

    @property
    def n_allowed(self) -> int:
        """Size of the negative corpus ``[first_valid_id, n_corpus)``."""
        return self.n_corpus - self.first_valid_id

    def _anchors(self, anchors) -> torch.Tensor:
        anchors = torch.as_tensor(anchors, device=self.device)
        if anchors.dim() != 1 or anchors.is_floating_point() or anchors.dtype == torch.bool:
            raise ValueError(f"anchors must be a 1-D integer tensor, got {anchors.dtype} "
                             f"{tuple(anchors.shape)}")
        anchors = anchors.long()
        if anchors.numel() and (anchors.min() < 0 or anchors.max() >= self.neighbour_ids.shape[0]):
            raise ValueError(f"anchors must lie in [0, {self.neighbour_ids.shape[0]}), got "
                             f"[{int(anchors.min())}, {int(anchors.max())}]")
        return anchors

    def _randint(self, size) -> torch.Tensor:
        return torch.randint(self.first_valid_id, self.n_corpus, size, generator=self.generator,
                             device=self.device)

    def sample(self, anchors, n_negatives: int
               ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Positives ``[B]``, negatives ``[B, n_negatives]`` and mask ``[B]`` for ``anchors [B]``.

        ``mask[b]`` is False when anchor b has no valid neighbour (its positive is then the
        anchor itself and should be ignored by the loss). Negatives never equal the anchor nor
        the drawn positive.
        """
        anchors = self._anchors(anchors)
        n_negatives = _check_int(n_negatives, "n_negatives", 0)
        batch = anchors.shape[0]
        if batch == 0:
            empty = anchors.new_empty((0,))
            return empty, anchors.new_empty((0, n_negatives)), torch.zeros(
                0, dtype=torch.bool, device=self.device)
        cdf = self._cdf[anchors]  # B x k
        u = torch.rand(batch, 1, generator=self.generator, device=self.device, dtype=cdf.dtype) * cdf[:, -1:]
        # right=True: u in [cdf[j-1], cdf[j]) picks j, so zero-weight columns are never picked.
        column = torch.searchsorted(cdf, u, right=True).squeeze(1).clamp_(max=cdf.shape[1] - 1)
        mask = self.has_neighbour[anchors]
        positives = torch.where(mask, self.neighbour_ids[anchors, column], anchors)
        negatives = self._negatives_excluding(anchors, positives, n_negatives)
        return positives, negatives, mask

    def _negatives_excluding(self, anchors: torch.Tensor, positives: torch.Tensor,
                             n_negatives: int) -> torch.Tensor:
        batch = anchors.shape[0]
        if n_negatives == 0:
            return anchors.new_empty((batch, 0))
        in_range_a = (anchors >= self.first_valid_id) & (anchors < self.n_corpus)
        in_range_p = ((positives >= self.first_valid_id) & (positives < self.n_corpus)
                      & (positives != anchors))
        allowed = self.n_allowed - in_range_a.long() - in_range_p.long()
        if (allowed < 1).any():
            raise ValueError(f"no negative left: the corpus [{self.first_valid_id}, "
                             f"{self.n_corpus}) holds only the anchor and its positive")
        anchor_col = anchors.unsqueeze(1)
        positive_col = positives.unsqueeze(1)
        negatives = self._randint((batch, n_negatives))
        redraw = (negatives == anchor_col) | (negatives == positive_col)
        while bool(redraw.any()):  # rejection: exact uniform on the allowed set
            negatives[redraw] = self._randint((int(redraw.sum()),))
            redraw = (negatives == anchor_col) | (negatives == positive_col)
        return negatives

    def sample_shared_negatives(self, n: int, exclude=None) -> torch.Tensor:
        """One pool of ``n`` ids drawn uniformly (with replacement) from the corpus minus
        ``exclude`` (any ids, e.g. the batch's anchors and positives), shared by the batch."""
        n = _check_int(n, "n", 0)
        if exclude is None or torch.as_tensor(exclude).numel() == 0:
            return self._randint((n,))
        exclude = torch.as_tensor(exclude, device=self.device).long().reshape(-1)
        exclude = exclude[(exclude >= self.first_valid_id) & (exclude < self.n_corpus)]
        keep = torch.ones(self.n_allowed, dtype=torch.bool, device=self.device)
        keep[exclude - self.first_valid_id] = False
        pool = torch.nonzero(keep).squeeze(1) + self.first_valid_id
        if pool.numel() == 0:
            raise ValueError("exclude covers the whole corpus; no negative can be drawn")
        index = torch.randint(0, pool.numel(), (n,), generator=self.generator, device=self.device)
        return pool[index]
