"""Read per-user / per-item text vectors from side files into tables aligned with RecBole's ids.

Side file: {side_data_path}/{dataset}.{suffix}.npz with arrays `ids` (the atomic files' raw
tokens) and `vectors` (float32, n x dim). The suffixes come from the config keys
`item_text_vec` / `user_text_vec` (properties/overall.yaml).

The vectors stay out of RecBole's feature system on purpose: with `normalize_all` RecBole would
min-max scale them, and a float_seq field becomes one shared embedding per field, not a vector.
Instead the model holds a table (num_ids x dim, row = RecBole's remapped id) and gathers rows per
batch. Ids without a vector (e.g. users with no training text) get a zero row; the coverage is
logged and returned.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from recbole_dlrrec.atomic import atomic_path
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
    try:
        with np.load(path, allow_pickle=False) as data:
            ids, vectors = data["ids"], data["vectors"].astype(np.float32)
    except (OSError, KeyError, ValueError) as exc:
        raise TextVectorsMissingError(f"{path}: not a text-vector file with 'ids' and 'vectors' ({exc})") from None
    tokens = dataset.field2id_token[config[field_key]]
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
    result = TextTable(torch.from_numpy(table), torch.from_numpy(has), path)
    logging.getLogger().info(
        f"{side} text vectors: {path} ({result.dim}-d), {result.coverage:.1%} of {len(tokens) - 1} ids covered"
    )
    return result
