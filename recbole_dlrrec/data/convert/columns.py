"""The kept reviews as column arrays: a few bytes per row instead of a Python object per row.

Pass 1 appends each kept line's fields to typed arrays (:class:`ColumnBuilder`); the user and
business ids become int codes ranked in string order, so sorting by a code sorts by the id.
Splits and the k-core are index arrays over the same columns (:meth:`ReviewColumns.take`), and
the steps that read rows one at a time (user texts, history, the .inter writer) iterate
:class:`~.records.Review` objects made on the fly, each gone once read. Texts fetched by pass 2
are kept once, by line number, in a dict that every take of the same columns shares.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Any, Iterable, Iterator, overload

import numpy as np

from recbole_dlrrec.data.convert.records import Review

#: Column name -> numpy dtype; the fields of :class:`Review` other than its text and picture links.
COLUMNS = {
    "time": np.int64,
    "user": np.int32,
    "item": np.int32,
    "rating": np.float64,
    "n_pics": np.int32,
    "lineno": np.int64,
    "has_text": np.bool_,
    "text_chars": np.int32,
}
#: The same columns while pass 1 appends to them (array.array type codes; ids as first-seen codes).
_TYPECODES = {
    "time": "q",
    "user": "q",
    "item": "q",
    "rating": "d",
    "n_pics": "q",
    "lineno": "q",
    "has_text": "b",
    "text_chars": "q",
}


def _ranked(first_seen: dict[str, Any]) -> tuple[list[str], np.ndarray]:
    """(ids sorted, rank of each first-seen code): code ``c`` becomes ``rank[c]``."""
    names = list(first_seen)
    order = sorted(range(len(names)), key=names.__getitem__)
    rank = np.empty(len(names), dtype=np.int32)
    rank[order] = np.arange(len(names), dtype=np.int32)
    return [names[i] for i in order], rank


class ReviewColumns(Sequence[Review]):
    """Reviews as aligned column arrays (:data:`COLUMNS`), ids as codes into ``user_ids`` /
    ``item_ids`` (sorted), fetched texts and picture links in ``texts`` / ``pic_urls`` keyed by
    line number. A sequence of :class:`Review`: ``len``, iteration, ``cols[i]``, ``cols[a:b]``."""

    def __init__(
        self,
        arrays: dict[str, Any],
        user_ids: list[str],
        item_ids: list[str],
        texts: dict[int, str] | None = None,
        pic_urls: dict[int, list] | None = None,
    ):
        self.arrays: dict[str, np.ndarray] = {
            name: np.asarray(arrays[name], dtype=dtype) for name, dtype in COLUMNS.items()
        }
        lengths = {len(a) for a in self.arrays.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns of different lengths: {sorted(lengths)}")
        self.user_ids = user_ids
        self.item_ids = item_ids
        self.texts = {} if texts is None else texts
        self.pic_urls = {} if pic_urls is None else pic_urls

    @classmethod
    def from_reviews(cls, rows: Iterable[Review]) -> ReviewColumns:
        """Columns holding ``rows`` in their order (their texts and picture links too)."""
        rows = list(rows)
        users, _ = _ranked(dict.fromkeys(r.user for r in rows))
        items, _ = _ranked(dict.fromkeys(r.item for r in rows))
        user_code = {u: i for i, u in enumerate(users)}
        item_code = {b: i for i, b in enumerate(items)}
        arrays = {name: [getattr(r, name) for r in rows] for name in COLUMNS if name not in ("user", "item")}
        arrays["user"] = [user_code[r.user] for r in rows]
        arrays["item"] = [item_code[r.item] for r in rows]
        texts = {r.lineno: r.text for r in rows if r.text is not None}
        pics = {r.lineno: r.pic_urls for r in rows if r.pic_urls is not None}
        return cls(arrays, users, items, texts, pics)

    def take(self, index: np.ndarray | slice) -> ReviewColumns:
        """The rows at ``index`` (in that order), sharing ids, texts and picture links."""
        return ReviewColumns(
            {name: a[index] for name, a in self.arrays.items()}, self.user_ids, self.item_ids, self.texts, self.pic_urls
        )

    def shares_ids_with(self, other: ReviewColumns) -> bool:
        return self.user_ids is other.user_ids and self.item_ids is other.item_ids

    def __len__(self) -> int:
        return len(self.arrays["time"])

    def _rows(self, start: int, stop: int, chunk: int = 1 << 14) -> Iterator[Review]:
        """Rows ``start`` to ``stop`` as Review objects, the columns read a chunk at a time
        (as Python values: indexing numpy scalars one by one costs several times more)."""
        a = self.arrays
        for begin in range(start, stop, chunk):
            part = slice(begin, min(stop, begin + chunk))
            values = [a[name][part].tolist() for name in COLUMNS]
            for time, user, item, rating, n_pics, lineno, has_text, text_chars in zip(*values):
                review = Review(
                    time,
                    self.user_ids[user],
                    self.item_ids[item],
                    rating,
                    None,  # set below: a text given to the constructor would be measured again
                    n_pics,
                    self.pic_urls.get(lineno),
                    lineno,
                    has_text,
                    text_chars,
                )
                review.text = self.texts.get(lineno)
                yield review

    def row(self, i: int) -> Review:
        return next(self._rows(i, i + 1))

    def __iter__(self) -> Iterator[Review]:
        return self._rows(0, len(self))

    @overload
    def __getitem__(self, key: int) -> Review: ...

    @overload
    def __getitem__(self, key: slice) -> ReviewColumns: ...

    def __getitem__(self, key: int | slice) -> Review | ReviewColumns:
        if isinstance(key, slice):
            return self.take(key)
        return self.row(range(len(self))[key])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, (ReviewColumns, list)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by content

    def distinct_users(self) -> np.ndarray:
        """The user codes that occur, ascending (= their ids in string order)."""
        return np.unique(self.arrays["user"])

    def distinct_items(self) -> np.ndarray:
        return np.unique(self.arrays["item"])

    def keep_fetched(self, fetched: Iterable[Review]) -> None:
        """Store the texts and picture links pass 2 set on rows made from these columns (a row
        asked for both is one object: pass 2 sets both on the first one it was given)."""
        for r in fetched:
            if r.text is not None:
                self.texts[r.lineno] = r.text
            if r.pic_urls is not None:
                self.pic_urls[r.lineno] = r.pic_urls


class ColumnBuilder:
    """Pass 1's kept lines, appended field by field into typed arrays (no object per line)."""

    def __init__(self) -> None:
        self._arrays: dict[str, array[Any]] = {name: array(code) for name, code in _TYPECODES.items()}
        self._users: dict[str, int] = {}
        self._items: dict[str, int] = {}

    def append(self, review: Review) -> None:
        a = self._arrays
        a["time"].append(review.time)
        a["user"].append(self._users.setdefault(review.user, len(self._users)))
        a["item"].append(self._items.setdefault(review.item, len(self._items)))
        a["rating"].append(review.rating)
        a["n_pics"].append(review.n_pics)
        a["lineno"].append(review.lineno)
        a["has_text"].append(review.has_text)
        a["text_chars"].append(review.text_chars)

    def __len__(self) -> int:
        return len(self._arrays["time"])

    def build(self) -> ReviewColumns:
        """The columns in append order, codes ranked by id."""
        user_ids, user_rank = _ranked(self._users)
        item_ids, item_rank = _ranked(self._items)
        arrays = {name: np.frombuffer(a, dtype=np.dtype(a.typecode)) for name, a in self._arrays.items()}
        arrays["user"] = user_rank[arrays["user"]]
        arrays["item"] = item_rank[arrays["item"]]
        return ReviewColumns(arrays, user_ids, item_ids)
