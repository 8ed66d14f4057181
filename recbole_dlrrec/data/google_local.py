"""Google Local 2021 reviews + business metadata -> a RecBole benchmark dataset.

Command line::

    python -m recbole_dlrrec.data.google_local --reviews R --meta M --name NAME [--out dataset]
        [--split time|random] [--seed S] [--label_threshold 4] [--category_filter restaurant]
        [--strict] [--include_leaky_meta] [--encoder_model PATH] [--encoder_cache PATH]
        [--image_encoder none] [--verify]

or ``convert(reviews_path, meta_path, name, out_dir="dataset", ...) -> report dict``.

Input: two JSON-lines files, each plain or gzip (detected from the content, not the name).
Reviews: ``user_id, name, time (ms since epoch), rating (1-5), text, pics, resp, gmap_id``.
Meta: ``name, address, gmap_id, description, latitude, longitude, category, avg_rating,
num_of_reviews, price, hours, MISC, state, relative_results, url``.

Cleaning, one reason per dropped line, every line counted (lines read = kept + dropped):

- meta: ``blank_line``, ``malformed_json`` (line numbers listed), ``not_an_object``,
  ``missing_field:gmap_id`` / ``missing_field:name``, ``duplicate`` (same gmap_id again; the
  first line wins), ``category_filter`` (no category entry contains the filter text, compared
  case-insensitively; a business with no category never matches).
- reviews: ``blank_line``, ``malformed_json``, ``not_an_object``, ``missing_field:<f>`` for
  user_id / gmap_id / time / rating (key absent), ``null_rating``, ``invalid_value:<f>`` (rating
  outside 1-5 or not a number, time not a positive number, an id that is not a string/integer or
  contains whitespace), ``business_not_matching_category`` (the business is in meta but was
  dropped by the category filter), ``unknown_business`` (gmap_id not among the kept meta lines),
  ``duplicate`` (same user, business and time as an earlier line), ``repeat_user_business``
  (a later review by the same user of the same business: the earliest one is kept, so a
  user-item pair never appears in two splits).
- Optional fields with a wrong type (text, pics, latitude, price, MISC, ...) do not drop the
  line: the field is treated as missing and counted under ``field_anomalies``.
- ``--strict`` makes malformed_json, not_an_object, missing_field and invalid_value fatal,
  with ``file:line``. Filters (duplicates, unknown business, category, null rating) never are.
- A file that cannot be read, a truncated gzip, an empty file, a file whose first line opens a
  JSON array, a file without a single JSON object line (a CSV) or with no record carrying the required fields raises
  ``ConversionError`` naming the file; so does a filter that leaves nothing. The CLI prints one
  line and exits with status 2.

Split: ``time`` (default) orders the kept interactions by (timestamp, user_id, item_id) and cuts
the global timeline at the 80% and 90% positions (``ratios``), so every train row is not later
than every valid row, and so on; ``random`` shuffles with ``numpy.random.default_rng(seed)``.
Label = 1 if rating >= ``label_threshold`` (default 4) else 0.

Output, all under ``<out>/NAME/`` (built in ``<out>/.NAME.tmp-XXXX`` and moved into place at the
end, so an interrupted run never leaves a half dataset under the final name):

- ``NAME.{train,valid,test}.inter``: ``user_id:token item_id:token rating:float label:float
  timestamp:float`` (tab-separated; timestamp in ms since epoch as in the input), rows sorted
  by timestamp, user, item.
- ``NAME.item``: ``item_id:token price:token categories:token_seq latitude:float
  longitude:float pic_count:float`` (+ ``avg_rating:float num_of_reviews:float`` with
  ``include_leaky_meta``). One row per item that occurs in any split. ``price`` is ``$``..``$$$$``
  or ``unknown``; each category becomes one token with whitespace replaced by ``_``;
  ``pic_count`` = pictures on the item's TRAIN reviews; a missing latitude/longitude is left
  empty (RecBole fills the column mean). A float column with fewer than two distinct values
  (all missing, or constant: real Google Local subsets have no coordinates or pictures) is left
  out of the file, ``load_col`` and ``numerical_features``, and listed in the report: RecBole's
  min-max scaling would turn it into 0/0 = NaN in every row.
- ``NAME.user``: ``user_id:token n_train_reviews:float``, one row per user that occurs in any
  split (0 for users seen only in valid/test: RecBole drops interactions whose user is missing
  from the .user file).
- ``NAME.itemvec.npz`` / ``NAME.uservec.npz``: arrays ``ids`` (numpy unicode, the token ids) and
  ``vectors`` (float32, n x dim, unit L2 norm). Item text: name, categories, price, description
  and MISC (see ``text_build``). User text: the user's own TRAIN review texts, newest first, up
  to ``user_text_max_chars`` characters; users without train text get no row. The npz files are
  written with fixed zip timestamps, so equal content gives equal bytes.
- ``NAME.yaml``: RecBole settings for this dataset (every key commented).
- ``REPORT.md`` / ``REPORT.json``: counts read / kept / dropped per reason, per-split users,
  items, interactions, label balance, share of rows with text, time taken.

No leakage, enforced here: the text of a valid/test review feeds nothing; user vectors and
``n_train_reviews`` use train rows only; ``pic_count`` counts train pictures only; the meta
fields ``avg_rating`` and ``num_of_reviews`` (computed by Google over all time, valid/test
included) are left out unless ``include_leaky_meta`` is given, and then marked LEAKY.
(A train row's own review text is part of its user's profile text, as the profile is one
vector per user; evaluation rows never are.)

Images: there is no offline image model, so pictures only contribute ``pic_count``. The slot
``IMAGE_ENCODERS`` (name -> callable) is off by default (``--image_encoder none``). A registered
callable is called once per output item as ``fn(item_meta: dict, train_pic_urls: list[list[str]])``
and returns either a caption (appended to the item text as "Photos: ...") or a float vector
(saved as ``NAME.itemimgvec.npz``). Only pictures of TRAIN reviews are passed to it.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import time
import zipfile
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from recbole_dlrrec import atomic
from recbole_dlrrec.data import text_build

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
DEFAULT_RATIOS = (0.8, 0.1, 0.1)
DEFAULT_LABEL_THRESHOLD = 4.0
DEFAULT_CATEGORY_FILTER = "restaurant"
#: How many malformed line numbers are listed in the report per file (the count is always full).
MAX_LISTED_LINES = 1000
#: Suffixes of the side files with text vectors; also written into NAME.yaml for the loader.
ITEM_VEC_SUFFIX = "itemvec"
USER_VEC_SUFFIX = "uservec"
ITEM_IMAGE_VEC_SUFFIX = "itemimgvec"
#: Price strings are normalised to 1-4 '$' signs; these currency signs count as '$'.
_CURRENCY_SIGNS = set("$€£¥₩₹₽")
_WHITESPACE = re.compile(r"\s")

INTER_HEADER = ("user_id:token", "item_id:token", "rating:float", "label:float", "timestamp:float")
ITEM_HEADER = (
    "item_id:token",
    "price:token",
    "categories:token_seq",
    "latitude:float",
    "longitude:float",
    "pic_count:float",
)
LEAKY_ITEM_HEADER = ("avg_rating:float", "num_of_reviews:float")
USER_HEADER = ("user_id:token", "n_train_reviews:float")

ImageEncoder = Callable[[dict, list], Any]
#: Registry of image encoders: name -> callable, or None for "off". See the module docstring.
IMAGE_ENCODERS: dict[str, ImageEncoder | None] = {"none": None}


def register_image_encoder(name: str, fn: ImageEncoder) -> None:
    """Make ``fn`` selectable as ``--image_encoder name``."""
    if not name or name == "none":
        raise ValueError("image encoder name must be non-empty and not 'none'")
    IMAGE_ENCODERS[name] = fn


class ConversionError(Exception):
    """Input cannot be converted; the message names the file (and line where there is one)."""


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------
def _open_binary(path: str) -> io.BufferedIOBase:
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise ConversionError(f"{path}: cannot open: {exc.strerror or exc}") from exc
    head = handle.read(2)
    handle.seek(0)
    if head == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=handle, mode="rb")  # type: ignore[return-value]
    return handle  # type: ignore[return-value]


def iter_lines(path: str) -> Iterator[tuple[int, bytes]]:
    """``(line_number, raw_bytes)`` for every line of a plain or gzip file (1-based numbers).

    Raises ConversionError for an unreadable, truncated or corrupt file, naming it and the
    last line read.
    """
    lineno = 0
    handle = _open_binary(path)
    try:
        for raw in handle:
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


@dataclass
class FileTally:
    """What happened to every line of one input file."""

    path: str
    lines_read: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    malformed_lines: list = field(default_factory=list)
    field_anomalies: Counter = field(default_factory=Counter)
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
            "field_anomalies": dict(sorted(self.field_anomalies.items())),
        }

    def check_invariant(self) -> None:
        if self.lines_read != self.kept + sum(self.dropped.values()):
            raise AssertionError(
                f"{self.path}: line accounting broken: read {self.lines_read}, kept {self.kept}, "
                f"dropped {sum(self.dropped.values())}"
            )


def _records(path: str, tally: FileTally, strict: bool, show_progress: bool) -> Iterator[tuple[int, dict]]:
    """Parsed JSON objects with line numbers; blank/malformed/non-object lines are counted."""
    from tqdm.auto import tqdm

    first_bad: tuple[int, str] | None = None
    bar = tqdm(desc=f"reading {os.path.basename(path)}", unit=" lines", disable=not show_progress)
    try:
        for lineno, raw in iter_lines(path):
            tally.lines_read += 1
            bar.update(1)
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):  # UTF-8 byte order mark
                raw = raw[3:]
            if not raw.strip():
                tally.drop("blank_line")
                continue
            if tally.objects == 0 and first_bad is None and raw.lstrip().startswith(b"["):
                raise ConversionError(
                    f"{path}: line {lineno} starts a JSON array; expected JSON lines (one object per line)"
                )
            try:
                obj = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                if strict:
                    raise ConversionError(f"{path}:{lineno}: malformed JSON ({exc})") from exc
                tally.drop("malformed_json")
                tally.malformed_lines.append(lineno)
                if first_bad is None:
                    first_bad = (lineno, raw[:60].decode("utf-8", "replace").strip())
                continue
            if not isinstance(obj, dict):
                if strict:
                    raise ConversionError(
                        f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}"
                    )
                tally.drop("not_an_object")
                tally.malformed_lines.append(lineno)
                if first_bad is None:
                    first_bad = (lineno, raw[:60].decode("utf-8", "replace").strip())
                continue
            tally.objects += 1
            yield lineno, obj
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


def _fail_or_count(strict: bool, tally: FileTally, lineno: int, reason: str, detail: str) -> None:
    if strict:
        raise ConversionError(f"{tally.path}:{lineno}: {detail}")
    tally.drop(reason)


def _is_token(value: Any) -> bool:
    return isinstance(value, str) and value != "" and not _WHITESPACE.search(value)


def _as_token(value: Any) -> str | None:
    """Ids may be strings or integers in the wild; anything else (or with whitespace) is invalid."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    return value if _is_token(value) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


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


def _number_field(obj: dict, key: str, tally: FileTally) -> float | None:
    """obj[key] as a number; None when absent, or when not a number (counted as an anomaly)."""
    raw = obj.get(key)
    num = _number(raw)
    if raw is not None and num is None:
        tally.field_anomalies[f"{key}_not_a_number"] += 1
    return num


def _typed_field(obj: dict, key: str, kind: type, anomaly: str, tally: FileTally) -> Any:
    """obj[key] if it is a `kind`; None when absent, or when of another type (counted as `anomaly`)."""
    value = obj.get(key)
    if value is not None and not isinstance(value, kind):
        tally.field_anomalies[anomaly] += 1
        return None
    return value


def read_meta(
    path: str, category_filter: str | None, strict: bool, show_progress: bool
) -> tuple[dict[str, Business], set[str], FileTally]:
    """Kept businesses by gmap_id, gmap_ids dropped by the category filter, and the tally."""
    tally = FileTally(path)
    kept: dict[str, Business] = {}
    filtered: set[str] = set()
    seen: set[str] = set()
    needle = category_filter.casefold() if category_filter else None
    for lineno, obj in _records(path, tally, strict, show_progress):
        gmap_id = obj.get("gmap_id")
        if gmap_id is None:
            _fail_or_count(strict, tally, lineno, "missing_field:gmap_id", "missing field 'gmap_id'")
            continue
        name = obj.get("name")
        if not isinstance(name, str) or not name.strip():
            _fail_or_count(strict, tally, lineno, "missing_field:name", "missing or empty field 'name'")
            continue
        gmap_token = _as_token(gmap_id)
        if gmap_token is None:
            _fail_or_count(
                strict, tally, lineno, "invalid_value:gmap_id", f"invalid gmap_id {gmap_id!r}"
            )
            continue
        if gmap_token in seen:
            tally.drop("duplicate")
            continue
        seen.add(gmap_token)
        cats = obj.get("category")
        if isinstance(cats, str):
            tally.field_anomalies["category_not_a_list"] += 1
            cats = [cats]
        elif cats is not None and not isinstance(cats, list):
            tally.field_anomalies["category_not_a_list"] += 1
            cats = None
        cats = [c for c in (cats or []) if isinstance(c, str) and c.strip()]
        if needle is not None and not any(needle in c.casefold() for c in cats):
            tally.drop("category_filter")
            filtered.add(gmap_token)
            continue
        price, bad_price = normalise_price(obj.get("price"))
        if bad_price:
            tally.field_anomalies["price_unrecognised"] += 1
        kept[gmap_token] = Business(
            gmap_id=gmap_token,
            name=name,
            categories=cats,
            price=price,
            description=_typed_field(obj, "description", str, "description_not_a_string", tally),
            misc=_typed_field(obj, "MISC", dict, "MISC_not_an_object", tally) or {},
            latitude=_number_field(obj, "latitude", tally),
            longitude=_number_field(obj, "longitude", tally),
            avg_rating=_number_field(obj, "avg_rating", tally),
            num_of_reviews=_number_field(obj, "num_of_reviews", tally),
            raw=obj,
        )
        tally.kept += 1
    return kept, filtered, tally


@dataclass
class Review:
    time: int
    user: str
    item: str
    rating: float
    text: str | None
    n_pics: int
    pic_urls: list | None
    lineno: int


def read_reviews(
    path: str,
    businesses: dict[str, Business],
    filtered: set[str],
    strict: bool,
    show_progress: bool,
    keep_pic_urls: bool = False,
) -> tuple[list[Review], FileTally]:
    """Kept reviews (one per user-business pair, the earliest) and the tally."""
    tally = FileTally(path)
    candidates: list[Review] = []
    seen_exact: set[tuple[str, str, int]] = set()
    for lineno, obj in _records(path, tally, strict, show_progress):
        missing = [k for k in ("user_id", "gmap_id", "time", "rating") if k not in obj or (k != "rating" and obj[k] is None)]
        if missing:
            _fail_or_count(
                strict, tally, lineno, f"missing_field:{missing[0]}", f"missing field '{missing[0]}'"
            )
            continue
        if obj["rating"] is None:
            tally.drop("null_rating")
            continue
        user = _as_token(obj["user_id"])
        if user is None:
            _fail_or_count(strict, tally, lineno, "invalid_value:user_id", f"invalid user_id {obj['user_id']!r}")
            continue
        item = _as_token(obj["gmap_id"])
        if item is None:
            _fail_or_count(strict, tally, lineno, "invalid_value:gmap_id", f"invalid gmap_id {obj['gmap_id']!r}")
            continue
        stamp = _number(obj["time"])
        if stamp is None or stamp <= 0 or stamp != int(stamp):
            _fail_or_count(strict, tally, lineno, "invalid_value:time", f"invalid time {obj['time']!r}")
            continue
        rating = _number(obj["rating"])
        if rating is None or not 1 <= rating <= 5:
            _fail_or_count(strict, tally, lineno, "invalid_value:rating", f"invalid rating {obj['rating']!r} (expected 1-5)")
            continue
        if item not in businesses:
            tally.drop("business_not_matching_category" if item in filtered else "unknown_business")
            continue
        key = (user, item, int(stamp))
        if key in seen_exact:
            tally.drop("duplicate")
            continue
        seen_exact.add(key)
        text = obj.get("text")
        if text is not None and not isinstance(text, str):
            tally.field_anomalies["text_not_a_string"] += 1
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
                tally.field_anomalies["pics_not_a_list"] += 1
        candidates.append(Review(int(stamp), user, item, rating, text, n_pics, urls, lineno))
    # One review per (user, business): the earliest (then the first in the file).
    candidates.sort(key=lambda r: (r.user, r.item, r.time, r.lineno))
    kept: list[Review] = []
    previous: tuple[str, str] | None = None
    for review in candidates:
        pair = (review.user, review.item)
        if pair == previous:
            tally.drop("repeat_user_business")
            continue
        previous = pair
        kept.append(review)
    tally.kept = len(kept)
    if tally.objects and not kept:
        data_drops = sum(v for k, v in tally.dropped.items() if k.startswith("missing_field"))
        if data_drops == tally.objects:
            raise ConversionError(
                f"{path}: none of the {tally.objects} records has all of the review fields "
                "user_id, gmap_id, time, rating; is this the reviews file?"
            )
    return kept, tally


# ---------------------------------------------------------------------------------------------
# splitting
# ---------------------------------------------------------------------------------------------
def split_reviews(
    reviews: list[Review], how: str, ratios: Sequence[float], seed: int
) -> dict[str, list[Review]]:
    """Train/valid/test lists, each sorted by (time, user, item). See module docstring."""
    if len(ratios) != 3 or any(r <= 0 for r in ratios) or abs(sum(ratios) - 1) > 1e-6:
        raise ValueError(f"ratios must be three positive numbers summing to 1, got {list(ratios)}")
    ordered = sorted(reviews, key=lambda r: (r.time, r.user, r.item))
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
        raise ValueError(f"split must be 'time' or 'random', got {how!r}")
    result = dict(zip(SPLITS, parts))
    empty = [s for s in SPLITS if not result[s]]
    if empty:
        raise ConversionError(
            f"the {'/'.join(empty)} split would be empty: only {n} interactions survived cleaning"
        )
    return result


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------
def _fmt_float(value: float | None) -> str:
    if value is None:
        return ""
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _tsv(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["\t".join(header)]
    lines.extend("\t".join(r) for r in rows)
    return "\n".join(lines) + "\n"


def save_npz(path: str, **arrays: np.ndarray) -> None:
    """Write an uncompressed .npz with fixed zip timestamps (same arrays -> same bytes), atomically."""
    with atomic.atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            for key, array in arrays.items():
                info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                with archive.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def _field_names(header: Sequence[str], kind: str | None = None) -> list[str]:
    """Field names of an atomic header, optionally only those of one RecBole type."""
    pairs = [column.split(":", 1) for column in header]
    return [name for name, typ in pairs if kind is None or typ == kind]


def _drop_constant_numeric(
    header: Sequence[str], rows: list[Sequence[str]]
) -> tuple[tuple[str, ...], list[list[str]], dict[str, str]]:
    """(header, rows, left_out) without the float columns that hold fewer than two distinct
    values; ``left_out`` maps each removed field to why ("all missing" or "constant: V")."""
    left_out: dict[str, str] = {}
    keep = []
    for index, column in enumerate(header):
        name, _, typ = column.partition(":")
        values = {row[index] for row in rows if row[index] != ""} if typ == "float" else None
        if values is not None and len(values) < 2:
            left_out[name] = "all missing" if not values else f"constant: {next(iter(values))}"
        else:
            keep.append(index)
    return (
        tuple(header[i] for i in keep),
        [[row[i] for i in keep] for row in rows],
        left_out,
    )


def _yaml_text(
    name: str,
    item_header: Sequence[str],
    user_header: Sequence[str],
    include_leaky_meta: bool,
    has_image_vectors: bool,
) -> str:
    item_cols = _field_names(item_header)
    user_cols = _field_names(user_header)
    numeric = _field_names(item_header, "float") + _field_names(user_header, "float")
    leaky_note = (
        "\n# LEAKY: avg_rating and num_of_reviews are Google's all-time figures (valid/test included);"
        "\n# this dataset was built with --include_leaky_meta for experiments only."
        if include_leaky_meta
        else ""
    )
    image_line = (
        f"item_image_vec: {ITEM_IMAGE_VEC_SUFFIX}    # (str) Side file {name}.{ITEM_IMAGE_VEC_SUFFIX}.npz with image vectors (ids, vectors).\n"
        if has_image_vectors
        else ""
    )
    return f"""# RecBole settings for dataset '{name}', written by recbole_dlrrec.data.google_local.
# Rebuild with the converter instead of editing by hand.{leaky_note}
field_separator: "\\t"           # (str) Atomic files are tab-separated.
seq_separator: " "              # (str) categories (token_seq) holds space-separated tokens.
USER_ID_FIELD: user_id          # (str) User token = Google user_id.
ITEM_ID_FIELD: item_id          # (str) Item token = Google gmap_id.
LABEL_FIELD: label              # (str) 1 if rating >= the converter's label_threshold, else 0 (precomputed).
TIME_FIELD: timestamp           # (str) ms since epoch; in the .inter files but not loaded (the split is fixed).
threshold: ~                    # (dict) Labels are already in the files: RecBole must not derive them.
load_col:                       # (dict) Columns RecBole loads; rating and timestamp stay out (rating is the label's source).
  inter: [user_id, item_id, label]
  item: [{", ".join(item_cols)}]
  user: [{", ".join(user_cols)}]
numerical_features: [{", ".join(numeric)}]   # (list) Float fields the context models embed.
normalize_field: [{", ".join(numeric)}]   # (list) Min-max scaled by RecBole; text vectors are side files, untouched.
benchmark_filename: [train, valid, test]   # (list) Pre-split {name}.train/valid/test.inter files.
eval_args:                      # (dict) No split key on purpose: the benchmark files are the split.
  group_by: ~
  order: TO
  mode: labeled
train_neg_sample_args: ~        # (dict) Negatives are real low ratings, not sampled.
metrics: [AUC, PRAUC, LogLoss, Accuracy, FPR, Precision, Recall, F1]  # (list) Value metrics (precision/recall are the classification ones; PRAUC = average precision).
valid_metric: AUC               # (str) Early stopping and model selection use validation AUC.
eval_batch_size: 4096           # (int) Rows per evaluation batch.
item_text_vec: {ITEM_VEC_SUFFIX}           # (str) Side file {name}.{ITEM_VEC_SUFFIX}.npz: item text vectors (name, categories, price, description, MISC).
user_text_vec: {USER_VEC_SUFFIX}           # (str) Side file {name}.{USER_VEC_SUFFIX}.npz: user text vectors (own TRAIN reviews only).
{image_line}"""


def _split_stats(rows: list[Review], threshold: float, train_users: set, train_items: set) -> dict:
    users = {r.user for r in rows}
    items = {r.item for r in rows}
    positives = sum(1 for r in rows if r.rating >= threshold)
    with_text = sum(1 for r in rows if r.text and r.text.strip())
    return {
        "interactions": len(rows),
        "users": len(users),
        "items": len(items),
        "positives": positives,
        "negatives": len(rows) - positives,
        "positive_share": positives / len(rows),
        "rows_with_text": with_text,
        "text_share": with_text / len(rows),
        "users_not_in_train": len(users - train_users),
        "items_not_in_train": len(items - train_items),
        "time_min": min(r.time for r in rows),
        "time_max": max(r.time for r in rows),
    }


def _report_markdown(report: dict) -> str:
    out = [f"# Conversion report: {report['name']}", ""]
    out.append(f"Reviews: `{report['reviews']['path']}`  ")
    out.append(f"Meta: `{report['meta']['path']}`  ")
    params = report["params"]
    out.append(
        "Split: {split} {ratios}, seed {seed}; label = rating >= {label_threshold}; "
        "category filter: {category_filter!r}; leaky meta: {include_leaky_meta}; "
        "image encoder: {image_encoder}".format(**params)
    )
    out.append("")
    for part in ("meta", "reviews"):
        tally = report[part]
        out.append(f"## {part}: {tally['lines_read']} lines read, {tally['kept']} kept, "
                   f"{tally['dropped_total']} dropped")
        out.append("")
        if tally["dropped"]:
            out.append("| dropped because | lines |")
            out.append("| --- | ---: |")
            for reason, count in tally["dropped"].items():
                out.append(f"| {reason} | {count} |")
            out.append("")
        if tally["malformed_lines"]:
            out.append("Malformed lines: " + ", ".join(str(n) for n in tally["malformed_lines"][:50])
                       + (" ..." if len(tally["malformed_lines"]) > 50 else ""))
            out.append("")
        if tally["field_anomalies"]:
            out.append("Field anomalies (line kept, field treated as missing): " + ", ".join(
                f"{k} {v}" for k, v in tally["field_anomalies"].items()))
            out.append("")
    out.append("## splits")
    out.append("")
    out.append("| split | interactions | users | items | positives | negatives | positive share "
               "| rows with text | users not in train | items not in train |")
    out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for split in SPLITS:
        s = report["splits"][split]
        out.append(
            f"| {split} | {s['interactions']} | {s['users']} | {s['items']} | {s['positives']} | "
            f"{s['negatives']} | {s['positive_share']:.3f} | {s['text_share']:.3f} | "
            f"{s['users_not_in_train']} | {s['items_not_in_train']} |"
        )
    t = report["totals"]
    out.append("")
    out.append(f"Totals: {t['interactions']} interactions, {t['users']} users, {t['items']} items; "
               f"positive:negative = {t['positive_to_negative']:.2f}:1; share of rows with text "
               f"{t['text_share']:.3f}; businesses kept in meta but never reviewed: "
               f"{report['businesses_without_kept_reviews']}.")
    v = report["vectors"]
    out.append(f"Text vectors: {v['items']} items, {v['users']} users (of {t['users']}), dim {v['dim']}; "
               f"encoder {v['encoder']}: {v['cached']} from cache, {v['encoded']} encoded.")
    out.append("")
    left_out = report.get("numeric_fields_left_out") or {}
    if left_out:
        out.append("Numeric fields left out (one value or none: min-max scaling would make them NaN): "
                   + ", ".join(f"{k} ({v})" for k, v in left_out.items()) + ".")
        out.append("")
    out.append("Leakage guards: " + "; ".join(report["leakage_guards"]) + ".")
    out.append("")
    out.append(f"Time taken: {report['seconds']:.1f} s.")
    return "\n".join(out) + "\n"


def _encode(encoder: Any, texts: list[str]) -> tuple[np.ndarray, dict]:
    vectors = np.asarray(encoder.encode(texts), dtype=np.float32)
    if texts and (vectors.ndim != 2 or vectors.shape[0] != len(texts) or vectors.shape[1] == 0):
        raise ConversionError(f"text encoder returned shape {vectors.shape} for {len(texts)} texts")
    if vectors.size and not np.isfinite(vectors).all():
        raise ConversionError("text encoder returned NaN/inf vectors")
    stats = dict(getattr(encoder, "last_stats", {}) or {})
    return vectors, stats


def _validate_name(name: str) -> None:
    if not name or name.startswith(".") or os.sep in name or (os.altsep and os.altsep in name) or _WHITESPACE.search(name):
        raise ValueError(f"dataset name must be a plain folder name without spaces, got {name!r}")


def convert(
    reviews_path: str,
    meta_path: str,
    name: str,
    out_dir: str = "dataset",
    *,
    split: str = "time",
    ratios: Sequence[float] = DEFAULT_RATIOS,
    seed: int = 2026,
    label_threshold: float = DEFAULT_LABEL_THRESHOLD,
    category_filter: str | None = DEFAULT_CATEGORY_FILTER,
    strict: bool = False,
    include_leaky_meta: bool = False,
    user_text_max_chars: int = text_build.DEFAULT_USER_TEXT_MAX_CHARS,
    encoder: Any = None,
    encoder_model: str | None = None,
    encoder_cache: str | None = None,
    encoder_batch_size: int = 64,
    image_encoder: str = "none",
    show_progress: bool = True,
    provenance: dict | None = None,
) -> dict:
    """Convert Google Local files into ``<out_dir>/<name>/`` and return the report dict.

    ``encoder`` may be any object with ``encode(list[str]) -> float32 [n, dim]``; by default a
    :class:`~recbole_dlrrec.data.encoder.TextEncoder` over ``encoder_model`` (bundled
    all-MiniLM-L6-v2 if None) with its cache at ``encoder_cache`` (default
    ``<out_dir>/.encoder_cache/vectors.sqlite``). ``provenance`` (e.g. the generator and seed
    of generated input) is stored as ``source`` in the report.
    """
    started = time.perf_counter()
    _validate_name(name)
    if image_encoder not in IMAGE_ENCODERS:
        raise ValueError(f"unknown image encoder {image_encoder!r}; known: {sorted(IMAGE_ENCODERS)}")
    if split not in ("time", "random"):
        raise ValueError(f"split must be 'time' or 'random', got {split!r}")
    if len(ratios) != 3 or any(r <= 0 for r in ratios) or abs(sum(ratios) - 1) > 1e-6:
        raise ValueError(f"ratios must be three positive numbers summing to 1, got {list(ratios)}")
    if user_text_max_chars <= 0:
        raise ValueError(f"user_text_max_chars must be positive, got {user_text_max_chars}")
    image_fn = IMAGE_ENCODERS[image_encoder]

    businesses, filtered, meta_tally = read_meta(meta_path, category_filter, strict, show_progress)
    meta_tally.check_invariant()
    if not businesses:
        raise ConversionError(
            f"{meta_path}: no business left after filtering: {meta_tally.dropped.get('category_filter', 0)} "
            f"dropped by category_filter={category_filter!r}, other drops {dict(meta_tally.dropped)}"
        )
    reviews, review_tally = read_reviews(
        reviews_path, businesses, filtered, strict, show_progress, keep_pic_urls=image_fn is not None
    )
    review_tally.check_invariant()
    if not reviews:
        raise ConversionError(
            f"{reviews_path}: no review left after filtering ({review_tally.lines_read} lines read; "
            f"dropped: {dict(sorted(review_tally.dropped.items()))})"
        )
    parts = split_reviews(reviews, split, ratios, seed)
    train = parts["train"]

    # ---- features from TRAIN only --------------------------------------------------------
    items = sorted({r.item for rows in parts.values() for r in rows})
    users = sorted({r.user for rows in parts.values() for r in rows})
    pic_count: Counter = Counter()
    n_train: Counter = Counter()
    train_texts: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    train_pics: dict[str, list] = defaultdict(list)
    for r in train:
        pic_count[r.item] += r.n_pics
        n_train[r.user] += 1
        if r.text and r.text.strip():
            train_texts[r.user].append((r.time, r.item, r.text))
        if r.pic_urls:
            train_pics[r.item].extend(r.pic_urls)

    image_captions: dict[str, str] = {}
    image_vectors: list[np.ndarray] = []
    if image_fn is not None:
        for item in items:
            out = image_fn(dict(businesses[item].raw), list(train_pics.get(item, [])))
            if isinstance(out, str):
                image_captions[item] = out
            elif out is not None:
                image_vectors.append(np.asarray(out, dtype=np.float32).reshape(-1))
            else:
                raise ConversionError(f"image encoder {image_encoder!r} returned None for item {item}")
        if image_captions and image_vectors:
            raise ConversionError(f"image encoder {image_encoder!r} mixed captions and vectors")

    item_texts = [
        text_build.item_text(
            b.name,
            b.categories,
            None if b.price == "unknown" else b.price,
            b.description,
            b.misc,
            extra=image_captions.get(b.gmap_id),
        )
        for b in (businesses[i] for i in items)
    ]
    vec_users: list[str] = []
    user_texts: list[str] = []
    for user in users:
        history = sorted(train_texts.get(user, []), key=lambda t: (-t[0], t[1]))
        text = text_build.user_text([h[2] for h in history], user_text_max_chars)
        if text:
            vec_users.append(user)
            user_texts.append(text)

    own_encoder = None
    if encoder is None:
        from recbole_dlrrec.data.encoder import TextEncoder

        own_encoder = encoder = TextEncoder(
            model_path=encoder_model,
            batch_size=encoder_batch_size,
            cache_path=encoder_cache or os.path.join(out_dir, ".encoder_cache", "vectors.sqlite"),
            show_progress=show_progress,
        )
    try:
        item_vecs, item_stats = _encode(encoder, item_texts)
        user_vecs, user_stats = _encode(encoder, user_texts)
    finally:
        if own_encoder is not None:
            own_encoder.close()
    if user_vecs.size and user_vecs.shape[1] != item_vecs.shape[1]:
        raise ConversionError("text encoder returned different widths for item and user texts")

    # ---- write into a temp folder, then move into place ------------------------------------
    os.makedirs(out_dir, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=out_dir)
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp_dir, 0o777 & ~mask)  # mkdtemp makes it private; the dataset is not
    try:
        def path(suffix: str) -> str:
            return os.path.join(tmp_dir, f"{name}.{suffix}")

        stats: dict[str, dict] = {}
        train_users = {r.user for r in train}
        train_items = {r.item for r in train}
        for split_name, rows in parts.items():
            lines = [
                (
                    r.user,
                    r.item,
                    _fmt_float(r.rating),
                    "1" if r.rating >= label_threshold else "0",
                    str(r.time),
                )
                for r in rows
            ]
            atomic.write_text(path(f"{split_name}.inter"), _tsv(INTER_HEADER, lines))
            stats[split_name] = _split_stats(rows, label_threshold, train_users, train_items)

        item_header = ITEM_HEADER + (LEAKY_ITEM_HEADER if include_leaky_meta else ())
        item_rows = []
        for item in items:
            b = businesses[item]
            row = [
                item,
                b.price,
                " ".join(t for t in (category_token(c) for c in b.categories) if t),
                _fmt_float(b.latitude),
                _fmt_float(b.longitude),
                str(pic_count[item]),
            ]
            if include_leaky_meta:
                row += [_fmt_float(b.avg_rating), _fmt_float(b.num_of_reviews)]
            item_rows.append(row)
        user_rows = [(u, str(n_train[u])) for u in users]
        # A numeric column with one value (or none) carries nothing, and RecBole's min-max
        # scaling turns it into 0/0 = NaN in every row: such columns are left out, and reported.
        item_header, item_rows, item_left_out = _drop_constant_numeric(item_header, item_rows)
        user_header, user_rows, user_left_out = _drop_constant_numeric(USER_HEADER, user_rows)
        numeric_left_out = {**item_left_out, **user_left_out}
        atomic.write_text(path("item"), _tsv(item_header, item_rows))
        atomic.write_text(path("user"), _tsv(user_header, user_rows))

        dim = int(item_vecs.shape[1])
        save_npz(path(f"{ITEM_VEC_SUFFIX}.npz"), ids=np.array(items, dtype=str), vectors=item_vecs)
        save_npz(
            path(f"{USER_VEC_SUFFIX}.npz"),
            ids=np.array(vec_users, dtype=str).reshape(-1),
            vectors=user_vecs.reshape(len(vec_users), dim),
        )
        if image_vectors:
            save_npz(
                path(f"{ITEM_IMAGE_VEC_SUFFIX}.npz"),
                ids=np.array(items, dtype=str),
                vectors=np.stack(image_vectors),
            )
        atomic.write_text(
            path("yaml"), _yaml_text(name, item_header, user_header, include_leaky_meta, bool(image_vectors))
        )

        n_all = sum(s["interactions"] for s in stats.values())
        n_pos = sum(s["positives"] for s in stats.values())
        report = {
            "name": name,
            "source": provenance,
            "params": {
                "split": split,
                "ratios": list(ratios),
                "seed": seed,
                "label_threshold": label_threshold,
                "category_filter": category_filter,
                "strict": strict,
                "include_leaky_meta": include_leaky_meta,
                "user_text_max_chars": user_text_max_chars,
                "image_encoder": image_encoder,
            },
            "meta": meta_tally.as_dict(),
            "reviews": review_tally.as_dict(),
            "businesses_without_kept_reviews": len(businesses) - len(items),
            "numeric_fields_left_out": numeric_left_out,
            "splits": stats,
            "totals": {
                "interactions": n_all,
                "users": len(users),
                "items": len(items),
                "positives": n_pos,
                "negatives": n_all - n_pos,
                "positive_to_negative": n_pos / max(1, n_all - n_pos),
                "text_share": sum(s["rows_with_text"] for s in stats.values()) / n_all,
            },
            "vectors": {
                "items": len(items),
                "users": len(vec_users),
                "dim": dim,
                "encoder": getattr(encoder, "model_id", type(encoder).__name__),
                "cached": item_stats.get("cached", 0) + user_stats.get("cached", 0),
                "encoded": item_stats.get("encoded", len(item_texts)) + user_stats.get("encoded", len(user_texts)),
            },
            "leakage_guards": [
                "valid/test review text feeds no feature",
                "user text vectors and n_train_reviews from train rows only",
                "pic_count from train reviews only",
                "avg_rating/num_of_reviews "
                + ("INCLUDED (LEAKY, all-time)" if include_leaky_meta else "excluded"),
            ],
        }
        report["seconds"] = time.perf_counter() - started
        atomic.write_json(os.path.join(tmp_dir, "REPORT.json"), report, indent=2, ensure_ascii=False)
        atomic.write_text(os.path.join(tmp_dir, "REPORT.md"), _report_markdown(report))
        _move_into_place(tmp_dir, os.path.join(out_dir, name))
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return report


def _move_into_place(tmp_dir: str, final_dir: str) -> None:
    """Replace ``final_dir`` with ``tmp_dir``; an existing one is renamed aside first, then removed."""
    old = None
    if os.path.exists(final_dir):
        parent, base = os.path.split(final_dir)
        old = tempfile.mkdtemp(prefix=f".{base}.old-", dir=parent or ".")
        os.rmdir(old)
        os.replace(final_dir, old)
    try:
        os.replace(tmp_dir, final_dir)
    except BaseException:
        if old is not None:
            os.replace(old, final_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def check_loads_in_recbole(data_path: str, name: str, model: str = "FM") -> dict:
    """Load ``<data_path>/<name>`` with RecBole (Config, create_dataset, data_preparation).

    Uses the metrics from NAME.yaml when recbole_dlrrec's metrics are registered, else
    RecBole's own AUC and LogLoss. Returns the row counts of the three loaders' datasets.
    """
    import recbole_dlrrec  # noqa: F401  (applies the RecBole compat fixes, registers metrics)

    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation

    yaml_file = os.path.join(data_path, name, f"{name}.yaml")
    overrides: dict[str, Any] = {
        "data_path": data_path,
        "use_gpu": False,
        "show_progress": False,
        "save_dataset": False,
        "save_dataloaders": False,
        "state": "WARNING",
    }
    from recbole.evaluator.register import metric_types

    wanted = ("auc", "prauc", "logloss", "accuracy", "fpr", "precision", "recall", "f1")
    if any(metric_types.get(m) != metric_types["auc"] for m in wanted):
        overrides["metrics"] = ["AUC", "LogLoss"]  # plugin metrics not registered: RecBole's own
    config = Config(model=model, dataset=name, config_file_list=[yaml_file], config_dict=overrides)
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    return {
        "train": len(train.dataset),
        "valid": len(valid.dataset),
        "test": len(test.dataset),
        "users": dataset.user_num,
        "items": dataset.item_num,
    }


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m recbole_dlrrec.data.google_local",
        description="Convert Google Local reviews + meta (JSON lines, plain or .gz) into a RecBole dataset.",
    )
    p.add_argument("--reviews", required=True, help="reviews JSON-lines file (.json or .json.gz)")
    p.add_argument("--meta", required=True, help="business metadata JSON-lines file (.json or .json.gz)")
    p.add_argument("--name", required=True, help="dataset name: output goes to OUT/NAME/NAME.*")
    p.add_argument("--out", default="dataset", help="output root folder (default: dataset)")
    p.add_argument("--split", choices=("time", "random"), default="time", help="time (default) or random")
    p.add_argument("--ratios", type=float, nargs=3, default=list(DEFAULT_RATIOS), metavar=("TRAIN", "VALID", "TEST"))
    p.add_argument("--seed", type=int, default=2026, help="seed of the random split")
    p.add_argument("--label_threshold", type=float, default=DEFAULT_LABEL_THRESHOLD, help="label = rating >= this")
    p.add_argument("--category_filter", default=DEFAULT_CATEGORY_FILTER,
                   help="keep businesses with a category containing this text (case-insensitive); '' keeps all")
    p.add_argument("--strict", action="store_true", help="malformed or incomplete lines are fatal (file:line)")
    p.add_argument("--include_leaky_meta", action="store_true",
                   help="also write avg_rating/num_of_reviews (LEAKY: all-time values)")
    p.add_argument("--user_text_max_chars", type=int, default=text_build.DEFAULT_USER_TEXT_MAX_CHARS)
    p.add_argument("--encoder_model", default=None, help="sentence-transformers model folder (default: bundled MiniLM)")
    p.add_argument("--encoder_cache", default=None, help="sqlite vector cache (default: OUT/.encoder_cache/vectors.sqlite)")
    p.add_argument("--encoder_batch_size", type=int, default=64)
    p.add_argument("--image_encoder", default="none", choices=sorted(IMAGE_ENCODERS),
                   help="image encoder slot (default none: pictures only give pic_count)")
    p.add_argument("--verify", action="store_true", help="load the result with RecBole (model FM) afterwards")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from recbole_dlrrec.data.encoder import EncoderError

    try:
        report = convert(
            args.reviews,
            args.meta,
            args.name,
            args.out,
            split=args.split,
            ratios=args.ratios,
            seed=args.seed,
            label_threshold=args.label_threshold,
            category_filter=args.category_filter or None,
            strict=args.strict,
            include_leaky_meta=args.include_leaky_meta,
            user_text_max_chars=args.user_text_max_chars,
            encoder_model=args.encoder_model,
            encoder_cache=args.encoder_cache,
            encoder_batch_size=args.encoder_batch_size,
            image_encoder=args.image_encoder,
            show_progress=not args.quiet,
        )
    except (ConversionError, EncoderError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(_report_markdown(report))
    if args.verify:
        counts = check_loads_in_recbole(args.out, args.name)
        print(f"RecBole loads it: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
