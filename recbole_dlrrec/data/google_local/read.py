"""Reading Google Local: one JSON object -> a neutral Business / Review record, or a counted Skip.

The parsers are pure (a record or a :class:`Skip`, never an exception, whatever the object);
reading the files, duplicates, the category filter and the two passes over the reviews are
``recbole_dlrrec.data.convert.reading``'s, bound here to :data:`SOURCE`.
"""

from __future__ import annotations

import functools
import sys
from collections import Counter
from typing import Any, Union

from recbole_dlrrec.data.convert import reading
from recbole_dlrrec.data.convert.records import Business, Review, Skip
from recbole_dlrrec.data.convert.source import Source, business_id_and_name, review_ids, review_rating, review_text
from recbole_dlrrec.data.convert.values import (
    TIME_MS_MAX,
    TIME_MS_MIN,
    category_tokens,
    number,
    number_field,
    typed_field,
)

#: Price strings are normalised to 1-4 '$' signs; these currency signs count as '$'.
_CURRENCY_SIGNS = set("$€£¥₩₹₽")
REVIEW_FIELDS = ("user_id", "gmap_id", "time", "rating")


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


def looks_like_review(obj: dict) -> bool:
    return "user_id" in obj and "rating" in obj and "category" not in obj


def looks_like_meta(obj: dict) -> bool:
    return "gmap_id" in obj and "name" in obj and "category" in obj and "user_id" not in obj and "rating" not in obj


def parse_meta(obj: dict, anomalies: Counter) -> Union[Business, Skip]:
    """One meta object -> a Business (categories not yet filtered), or a Skip."""
    id_and_name = business_id_and_name(obj, "gmap_id")
    if isinstance(id_and_name, Skip):
        return id_and_name
    gmap_token, name = id_and_name
    cats = obj.get("category")
    if isinstance(cats, str):
        anomalies["category_not_a_list"] += 1
        cats = [cats]
    elif cats is not None and not isinstance(cats, list):
        anomalies["category_not_a_list"] += 1
        cats = None
    cats = [c for c in (cats or []) if isinstance(c, str) and c.strip()]
    price, bad_price = normalise_price(obj.get("price"))
    if bad_price:
        anomalies["price_unrecognised"] += 1
    return Business(
        item_id=gmap_token,
        name=name,
        categories=cats,
        price=price,
        description=typed_field(obj, "description", str, "description_not_a_string", anomalies),
        misc=typed_field(obj, "MISC", dict, "MISC_not_an_object", anomalies) or {},
        latitude=number_field(obj, "latitude", anomalies),
        longitude=number_field(obj, "longitude", anomalies),
        avg_rating=number_field(obj, "avg_rating", anomalies),
        num_of_reviews=number_field(obj, "num_of_reviews", anomalies),
        raw=obj,
        category_tokens=category_tokens(cats, anomalies),
    )


def parse_review(
    obj: dict, lineno: int, anomalies: Counter, converted: Counter, keep_pic_urls: bool = False
) -> Union[Review, Skip]:
    """One review object -> a Review (time in ms), or a Skip. Business membership and
    duplicates are the caller's (they need the other lines)."""
    ids = review_ids(obj, REVIEW_FIELDS, "user_id", "gmap_id", "rating")
    if isinstance(ids, Skip):
        return ids
    user, item = ids
    stamp, in_seconds = normalise_time(obj["time"])
    if stamp is None:
        return Skip("invalid_value:time", f"invalid time {obj['time']!r} (expected ms since epoch, 1990-2100)")
    rating = review_rating(obj, "rating")
    if isinstance(rating, Skip):
        return rating
    if in_seconds:
        converted["time_seconds_to_ms"] += 1
    text = review_text(obj, anomalies)
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


#: Google Local 2021: reviews ``user_id, time (ms), rating, text, pics, gmap_id``; meta ``gmap_id,
#: name, category (list), price, description, MISC, latitude, longitude, ...``.
SOURCE = Source(
    name="google",
    title="Google",
    module="recbole_dlrrec.data.google_local",
    user_field="user_id",
    item_field="gmap_id",
    item_text_parts="name, categories, price, description, MISC",
    review_fields=REVIEW_FIELDS,
    default_category_filter="restaurant",
    parsers=sys.modules[__name__],
)
read_meta = functools.partial(reading.read_meta, SOURCE)
read_reviews = functools.partial(reading.read_reviews, SOURCE)
fetch_texts = functools.partial(reading.fetch_texts, SOURCE)
