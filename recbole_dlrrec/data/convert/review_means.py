"""Text vectors composed from review vectors (``user_vector: mean``): each train review encoded once.

Under ``user_vector: concat`` (history.py) every user text and every train row's history text is
its own concatenated text, encoded on its own, so the encoding cost grows with train rows times
history length. Here each TRAIN review's text is encoded once and a vector is the mean of review
vectors, L2-normalised like the encoder's output (uniform weights: every review counts once, so
the normalised mean is the direction of the plain sum):

- a user's full vector: the mean over all its train reviews with text (valid/test rows read it);
- a train row's before-row vector: the mean over its user's train reviews STRICTLY earlier than the
  row (a review at the same time is not earlier, as in ``history._earlier``); none (-1) when there
  is no such review, as a first review gets under ``concat``;
- the same two for items (``NAME.itemrev.npz`` / ``NAME.itemrevhist.npz``): an item's train
  reviews, never a row's own.

Sums are prefix sums per group (user or item) over its reviews in time order, in float64, each
group summed on its own in a fixed order: a group's vectors depend on its own reviews only, so
changing another group's review, or a later one of the same group, moves no earlier vector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from recbole_dlrrec.data import text_build
from recbole_dlrrec.data.convert.records import ConversionError, Review
from recbole_dlrrec.data.side_files import ITEM_REV_HIST_SUFFIX, ITEM_REV_SUFFIX, side_file_name


def review_rows(train: Sequence[Review]) -> list[Review]:
    """The train rows whose text is encoded (text with content), in train order."""
    return [r for r in train if r.text_chars > 0]


def review_texts(rows: Sequence[Review], cap: int) -> list[str]:
    """Each row's text as encoded: cleaned and cut at ``cap`` exactly as a one-review user text
    (``text_build.user_text``), so one review weighs no more encoder time than a user text."""
    texts = []
    for r in rows:
        if r.text is None:
            raise ConversionError(f"internal: the text of line {r.lineno} was not fetched in pass 2")
        texts.append(text_build.user_text([r.text], cap))
    return texts


@dataclass
class Composed:
    """One side's composed vectors (side = user or item).

    ``full_ids`` / ``full``: the ids with at least one train review text and their mean vector
    (float32, k x dim). ``users`` / ``items`` / ``row``: per TRAIN row (train order), index into
    ``vectors`` of its before-row vector (-1: no earlier review); ``vectors`` (float32, m x dim)
    holds one vector per distinct earlier set. The per-row part has the userhist.npz layout.
    """

    full_ids: list[str]
    full: np.ndarray
    users: list[str]
    items: list[str]
    row: np.ndarray
    vectors: np.ndarray

    @property
    def with_history(self) -> int:
        return int((self.row >= 0).sum())


def _normalised(sums: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (a zero row stays zero), as float32."""
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def _group_prefix_sums(vectors: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Inclusive prefix sums within groups: row i (``rank[i]``-th of its group, a group's rows
    consecutive and in order) gets the sum of its group's rows up to i. One vectorised step per
    rank, so each group is summed alone, front to back (its bits depend on its rows only)."""
    sums = np.empty(vectors.shape, dtype=np.float64)
    if not len(rank):
        return sums
    by_rank = np.argsort(rank, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(rank))])
    for k in range(len(bounds) - 1):
        idx = by_rank[bounds[k] : bounds[k + 1]]
        sums[idx] = vectors[idx] if k == 0 else sums[idx - 1] + vectors[idx]
    return sums


def compose(
    groups: Sequence[str], times: np.ndarray, vectors: np.ndarray, query_groups: Sequence[str], query_times: np.ndarray
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Means of review vectors per group: (full_ids, full, row, means).

    ``groups`` / ``times`` / ``vectors``: one entry per review (its group id, time, unit vector).
    Each query (``query_groups`` / ``query_times``) gets ``row`` into ``means``: the mean of its
    group's reviews strictly earlier than its time, -1 when there is none; queries with the same
    earlier set share a row. ``full_ids`` (sorted) / ``full``: each group's mean over all its reviews.
    """
    dim = vectors.shape[1] if vectors.ndim == 2 else 0
    names = np.unique(np.asarray(list(groups) + list(query_groups), dtype=str))
    code = np.searchsorted(names, np.asarray(groups, dtype=str)).astype(np.int64)
    query_code = np.searchsorted(names, np.asarray(query_groups, dtype=str)).astype(np.int64)
    stamps, rank_of = np.unique(np.concatenate([times, query_times]).astype(np.int64), return_inverse=True)
    span = len(stamps) + 1
    time_rank, query_rank = rank_of[: len(times)], rank_of[len(times) :]
    # Reviews sorted by (group, time); ties keep their given order, so the sums are reproducible.
    order = np.lexsort((time_rank, code))
    keys = code[order] * span + time_rank[order]
    rank = np.arange(len(order)) - np.searchsorted(keys, code[order] * span, side="left")

    # A query's earlier reviews: its group's sorted reviews before the first at its time or later.
    end = np.searchsorted(keys, query_code * span + query_rank, side="left")
    first = np.searchsorted(keys, query_code * span, side="left")
    has = end > first
    last, row = np.unique(end[has] - 1, return_inverse=True)
    rows = np.full(len(query_code), -1, dtype=np.int64)
    rows[has] = row.reshape(-1)
    group_last = np.flatnonzero(np.append(keys[1:] // span != keys[:-1] // span, True)) if len(keys) else keys

    wanted = np.union1d(last, group_last).astype(np.int64)
    sums = _sums_at(np.asarray(vectors, dtype=np.float32).reshape(len(order), dim), order, rank, wanted)
    means = _normalised(sums[np.searchsorted(wanted, last)].reshape(len(last), dim))
    full = _normalised(sums[np.searchsorted(wanted, group_last)].reshape(len(group_last), dim))
    full_ids = [str(g) for g in names[keys[group_last] // span]] if len(keys) else []
    return full_ids, full, rows, means


#: Sorted reviews summed per block (whole groups): memory holds one block in float64, not all.
CHUNK_ROWS = 1 << 16


def _sums_at(vectors: np.ndarray, order: np.ndarray, rank: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """The prefix sums (:func:`_group_prefix_sums`, float64) of the sorted rows ``wanted``
    (sorted indices into ``order``, which sorts ``vectors`` by group), computed a block of whole
    groups at a time; groups are summed alone, so the blocks change no bit."""
    out = np.empty((len(wanted), vectors.shape[1]), dtype=np.float64)
    group_starts = np.flatnonzero(rank == 0)
    begin = 0
    while begin < len(order):
        k = np.searchsorted(group_starts, begin + CHUNK_ROWS)
        stop = int(group_starts[k]) if k < len(group_starts) else len(order)
        sums = _group_prefix_sums(vectors[order[begin:stop]].astype(np.float64), rank[begin:stop])
        lo, hi = np.searchsorted(wanted, [begin, stop])
        out[lo:hi] = sums[wanted[lo:hi] - begin]
        begin = stop
    return out


def compose_side(
    side: str, rows: Sequence[Review], vectors: np.ndarray, train: Sequence[Review], with_rows: bool = True
) -> Composed:
    """The ``side`` ('user' or 'item') vectors composed from ``rows``' review ``vectors``; per
    train row of ``train`` when ``with_rows`` (else the per-row part is empty)."""
    times = np.fromiter((r.time for r in rows), dtype=np.int64, count=len(rows))
    queries = train if with_rows else []
    query_times = np.fromiter((r.time for r in queries), dtype=np.int64, count=len(queries))
    full_ids, full, row, means = compose(
        [getattr(r, side) for r in rows], times, vectors, [getattr(r, side) for r in queries], query_times
    )
    return Composed(full_ids, full, [r.user for r in queries], [r.item for r in queries], row, means)


LEAKAGE_GUARDS = [
    "user and item review vectors are means of train review vectors only",
    "a train row's before-row user and item review vectors hold strictly earlier train reviews only",
]


def report(name: str, composed: dict, encoder_info: dict) -> dict:
    """The report's ``review_vectors`` (``user_vector: mean``): the review texts encoded, and the
    item review files with their coverage."""
    items = composed["item"]
    return {
        **encoder_info["reviews"],
        "item_file": side_file_name(name, ITEM_REV_SUFFIX),
        "item_rows_file": side_file_name(name, ITEM_REV_HIST_SUFFIX),
        "items_with_reviews": len(items.full_ids),
        "train_rows_with_earlier_item_review": items.with_history,
        "train_rows_without": len(items.row) - items.with_history,
    }
