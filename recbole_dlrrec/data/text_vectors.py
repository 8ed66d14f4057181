"""Read per-user / per-item text vectors from side files into tables aligned with RecBole's ids.

Side file: {side_data_path}/{dataset}.{suffix}.npz with arrays `ids` (the atomic files' raw
tokens) and `vectors` (float32, n x dim). The suffixes come from the config keys
`item_text_vec` / `user_text_vec` (properties/overall.yaml).

The vectors stay out of RecBole's feature system on purpose: with `normalize_all` RecBole would
min-max scale them, and a float_seq field becomes one shared embedding per field, not a vector.
Instead the model holds a table (num_ids x dim, row = RecBole's remapped id) and gathers rows per
batch. Ids without a vector (e.g. users with no training text) get a zero row; the coverage is
logged and returned.

User history: {side_data_path}/{dataset}.userhist.npz (written by the Google Local converter;
arrays `users`, `items`, `row`, `vectors`) gives each TRAIN row the text vector of its user's
strictly earlier train reviews (`row` -1: none). `load_user_history` maps it to RecBole's ids:
a sorted int64 key user * num_items + item per listed row, for a lookup on the device.

Item review vectors ({dataset}.itemrev.npz per item, {dataset}.itemrevhist.npz per train row, in
the layouts above; written by the converter with ``user_vector: mean``): `load_item_reviews`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from recbole_dlrrec.atomic import atomic_path
from recbole_dlrrec.data.side_files import ITEM_REV_HIST_SUFFIX, ITEM_REV_SUFFIX, USER_HIST_SUFFIX, side_file_name
from recbole_dlrrec.errors import InputError

SIDES = {"item": ("ITEM_ID_FIELD", "item_text_vec"), "user": ("USER_ID_FIELD", "user_text_vec")}


class TextVectorsMissingError(InputError, ValueError):
    """The config asks for text vectors that the dataset does not have."""


@dataclass
class TextTable:
    """Vectors of one side, row i = RecBole internal id i (row 0 = padding, zeros)."""

    vectors: torch.Tensor  # num_ids x dim, float32
    has_vector: torch.Tensor  # num_ids, bool
    path: str

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def coverage(self) -> float:
        return float(self.has_vector[1:].float().mean()) if len(self.has_vector) > 1 else 0.0


def side_data_path(config) -> str:
    """Folder of the plugin's side files for this config's dataset."""
    return config["side_data_path"] or config["data_path"]


def text_vector_path(config, side: str) -> Optional[str]:
    suffix = config[SIDES[side][1]]
    if not suffix:
        return None
    return os.path.join(side_data_path(config), f"{config['dataset']}.{suffix}.npz")


def save_text_vectors(path: str, ids, vectors: np.ndarray) -> None:
    """Write a side file atomically. `ids` are raw tokens (str), `vectors` n x dim float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    ids = np.asarray([str(i) for i in ids])
    if vectors.ndim != 2 or len(ids) != len(vectors):
        raise ValueError(f"{path}: need n ids and an n x dim matrix, got {len(ids)} ids and {vectors.shape}")
    if not np.isfinite(vectors).all():
        raise ValueError(f"{path}: vectors contain NaN or inf")
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, ids=ids, vectors=vectors)  # a handle: np.savez adds no ".npz" to it


def load_text_table(config, dataset, side: str) -> Optional[TextTable]:
    """The side's text table aligned to `dataset`'s ids, or None when the config sets no suffix.

    Raises TextVectorsMissingError naming the file and key when the suffix is set but the file
    is absent or unreadable.
    """
    field_key, suffix_key = SIDES[side]
    path = text_vector_path(config, side)
    if path is None:
        return None
    if not os.path.isfile(path):
        raise TextVectorsMissingError(
            f"{suffix_key}={config[suffix_key]!r} but {path} does not exist "
            f"(expected {side} text vectors for dataset {config['dataset']!r})"
        )
    result = _aligned_table(path, dataset.field2id_token[config[field_key]])
    logging.getLogger().info(
        f"{side} text vectors: {path} ({result.dim}-d), {result.coverage:.1%} of {len(result.vectors) - 1} ids covered"
    )
    return result


def _aligned_table(path: str, tokens) -> TextTable:
    """The ``ids`` / ``vectors`` file at ``path`` as a TextTable over ``tokens`` (RecBole's
    id -> token of one field); a one-line TextVectorsMissingError when it is not such a file."""
    try:
        with np.load(path, allow_pickle=False) as data:
            ids, vectors = data["ids"], data["vectors"].astype(np.float32)
    except (OSError, KeyError, ValueError) as exc:
        raise TextVectorsMissingError(f"{path}: not a text-vector file with 'ids' and 'vectors' ({exc})") from None
    row_of = {str(token): i for i, token in enumerate(ids)}
    table = np.zeros((len(tokens), vectors.shape[1]), dtype=np.float32)
    has = np.zeros(len(tokens), dtype=bool)
    for internal_id, token in enumerate(tokens):
        if internal_id == 0:  # RecBole's padding id
            continue
        row = row_of.get(str(token))
        if row is not None:
            table[internal_id] = vectors[row]
            has[internal_id] = True
    return TextTable(torch.from_numpy(table), torch.from_numpy(has), path)


@dataclass
class UserHistory:
    """A userhist.npz file in RecBole's ids: per listed (train) row, its key and history vector.

    keys: m_rows int64, sorted, user id * num_items + item id (a pair names one row).
    rows: m_rows int64, the row of `vectors` holding that row's history (-1: no earlier text).
    vectors: m x T float32.
    """

    keys: torch.Tensor
    rows: torch.Tensor
    vectors: torch.Tensor
    num_items: int
    path: str

    @property
    def with_history(self) -> int:
        return int((self.rows >= 0).sum())


def user_history_path(config) -> str:
    """Where the user history file of this config's dataset is (it may not exist)."""
    return os.path.join(side_data_path(config), side_file_name(config["dataset"], USER_HIST_SUFFIX))


def _history_arrays(path: str):
    """(users, items, row, vectors) of a userhist file, shapes checked; one-line error naming it."""
    try:
        with np.load(path, allow_pickle=False) as data:
            users, items = data["users"].astype(str), data["items"].astype(str)
            row, vectors = data["row"], data["vectors"]
    except (OSError, KeyError, ValueError) as exc:
        raise TextVectorsMissingError(
            f"{path}: not a user history file with 'users', 'items', 'row' and 'vectors' ({exc})"
        ) from None
    problem = None
    if users.ndim != 1 or items.shape != users.shape or row.shape != users.shape:
        problem = f"'users', 'items' and 'row' must be 1-d of one length, got {users.shape}, {items.shape}, {row.shape}"
    elif row.dtype.kind not in "iu":
        problem = f"'row' must hold integers, got {row.dtype}"
    elif vectors.ndim != 2 or vectors.dtype.kind != "f":
        problem = f"'vectors' must be an m x dim float matrix, got {vectors.dtype} {vectors.shape}"
    elif row.size and (row.min() < -1 or row.max() >= len(vectors)):
        problem = f"'row' must lie in [-1, {len(vectors)}), got [{row.min()}, {row.max()}]"
    elif not np.isfinite(vectors).all():
        problem = "'vectors' contain NaN or inf"
    if problem:
        raise TextVectorsMissingError(f"{path}: {problem}")
    return users, items, row.astype(np.int64), vectors.astype(np.float32)


def load_user_history(config, dataset, dim: int) -> UserHistory:
    """The dataset's userhist.npz in RecBole's ids; `dim` = the user text vectors' width.

    Raises TextVectorsMissingError (one line naming the file) when it is absent, malformed, of
    another width, or lists a (user, item) pair twice. Listed rows whose user or item RecBole
    does not know (filtered out of the dataset) are left out and counted in the log.
    """
    path = user_history_path(config)
    if not os.path.isfile(path):
        raise TextVectorsMissingError(
            f"user_text='before_row' needs {path} (per train row, the user text of its earlier reviews; "
            "written by the Google Local converter); use user_text: full or auto without it"
        )
    return _row_vectors(path, config, dataset, dim)


def _row_vectors(path: str, config, dataset, dim: int, label: str = "user history") -> UserHistory:
    """A per-train-row file in the userhist layout (an existing ``path``) in RecBole's ids;
    ``label`` names it in the log."""
    users, items, row, vectors = _history_arrays(path)
    if len(vectors) and vectors.shape[1] != dim:
        raise TextVectorsMissingError(f"{path}: vectors are {vectors.shape[1]}-d, the user text vectors {dim}-d")
    user_ids, item_ids = (
        dataset.field2token_id[config["USER_ID_FIELD"]],
        dataset.field2token_id[config["ITEM_ID_FIELD"]],
    )
    num_items = len(dataset.field2id_token[config["ITEM_ID_FIELD"]])
    u = np.array([user_ids.get(t, -1) for t in users], dtype=np.int64)
    i = np.array([item_ids.get(t, -1) for t in items], dtype=np.int64)
    known = (u > 0) & (i > 0)
    keys = u[known] * num_items + i[known]
    order = np.argsort(keys, kind="stable")
    keys, rows = keys[order], row[known][order]
    repeated = np.flatnonzero(keys[1:] == keys[:-1])
    if repeated.size:
        first = np.flatnonzero(known)[order][repeated[0]]
        raise TextVectorsMissingError(
            f"{path}: user {str(users[first])!r} and item {str(items[first])!r} are listed twice "
            "(a (user, item) pair must name one train row)"
        )
    history = UserHistory(
        torch.from_numpy(keys),
        torch.from_numpy(rows),
        torch.from_numpy(vectors.reshape(len(vectors), dim)),
        num_items,
        path,
    )
    logging.getLogger().info(
        f"{label}: {path}, {len(keys)} train rows ({history.with_history} with earlier text, "
        f"{int((~known).sum())} unknown to the dataset left out), {len(vectors)} vectors"
    )
    return history


@dataclass
class ItemReviews:
    """The item review vectors of a ``user_vector: mean`` build in RecBole's ids: ``table`` (per
    item, the mean of its train reviews; what valid/test rows read) and ``rows`` (per listed train
    row, the mean of its item's strictly earlier train reviews; -1: none)."""

    table: TextTable
    rows: UserHistory


def load_item_reviews(config, dataset, dim: int) -> ItemReviews:
    """The dataset's itemrev.npz and itemrevhist.npz (written by the converter with
    ``--user_vector mean``) aligned with RecBole's ids; ``dim`` = the text vectors' width.
    TextVectorsMissingError (one line naming the file) when either is absent, malformed or of
    another width."""
    folder, name = side_data_path(config), config["dataset"]
    paths = [os.path.join(folder, side_file_name(name, suffix)) for suffix in (ITEM_REV_SUFFIX, ITEM_REV_HIST_SUFFIX)]
    for path in paths:
        if not os.path.isfile(path):
            raise TextVectorsMissingError(
                f"item review vectors need {path} (written by the converter with --user_vector mean)"
            )
    table = _aligned_table(paths[0], dataset.field2id_token[config["ITEM_ID_FIELD"]])
    if table.dim != dim:
        raise TextVectorsMissingError(f"{paths[0]}: vectors are {table.dim}-d, the item text vectors {dim}-d")
    logging.getLogger().info(f"item review vectors: {paths[0]}, {table.coverage:.1%} of items covered")
    return ItemReviews(table, _row_vectors(paths[1], config, dataset, dim, "item review rows"))
