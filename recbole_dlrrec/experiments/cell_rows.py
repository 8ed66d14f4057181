"""The per-row test file of a board cell: what each test row was, and what the model scored.

    results/<NAME>/cells/<MODEL>-seed<S>.npy

    float64, 6 x n (today):  0 label (0/1), 1 score (the model's probability),
                             2 user id, 3 item id (RecBole's internal ids of the seed's dataset:
                               the same user or item has the same id in every cell of a board),
                             4 user's train rows, 5 item's train rows (rows of that user / item in
                               the train split, any label; 0 = unseen in train)
    float32, 2 x n (cells from before ids were kept): labels and scores only

The significance tests resample whole users or items from rows 2 and 3, and the segment metrics
read rows 4 and 5; a cell of the old shape still gives labels and scores (its comparisons fall
back to resampling rows, and the tables say so).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from recbole_dlrrec import atomic
from recbole_dlrrec.errors import InputError

ROW_FIELDS = ("label", "score", "user_id", "item_id", "user_train_rows", "item_train_rows")
_OLD_ROWS = 2


class CellRowsError(InputError, ValueError):
    """A per-row file of another shape than this module writes."""


@dataclass
class CellRows:
    """One cell's test rows, n of each; the id and count arrays are None for an old cell."""

    labels: np.ndarray
    scores: np.ndarray
    user_ids: Optional[np.ndarray] = None
    item_ids: Optional[np.ndarray] = None
    user_train_rows: Optional[np.ndarray] = None
    item_train_rows: Optional[np.ndarray] = None

    @property
    def has_ids(self) -> bool:
        return self.user_ids is not None

    def id_columns(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """user_ids, item_ids, user_train_rows, item_train_rows, n each (rows that have ids)."""
        if (
            self.user_ids is None
            or self.item_ids is None
            or self.user_train_rows is None
            or self.item_train_rows is None
        ):
            raise ValueError("these rows hold no ids")
        return self.user_ids, self.item_ids, self.user_train_rows, self.item_train_rows

    def __iter__(self):  # (labels, scores) = rows, as the old 2-row file unpacked
        return iter((self.labels, self.scores))


def from_recorder(labels, scores, row_ids: Optional[dict]) -> Optional[CellRows]:
    """CellRows from what a PredictionRecorder kept (its `row_ids`: user_id, item_id,
    user_train_rows, item_train_rows of the same rows, or None); None without labels and scores."""
    if labels is None or scores is None or np.size(labels) != np.size(scores):
        return None
    rows = CellRows(np.asarray(labels).ravel(), np.asarray(scores).ravel())
    if row_ids and all(np.size(row_ids[k]) == rows.labels.size for k in ROW_FIELDS[2:]):
        rows.user_ids, rows.item_ids, rows.user_train_rows, rows.item_train_rows = (
            np.asarray(row_ids[k]).ravel() for k in ROW_FIELDS[2:]
        )
    return rows


def save(path: str, rows: CellRows) -> None:
    """Write `rows` atomically: 6 x n float64 with ids (exact for ids below 2**53), else 2 x n float32."""
    if rows.has_ids:
        array = np.stack([rows.labels, rows.scores, *rows.id_columns()]).astype(np.float64)
    else:
        array = np.stack([rows.labels, rows.scores]).astype(np.float32)
    with atomic.atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)  # a handle: np.save adds no ".npy" to it


def load(path: str) -> CellRows:
    """The rows of a per-row file of either shape (module doc); CellRowsError for another one."""
    array = np.load(path)
    if array.ndim != 2 or array.shape[0] not in (_OLD_ROWS, len(ROW_FIELDS)):
        raise CellRowsError(
            f"{path}: expected {_OLD_ROWS} or {len(ROW_FIELDS)} rows of per-row values, got shape {array.shape}"
        )
    if array.shape[0] == _OLD_ROWS:
        return CellRows(array[0], array[1])
    ids = array[2:].astype(np.int64)
    return CellRows(array[0], array[1], ids[0], ids[1], ids[2], ids[3])
