"""Reading the Yelp Open Dataset: one JSON object -> a neutral Business / Review record, or a Skip.

The parsers are pure (a record or a :class:`Skip`, never an exception, whatever the object);
reading the files, duplicates, the category filter and the two passes over the reviews are
``recbole_dlrrec.data.convert.reading``'s, given :data:`SOURCE`.
"""

from __future__ import annotations

import ast
import calendar
import re
import sys
from collections import Counter
from datetime import datetime
from typing import Any, Union

from recbole_dlrrec.data.convert.records import Business, Review, Skip
from recbole_dlrrec.data.convert.source import Source, business_id_and_name, review_ids, review_rating, review_text
from recbole_dlrrec.data.convert.values import TIME_MS_MAX, TIME_MS_MIN, category_tokens, number_field, typed_field
from recbole_dlrrec.data.text_build import clean

REVIEW_FIELDS = ("user_id", "business_id", "date", "stars")
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
#: The attribute that holds the price level, "1".."4" (written as "$".."$$$$").
PRICE_ATTRIBUTE = "RestaurantsPriceRange2"
#: Attribute values are Python literals in a string ("True", "u'free'", "{'casual': True}"); a
#: longer one is not a literal Yelp writes and is left as text rather than parsed.
_MAX_LITERAL_CHARS = 1000
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def parse_date(value: Any) -> int | None:
    """ms since epoch of a Yelp date "YYYY-MM-DD HH:MM:SS" (read as UTC), within 1990-2100; else None."""
    if not isinstance(value, str):
        return None
    try:
        stamp = calendar.timegm(datetime.strptime(value.strip(), DATE_FORMAT).timetuple()) * 1000
    except ValueError:
        return None
    return stamp if TIME_MS_MIN <= stamp < TIME_MS_MAX else None


def parse_price(attributes: dict) -> tuple[str, bool]:
    """(price token, is_anomaly): "$".."$$$$" from the price level 1-4, or "unknown"."""
    value = attributes.get(PRICE_ATTRIBUTE)
    if value is None or value == "None":
        return "unknown", False
    level = value.strip() if isinstance(value, str) else value
    if level in ("1", "2", "3", "4", 1, 2, 3, 4) and not isinstance(level, bool):
        return "$" * int(level), False
    return "unknown", True


def _literal(value: Any) -> Any:
    """An attribute value as Python reads it ("True" -> True, "u'free'" -> "free"); the string as
    it is when it is no literal."""
    if not isinstance(value, str) or len(value) > _MAX_LITERAL_CHARS:
        return value
    try:
        return ast.literal_eval(value.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return value


def _words(key: str) -> str:
    """ "BusinessAcceptsCreditCards" -> "Business Accepts Credit Cards"."""
    return _CAMEL.sub(" ", str(key)).replace("_", " ")


def attribute_facts(attributes: dict) -> dict:
    """The item text's facts from Yelp attributes, in file order: the true flags under "Offers",
    then one entry per other attribute with a value ("WiFi": "free", "Ambience": ["casual"]).
    False and None say nothing; the price level is the price token, not a fact."""
    offers: list[str] = []
    facts: dict[str, Any] = {}
    for key, raw in attributes.items():
        if key == PRICE_ATTRIBUTE:
            continue
        value = _literal(raw)
        if value is True:
            offers.append(_words(key))
        elif value is False or value is None:
            continue
        elif isinstance(value, dict):
            chosen = [_words(k) for k, v in value.items() if v is True]
            if chosen:
                facts[_words(key)] = chosen
        elif isinstance(value, (str, int, float)) and clean(str(value)) not in ("", "None"):
            facts[_words(key)] = _words(clean(str(value)))
    return {"Offers": offers, **facts} if offers else facts


def parse_meta(obj: dict, anomalies: Counter) -> Union[Business, Skip]:
    """One business.json object -> a Business (categories not yet filtered), or a Skip."""
    id_and_name = business_id_and_name(obj, "business_id")
    if isinstance(id_and_name, Skip):
        return id_and_name
    token, name = id_and_name
    raw_categories = typed_field(obj, "categories", str, "categories_not_a_string", anomalies)
    cats = [c.strip() for c in (raw_categories or "").split(",") if c.strip()]
    attributes = typed_field(obj, "attributes", dict, "attributes_not_an_object", anomalies) or {}
    price, bad_price = parse_price(attributes)
    if bad_price:
        anomalies["price_unrecognised"] += 1
    city = typed_field(obj, "city", str, "city_not_a_string", anomalies)
    state = typed_field(obj, "state", str, "state_not_a_string", anomalies)
    place = ", ".join(clean(p) for p in (city, state) if p and clean(p))
    misc = {**({"Location": place} if place else {}), **attribute_facts(attributes)}
    return Business(
        item_id=token,
        name=name,
        categories=cats,
        price=price,
        description=None,
        misc=misc,
        latitude=number_field(obj, "latitude", anomalies),
        longitude=number_field(obj, "longitude", anomalies),
        avg_rating=number_field(obj, "stars", anomalies),
        num_of_reviews=number_field(obj, "review_count", anomalies),
        raw=obj,
        category_tokens=category_tokens(cats, anomalies),
    )


def parse_review(
    obj: dict, lineno: int, anomalies: Counter, converted: Counter, keep_pic_urls: bool = False
) -> Union[Review, Skip]:
    """One review.json object -> a Review (time in ms, the date read as UTC), or a Skip.
    Yelp reviews carry no pictures (``n_pics`` 0); ``converted`` stays empty."""
    ids = review_ids(obj, REVIEW_FIELDS, "user_id", "business_id", "stars")
    if isinstance(ids, Skip):
        return ids
    user, item = ids
    stamp = parse_date(obj["date"])
    if stamp is None:
        return Skip("invalid_value:date", f"invalid date {obj['date']!r} (expected 'YYYY-MM-DD HH:MM:SS', 1990-2100)")
    rating = review_rating(obj, "stars")
    if isinstance(rating, Skip):
        return rating
    text = review_text(obj, anomalies)
    return Review(stamp, user, item, rating, text, 0, None, lineno)


def looks_like_review(obj: dict) -> bool:
    return "review_id" in obj or ("user_id" in obj and "date" in obj and "business_id" in obj)


def looks_like_meta(obj: dict) -> bool:
    return "business_id" in obj and "name" in obj and "user_id" not in obj and "review_id" not in obj


#: Yelp Open Dataset: review.json ``review_id, user_id, business_id, stars, text, date``;
#: business.json ``business_id, name, city, state, latitude, longitude, stars, review_count,
#: attributes, categories (one comma-separated string)``.
SOURCE = Source(
    name="yelp",
    title="Yelp",
    module="recbole_dlrrec.data.yelp",
    user_field="user_id",
    item_field="business_id",
    item_text_parts="name, categories, price, city and state, attributes",
    review_fields=REVIEW_FIELDS,
    default_category_filter="Restaurants",
    parsers=sys.modules[__name__],
)
