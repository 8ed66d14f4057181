"""Every feature from TRAIN rows only, and the checked encoding of the texts.

The leakage rule is a function boundary: :func:`train_features` is given the train rows and
nothing else (plus the ids of the users and items that occur anywhere, which carry no review
content), so no valid/test review text, picture or count can reach a vector or a feature.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np

from recbole_dlrrec.data import text_build
from recbole_dlrrec.data.convert.records import Business, ConversionError, Review

ImageEncoder = Callable[[dict, list], Any]


@dataclass
class TrainFeatures:
    """Everything derived from review content, from train rows only.

    ``item_texts`` is aligned with the ``items`` given; ``user_texts`` with ``vec_users``
    (users with train text, in the order of ``users``); ``image_vectors`` with ``items`` when
    the image encoder returns vectors.
    """

    pic_count: Counter
    n_train_reviews: Counter
    item_texts: list[str]
    vec_users: list[str]
    user_texts: list[str]
    image_vectors: list[np.ndarray] = field(default_factory=list)


def train_features(
    train: Sequence[Review],
    businesses: dict[str, Business],
    items: Sequence[str],
    users: Sequence[str],
    user_text_max_chars: int,
    image_fn: Optional[ImageEncoder] = None,
    image_name: str = "none",
) -> TrainFeatures:
    """Per-item and per-user features from the TRAIN rows (``train``) only.

    ``items`` / ``users`` are the ids that occur in any split (each gets a row; users without
    train text get no text). ``pic_count`` = pictures on the item's train reviews;
    ``n_train_reviews`` = the user's train reviews; user text = the user's train review texts,
    newest first, capped at ``user_text_max_chars``; item text = business metadata (plus the
    image encoder's caption, which sees train pictures only).
    """
    pic_count: Counter = Counter()
    n_train: Counter = Counter()
    texts: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    pics: dict[str, list] = defaultdict(list)
    for r in train:
        pic_count[r.item] += r.n_pics
        n_train[r.user] += 1
        if r.text and r.text.strip():
            texts[r.user].append((r.time, r.item, r.text))
        if r.pic_urls:
            pics[r.item].extend(r.pic_urls)

    captions: dict[str, str] = {}
    image_vectors: list[np.ndarray] = []
    if image_fn is not None:
        for item in items:
            out = image_fn(dict(businesses[item].raw), list(pics.get(item, [])))
            if isinstance(out, str):
                captions[item] = out
            elif out is not None:
                image_vectors.append(np.asarray(out, dtype=np.float32).reshape(-1))
            else:
                raise ConversionError(f"image encoder {image_name!r} returned None for item {item}")
        if captions and image_vectors:
            raise ConversionError(f"image encoder {image_name!r} mixed captions and vectors")

    item_texts = [
        text_build.item_text(
            b.name,
            b.categories,
            None if b.price == "unknown" else b.price,
            b.description,
            b.misc,
            extra=captions.get(b.item_id),
        )
        for b in (businesses[i] for i in items)
    ]
    vec_users: list[str] = []
    user_texts: list[str] = []
    for user in users:
        history = sorted(texts.get(user, []), key=lambda t: (-t[0], t[1]))
        text = text_build.user_text([h[2] for h in history], user_text_max_chars)
        if text:
            vec_users.append(user)
            user_texts.append(text)
    return TrainFeatures(pic_count, n_train, item_texts, vec_users, user_texts, image_vectors)


def encode(encoder: Any, texts: list[str]) -> tuple[np.ndarray, dict]:
    """``encoder.encode(texts)`` checked: float32 [len(texts), dim > 0], finite; and its stats."""
    vectors = np.asarray(encoder.encode(texts), dtype=np.float32)
    if texts and (vectors.ndim != 2 or vectors.shape[0] != len(texts) or vectors.shape[1] == 0):
        raise ConversionError(f"text encoder returned shape {vectors.shape} for {len(texts)} texts")
    if vectors.size and not np.isfinite(vectors).all():
        raise ConversionError("text encoder returned NaN/inf vectors")
    stats = dict(getattr(encoder, "last_stats", {}) or {})
    return vectors, stats
