"""The split, and every feature: computed from TRAIN rows only.

The leakage rules are function boundaries here: :func:`k_core` counts train rows only (the
future selects nothing), and :func:`train_features` is given the train rows and nothing else
(plus the ids of the users and items that occur anywhere, which carry no review content), so no
valid/test review text, picture or count can reach a vector or a feature.
"""
from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np

from recbole_dlrrec.data import text_build
from recbole_dlrrec.data.google_local.read import Business, ConversionError, Review, sort_stable_by

SPLITS = ("train", "valid", "test")


def check_ratios(ratios: Sequence[float]) -> None:
    if len(ratios) != 3 or any(not r > 0 for r in ratios) or abs(sum(ratios) - 1) > 1e-6:
        raise ConversionError(f"ratios must be three positive numbers summing to 1, got {list(ratios)}")


def split_reviews(
    reviews: list[Review], how: str, ratios: Sequence[float], seed: int
) -> dict[str, list[Review]]:
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


ImageEncoder = Callable[[dict, list], Any]


@dataclass
class TrainFeatures:
    """Everything derived from review content, from train rows only.

    ``item_texts`` is aligned with the ``items`` given; ``user_texts`` with ``vec_users``
    (users with train text, in the order of ``users``); ``image_vectors`` with ``items`` when
    the image encoder returns vectors.
    """

    pic_count: Counter
    n_train_reviews: Counter
    item_texts: list[str]
    vec_users: list[str]
    user_texts: list[str]
    image_vectors: list[np.ndarray] = field(default_factory=list)


def train_features(
    train: Sequence[Review],
    businesses: dict[str, Business],
    items: Sequence[str],
    users: Sequence[str],
    user_text_max_chars: int,
    image_fn: Optional[ImageEncoder] = None,
    image_name: str = "none",
) -> TrainFeatures:
    """Per-item and per-user features from the TRAIN rows (``train``) only.

    ``items`` / ``users`` are the ids that occur in any split (each gets a row; users without
    train text get no text). ``pic_count`` = pictures on the item's train reviews;
    ``n_train_reviews`` = the user's train reviews; user text = the user's train review texts,
    newest first, capped at ``user_text_max_chars``; item text = business metadata (plus the
    image encoder's caption, which sees train pictures only).
    """
    pic_count: Counter = Counter()
    n_train: Counter = Counter()
    texts: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    pics: dict[str, list] = defaultdict(list)
    for r in train:
        pic_count[r.item] += r.n_pics
        n_train[r.user] += 1
        if r.text and r.text.strip():
            texts[r.user].append((r.time, r.item, r.text))
        if r.pic_urls:
            pics[r.item].extend(r.pic_urls)

    captions: dict[str, str] = {}
    image_vectors: list[np.ndarray] = []
    if image_fn is not None:
        for item in items:
            out = image_fn(dict(businesses[item].raw), list(pics.get(item, [])))
            if isinstance(out, str):
                captions[item] = out
            elif out is not None:
                image_vectors.append(np.asarray(out, dtype=np.float32).reshape(-1))
            else:
                raise ConversionError(f"image encoder {image_name!r} returned None for item {item}")
        if captions and image_vectors:
            raise ConversionError(f"image encoder {image_name!r} mixed captions and vectors")

    item_texts = [
        text_build.item_text(
            b.name, b.categories, None if b.price == "unknown" else b.price, b.description, b.misc,
            extra=captions.get(b.gmap_id),
        )
        for b in (businesses[i] for i in items)
    ]
    vec_users: list[str] = []
    user_texts: list[str] = []
    for user in users:
        history = sorted(texts.get(user, []), key=lambda t: (-t[0], t[1]))
        text = text_build.user_text([h[2] for h in history], user_text_max_chars)
        if text:
            vec_users.append(user)
            user_texts.append(text)
    return TrainFeatures(pic_count, n_train, item_texts, vec_users, user_texts, image_vectors)


def _capped(rows_newest_first: Sequence[Review], user_text_max_chars: int) -> list[Review]:
    """The rows whose text :func:`text_build.user_text` keeps from ``rows_newest_first`` (rows
    with text only), from their cleaned lengths alone: the rows kept whole while they fit under
    the cap, plus the newest one when even it is too long (it is cut)."""
    needed: list[Review] = []
    used = 0
    for r in rows_newest_first:
        extra = r.text_chars + (1 if used else 0)
        if used + extra > user_text_max_chars:
            if not used:
                needed.append(r)
            break
        needed.append(r)
        used += extra
    return needed


def _texts_newest_first(train: Sequence[Review]) -> dict[str, list[Review]]:
    """Each user's train rows with text, newest first (ties by item), as user texts read them."""
    history: dict[str, list[Review]] = defaultdict(list)
    for r in train:
        if r.text_chars > 0:
            history[r.user].append(r)
    for rows in history.values():
        rows.sort(key=lambda r: (-r.time, r.item))
    return history


def user_text_rows(train: Sequence[Review], user_text_max_chars: int) -> list[Review]:
    """The train rows whose text goes into a user text, from their cleaned lengths alone.

    Mirrors :func:`text_build.user_text` over each user's train texts newest first (see
    :func:`_capped`). Only these texts are fetched from the file, so the texts held in memory
    are at most about ``user_text_max_chars`` per user.
    """
    needed: list[Review] = []
    for rows in _texts_newest_first(train).values():
        needed.extend(_capped(rows, user_text_max_chars))
    return needed


def _earlier(rows_newest_first: list[Review], newest_first_keys: list[int], time: int) -> list[Review]:
    """The rows of ``rows_newest_first`` strictly earlier than ``time`` (a tie is not earlier);
    ``newest_first_keys`` = their ``-time``, ascending."""
    return rows_newest_first[bisect.bisect_right(newest_first_keys, -time):]


def history_text_rows(train: Sequence[Review], user_text_max_chars: int) -> list[Review]:
    """The train rows whose text goes into some train row's history text (see
    :func:`user_history`), from their cleaned lengths alone: what pass 2 must fetch for it."""
    history = _texts_newest_first(train)
    times: dict[str, set] = defaultdict(set)
    for r in train:
        if r.user in history:
            times[r.user].add(r.time)
    needed: dict[int, Review] = {}
    for user, rows in history.items():
        keys = [-r.time for r in rows]
        for time in times[user]:
            for r in _capped(_earlier(rows, keys, time), user_text_max_chars):
                needed[id(r)] = r
    return list(needed.values())


@dataclass
class UserHistory:
    """Per TRAIN row, the text of its user's train reviews strictly earlier than the row.

    ``users`` / ``items`` / ``row`` are aligned with the train rows (in their order); ``row[i]``
    indexes ``texts`` (-1: the user has no earlier review with text). Rows of one user at one
    time share a text. Valid/test rows are not listed: every train review precedes them under
    the time split, so their history is the full user text.
    """

    users: list[str]
    items: list[str]
    row: list[int]
    texts: list[str]

    @property
    def with_history(self) -> int:
        return sum(1 for r in self.row if r >= 0)


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


def user_history(train: Sequence[Review], user_text_max_chars: int) -> UserHistory:
    """Each train row's history text: :func:`text_build.user_text` over its user's train
    reviews strictly earlier in time than the row (ties excluded), newest first, capped at
    ``user_text_max_chars``: the user text built as today's, from the past only. Reads
    ``text`` of the rows :func:`history_text_rows` named (fetched by pass 2)."""
    history = _texts_newest_first(train)
    keys = {user: [-r.time for r in rows] for user, rows in history.items()}
    text_index: dict[str, int] = {}
    texts: list[str] = []
    of_time: dict[tuple[str, int], int] = {}
    users, items, rows = [], [], []
    for r in train:
        key = (r.user, r.time)
        if key not in of_time:
            earlier = _capped(_earlier(history.get(r.user, []), keys.get(r.user, []), r.time), user_text_max_chars)
            if any(e.text is None for e in earlier):
                raise ConversionError(f"internal: a history text of user {r.user!r} was not fetched in pass 2")
            text = text_build.user_text([e.text for e in earlier], user_text_max_chars) if earlier else ""
            if text and text not in text_index:
                text_index[text] = len(texts)
                texts.append(text)
            of_time[key] = text_index[text] if text else -1
        users.append(r.user)
        items.append(r.item)
        rows.append(of_time[key])
    return UserHistory(users, items, rows, texts)


def encode(encoder: Any, texts: list[str]) -> tuple[np.ndarray, dict]:
    """``encoder.encode(texts)`` checked: float32 [len(texts), dim > 0], finite; and its stats."""
    vectors = np.asarray(encoder.encode(texts), dtype=np.float32)
    if texts and (vectors.ndim != 2 or vectors.shape[0] != len(texts) or vectors.shape[1] == 0):
        raise ConversionError(f"text encoder returned shape {vectors.shape} for {len(texts)} texts")
    if vectors.size and not np.isfinite(vectors).all():
        raise ConversionError("text encoder returned NaN/inf vectors")
    stats = dict(getattr(encoder, "last_stats", {}) or {})
    return vectors, stats
