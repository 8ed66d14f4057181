"""The converter's column arrays (recbole_dlrrec.data.convert.columns): rows in, the same rows out."""

from __future__ import annotations

import numpy as np
import pytest

from recbole_dlrrec.data.convert import split as splitting
from recbole_dlrrec.data.convert.columns import ColumnBuilder, ReviewColumns
from recbole_dlrrec.data.convert.records import Review


def _rows() -> list[Review]:
    return [
        Review(30, "zed", "b2", 4.0, "late text", 1, None, 1),
        Review(10, "amy", "b9", 2.5, None, 0, None, 2),
        Review(20, "bob", "b2", 5.0, "  ", 0, ["http://p/1.jpg"], 3),
        Review(10, "amy", "b1", 1.0, "hello there", 2, None, 4),
    ]


def test_rows_come_back_field_for_field_with_their_texts_and_pictures():
    rows = _rows()
    columns = ReviewColumns.from_reviews(rows)
    assert len(columns) == 4 and list(columns) == rows
    assert columns[2] == rows[2] and columns[-1] == rows[-1] and list(columns[1:3]) == rows[1:3]
    assert columns[0].text == "late text" and columns[2].pic_urls == ["http://p/1.jpg"]
    assert [r.has_text for r in columns] == [True, False, False, True]
    assert [r.text_chars for r in columns] == [r.text_chars for r in rows]


def test_codes_rank_the_ids_in_string_order_so_sorting_codes_sorts_ids():
    builder = ColumnBuilder()
    for r in _rows():
        r.text = None
        builder.append(r)
    columns = builder.build()
    assert columns.user_ids == ["amy", "bob", "zed"] and columns.item_ids == ["b1", "b2", "b9"]
    assert columns.arrays["user"].tolist() == [2, 0, 1, 0]
    assert columns.arrays["item"].tolist() == [1, 2, 1, 0]
    by_code = columns.take(np.lexsort((columns.arrays["item"], columns.arrays["user"])))
    assert [(r.user, r.item) for r in by_code] == sorted((r.user, r.item) for r in _rows())
    assert columns.arrays["time"].dtype == np.int64 and columns.arrays["has_text"].dtype == np.bool_


def test_takes_share_the_fetched_texts():
    columns = ReviewColumns.from_reviews([Review(1, "u", "i", 5.0, None, 0, None, 7, True, 3)])
    part = columns.take(np.array([0]))
    fetched = list(part)
    fetched[0].text = "abc"
    part.keep_fetched(fetched)
    assert columns[0].text == "abc"  # the split sees what pass 2 fetched for its rows
    part.texts.clear()
    assert columns[0].text is None


def test_an_empty_builder_gives_empty_columns():
    columns = ColumnBuilder().build()
    assert len(columns) == 0 and list(columns) == [] and columns.user_ids == []


def test_columns_of_different_lengths_are_refused():
    arrays = {name: np.zeros(2) for name in ("time", "user", "item", "rating", "n_pics", "lineno", "has_text")}
    with pytest.raises(ValueError, match="different lengths"):
        ReviewColumns({**arrays, "text_chars": np.zeros(3)}, [], [])


def test_split_and_k_core_on_columns_match_the_rows_they_hold():
    rows = [Review(t, f"u{t % 3}", f"i{t % 5}", 5.0, None, 0, None, t) for t in range(40)]
    parts = splitting.split_reviews(ReviewColumns.from_reviews(rows[::-1]), "time", (0.6, 0.2, 0.2), 0)
    assert [r.time for r in parts["train"]] == list(range(24))
    assert [r.time for r in parts["test"]] == list(range(32, 40))
    assert all(p.shares_ids_with(parts["train"]) for p in parts.values())
    cored, stats = splitting.k_core(parts, 5)  # i4 has 4 train rows: it goes, the users stay
    assert len(cored["train"]) == 20 and {r.item for r in cored["train"]} == {"i0", "i1", "i2", "i3"}
    assert cored == splitting.k_core({s: list(p) for s, p in parts.items()}, 5)[0]
    assert stats["rows_dropped"]["train"] == len(parts["train"]) - len(cored["train"])
