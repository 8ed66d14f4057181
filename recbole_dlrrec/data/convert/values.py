"""Field values, any source: ids RecBole reads back, numbers, times, category tokens.

Pure functions: a value or None (the caller counts the line or the anomaly), never an exception.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from typing import Any

_WHITESPACE = re.compile(r"\s")
#: Review times: ms since epoch between 1990-01-01 and 2100-01-01.
TIME_MS_MIN, TIME_MS_MAX = 631_152_000_000, 4_102_444_800_000
#: Strings pandas' reader turns into NaN (RecBole reads atomic files with pandas defaults): an id
#: spelled like this would come back as a missing value.
try:
    from pandas._libs.parsers import STR_NA_VALUES as _PANDAS_NA
except ImportError:  # pragma: no cover - other pandas layouts
    _PANDAS_NA = {
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    }
NA_SPELLINGS = frozenset(_PANDAS_NA)


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


def category_token(category: str) -> str:
    """One RecBole token for a category string: whitespace runs replaced by '_'."""
    return re.sub(r"\s+", "_", category.strip())


def number_field(obj: dict, key: str, anomalies: Counter) -> float | None:
    """obj[key] as a number; None when absent, or when not a number (counted as an anomaly)."""
    raw = obj.get(key)
    num = number(raw)
    if raw is not None and num is None:
        anomalies[f"{key}_not_a_number"] += 1
    return num


def typed_field(obj: dict, key: str, kind: type, anomaly: str, anomalies: Counter) -> Any:
    """obj[key] if it is a `kind`; None when absent, or when of another type (counted as `anomaly`)."""
    value = obj.get(key)
    if value is not None and not isinstance(value, kind):
        anomalies[anomaly] += 1
        return None
    return value


def category_tokens(categories: list, anomalies: Counter) -> list:
    """The RecBole tokens of readable ``categories`` (non-empty strings); a token RecBole could not
    read back (a '"', a control character, 'NA' alone) is left out and counted as
    ``category_token_unreadable``."""
    tokens = [t for t in (category_token(c) for c in categories) if t]
    readable = [t for t in tokens if readable_token(t)]
    if len(readable) < len(tokens):
        anomalies["category_token_unreadable"] += len(tokens) - len(readable)
    return readable
