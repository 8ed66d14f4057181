"""Reading any source's two JSON-lines files into neutral records: pass 1 and pass 2.

Every line ends up in exactly one place: kept, or dropped for one counted reason
(``lines_read == kept + sum(dropped)``). The source's parsers (:class:`~.source.Source`) turn one
object into a record or a ``Skip``; here the lines are read (``jsonl``), business duplicates and
the category filter applied, reviews of unknown or filtered businesses counted, one review kept
per (user, business) pair, and, in pass 2, the texts of the rows that need them fetched again.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Sequence

import numpy as np

from recbole_dlrrec.data.convert.columns import ColumnBuilder, ReviewColumns
from recbole_dlrrec.data.convert.jsonl import (
    DEFAULT_MAX_LINE_BYTES,
    LongLine,
    content_digest,
    iter_lines,
    long_line_skip,
    parse_line,
    records,
)
from recbole_dlrrec.data.convert.records import Business, ConversionError, FileTally, Review, Skip
from recbole_dlrrec.data.convert.source import Source
from recbole_dlrrec.data.text_build import clean


def _swapped(path: str, tally: FileTally, lookalikes: int, other: str) -> None:
    if tally.objects and lookalikes * 2 > tally.objects:
        raise ConversionError(
            f"{path}: looks like a {other} file ({lookalikes} of {tally.objects} records): "
            "are --reviews and --meta swapped?"
        )


def read_meta(
    source: Source,
    path: str,
    category_filter: str | None,
    strict: bool,
    show_progress: bool,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> tuple[dict[str, Business], set[str], FileTally]:
    """Kept businesses by item id, the ids dropped by the category filter, and the tally.
    A line over ``max_line_bytes`` is skipped unread (``line_too_long``).

    An item id seen again is dropped: ``duplicate`` when the line has the same content as the
    first one, ``duplicate_conflicting`` when it differs; the FIRST line wins either way.
    """
    tally = FileTally(path)
    kept: dict[str, Business] = {}
    filtered: set[str] = set()
    first_seen: dict[str, bytes] = {}
    review_like = 0
    needle = category_filter.casefold() if category_filter else None
    for lineno, obj in records(path, tally, strict, show_progress, max_line_bytes):
        review_like += source.looks_like_review(obj)
        parsed = source.parse_meta(obj, tally.field_anomalies)
        if isinstance(parsed, Skip):
            if strict and parsed.strict_fatal:
                raise ConversionError(f"{path}:{lineno}: {parsed.detail}")
            tally.drop(parsed.reason)
            continue
        digest = content_digest(obj)
        if parsed.item_id in first_seen:
            tally.drop("duplicate" if first_seen[parsed.item_id] == digest else "duplicate_conflicting")
            continue
        first_seen[parsed.item_id] = digest
        if needle is not None and not any(needle in c.casefold() for c in parsed.categories):
            tally.drop("category_filter")
            filtered.add(parsed.item_id)
            continue
        kept[parsed.item_id] = parsed
        tally.kept += 1
    _swapped(path, tally, review_like, "reviews")
    return kept, filtered, tally


def read_reviews(
    source: Source,
    path: str,
    businesses: dict[str, Business],
    filtered: set[str],
    strict: bool,
    show_progress: bool,
    keep_pic_urls: bool = False,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> tuple[ReviewColumns, FileTally]:
    """Kept reviews (one per user-business pair, the earliest) and the tally; pass 1 of 2.
    A line over ``max_line_bytes`` is skipped unread (``line_too_long``).

    Memory grows with the kept reviews, not with the file, by a few dozen bytes each: a review
    of a business outside ``businesses`` is counted and forgotten, a kept one is held as one
    entry per column (:class:`~.columns.ReviewColumns`, ids as int codes) without its text or
    picture links (:func:`fetch_texts` reads those back for the rows that need them).
    """
    tally = FileTally(path)
    candidates = ColumnBuilder()
    meta_like = 0
    for lineno, obj in records(path, tally, strict, show_progress, max_line_bytes):
        meta_like += source.looks_like_meta(obj)
        parsed = source.parse_review(obj, lineno, tally.field_anomalies, tally.converted, keep_pic_urls=False)
        if isinstance(parsed, Skip):
            if strict and parsed.strict_fatal:
                raise ConversionError(f"{path}:{lineno}: {parsed.detail}")
            tally.drop(parsed.reason)
            continue
        if parsed.item not in businesses:
            tally.drop("business_not_matching_category" if parsed.item in filtered else "unknown_business")
            continue
        parsed.item = businesses[parsed.item].item_id
        candidates.append(parsed)
    _swapped(path, tally, meta_like, "meta")
    kept = _one_per_pair(candidates.build(), tally)
    tally.kept = len(kept)
    if tally.objects and not kept:
        data_drops = sum(v for k, v in tally.dropped.items() if k.startswith("missing_field"))
        if data_drops == tally.objects:
            raise ConversionError(
                f"{path}: none of the {tally.objects} records has all of the review fields "
                f"{', '.join(source.review_fields)}; is this the reviews file?"
            )
    return kept, tally


def _one_per_pair(candidates: ReviewColumns, tally: FileTally) -> ReviewColumns:
    """One review per (user, business): the earliest (then the first in the file), so a
    user-item pair never appears in two splits. In (user, item, time, line) order, a row with
    the (user, item, time) of the row before it repeats that line: a "duplicate" (the first in
    the file is the one kept); another row of the same pair is a re-review. Returned in
    (user, item, time) order."""
    a = candidates.arrays
    ordered = candidates.take(np.lexsort((a["lineno"], a["time"], a["item"], a["user"])))
    user, item, time = (ordered.arrays[name] for name in ("user", "item", "time"))
    again = np.zeros(len(ordered), dtype=bool)
    again[1:] = (user[1:] == user[:-1]) & (item[1:] == item[:-1])
    same_time = np.zeros(len(ordered), dtype=bool)
    same_time[1:] = time[1:] == time[:-1]
    for reason, count in (
        ("duplicate", int((again & same_time).sum())),
        ("repeat_user_business", int((again & ~same_time).sum())),
    ):
        if count:  # a reason is listed only when it happened
            tally.dropped[reason] += count
    return ordered.take(np.flatnonzero(~again))


def fetch_texts(
    source: Source,
    path: str,
    with_texts: Sequence[Review],
    with_pics: Sequence[Review],
    show_progress: bool,
    keep_chars: int | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> None:
    """Pass 2: set ``text`` on ``with_texts`` and ``pic_urls`` on ``with_pics`` (kept rows of
    :func:`read_reviews`), reading the file once more and parsing only the lines they came from.
    ``keep_chars``: keep only the first ``keep_chars`` characters of each cleaned text
    (``text_build.clean``); None keeps the text as read. ``max_line_bytes``: pass 1's cap (a
    wanted line over it was not there in pass 1: the file changed).

    Raises ConversionError when a line no longer holds the review read in pass 1 (the file
    changed between the passes).
    """
    wanted: dict[int, list] = {}
    for review in with_texts:
        wanted.setdefault(review.lineno, [review, False, False])[1] = True
    for review in with_pics:
        wanted.setdefault(review.lineno, [review, False, False])[2] = True
    if not wanted:
        return
    from tqdm.auto import tqdm

    remaining = len(wanted)
    bar = tqdm(desc=f"texts {os.path.basename(path)}", total=remaining, unit=" lines", disable=not show_progress)
    try:
        for lineno, raw in iter_lines(path, max_line_bytes):
            entry = wanted.get(lineno)
            if entry is None:
                continue
            review, text, pics = entry
            obj = long_line_skip(raw, max_line_bytes) if isinstance(raw, LongLine) else parse_line(raw, lineno)
            again = (
                source.parse_review(obj, lineno, Counter(), Counter(), keep_pic_urls=pics)
                if isinstance(obj, dict)
                else obj
            )
            if (
                isinstance(again, Skip)
                or again.user != review.user
                or again.item != review.item
                or again.time != review.time
            ):
                raise ConversionError(f"{path}:{lineno}: the line changed while the file was being converted")
            if text:
                review.text = again.text if keep_chars is None or again.text is None else clean(again.text)[:keep_chars]
            if pics:
                review.pic_urls = again.pic_urls
            bar.update(1)
            remaining -= 1
            if remaining == 0:
                break
    finally:
        bar.close()
    if remaining:
        raise ConversionError(f"{path}: {remaining} line(s) read in the first pass are gone (the file changed)")
