"""The converter streams: memory grows with the kept interactions, not with the reviews file."""

from __future__ import annotations

import json
import os
import tracemalloc

import pytest

from recbole_dlrrec.data import google_local as gl
from recbole_dlrrec.data.convert import history
from recbole_dlrrec.data.encoder import HashEncoder

BIG_TEXT = 40_000  # characters of each review text that no feature may need


def _meta(n_items: int) -> list[str]:
    return [
        json.dumps({"gmap_id": f"b{i}", "name": f"Place {i}", "category": ["Pizza restaurant"], "price": "$$"})
        for i in range(n_items)
    ]


def _bulky_reviews(n_users: int = 40, per_user: int = 10, n_unknown: int = 500) -> list[str]:
    """Short texts on the train period (the first 80% of the timeline); 40k-character texts on
    the rest (valid/test under a time split), and 8k-character reviews of unknown businesses."""
    lines = []
    n = n_users * per_user
    for k in range(n):
        user, item = k % n_users, k // n_users
        late = k >= int(0.8 * n)
        text = ("late " * (BIG_TEXT // 5)) if late else f"short review {k}"
        lines.append(
            json.dumps(
                {
                    "user_id": f"u{user}",
                    "gmap_id": f"b{item}",
                    "time": 1_600_000_000_000 + k * 1000,
                    "rating": 1 + k % 5,
                    "text": text,
                    "pics": None,
                }
            )
        )
    for k in range(n_unknown):
        lines.append(
            json.dumps(
                {
                    "user_id": f"u{k}",
                    "gmap_id": f"gone{k}",
                    "time": 1_600_000_000_000 + k,
                    "rating": 5,
                    "text": "x " * 4000,
                }
            )
        )
    return lines


def _write(path, lines):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.slow
def test_peak_memory_stays_far_below_the_file_when_texts_are_not_needed(tmp_path):
    reviews = _write(tmp_path / "reviews.json", _bulky_reviews())
    meta = _write(tmp_path / "meta.json", _meta(10))
    size = os.path.getsize(reviews)
    assert size > 7_000_000, size
    tracemalloc.start()
    try:
        report = gl.convert(reviews, meta, "big", str(tmp_path / "out"), encoder=HashEncoder(), show_progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report["reviews"]["kept"] == 400 and report["reviews"]["dropped"] == {"unknown_business": 500}
    # The late texts count as "rows with text" although none of them was kept in memory.
    assert report["splits"]["test"]["rows_with_text"] == report["splits"]["test"]["interactions"]
    # Holding the 80 late texts alone would take 3.2 MB; the whole run stays under a fifth of the file.
    assert peak < size / 5, (peak, size)


def test_only_the_texts_a_user_or_history_text_needs_are_fetched(tmp_path, monkeypatch):
    """Pass 2 parses the lines of the train texts that a user text (the newest that fit the cap)
    or a history text (the newest before a train row that fit it) needs, and no other."""
    lines = []
    for k in range(6):  # one user, six train-period reviews of 30 characters, newest last
        lines.append(
            json.dumps(
                {
                    "user_id": "u",
                    "gmap_id": f"b{k}",
                    "time": 1_600_000_000_000 + k,
                    "rating": 5,
                    "text": f"review number {k} " + "x" * 13,
                }
            )
        )
    for k in range(6, 10):  # later reviews by others: valid/test (both labels: one label is refused)
        lines.append(
            json.dumps(
                {
                    "user_id": f"v{k}",
                    "gmap_id": "b0",
                    "time": 1_700_000_000_000 + k,
                    "rating": 4 if k % 2 else 2,
                    "text": "later",
                }
            )
        )
    reviews = _write(tmp_path / "reviews.json", lines)
    meta = _write(tmp_path / "meta.json", _meta(6))
    parsed_lines = []
    real_parse = gl.read.parse_review

    def spy(obj, lineno, *args, **kwargs):
        parsed_lines.append(lineno)
        return real_parse(obj, lineno, *args, **kwargs)

    monkeypatch.setattr(gl.read, "parse_review", spy)
    encoder = HashEncoder()
    gl.convert(
        reviews,
        meta,
        "cap",
        str(tmp_path / "out"),
        encoder=encoder,
        show_progress=False,
        ratios=(0.6, 0.2, 0.2),
        user_text_max_chars=70,
    )
    second_pass = parsed_lines[len(lines) :]
    train_rows = [
        r
        for r in gl.read_reviews(reviews, *gl.read_meta(meta, None, False, False)[:2], False, False)[0]
        if r.user == "u"
    ]
    # Train = the 6 rows of "u"; 70 characters hold the two newest (31 + 1 + 31), not a third.
    assert sorted(r.lineno for r in history.user_text_rows(train_rows, 70)) == [5, 6]
    # The history of row k holds rows k-1 and k-2: every train text but the newest.
    assert sorted(r.lineno for r in history.history_text_rows(train_rows, 70)) == [1, 2, 3, 4, 5]
    assert sorted(second_pass) == [1, 2, 3, 4, 5, 6]  # no valid/test line (7-10)
    assert encoder.calls[1] == ["review number 5 " + "x" * 13 + "\nreview number 4 " + "x" * 13]


def test_a_file_changed_between_the_passes_is_refused(tmp_path):
    lines = [
        json.dumps(
            {"user_id": "u", "gmap_id": f"b{k}", "time": 1_600_000_000_000 + k, "rating": 5, "text": f"text {k}"}
        )
        for k in range(3)
    ]
    reviews = _write(tmp_path / "reviews.json", lines)
    businesses, filtered, _ = gl.read_meta(_write(tmp_path / "meta.json", _meta(3)), None, False, False)
    columns, _ = gl.read_reviews(reviews, businesses, filtered, False, False)
    rows = list(columns)  # Review objects made from the columns; pass 2 sets their texts
    assert [r.text for r in rows] == [None, None, None] and all(r.has_text for r in rows)
    _write(tmp_path / "reviews.json", [lines[0], lines[2], lines[1]])
    with pytest.raises(gl.ConversionError, match=r"reviews.json:2: the line changed"):
        gl.read.fetch_texts(reviews, rows, [], False)
    _write(tmp_path / "reviews.json", lines[:1])
    with pytest.raises(gl.ConversionError, match=r"2 line\(s\) read in the first pass are gone"):
        gl.read.fetch_texts(reviews, rows, [], False)
    _write(tmp_path / "reviews.json", lines)
    for r in rows:
        r.text = None
    gl.read.fetch_texts(reviews, rows[1:], [], False)
    assert [r.text for r in rows] == [None, "text 1", "text 2"]


def test_one_review_per_pair_keeps_the_first_of_the_earliest_in_key_order():
    import random

    from recbole_dlrrec.data.convert.columns import ReviewColumns
    from recbole_dlrrec.data.convert.reading import _one_per_pair
    from recbole_dlrrec.data.convert.records import FileTally

    rng = random.Random(3)
    rows = [
        gl.Review(rng.choice((1, 2, 3)), rng.choice("abc"), rng.choice("xyz"), 5.0, None, 0, None, k)
        for k in range(300)
    ]
    tally = FileTally("x")
    kept = _one_per_pair(ReviewColumns.from_reviews(rows), tally)
    expected, previous = [], None
    for r in sorted(rows, key=lambda r: (r.user, r.item, r.time)):  # ties keep the line order
        if previous is None or (r.user, r.item) != (previous.user, previous.item):
            expected.append(r.lineno)
        previous = r
    assert [r.lineno for r in kept] == expected
    assert sum(tally.dropped.values()) == 300 - len(expected) and len(expected) == 9
