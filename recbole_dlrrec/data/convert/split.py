"""The split of the kept reviews into train / valid / test, and the k-core counted on train rows.

:func:`k_core` counts train rows only (the future selects nothing); :func:`check_unique_pairs`
makes sure a (user, item) pair names one row over all splits (the user history file's key).
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from recbole_dlrrec.data.convert.records import ConversionError, Review, sort_stable_by

SPLITS = ("train", "valid", "test")


def check_ratios(ratios: Sequence[float]) -> None:
    if len(ratios) != 3 or any(not r > 0 for r in ratios) or abs(sum(ratios) - 1) > 1e-6:
        raise ConversionError(f"ratios must be three positive numbers summing to 1, got {list(ratios)}")


def split_reviews(reviews: list[Review], how: str, ratios: Sequence[float], seed: int) -> dict[str, list[Review]]:
    """Train/valid/test lists, each sorted by (time, user, item).

    ``time`` cuts the global timeline (ordered by time, user, item) at the ``ratios`` positions;
    ``random`` shuffles with ``numpy.random.default_rng(seed)``.
    """
    check_ratios(ratios)
    ordered = list(reviews)
    sort_stable_by(ordered, "time", "user", "item")  # (user, item) pairs are unique: a total order
    n = len(ordered)
    cut1 = int(round(n * ratios[0]))
    cut2 = int(round(n * (ratios[0] + ratios[1])))
    if how == "time":
        parts = [ordered[:cut1], ordered[cut1:cut2], ordered[cut2:]]
    elif how == "random":
        perm = np.random.default_rng(seed).permutation(n)
        index_parts = [np.sort(perm[:cut1]), np.sort(perm[cut1:cut2]), np.sort(perm[cut2:])]
        parts = [[ordered[i] for i in idx] for idx in index_parts]
    else:
        raise ConversionError(f"split must be 'time' or 'random', got {how!r}")
    result = dict(zip(SPLITS, parts))
    _check_not_empty(result, f"only {n} interactions survived cleaning")
    return result


def _check_not_empty(parts: dict[str, list[Review]], why: str) -> None:
    empty = [s for s in SPLITS if not parts[s]]
    if empty:
        raise ConversionError(f"the {'/'.join(empty)} split would be empty: {why}")


def k_core(parts: dict[str, list[Review]], k: int) -> tuple[dict[str, list[Review]], dict]:
    """Keep the users and businesses with at least ``k`` TRAIN reviews, to a fixed point.

    Counts use train rows only, so what happens after the train period selects nothing. A user
    or business dropped here loses its rows in every split (a user seen only in valid/test has no
    train review and is dropped for any k >= 1). Returns (parts, what was dropped).
    """
    if k < 1:
        raise ConversionError(f"k_core must be a positive integer, got {k}")
    rows = list(parts["train"])
    iterations = 0
    while True:
        iterations += 1
        per_user = Counter(r.user for r in rows)
        per_item = Counter(r.item for r in rows)
        kept = [r for r in rows if per_user[r.user] >= k and per_item[r.item] >= k]
        if len(kept) == len(rows):
            break
        rows = kept
    users = {r.user for r in rows}
    items = {r.item for r in rows}
    result = {s: [r for r in parts[s] if r.user in users and r.item in items] for s in SPLITS}
    all_users = {r.user for s in SPLITS for r in parts[s]}
    all_items = {r.item for s in SPLITS for r in parts[s]}
    stats = {
        "k": k,
        "iterations": iterations,
        "users_dropped": len(all_users - users),
        "items_dropped": len(all_items - items),
        "rows_dropped": {s: len(parts[s]) - len(result[s]) for s in SPLITS},
    }
    _check_not_empty(result, f"--k_core {k} (counted on train rows) leaves nothing there")
    return result, stats


def check_unique_pairs(parts: dict[str, list[Review]]) -> None:
    """Each (user, item) pair occurs once over all splits (``read`` drops repeat_user_business
    rows), so a pair names one row: the key of a row's history vector. Loud when it does not."""
    seen: set = set()
    for split in SPLITS:
        for r in parts[split]:
            pair = (r.user, r.item)
            if pair in seen:
                raise ConversionError(
                    f"user {r.user!r} and business {r.item!r} occur in more than one row ({split} included): "
                    "the user history file is keyed by (user, item)"
                )
            seen.add(pair)
