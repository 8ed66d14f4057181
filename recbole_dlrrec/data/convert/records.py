"""The neutral records every converter maps its input into, and the tally of one input file.

A source (Google Local, Yelp, ...) turns its lines into :class:`Business` and :class:`Review`
records or a :class:`Skip`; every step after reading (split, k-core, user history, features,
encoding, writing) sees these records only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from recbole_dlrrec.data.text_build import clean
from recbole_dlrrec.errors import InputError

#: How many malformed line numbers are listed in the report per file (the count is always full).
MAX_LISTED_LINES = 1000


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
    """One reviewed business (an item), as every source maps it.

    ``item_id`` is the RecBole token; ``price`` is ``$``..``$$$$`` or ``unknown``; ``categories``
    the readable category names (item text, category filter) and ``category_tokens`` the same as
    RecBole tokens; ``misc`` a mapping of further facts for the item text (key -> value or list);
    ``avg_rating`` / ``num_of_reviews`` the source's all-time figures (LEAKY, written on request
    only); ``raw`` the source's object as read (handed to an image encoder).
    """

    item_id: str
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
    that feed a user's text (``reading.fetch_texts``)."""

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
