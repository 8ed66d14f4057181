"""Google Local 2021 reviews + business metadata -> a RecBole benchmark dataset.

Command line (recbole_dlrrec/cli/convert.py; every flag is a field of
``recbole_dlrrec.data.convert.options.ConvertOptions``)::

    recbole-dlrrec convert --reviews R --meta M --name NAME [--out dataset]
        [--split time|random] [--seed S] [--label_threshold 4] [--category_filter restaurant]
        [--k_core K] [--strict] [--include_leaky_meta] [--encoder_model PATH]
        [--encoder_cache PATH] [--encoder_batch_size 64] [--encoder_device auto] [--image_encoder none]
        [--encoder_workers N] [--encoder_backend torch|onnx] [--ray_address HOST:PORT]
        [--encoder_ray_actors 1] [--max_line_bytes 1048576] [--force] [--verify]

or ``convert(reviews_path, meta_path, name, out_dir="dataset", options=ConvertOptions(...))``
(the options may also be given as keywords) ``-> report dict``.

Here: ``read`` (Google Local's JSON objects -> the neutral ``Business`` / ``Review`` records of
``recbole_dlrrec.data.convert.records``, or a counted ``Skip``; its ``SOURCE``). Every later step
(the two passes over the reviews, the split, the k-core, user history, features from TRAIN rows
only, encoding, writing, ``--verify``) is ``recbole_dlrrec.data.convert``'s, shared with the other
sources (``recbole_dlrrec.data.yelp``). The output folder is written by
``recbole_dlrrec.data.dataset_folder``.

Memory grows with the KEPT interactions, not with the file (real state files run to tens of
GB): the reviews file is read twice. Pass 1 (``convert.reading.read_reviews``) keeps each kept review
without its text or picture links, as one entry in each of a few column arrays
(``convert.columns.ReviewColumns``: time, user and business codes, rating, line number, picture
count, whether it has text and the length of its cleaned text; one string per user and business);
lines that are dropped are counted and forgotten, and exact duplicates and re-reviews are found
by sorting the kept rows, not by a set of every line. After the split, pass 2
(``convert.reading.fetch_texts``) parses only the lines of the TRAIN rows whose text goes into a user text
(``convert.history.user_text_rows``: newest first, up to ``user_text_max_chars`` per user, chosen from
the lengths alone) or into a later train row's history text (``convert.history.history_text_rows``,
the same rule over the reviews before each row) and, with an image encoder, of the train rows
with pictures. A line that no
longer holds the review pass 1 read is a ``ConversionError`` (the file changed in between).
The output is byte for byte that of reading everything into memory.
Text encoding runs on the GPU when torch sees one (``encoder_device`` "auto"), else on one
worker process per core, or on a Ray cluster (``ray_address``); its vectors are the same bytes on
every rebuild (recbole_dlrrec/data/encode_batches.py).

Input: two JSON-lines files, each plain or gzip (detected from the content, not the name).
Reviews: ``user_id, name, time (ms since epoch), rating (1-5), text, pics, resp, gmap_id``.
A time in seconds (the same 1990-2100 window in seconds; the two windows do not overlap) is
converted to ms row by row and counted under ``converted: time_seconds_to_ms``.
Meta: ``name, address, gmap_id, description, latitude, longitude, category, avg_rating,
num_of_reviews, price, hours, MISC, state, relative_results, url``.

Cleaning, one reason per dropped line, every line counted (lines read = kept + dropped):

- meta: ``blank_line``, ``malformed_json`` (line numbers listed), ``not_an_object``,
  ``missing_field:gmap_id`` / ``missing_field:name``, ``invalid_value:gmap_id``, ``duplicate``
  (same gmap_id again with the same content) and ``duplicate_conflicting`` (same gmap_id, other
  content; the first line wins in both cases), ``category_filter`` (no category entry contains the filter text, compared
  case-insensitively; a business with no category never matches).
- reviews: ``blank_line``, ``malformed_json``, ``not_an_object``, ``missing_field:<f>`` for
  user_id / gmap_id / time / rating (key absent), ``null_rating``, ``invalid_value:<f>`` (rating
  outside 1-5 or not a number; time not a number of ms, or seconds, between 1990 and 2100; an id
  that is not a string/integer or that RecBole's reader would not read back: whitespace, '"',
  a control character, or a spelling pandas reads as missing such as ``NA``, ``null``, ``nan``),
  ``business_not_matching_category`` (the business is in meta but was
  dropped by the category filter), ``unknown_business`` (gmap_id not among the kept meta lines),
  ``duplicate`` (same user, business and time as an earlier line), ``repeat_user_business``
  (a later review by the same user of the same business: the earliest one is kept, so a
  user-item pair never appears in two splits).
- Optional fields with a wrong type (text, pics, latitude, price, MISC, ...) do not drop the
  line: the field is treated as missing and counted under ``field_anomalies`` (so is a category
  token RecBole could not read back: ``category_token_unreadable``, the token is left out).
- Any bytes are a counted line: invalid UTF-8, a line nested 100,000 brackets deep
  (``malformed_json``), never an exception. A line longer than ``max_line_bytes`` (default
  1 MiB, ``--max_line_bytes``; its line break not counted) is skipped without being held in
  memory (parsing a line takes many times its size) and counted as ``line_too_long`` in either
  file, its number listed in the report (``long_lines``); with ``--strict`` it is fatal.
- ``--strict`` makes malformed_json, not_an_object, missing_field and invalid_value fatal,
  with ``file:line``. Filters (duplicates, unknown business, category, null rating) never are.
- A file that cannot be read, a truncated gzip, an empty file, a UTF-16 file ("re-encode as
  UTF-8"), a file whose first line opens a JSON array, a file without a single JSON object line
  (a CSV), a reviews file given as meta or the reverse ("are --reviews and --meta swapped?"), or
  one with no record carrying the required fields raises ``ConversionError`` naming the file; so
  does a filter that leaves nothing, a dataset whose rows all have one label (AUC is undefined
  on it: "every kept review (48) has label 1"), and (before any input is read) a bad option, such as a
  ``label_threshold`` outside (1, 5] that would leave no positive or no negative row, or an
  output folder that cannot be written. ``ConversionError`` is an ``InputError``: the CLI prints
  one line and exits with status 2.

Split: ``time`` (default) orders the kept interactions by (timestamp, user_id, item_id) and cuts
the global timeline at the 80% and 90% positions (``ratios``), so every train row is not later
than every valid row, and so on; ``random`` shuffles with ``numpy.random.default_rng(seed)``.
Label = 1 if rating >= ``label_threshold`` (default 4) else 0.
``k_core`` K (off by default) then keeps the users and businesses with at least K TRAIN reviews,
iterated to a fixed point (the future selects nothing); their rows leave every split, counted
in the report.

Output, all under ``<out>/NAME/`` (built in ``<out>/.NAME.tmp-<pid>-XXXX`` and moved into place at
the end by ``dataset_folder``, so an interrupted run never leaves a half dataset under the final
name; an existing ``<out>/NAME`` is replaced only when its REPORT.json names NAME, i.e. this tool
wrote it; anything else there is refused before any input is read, and so is a file inside it
that the tool did not write (REPORT.json lists what it wrote) unless ``--force`` deletes it):

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
- ``NAME.userhist.npz`` (purely additive: every other file is what it was without it): per TRAIN
  row, the user text built the same way from the user's train reviews strictly EARLIER than the
  row (a review at the same time is not earlier). Arrays ``users``, ``items`` (the row's tokens;
  a (user, item) pair names one row, checked), ``row`` (int64 into ``vectors``, -1 = no earlier
  review with text) and ``vectors`` (float32, one per distinct history text, same encoder and
  cache as the other texts). Valid/test rows are not listed: under the time split every train
  review precedes them, so their history is the full ``uservec`` vector (under the random split
  a valid/test row's full vector also holds later train reviews, never its own). The texts it
  needs are fetched by pass 2 too (at most a full-profile's worth per distinct row time).
- With ``user_vector="mean"`` (``--user_vector mean``; default ``concat``, the texts above): each
  TRAIN review text is encoded once, and ``NAME.uservec.npz`` / ``NAME.userhist.npz`` hold means of
  review vectors (the user's train reviews; per train row, those strictly earlier) instead of
  encoded concatenations; ``NAME.itemrev.npz`` (``ids``, ``vectors``: per item, its train reviews'
  mean) and ``NAME.itemrevhist.npz`` (the userhist layout: per train row, its item's strictly
  earlier train reviews) are written too (``convert.review_means``).
- ``NAME.yaml``: RecBole settings for this dataset (every key commented).
- ``REPORT.md`` / ``REPORT.json``: counts read / kept / dropped per reason, per-split users,
  items, interactions, label balance, share of rows with text, time taken; REPORT.json also
  lists the files written (``files``), so a rebuild can tell them from files added later. A
  split whose rows all have one label is written, with a warning at the top of REPORT.md
  (``warnings`` in REPORT.json): training and evaluation refuse that split.

No leakage, enforced here: the text of a valid/test review feeds nothing; user vectors and
``n_train_reviews`` use train rows only; ``pic_count`` counts train pictures only; the meta
fields ``avg_rating`` and ``num_of_reviews`` (computed by Google over all time, valid/test
included) are left out unless ``include_leaky_meta`` is given, and then marked LEAKY.
(A train row's own review text is part of its user's profile text, as the profile is one
vector per user; evaluation rows never are. ``NAME.userhist.npz`` gives each train row the
profile of its past only; the model's ``user_text`` switch picks it.)

Images: there is no offline image model, so pictures only contribute ``pic_count``. The slot
``IMAGE_ENCODERS`` (name -> callable) is off by default (``--image_encoder none``). A registered
callable is called once per output item as ``fn(item_meta: dict, train_pic_urls: list[list[str]])``
and returns either a caption (appended to the item text as "Photos: ...") or a float vector
(saved as ``NAME.itemimgvec.npz``). Only pictures of TRAIN reviews are passed to it.
"""

from __future__ import annotations

from recbole_dlrrec.data.convert import pipeline
from recbole_dlrrec.data.convert.jsonl import DEFAULT_MAX_LINE_BYTES, LongLine, iter_lines, parse_line
from recbole_dlrrec.data.convert.options import (
    DEFAULT_LABEL_THRESHOLD,
    DEFAULT_RATIOS,
    IMAGE_ENCODERS,
    ConvertOptions,
    register_image_encoder,
)
from recbole_dlrrec.data.convert.records import MAX_LISTED_LINES, Business, ConversionError, FileTally, Review, Skip
from recbole_dlrrec.data.convert.split import SPLITS, k_core, split_reviews
from recbole_dlrrec.data.convert.values import category_token, readable_token
from recbole_dlrrec.data.convert.verify import check_loads_in_recbole
from recbole_dlrrec.data.google_local.read import (
    SOURCE,
    normalise_price,
    normalise_time,
    parse_meta,
    parse_review,
    read_meta,
    read_reviews,
)

DEFAULT_CATEGORY_FILTER = SOURCE.default_category_filter
convert = pipeline.converter(SOURCE)


# The converter's public names, re-exported here so that `google_local` is the one import a user
# of this source needs.
__all__ = [
    "DEFAULT_CATEGORY_FILTER",
    "DEFAULT_LABEL_THRESHOLD",
    "DEFAULT_MAX_LINE_BYTES",
    "DEFAULT_RATIOS",
    "IMAGE_ENCODERS",
    "MAX_LISTED_LINES",
    "SOURCE",
    "SPLITS",
    "Business",
    "ConversionError",
    "ConvertOptions",
    "FileTally",
    "LongLine",
    "Review",
    "Skip",
    "category_token",
    "check_loads_in_recbole",
    "convert",
    "iter_lines",
    "k_core",
    "normalise_price",
    "normalise_time",
    "parse_line",
    "parse_meta",
    "parse_review",
    "read_meta",
    "read_reviews",
    "readable_token",
    "register_image_encoder",
    "split_reviews",
]
