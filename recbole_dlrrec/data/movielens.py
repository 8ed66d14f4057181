"""Text vectors for RecBole's bundled ml-100k.

Item text: "<title> (<year>). Genres: <g1>, <g2>." from ml-100k.item.
User text: "A <age>-year-old <man|woman> who works as <occupation>." from ml-100k.user.
Neither uses ratings, so the vectors cannot leak labels. Written to
<out_dir>/ml-100k.itemvec.npz and ml-100k.uservec.npz (see text_vectors.py), once.
"""

from __future__ import annotations

import csv
import os
from typing import Dict, List, Optional, Tuple

import recbole

from recbole_dlrrec.data.side_files import ITEM_VEC_SUFFIX, USER_VEC_SUFFIX, side_file_name
from recbole_dlrrec.data.text_vectors import save_text_vectors

NAME = "ml-100k"


def recbole_ml100k_dir() -> str:
    return os.path.join(os.path.dirname(recbole.__file__), "dataset_example", NAME)


def _read_atomic(path: str) -> List[Dict[str, str]]:
    """Rows of a RecBole atomic file as dicts keyed by bare field name (no ':type')."""
    with open(path, encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = [h.split(":")[0] for h in next(reader)]
        return [dict(zip(header, row)) for row in reader]


def item_texts(source_dir: Optional[str] = None) -> Tuple[List[str], List[str]]:
    rows = _read_atomic(os.path.join(source_dir or recbole_ml100k_dir(), f"{NAME}.item"))
    ids, texts = [], []
    for row in rows:
        genres = ", ".join(row.get("class", "").split())
        year = row.get("release_year", "").strip()
        title = row.get("movie_title", "").strip() or f"movie {row['item_id']}"
        ids.append(row["item_id"])
        texts.append(f"{title}{f' ({year})' if year else ''}. Genres: {genres or 'unknown'}.")
    return ids, texts


def user_texts(source_dir: Optional[str] = None) -> Tuple[List[str], List[str]]:
    rows = _read_atomic(os.path.join(source_dir or recbole_ml100k_dir(), f"{NAME}.user"))
    gender = {"M": "man", "F": "woman"}
    ids, texts = [], []
    for row in rows:
        ids.append(row["user_id"])
        texts.append(f"A {row['age']}-year-old {gender.get(row['gender'], 'person')} who works as {row['occupation']}.")
    return ids, texts


def ensure_ml100k_vectors(out_dir: str = os.path.join("dataset", NAME), encoder=None, force: bool = False) -> str:
    """Build the item and user vector side files unless they exist. Returns out_dir."""
    item_path = os.path.join(out_dir, side_file_name(NAME, ITEM_VEC_SUFFIX))
    user_path = os.path.join(out_dir, side_file_name(NAME, USER_VEC_SUFFIX))
    if not force and os.path.isfile(item_path) and os.path.isfile(user_path):
        return out_dir
    if encoder is None:
        from recbole_dlrrec.data.encoder import TextEncoder

        encoder = TextEncoder()
    for path, (ids, texts) in ((item_path, item_texts()), (user_path, user_texts())):
        save_text_vectors(path, ids, encoder.encode(texts))
    return out_dir


if __name__ == "__main__":
    print(ensure_ml100k_vectors(force=True))
