"""User texts from TRAIN rows: which rows' texts a user text needs, and each train row's history.

A user text is :func:`text_build.user_text` over the user's train review texts, newest first,
capped at ``user_text_max_chars``. :func:`user_text_rows` and :func:`history_text_rows` say, from
the cleaned text lengths alone, which rows' texts pass 2 must fetch; :func:`user_history` gives
each train row the user text built from its user's train reviews strictly EARLIER than the row
(a review at the same time is not earlier): the leak-free profile of that row.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

from recbole_dlrrec.data import text_build
from recbole_dlrrec.data.convert.records import ConversionError, Review


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
    return rows_newest_first[bisect.bisect_right(newest_first_keys, -time) :]


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
            earlier_texts = [e.text for e in earlier if e.text is not None]
            if len(earlier_texts) < len(earlier):
                raise ConversionError(f"internal: a history text of user {r.user!r} was not fetched in pass 2")
            text = text_build.user_text(earlier_texts, user_text_max_chars) if earlier else ""
            if text and text not in text_index:
                text_index[text] = len(texts)
                texts.append(text)
            of_time[key] = text_index[text] if text else -1
        users.append(r.user)
        items.append(r.item)
        rows.append(of_time[key])
    return UserHistory(users, items, rows, texts)
