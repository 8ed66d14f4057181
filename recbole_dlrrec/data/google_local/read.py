"""Reading: JSON lines -> cleaned :class:`Business` / :class:`Review` records and a :class:`FileTally`.

Every line ends up in exactly one place: kept, or dropped for one counted reason
(``lines_read == kept + sum(dropped)``). One line is parsed by pure functions
(:func:`parse_line`, then :func:`parse_review` / :func:`parse_meta`) that return a record or a
:class:`Skip` and never raise, whatever the bytes; the file-level checks (empty file, JSON array,
UTF-16, swapped files) raise :class:`ConversionError` naming the file.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import operator
import os
import re
import unicodedata
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence, Union

from recbole_dlrrec.data.text_build import clean
from recbole_dlrrec.errors import InputError

#: How many malformed line numbers are listed in the report per file (the count is always full).
MAX_LISTED_LINES = 1000
#: Longest line read (bytes, its line break not counted): parsing a line holds it many times
#: over (bytes, str, the parsed object, cleaned text), so a longer one is skipped unread and
#: counted as ``line_too_long``. Real Google Local lines stay under a few KB.
DEFAULT_MAX_LINE_BYTES = 1 << 20
#: Bytes of a too-long line that are kept (the file-level checks look at a line's start) and
#: read at a time while the rest of it is skipped.
_LONG_LINE_HEAD = 200
_SKIP_CHUNK = 1 << 20
#: Price strings are normalised to 1-4 '$' signs; these currency signs count as '$'.
_CURRENCY_SIGNS = set("$€£¥₩₹₽")
_WHITESPACE = re.compile(r"\s")
#: Review times: ms since epoch between 1990-01-01 and 2100-01-01. The same window in seconds
#: (the two do not overlap) marks a row written in seconds, converted to ms and counted.
TIME_MS_MIN, TIME_MS_MAX = 631_152_000_000, 4_102_444_800_000
#: Strings pandas' reader turns into NaN (RecBole reads atomic files with pandas defaults): an id
#: spelled like this would come back as a missing value.
try:
    from pandas._libs.parsers import STR_NA_VALUES as _PANDAS_NA
except ImportError:  # pragma: no cover - other pandas layouts
    _PANDAS_NA = {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                  "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
NA_SPELLINGS = frozenset(_PANDAS_NA)
REVIEW_FIELDS = ("user_id", "gmap_id", "time", "rating")


class ConversionError(InputError):
    """Input cannot be converted; the message names the file (and line where there is one)."""


@dataclass
class FileTally:
    """What happened to every line of one input file."""

    path: str
    lines_read: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    malformed_lines: list = field(default_factory=list)
    long_lines: list = field(default_factory=list)  # lines over max_line_bytes (also in `dropped`)
    field_anomalies: Counter = field(default_factory=Counter)
    converted: Counter = field(default_factory=Counter)  # values rewritten, line kept (e.g. time in s)
    objects: int = 0  # lines that parsed as JSON objects

    def drop(self, reason: str) -> None:
        self.dropped[reason] += 1

    def as_dict(self) -> dict:
        return {
            "path": self.path,
            "lines_read": self.lines_read,
            "kept": self.kept,
            "dropped": dict(sorted(self.dropped.items())),
            "dropped_total": sum(self.dropped.values()),
            "malformed_lines": self.malformed_lines[:MAX_LISTED_LINES],
            "malformed_lines_listed_max": MAX_LISTED_LINES,
            "long_lines": self.long_lines[:MAX_LISTED_LINES],
            "field_anomalies": dict(sorted(self.field_anomalies.items())),
            "converted": dict(sorted(self.converted.items())),
        }

    def check_invariant(self) -> None:
        if self.lines_read != self.kept + sum(self.dropped.values()):
            raise AssertionError(
                f"{self.path}: line accounting broken: read {self.lines_read}, kept {self.kept}, "
                f"dropped {sum(self.dropped.values())}"
            )


@dataclass(frozen=True)
class Skip:
    """A line that is not kept: the tally reason, and the message ``--strict`` raises with."""

    reason: str
    detail: str
    strict_fatal: bool = True  # filters (null rating, ...) are never fatal


@dataclass
class Business:
    gmap_id: str
    name: str
    categories: list
    price: str
    description: str | None
    misc: dict
    latitude: float | None
    longitude: float | None
    avg_rating: float | None
    num_of_reviews: float | None
    raw: dict
    category_tokens: list = field(default_factory=list)  # the categories as RecBole tokens


@dataclass(slots=True)
class Review:
    """One review. The streaming reader keeps no text (``text`` None, ``has_text`` and
    ``text_chars`` say what there was) and fetches texts in a second pass for the train rows
    that feed a user's text (:func:`fetch_texts`)."""

    time: int  # ms since epoch
    user: str
    item: str
    rating: float
    text: str | None
    n_pics: int
    pic_urls: list | None
    lineno: int
    has_text: bool = False  # text with a non-space character (set from ``text`` when built with one)
    text_chars: int = 0  # length of the cleaned text (text_build.clean), what a user text's cap counts

    def __post_init__(self) -> None:
        if self.text is not None:
            self.has_text = bool(self.text.strip())
            self.text_chars = len(clean(self.text)) if self.has_text else 0


# ---------------------------------------------------------------------------------------------
# bytes -> lines -> objects
# ---------------------------------------------------------------------------------------------
def _open_binary(path: str) -> io.BufferedIOBase:
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise ConversionError(f"{path}: cannot open: {exc.strerror or exc}") from exc
    try:
        head = handle.read(2)
        handle.seek(0)
    except OSError as exc:
        handle.close()
        raise ConversionError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if head == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=handle, mode="rb")  # type: ignore[return-value]
    return handle  # type: ignore[return-value]


@dataclass(frozen=True)
class LongLine:
    """A line longer than the cap, never held whole: its first bytes and its length in bytes
    (line break not counted)."""

    head: bytes
    size: int


def _capped_lines(handle: io.BufferedIOBase, max_bytes: int) -> Iterator[Union[bytes, LongLine]]:
    """The lines of ``handle``; one longer than ``max_bytes`` is read in chunks and forgotten,
    so memory holds at most ``max_bytes`` of any line."""
    while True:
        raw = handle.readline(max_bytes + 1)
        if not raw:
            return
        if raw.endswith(b"\n") or len(raw) <= max_bytes:
            yield raw
            continue
        head, size = raw[:_LONG_LINE_HEAD], len(raw)
        while not raw.endswith(b"\n"):
            raw = handle.readline(_SKIP_CHUNK)
            if not raw:
                break
            size += len(raw)
        yield LongLine(head, size - (1 if raw.endswith(b"\n") else 0))


def iter_lines(path: str, max_line_bytes: int | None = None) -> Iterator[tuple[int, Union[bytes, LongLine]]]:
    """``(line_number, raw_bytes)`` for every line of a plain or gzip file (1-based numbers).
    With ``max_line_bytes``, a longer line comes as a :class:`LongLine` instead of its bytes.

    Raises ConversionError for an unreadable, truncated or corrupt file, naming it and the
    last line read.
    """
    lineno = 0
    handle = _open_binary(path)
    try:
        for raw in handle if max_line_bytes is None else _capped_lines(handle, max_line_bytes):
            lineno += 1
            yield lineno, raw
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ConversionError(
            f"{path}: truncated or corrupt gzip data after line {lineno} ({exc})"
        ) from exc
    except OSError as exc:
        raise ConversionError(f"{path}: read error after line {lineno}: {exc}") from exc
    finally:
        handle.close()


def looks_like_utf16(first_line: bytes) -> bool:
    """A UTF-16 (or UTF-32) byte order mark, or NUL bytes in every other position."""
    if first_line.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True
    head = first_line[:200]
    return len(head) >= 4 and head.count(b"\x00") * 3 >= len(head)


def parse_line(raw: bytes, lineno: int = 2) -> Union[dict, Skip]:
    """One line -> a JSON object, or a Skip (blank_line, malformed_json, not_an_object). Never raises."""
    if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):  # UTF-8 byte order mark
        raw = raw[3:]
    if not raw.strip():
        return Skip("blank_line", "blank line", strict_fatal=False)
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return Skip("malformed_json", f"malformed JSON ({exc})")
    except RecursionError:  # thousands of nested brackets: malformed like any other line
        return Skip("malformed_json", "malformed JSON (nested too deeply)")
    if not isinstance(obj, dict):
        return Skip("not_an_object", f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _long_line_skip(line: LongLine, max_line_bytes: int) -> Skip:
    return Skip("line_too_long", f"line of {line.size} bytes is longer than max_line_bytes={max_line_bytes} "
                                 "(raise --max_line_bytes to read it)")


def _records(path: str, tally: FileTally, strict: bool, show_progress: bool,
             max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> Iterator[tuple[int, dict]]:
    """Parsed JSON objects with line numbers; blank/malformed/non-object/too-long lines are counted."""
    from tqdm.auto import tqdm

    first_bad: tuple[int, str] | None = None
    bar = tqdm(desc=f"reading {os.path.basename(path)}", unit=" lines", disable=not show_progress)
    try:
        for lineno, raw in iter_lines(path, max_line_bytes):
            tally.lines_read += 1
            bar.update(1)
            head = raw.head if isinstance(raw, LongLine) else raw
            if lineno == 1 and looks_like_utf16(head):
                raise ConversionError(
                    f"{path}: looks like UTF-16 text (byte order mark or NUL bytes): re-encode it as UTF-8 "
                    "(e.g. iconv -f UTF-16 -t UTF-8)"
                )
            if tally.objects == 0 and first_bad is None and head.lstrip().startswith(b"["):
                raise ConversionError(
                    f"{path}: line {lineno} starts a JSON array; expected JSON lines (one object per line)"
                )
            parsed = _long_line_skip(raw, max_line_bytes) if isinstance(raw, LongLine) else parse_line(raw, lineno)
            if isinstance(parsed, Skip):
                if strict and parsed.strict_fatal:
                    raise ConversionError(f"{path}:{lineno}: {parsed.detail}")
                tally.drop(parsed.reason)
                listed = tally.long_lines if isinstance(raw, LongLine) else tally.malformed_lines
                if parsed.reason != "blank_line":
                    if len(listed) < MAX_LISTED_LINES:  # the count is in `dropped`
                        listed.append(lineno)
                    if first_bad is None:
                        first_bad = (lineno, head[:60].decode("utf-8", "replace").strip())
                continue
            tally.objects += 1
            yield lineno, parsed
    finally:
        bar.close()
    if tally.lines_read == 0:
        raise ConversionError(f"{path}: the file is empty")
    if tally.objects == 0:
        where = f" (line {first_bad[0]} starts {first_bad[1]!r})" if first_bad else ""
        raise ConversionError(
            f"{path}: no line is a JSON object; expected JSON lines (one object per line), "
            f"not a JSON array or CSV{where}"
        )


# ---------------------------------------------------------------------------------------------
# values
# ---------------------------------------------------------------------------------------------
def readable_token(text: str) -> bool:
    """True when RecBole's reader (pandas, tab-separated, default quoting and NA spellings) reads
    ``text`` back as the same token: not empty, no whitespace, no '"', no control character, and
    not a spelling pandas takes for a missing value (NA, null, nan, ...)."""
    return (
        text != ""
        and text not in NA_SPELLINGS
        and '"' not in text
        and not _WHITESPACE.search(text)
        and not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in text)
    )


def as_token(value: Any) -> str | None:
    """Ids may be strings or integers in the wild; anything else, or a string RecBole could not
    read back (see :func:`readable_token`), is invalid."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    return value if isinstance(value, str) and readable_token(value) else None


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:  # an integer beyond float range
        return None
    return value if math.isfinite(value) else None


def normalise_time(value: Any) -> tuple[int | None, bool]:
    """(ms since epoch, was_in_seconds); (None, False) when not a plausible time.

    Plausible: ms in [1990, 2100) as a whole number, or seconds in the same years (then
    converted to ms, rounded). Anything else (0, negative, 1e20, a string) is invalid.
    """
    stamp = number(value)
    if stamp is None:
        return None, False
    if TIME_MS_MIN <= stamp < TIME_MS_MAX and stamp == int(stamp):
        return int(stamp), False
    if TIME_MS_MIN / 1000 <= stamp < TIME_MS_MAX / 1000:
        return int(round(stamp * 1000)), True
    return None, False


def normalise_price(value: Any) -> tuple[str, bool]:
    """(price token, is_anomaly): '$'..'$$$$' (other currency signs count as '$') or 'unknown'."""
    if value is None:
        return "unknown", False
    if isinstance(value, str):
        v = value.strip()
        if 1 <= len(v) <= 4 and all(c in _CURRENCY_SIGNS for c in v) and len(set(v)) == 1:
            return "$" * len(v), False
    return "unknown", True


def category_token(category: str) -> str:
    """One RecBole token for a category string: whitespace runs replaced by '_'."""
    return re.sub(r"\s+", "_", category.strip())


def _number_field(obj: dict, key: str, anomalies: Counter) -> float | None:
    """obj[key] as a number; None when absent, or when not a number (counted as an anomaly)."""
    raw = obj.get(key)
    num = number(raw)
    if raw is not None and num is None:
        anomalies[f"{key}_not_a_number"] += 1
    return num


def _typed_field(obj: dict, key: str, kind: type, anomaly: str, anomalies: Counter) -> Any:
    """obj[key] if it is a `kind`; None when absent, or when of another type (counted as `anomaly`)."""
    value = obj.get(key)
    if value is not None and not isinstance(value, kind):
        anomalies[anomaly] += 1
        return None
    return value


def looks_like_review(obj: dict) -> bool:
    return "user_id" in obj and "rating" in obj and "category" not in obj


def looks_like_meta(obj: dict) -> bool:
    return "gmap_id" in obj and "name" in obj and "category" in obj and "user_id" not in obj and "rating" not in obj


# ---------------------------------------------------------------------------------------------
# objects -> records (pure: a record or a Skip, never an exception)
# ---------------------------------------------------------------------------------------------
def parse_meta(obj: dict, anomalies: Counter) -> Union[Business, Skip]:
    """One meta object -> a Business (categories not yet filtered), or a Skip."""
    gmap_id = obj.get("gmap_id")
    if gmap_id is None:
        return Skip("missing_field:gmap_id", "missing field 'gmap_id'")
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        return Skip("missing_field:name", "missing or empty field 'name'")
    gmap_token = as_token(gmap_id)
    if gmap_token is None:
        return Skip("invalid_value:gmap_id", f"invalid gmap_id {gmap_id!r}")
    cats = obj.get("category")
    if isinstance(cats, str):
        anomalies["category_not_a_list"] += 1
        cats = [cats]
    elif cats is not None and not isinstance(cats, list):
        anomalies["category_not_a_list"] += 1
        cats = None
    cats = [c for c in (cats or []) if isinstance(c, str) and c.strip()]
    tokens = [t for t in (category_token(c) for c in cats) if t]
    readable = [t for t in tokens if readable_token(t)]
    if len(readable) < len(tokens):  # a '"', a control character, or 'NA' alone: unreadable
        anomalies["category_token_unreadable"] += len(tokens) - len(readable)
    price, bad_price = normalise_price(obj.get("price"))
    if bad_price:
        anomalies["price_unrecognised"] += 1
    return Business(
        gmap_id=gmap_token,
        name=name,
        categories=cats,
        price=price,
        description=_typed_field(obj, "description", str, "description_not_a_string", anomalies),
        misc=_typed_field(obj, "MISC", dict, "MISC_not_an_object", anomalies) or {},
        latitude=_number_field(obj, "latitude", anomalies),
        longitude=_number_field(obj, "longitude", anomalies),
        avg_rating=_number_field(obj, "avg_rating", anomalies),
        num_of_reviews=_number_field(obj, "num_of_reviews", anomalies),
        raw=obj,
        category_tokens=readable,
    )


def parse_review(obj: dict, lineno: int, anomalies: Counter, converted: Counter,
                 keep_pic_urls: bool = False) -> Union[Review, Skip]:
    """One review object -> a Review (time in ms), or a Skip. Business membership and
    duplicates are the caller's (they need the other lines)."""
    missing = [k for k in REVIEW_FIELDS if k not in obj or (k != "rating" and obj[k] is None)]
    if missing:
        return Skip(f"missing_field:{missing[0]}", f"missing field '{missing[0]}'")
    if obj["rating"] is None:
        return Skip("null_rating", "null rating", strict_fatal=False)
    user = as_token(obj["user_id"])
    if user is None:
        return Skip("invalid_value:user_id", f"invalid user_id {obj['user_id']!r}")
    item = as_token(obj["gmap_id"])
    if item is None:
        return Skip("invalid_value:gmap_id", f"invalid gmap_id {obj['gmap_id']!r}")
    stamp, in_seconds = normalise_time(obj["time"])
    if stamp is None:
        return Skip("invalid_value:time", f"invalid time {obj['time']!r} (expected ms since epoch, 1990-2100)")
    rating = number(obj["rating"])
    if rating is None or not 1 <= rating <= 5:
        return Skip("invalid_value:rating", f"invalid rating {obj['rating']!r} (expected 1-5)")
    if in_seconds:
        converted["time_seconds_to_ms"] += 1
    text = obj.get("text")
    if text is not None and not isinstance(text, str):
        anomalies["text_not_a_string"] += 1
        text = None
    pics = obj.get("pics")
    n_pics = 0
    urls = None
    if pics is not None:
        if isinstance(pics, list):
            n_pics = len(pics)
            if keep_pic_urls:
                urls = [
                    [u for u in p.get("url", []) if isinstance(u, str)]
                    for p in pics
                    if isinstance(p, dict) and isinstance(p.get("url"), list)
                ]
        else:
            anomalies["pics_not_a_list"] += 1
    return Review(stamp, user, item, rating, text, n_pics, urls, lineno)


def _content_digest(obj: dict) -> bytes:
    return hashlib.blake2b(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode("utf-8"),
                           digest_size=16).digest()


# ---------------------------------------------------------------------------------------------
# files -> records
# ---------------------------------------------------------------------------------------------
def _swapped(path: str, tally: FileTally, lookalikes: int, other: str) -> None:
    if tally.objects and lookalikes * 2 > tally.objects:
        raise ConversionError(
            f"{path}: looks like a {other} file ({lookalikes} of {tally.objects} records): "
            "are --reviews and --meta swapped?"
        )


def read_meta(
    path: str, category_filter: str | None, strict: bool, show_progress: bool,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> tuple[dict[str, Business], set[str], FileTally]:
    """Kept businesses by gmap_id, gmap_ids dropped by the category filter, and the tally.
    A line over ``max_line_bytes`` is skipped unread (``line_too_long``).

    A gmap_id seen again is dropped: ``duplicate`` when the line has the same content as the
    first one, ``duplicate_conflicting`` when it differs; the FIRST line wins either way.
    """
    tally = FileTally(path)
    kept: dict[str, Business] = {}
    filtered: set[str] = set()
    first_seen: dict[str, bytes] = {}
    review_like = 0
    needle = category_filter.casefold() if category_filter else None
    for lineno, obj in _records(path, tally, strict, show_progress, max_line_bytes):
        review_like += looks_like_review(obj)
        parsed = parse_meta(obj, tally.field_anomalies)
        if isinstance(parsed, Skip):
            if strict and parsed.strict_fatal:
                raise ConversionError(f"{path}:{lineno}: {parsed.detail}")
            tally.drop(parsed.reason)
            continue
        digest = _content_digest(obj)
        if parsed.gmap_id in first_seen:
            tally.drop("duplicate" if first_seen[parsed.gmap_id] == digest else "duplicate_conflicting")
            continue
        first_seen[parsed.gmap_id] = digest
        if needle is not None and not any(needle in c.casefold() for c in parsed.categories):
            tally.drop("category_filter")
            filtered.add(parsed.gmap_id)
            continue
        kept[parsed.gmap_id] = parsed
        tally.kept += 1
    _swapped(path, tally, review_like, "reviews")
    return kept, filtered, tally


def read_reviews(
    path: str,
    businesses: dict[str, Business],
    filtered: set[str],
    strict: bool,
    show_progress: bool,
    keep_pic_urls: bool = False,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> tuple[list[Review], FileTally]:
    """Kept reviews (one per user-business pair, the earliest) and the tally; pass 1 of 2.
    A line over ``max_line_bytes`` is skipped unread (``line_too_long``).

    Memory grows with the kept reviews, not with the file: a review of a business outside
    ``businesses`` is counted and forgotten, a kept one is held without its text or picture
    links (see :class:`Review`; :func:`fetch_texts` reads those back for the rows that need
    them), and ids are shared strings (one object per user and per business).
    """
    tally = FileTally(path)
    candidates: list[Review] = []
    user_ids: dict[str, str] = {}
    ratings: dict[float, float] = {}
    meta_like = 0
    for lineno, obj in _records(path, tally, strict, show_progress, max_line_bytes):
        meta_like += looks_like_meta(obj)
        parsed = parse_review(obj, lineno, tally.field_anomalies, tally.converted, keep_pic_urls=False)
        if isinstance(parsed, Skip):
            if strict and parsed.strict_fatal:
                raise ConversionError(f"{path}:{lineno}: {parsed.detail}")
            tally.drop(parsed.reason)
            continue
        if parsed.item not in businesses:
            tally.drop("business_not_matching_category" if parsed.item in filtered else "unknown_business")
            continue
        parsed.item = businesses[parsed.item].gmap_id
        parsed.user = user_ids.setdefault(parsed.user, parsed.user)
        parsed.rating = ratings.setdefault(parsed.rating, parsed.rating)  # a handful of distinct floats
        parsed.text = None
        candidates.append(parsed)
    _swapped(path, tally, meta_like, "meta")
    # One review per (user, business): the earliest (then the first in the file), so a
    # user-item pair never appears in two splits. In (user, item, time, line) order, a row
    # with the (user, item, time) of the row before it repeats that line: a "duplicate"
    # (the first in the file is the one kept); another row of the same pair is a re-review.
    # The rows are in file (line) order; stable sorts by time, then item, then user give the
    # (user, item, time, line) order without building a key tuple per row.
    sort_stable_by(candidates, "user", "item", "time")
    kept: list[Review] = []
    previous: Review | None = None
    for review in candidates:
        if previous is not None and review.user == previous.user and review.item == previous.item:
            tally.drop("duplicate" if review.time == previous.time else "repeat_user_business")
            previous = review
            continue
        previous = review
        kept.append(review)
    del candidates
    tally.kept = len(kept)
    if tally.objects and not kept:
        data_drops = sum(v for k, v in tally.dropped.items() if k.startswith("missing_field"))
        if data_drops == tally.objects:
            raise ConversionError(
                f"{path}: none of the {tally.objects} records has all of the review fields "
                "user_id, gmap_id, time, rating; is this the reviews file?"
            )
    return kept, tally


def sort_stable_by(rows: list, *fields: str) -> None:
    """Sort ``rows`` in place by ``fields`` (first = most significant), ties keeping their order:
    one stable sort per field from the last, keyed by the attribute objects themselves, so the
    only extra memory is one reference per row (a key tuple per row would cost ~100 bytes)."""
    for name in reversed(fields):
        rows.sort(key=operator.attrgetter(name))


def fetch_texts(path: str, with_texts: Sequence[Review], with_pics: Sequence[Review], show_progress: bool,
                keep_chars: int | None = None, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
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
            obj = _long_line_skip(raw, max_line_bytes) if isinstance(raw, LongLine) else parse_line(raw, lineno)
            again = (parse_review(obj, lineno, Counter(), Counter(), keep_pic_urls=pics)
                     if isinstance(obj, dict) else obj)
            if (isinstance(again, Skip) or again.user != review.user or again.item != review.item
                    or again.time != review.time):
                raise ConversionError(f"{path}:{lineno}: the line changed while the file was being converted")
            if text:
                review.text = (again.text if keep_chars is None or again.text is None
                               else clean(again.text)[:keep_chars])
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
