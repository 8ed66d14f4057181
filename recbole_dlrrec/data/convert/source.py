"""What a converter of one review source provides: how its lines become neutral records.

A source is a :class:`Source` (one per source, e.g. ``recbole_dlrrec.data.google_local.SOURCE``):
the module of its parsers, which turn one JSON object into a
:class:`~recbole_dlrrec.data.convert.records.Business` / ``Review`` or a counted ``Skip`` and never
raise, and the labels that name its fields in messages, NAME.yaml and the report. The helpers
below are the checks every review parser makes in the same order (missing field, null rating,
ids, rating) with the same reasons. Everything else (reading
files, duplicates, the split, k-core, user history, features, encoding, writing) is
``recbole_dlrrec.data.convert``'s and the same for every source.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Union

from recbole_dlrrec.data.convert.records import Business, Review, Skip
from recbole_dlrrec.data.convert.values import as_token, number


@dataclass(frozen=True)
class Source:
    """One review source.

    Args:
        name: its ``--source`` name.
        title: who publishes the data, as texts name it ("Google", "Yelp").
        module: where its converter lives (named in NAME.yaml's first line).
        user_field / item_field: the source's own field names of the user and item ids.
        item_text_parts: what the item text is built from (NAME.yaml comment).
        review_fields: the review fields without which a review line is dropped.
        default_category_filter: the default ``category_filter``.
        parsers: the module with ``parse_meta(obj, anomalies)``, ``parse_review(obj, lineno,
            anomalies, converted, keep_pic_urls)``, ``looks_like_review(obj)`` and
            ``looks_like_meta(obj)`` (the last two tell swapped files apart); looked up at each
            call, so a test may wrap one.
    """

    name: str
    title: str
    module: str
    user_field: str
    item_field: str
    item_text_parts: str
    review_fields: tuple[str, ...]
    default_category_filter: str | None
    parsers: ModuleType

    @property
    def user_token(self) -> str:
        """What the user token is ("Google user_id")."""
        return f"{self.title} {self.user_field}"

    @property
    def item_token(self) -> str:
        """What the item token is ("Google gmap_id")."""
        return f"{self.title} {self.item_field}"

    @property
    def leaky_owner(self) -> str:
        """Who computed the all-time figures ``avg_rating`` / ``num_of_reviews`` ("Google's")."""
        return f"{self.title}'s"

    def parse_meta(self, obj: dict, anomalies: Counter) -> Union[Business, Skip]:
        """One business object -> a Business (categories not yet filtered), or a Skip."""
        return self.parsers.parse_meta(obj, anomalies)

    def parse_review(
        self, obj: dict, lineno: int, anomalies: Counter, converted: Counter, keep_pic_urls: bool = False
    ) -> Union[Review, Skip]:
        """One review object -> a Review (time in ms since epoch), or a Skip. Business membership
        and duplicates are the caller's (they need the other lines)."""
        return self.parsers.parse_review(obj, lineno, anomalies, converted, keep_pic_urls)

    def looks_like_review(self, obj: dict) -> bool:
        return self.parsers.looks_like_review(obj)

    def looks_like_meta(self, obj: dict) -> bool:
        return self.parsers.looks_like_meta(obj)


def business_id_and_name(obj: dict, id_field: str) -> Union[tuple[str, str], Skip]:
    """(item token, name) of a business object, or the Skip of a missing id, a missing or empty
    name, or an id RecBole would not read back, checked in that order."""
    business_id = obj.get(id_field)
    if business_id is None:
        return Skip(f"missing_field:{id_field}", f"missing field '{id_field}'")
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        return Skip("missing_field:name", "missing or empty field 'name'")
    token = as_token(business_id)
    if token is None:
        return Skip(f"invalid_value:{id_field}", f"invalid {id_field} {business_id!r}")
    return token, name


def review_ids(
    obj: dict, fields: tuple[str, ...], user_field: str, item_field: str, rating_field: str
) -> Union[tuple[str, str], Skip]:
    """(user, item) tokens of a review object, or the Skip of the first of ``fields`` that is
    absent (or null; a null rating is ``null_rating``, never fatal), or of an id RecBole would
    not read back (``invalid_value:<field>``)."""
    missing = [k for k in fields if k not in obj or (k != rating_field and obj[k] is None)]
    if missing:
        return Skip(f"missing_field:{missing[0]}", f"missing field '{missing[0]}'")
    if obj[rating_field] is None:
        return Skip("null_rating", f"null {rating_field}", strict_fatal=False)
    user = as_token(obj[user_field])
    if user is None:
        return Skip(f"invalid_value:{user_field}", f"invalid {user_field} {obj[user_field]!r}")
    item = as_token(obj[item_field])
    if item is None:
        return Skip(f"invalid_value:{item_field}", f"invalid {item_field} {obj[item_field]!r}")
    return user, item


def review_rating(obj: dict, rating_field: str) -> Union[float, Skip]:
    """The rating, a number in 1-5, or the Skip ``invalid_value:<rating_field>``."""
    rating = number(obj[rating_field])
    if rating is None or not 1 <= rating <= 5:
        return Skip(f"invalid_value:{rating_field}", f"invalid {rating_field} {obj[rating_field]!r} (expected 1-5)")
    return rating


def review_text(obj: dict, anomalies: Counter) -> Any:
    """The review's ``text`` if it is a string; None when absent or of another type (counted as
    ``text_not_a_string``)."""
    text = obj.get("text")
    if text is not None and not isinstance(text, str):
        anomalies["text_not_a_string"] += 1
        return None
    return text
