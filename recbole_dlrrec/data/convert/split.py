"""The split of the kept reviews into train / valid / test, and the k-core counted on train rows.

:func:`k_core` counts train rows only (the future selects nothing); :func:`check_unique_pairs`
makes sure a (user, item) pair names one row over all splits (the user history file's key).
The rows are :class:`~.columns.ReviewColumns`; every split is an index array over the same
columns (lists of :class:`~.records.Review` are taken too, and turned into columns first).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from recbole_dlrrec.data.convert.columns import ReviewColumns
from recbole_dlrrec.data.convert.records import ConversionError, Review

SPLITS = ("train", "valid", "test")


def check_ratios(ratios: Sequence[float]) -> None:
    if len(ratios) != 3 or any(not r > 0 for r in ratios) or abs(sum(ratios) - 1) > 1e-6:
        raise ConversionError(f"ratios must be three positive numbers summing to 1, got {list(ratios)}")


def split_reviews(
    reviews: ReviewColumns | list[Review], how: str, ratios: Sequence[float], seed: int
) -> dict[str, ReviewColumns]:
    """Train/valid/test columns, each sorted by (time, user, item).

    ``time`` cuts the global timeline (ordered by time, user, item) at the ``ratios`` positions;
    ``random`` shuffles with ``numpy.random.default_rng(seed)``.
    """
    check_ratios(ratios)
    if not isinstance(reviews, ReviewColumns):
        reviews = ReviewColumns.from_reviews(reviews)
    a = reviews.arrays
    # (user, item) pairs are unique: a total order; codes sort as their ids do.
    ordered = np.lexsort((a["item"], a["user"], a["time"]))
    n = len(ordered)
    cut1 = int(round(n * ratios[0]))
    cut2 = int(round(n * (ratios[0] + ratios[1])))
    if how == "time":
        index_parts = [ordered[:cut1], ordered[cut1:cut2], ordered[cut2:]]
    elif how == "random":
        perm = np.random.default_rng(seed).permutation(n)
        index_parts = [ordered[np.sort(p)] for p in (perm[:cut1], perm[cut1:cut2], perm[cut2:])]
    else:
        raise ConversionError(f"split must be 'time' or 'random', got {how!r}")
    result = {s: reviews.take(idx) for s, idx in zip(SPLITS, index_parts)}
    _check_not_empty(result, f"only {n} interactions survived cleaning")
    return result


def _check_not_empty(parts: dict[str, ReviewColumns], why: str) -> None:
    empty = [s for s in SPLITS if not len(parts[s])]
    if empty:
        raise ConversionError(f"the {'/'.join(empty)} split would be empty: {why}")


def as_columns(parts: dict[str, ReviewColumns] | dict[str, list[Review]]) -> dict[str, ReviewColumns]:
    """``parts`` as columns sharing one id table (lists of Review are turned into columns)."""
    if all(isinstance(parts[s], ReviewColumns) for s in SPLITS):
        columns: dict[str, ReviewColumns] = {s: parts[s] for s in SPLITS}  # type: ignore[misc]
        if all(columns[s].shares_ids_with(columns["train"]) for s in SPLITS):
            return columns
    rows = [r for s in SPLITS for r in parts[s]]
    every = ReviewColumns.from_reviews(rows)
    bounds = np.cumsum([0] + [len(parts[s]) for s in SPLITS])
    return {s: every.take(slice(int(bounds[i]), int(bounds[i + 1]))) for i, s in enumerate(SPLITS)}


def k_core(parts: dict[str, ReviewColumns] | dict[str, list[Review]], k: int) -> tuple[dict[str, ReviewColumns], dict]:
    """Keep the users and businesses with at least ``k`` TRAIN reviews, to a fixed point.

    Counts use train rows only, so what happens after the train period selects nothing. A user
    or business dropped here loses its rows in every split (a user seen only in valid/test has no
    train review and is dropped for any k >= 1). Returns (parts, what was dropped).
    """
    if k < 1:
        raise ConversionError(f"k_core must be a positive integer, got {k}")
    parts = as_columns(parts)
    train = parts["train"].arrays
    n_users, n_items = len(parts["train"].user_ids), len(parts["train"].item_ids)
    keep = np.ones(len(train["user"]), dtype=bool)
    iterations = 0
    while True:
        iterations += 1
        per_user = np.bincount(train["user"][keep], minlength=n_users)
        per_item = np.bincount(train["item"][keep], minlength=n_items)
        kept = keep & (per_user[train["user"]] >= k) & (per_item[train["item"]] >= k)
        if kept.sum() == keep.sum():
            break
        keep = kept
    users = np.zeros(n_users, dtype=bool)
    items = np.zeros(n_items, dtype=bool)
    users[train["user"][keep]] = True
    items[train["item"][keep]] = True
    result = {s: _keep(parts[s], users, items) for s in SPLITS}
    all_users = np.unique(np.concatenate([parts[s].arrays["user"] for s in SPLITS]))
    all_items = np.unique(np.concatenate([parts[s].arrays["item"] for s in SPLITS]))
    stats = {
        "k": k,
        "iterations": iterations,
        "users_dropped": int((~users[all_users]).sum()),
        "items_dropped": int((~items[all_items]).sum()),
        "rows_dropped": {s: len(parts[s]) - len(result[s]) for s in SPLITS},
    }
    _check_not_empty(result, f"--k_core {k} (counted on train rows) leaves nothing there")
    return result, stats


def _keep(rows: ReviewColumns, users: np.ndarray, items: np.ndarray) -> ReviewColumns:
    """The rows whose user and item are both flagged (a flag per code)."""
    return rows.take(np.flatnonzero(users[rows.arrays["user"]] & items[rows.arrays["item"]]))


def check_unique_pairs(parts: dict[str, ReviewColumns] | dict[str, list[Review]]) -> None:
    """Each (user, item) pair occurs once over all splits (``read`` drops repeat_user_business
    rows), so a pair names one row: the key of a row's history vector. Loud when it does not."""
    parts = as_columns(parts)
    n_items = max(1, len(parts["train"].item_ids))
    keys = np.concatenate([p.arrays["user"].astype(np.int64) * n_items + p.arrays["item"] for p in parts.values()])
    order = np.argsort(keys, kind="stable")
    repeats = order[1:][keys[order][1:] == keys[order][:-1]]
    if len(repeats):
        first = int(repeats.min())  # the first row, in split then row order, whose pair came before
        bounds = np.cumsum([len(parts[s]) for s in SPLITS])
        index = int(np.searchsorted(bounds, first, side="right"))
        split = SPLITS[index]
        r = parts[split][first - (int(bounds[index - 1]) if index else 0)]
        raise ConversionError(
            f"user {r.user!r} and business {r.item!r} occur in more than one row ({split} included): "
            "the user history file is keyed by (user, item)"
        )
