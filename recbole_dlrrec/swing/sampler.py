"""Positive / negative sampling for the SWING contrastive losses (L_uu, L_ii).

For an anchor (a user or an item id of the batch) :class:`SwingSampler` draws

* one positive among the anchor's top-k SWING neighbours, with probability proportional to
  the SWING score (``mode='score'``) or uniform over the valid neighbours (``mode='uniform'``);
* ``n`` negatives, independently from the negative pool minus {anchor, its drawn positive}.
  The pool is the corpus ids ``[first_valid_id, n_corpus)``, drawn uniformly, unless
  :meth:`SwingSampler.set_negative_weights` gave per-id weights (see :func:`negative_weights`:
  only the ids seen in TRAIN, and/or in proportion to their TRAIN count^0.75); then the pool is
  the ids of positive weight, drawn in proportion to the weight. Draws are with replacement
  across the ``n`` columns. Exactness: values are drawn from the whole pool and the excluded
  ones are redrawn (vectorised rejection over the batch, not a Python loop over it), which is
  exactly the pool's distribution restricted to the allowed set.

:meth:`SwingSampler.neighbour_hits` tells which candidate negatives are any of an anchor's valid
top-k neighbours (for masking them out of its negatives), with no host sync.

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

__all__ = [
    "NEGATIVE_DISTS",
    "NEGATIVE_POOLS",
    "SAMPLE_MODES",
    "SwingSampler",
    "default_rank",
    "negative_weights",
    "rank_seed",
]

SAMPLE_MODES = ("score", "uniform")
NEGATIVE_POOLS = ("all", "seen")  # cl_negative_pool
NEGATIVE_DISTS = ("uniform", "popularity")  # cl_negative_dist
POPULARITY_POWER = 0.75  # word2vec's unigram^0.75: flattens the head without ignoring it


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


def negative_weights(
    counts, pool: str = "all", dist: str = "uniform", power: float = POPULARITY_POWER
) -> Optional[torch.Tensor]:
    """Per-id weights of the negative draw from per-id TRAIN counts (``n_corpus``, index = id).

    ``pool``: ``'all'`` ids or only the ``'seen'`` ones (count > 0); ``dist``: ``'uniform'`` over
    the pool or ``'popularity'`` (count^power). ``None`` for ``('all', 'uniform')``: the
    sampler's own uniform draw over the whole corpus (the draws it always made). Under
    ``'popularity'`` an unseen id has weight 0 whatever the pool, so it is never drawn.
    """
    if pool not in NEGATIVE_POOLS:
        raise ValueError(f"cl_negative_pool must be one of {NEGATIVE_POOLS}, got {pool!r}")
    if dist not in NEGATIVE_DISTS:
        raise ValueError(f"cl_negative_dist must be one of {NEGATIVE_DISTS}, got {dist!r}")
    if (pool, dist) == ("all", "uniform"):
        return None
    counts = torch.as_tensor(counts).to(torch.float64)
    if dist == "popularity":
        return counts.pow(power)  # 0 ** 0.75 == 0: unseen ids drop out
    return (counts > 0).to(torch.float64)


class SwingSampler:
    """Draw SWING positives and negatives for batches of anchor ids.

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
        negative_weights: ``n_corpus`` weights >= 0 of the negative draw (see
            :meth:`set_negative_weights`); None: uniform over the corpus.
    """

    def __init__(
        self,
        neighbour_ids,
        neighbour_scores,
        n_corpus: int,
        mode: str = "score",
        seed: int = 0,
        device: Union[str, torch.device, None] = "cpu",
        first_valid_id: int = 1,
        rank: Optional[int] = None,
        negative_weights=None,
    ):
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
            raise ValueError(
                "neighbour_ids and neighbour_scores must be equal n x k tensors, "
                f"got {tuple(ids.shape)} and {tuple(scores.shape)}"
            )
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
            valid = torch.zeros((ids.shape[0], 1), dtype=torch.bool, device=self.device)
        self._valid = valid
        self._sorted_neighbours: Optional[torch.Tensor] = None  # built by neighbour_hits' first call
        # Rows without a neighbour get a dummy weight so every row has a positive total; masked later.
        weights[~self.has_neighbour, 0] = 1.0
        self.neighbour_ids = ids
        # Cumulative weights per row: a positive is drawn by inverting the row's CDF at one
        # uniform number (exact, and cheaper than torch.multinomial's one exponential per column).
        self._cdf = weights.to(torch.float32 if self.device.type == "mps" else torch.float64).cumsum(dim=1)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(rank_seed(self.seed, self.rank))
        self._pool: Optional[torch.Tensor] = None  # None: the whole corpus, uniformly
        self._pool_weights: Optional[torch.Tensor] = None  # None: uniform over the pool
        self._pool_cdf: Optional[torch.Tensor] = None
        self._in_pool: Optional[torch.Tensor] = None
        self.set_negative_weights(negative_weights)

    def set_negative_weights(self, weights) -> None:
        """Draw negatives in proportion to ``weights`` (``n_corpus`` values >= 0, index = id;
        ids below ``first_valid_id`` and of weight 0 are never drawn); None: uniformly from
        the whole corpus. Equal positive weights draw uniformly over their ids."""
        if weights is None:
            self._pool = self._pool_weights = self._pool_cdf = self._in_pool = None
            return
        # Checked and summed up on the host, in float64 (once, at set-up); then moved.
        weights = torch.as_tensor(weights).detach().to("cpu", torch.float64).clone()
        if weights.shape != (self.n_corpus,):
            raise ValueError(
                f"negative weights must be one per corpus id ({self.n_corpus}), got {tuple(weights.shape)}"
            )
        if not torch.isfinite(weights).all() or (weights < 0).any():
            raise ValueError("negative weights must be finite and >= 0")
        weights[: self.first_valid_id] = 0.0
        in_pool = weights > 0
        pool = torch.nonzero(in_pool).squeeze(1)
        if pool.numel() == 0:
            raise ValueError("negative weights leave no id to draw")
        pool_weights = weights[pool]
        self._pool, self._in_pool = pool.to(self.device), in_pool.to(self.device)
        if bool((pool_weights == pool_weights[0]).all()):
            self._pool_weights = self._pool_cdf = None
        else:
            self._pool_weights = pool_weights.to(self._cdf.dtype).to(self.device)
            self._pool_cdf = pool_weights.cumsum(0).to(self._cdf.dtype).to(self.device)

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
        """Size of the negative pool (by default the corpus ``[first_valid_id, n_corpus)``)."""
        return self.n_corpus - self.first_valid_id if self._pool is None else int(self._pool.numel())

    def _in_negative_pool(self, ids: torch.Tensor) -> torch.Tensor:
        """Which of ``ids`` (any shape) the negative draw can yield."""
        in_range = (ids >= self.first_valid_id) & (ids < self.n_corpus)
        if self._in_pool is None:
            return in_range
        return in_range & self._in_pool[ids.clamp(0, self.n_corpus - 1)]

    def _anchors(self, anchors) -> torch.Tensor:
        anchors = torch.as_tensor(anchors, device=self.device)
        if anchors.dim() != 1 or anchors.is_floating_point() or anchors.dtype == torch.bool:
            raise ValueError(f"anchors must be a 1-D integer tensor, got {anchors.dtype} {tuple(anchors.shape)}")
        anchors = anchors.long()
        if anchors.numel() and (anchors.min() < 0 or anchors.max() >= self.neighbour_ids.shape[0]):
            raise ValueError(
                f"anchors must lie in [0, {self.neighbour_ids.shape[0]}), got "
                f"[{int(anchors.min())}, {int(anchors.max())}]"
            )
        return anchors

    def _randint(self, size) -> torch.Tensor:
        return torch.randint(self.first_valid_id, self.n_corpus, size, generator=self.generator, device=self.device)

    def _draw_negatives(self, size) -> torch.Tensor:
        """Ids from the negative pool (with replacement), on the device, no host sync."""
        if self._pool is None:
            return self._randint(size)
        return self._pool[self._pool_index(self._pool_cdf, self._pool.numel(), size)]

    def _pool_index(self, cdf: Optional[torch.Tensor], count: int, size) -> torch.Tensor:
        """Indices into a pool of ``count`` ids: uniform (``cdf`` None) or by inverting ``cdf``."""
        if cdf is None:
            return torch.randint(0, count, size, generator=self.generator, device=self.device)
        u = torch.rand(size, generator=self.generator, device=self.device, dtype=cdf.dtype) * cdf[-1]
        # right=True: zero-weight entries (a flat step of the cdf) are never picked.
        return torch.searchsorted(cdf, u.reshape(-1), right=True).clamp_(max=count - 1).view(u.shape)

    def sample(
        self, anchors, n_negatives: int, self_positive: float = 0.0
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Positives ``[B]``, negatives ``[B, n_negatives]`` and mask ``[B]`` for ``anchors [B]``.

        ``mask[b]`` is False when anchor b has no valid neighbour (its positive is then the
        anchor itself and should be ignored by the loss). Negatives never equal the anchor nor
        the drawn positive.

        ``self_positive`` > 0: the positive is the anchor itself with this probability (one more
        uniform number per anchor, drawn after the neighbour), else its drawn neighbour; an
        anchor without a neighbour always takes itself. Every anchor then has a positive
        (``mask`` all True): a positive drawn from {anchor} and its top-k, for losses that
        compare two different representations of the same id (cl_repr: text_vs_id).
        """
        anchors = self._anchors(anchors)
        n_negatives = _check_int(n_negatives, "n_negatives", 0)
        batch = anchors.shape[0]
        if batch == 0:
            empty = anchors.new_empty((0,))
            return empty, anchors.new_empty((0, n_negatives)), torch.zeros(0, dtype=torch.bool, device=self.device)
        cdf = self._cdf[anchors]  # B x k
        u = torch.rand(batch, 1, generator=self.generator, device=self.device, dtype=cdf.dtype) * cdf[:, -1:]
        # right=True: u in [cdf[j-1], cdf[j]) picks j, so zero-weight columns are never picked.
        column = torch.searchsorted(cdf, u, right=True).squeeze(1).clamp_(max=cdf.shape[1] - 1)
        mask = self.has_neighbour[anchors]
        positives = torch.where(mask, self.neighbour_ids[anchors, column], anchors)
        if self_positive > 0:
            itself = torch.rand(batch, generator=self.generator, device=self.device) < self_positive
            positives = torch.where(itself, anchors, positives)
            mask = torch.ones_like(mask)
        negatives = self._negatives_excluding(anchors, positives, n_negatives)
        return positives, negatives, mask

    def _negatives_excluding(self, anchors: torch.Tensor, positives: torch.Tensor, n_negatives: int) -> torch.Tensor:
        batch = anchors.shape[0]
        if n_negatives == 0:
            return anchors.new_empty((batch, 0))
        in_range_a = self._in_negative_pool(anchors)
        in_range_p = self._in_negative_pool(positives) & (positives != anchors)
        allowed = self.n_allowed - in_range_a.long() - in_range_p.long()
        if (allowed < 1).any():
            raise ValueError(
                f"no negative left: the negative pool (of the corpus [{self.first_valid_id}, "
                f"{self.n_corpus})) holds only the anchor and its positive"
            )
        anchor_col = anchors.unsqueeze(1)
        positive_col = positives.unsqueeze(1)
        negatives = self._draw_negatives((batch, n_negatives))
        redraw = (negatives == anchor_col) | (negatives == positive_col)
        while bool(redraw.any()):  # rejection: exactly the pool's distribution on the allowed set
            negatives[redraw] = self._draw_negatives((int(redraw.sum()),))
            redraw = (negatives == anchor_col) | (negatives == positive_col)
        return negatives

    def sample_shared_negatives(self, n: int, exclude=None) -> torch.Tensor:
        """One pool of ``n`` ids drawn (with replacement) from the negative pool minus
        ``exclude`` (any ids, e.g. the batch's anchors and positives), shared by the batch."""
        n = _check_int(n, "n", 0)
        if exclude is None or torch.as_tensor(exclude).numel() == 0:
            return self._draw_negatives((n,))
        exclude = torch.as_tensor(exclude, device=self.device).long().reshape(-1)
        exclude = exclude[(exclude >= self.first_valid_id) & (exclude < self.n_corpus)]
        if self._pool is None:
            keep = torch.ones(self.n_corpus - self.first_valid_id, dtype=torch.bool, device=self.device)
            keep[exclude - self.first_valid_id] = False
            pool = torch.nonzero(keep).squeeze(1) + self.first_valid_id
        else:
            assert self._in_pool is not None  # set together with _pool
            keep = self._in_pool.clone()
            keep[exclude] = False
            pool = torch.nonzero(keep).squeeze(1)
        if pool.numel() == 0:
            raise ValueError("exclude covers the whole corpus (the negative pool); no negative can be drawn")
        cdf = None
        if self._pool_weights is not None:  # the remaining ids' weights
            assert self._pool is not None  # weights come with a pool
            cdf = self._pool_weights[torch.searchsorted(self._pool, pool)].cumsum(0)
        return pool[self._pool_index(cdf, pool.numel(), (n,))]

    def neighbour_hits(self, anchors: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """``A x N`` bool: True where candidate n is one of anchor a's valid top-k neighbours.

        anchors: ``A`` ids; candidates: ``A x N`` (per anchor) or ``N`` (shared by all anchors).
        One batched binary search per candidate in the anchor's sorted neighbour row, on the
        device, no host sync.
        """
        if self._sorted_neighbours is None:
            # Invalid entries become -1, which no candidate id (>= 0) equals.
            self._sorted_neighbours = torch.where(self._valid, self.neighbour_ids, -1).sort(dim=1).values
        rows = self._sorted_neighbours[anchors.long()]  # A x k
        candidates = candidates.long()
        if candidates.dim() == 1:
            candidates = candidates.unsqueeze(0).expand(rows.shape[0], -1)
        candidates = candidates.contiguous()
        position = torch.searchsorted(rows, candidates).clamp_(max=rows.shape[1] - 1)
        return rows.gather(1, position) == candidates
