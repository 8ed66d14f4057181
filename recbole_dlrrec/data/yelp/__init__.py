"""Yelp Open Dataset reviews + businesses -> a RecBole benchmark dataset.

Command line::

    recbole-dlrrec convert --source yelp --reviews yelp_academic_dataset_review.json \
        --meta yelp_academic_dataset_business.json --name NAME [--category_filter Restaurants] [...]

or ``convert(reviews_path, business_path, name, out_dir="dataset", options=ConvertOptions(...))``
(the options may also be given as keywords) ``-> report dict``. Every option, the two passes over
the reviews, the split, the k-core, the leak-free user history, the features from TRAIN rows only,
the output files, the report and the guarantees are those of the Google Local converter
(``recbole_dlrrec.data.google_local``'s docstring): the steps are ``recbole_dlrrec.data.convert``'s,
and this package only maps Yelp's JSON objects into the neutral records (``read``).

Input: the dataset's JSON-lines files (plain or gzip), passed as ``--reviews`` and ``--meta``.
Reviews (review.json): ``review_id, user_id, business_id, stars (1-5), useful, funny, cool, text,
date ("YYYY-MM-DD HH:MM:SS", read as UTC and written as ms since epoch)``. Businesses
(business.json): ``business_id, name, address, city, state, postal_code, latitude, longitude,
stars, review_count, is_open, attributes, categories (one comma-separated string), hours``.

Mapping: item token = business_id, user token = user_id, rating = stars; the category filter
(default ``Restaurants``: the restaurants, not "Restaurant Supplies") keeps businesses with a
category containing the text, case-insensitively ('' keeps all); ``price`` = "$".."$$$$" from the
``RestaurantsPriceRange2`` attribute (1-4), else ``unknown``; item text = name, categories, price,
"Location: city, state", the attributes that are true ("Offers: ...") and the other attribute
values ("WiFi: free", "Ambience: casual"); the LEAKY all-time figures (``--include_leaky_meta``)
are the business's ``stars`` (``avg_rating``) and ``review_count`` (``num_of_reviews``). Yelp
reviews carry no pictures: ``pic_count`` is 0 everywhere and so left out of the item file (a
column with one value), as the report says.

Cleaning, one reason per dropped line, every line counted: as for Google Local, with Yelp's field
names: ``missing_field:<f>`` for user_id / business_id / date / stars, ``null_rating`` (stars
null), ``invalid_value:<f>`` (stars outside 1-5 or not a number; a date not in the format or
outside 1990-2100; an id RecBole would not read back), ``unknown_business``,
``business_not_matching_category``, ``duplicate``, ``repeat_user_business`` (the earliest review
of a pair is kept). Wrong-typed optional fields (categories not a string, attributes not an
object, latitude not a number, ...) are counted under ``field_anomalies``. ``--strict`` makes
malformed or incomplete lines fatal with ``file:line``.
"""

from __future__ import annotations

from recbole_dlrrec.data.convert import pipeline
from recbole_dlrrec.data.yelp.read import SOURCE, parse_meta, parse_review

DEFAULT_CATEGORY_FILTER = SOURCE.default_category_filter
convert = pipeline.converter(SOURCE)

__all__ = ["DEFAULT_CATEGORY_FILTER", "SOURCE", "convert", "parse_meta", "parse_review"]
