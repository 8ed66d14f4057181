"""The exact texts fed to the sentence encoder, one per item and one per user.

Item text (business metadata only, never review text)::

    "<name>. Categories: <c1>, <c2>. Price: <$$>. <description> <MISC key>: <v1>, <v2>. ..."

Parts that are missing are left out (no "Price:" when the price is unknown, and so on).

User text: the user's own review texts from the TRAIN split, newest first (ties broken by the
order given), whitespace collapsed, joined by newlines, and cut at ``max_chars`` characters
(whole reviews are kept while they fit; if even the newest review is longer than the cap it is
cut at the last space before the cap). Which reviews count as "train" is the caller's business:
the converter passes train reviews only.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

#: Default character cap of a user's text: about 130 word pieces of English. all-MiniLM-L6-v2
#: was trained on sequences of 128 word pieces (it cuts input at 256), so longer profiles add
#: encoding time (linear in length) for little gain.
DEFAULT_USER_TEXT_MAX_CHARS = 600

_SPACE = re.compile(r"\s+")


def clean(text: str) -> str:
    """Collapse every run of whitespace (newlines, tabs) into one space and strip the ends."""
    return _SPACE.sub(" ", text).strip()


def _flatten(value: Any) -> str:
    """Readable text of a MISC value: lists joined by ', ', scalars as str, dicts/None skipped."""
    if value is None or isinstance(value, Mapping):
        return ""
    if isinstance(value, (list, tuple)):
        parts = [clean(str(v)) for v in value if v is not None and not isinstance(v, (Mapping, list, tuple))]
        return ", ".join(p for p in parts if p)
    return clean(str(value))


def _sentence(text: str) -> str:
    text = clean(text)
    if text and text[-1] not in ".!?":
        text += "."
    return text


def item_text(
    name: str,
    categories: Iterable[str] | None = None,
    price: str | None = None,
    description: str | None = None,
    misc: Mapping[str, Any] | None = None,
    extra: str | None = None,
) -> str:
    """Text describing one business, built from its metadata (see module docstring).

    ``extra`` is appended as "Photos: <extra>." -- the slot for an image captioner.
    """
    parts = [_sentence(name)]
    cats = [clean(c) for c in (categories or []) if isinstance(c, str) and clean(c)]
    if cats:
        parts.append("Categories: " + ", ".join(cats) + ".")
    if price:
        parts.append(f"Price: {price}.")
    if description and clean(description):
        parts.append(_sentence(description))
    for key, value in (misc or {}).items():
        flat = _flatten(value)
        if flat:
            parts.append(f"{clean(str(key))}: {flat}.")
    if extra and clean(extra):
        parts.append("Photos: " + _sentence(extra))
    return " ".join(p for p in parts if p)


def user_text(texts_newest_first: Iterable[str], max_chars: int = DEFAULT_USER_TEXT_MAX_CHARS) -> str:
    """One text for a user from their own (train) reviews; ``""`` if none has any content."""
    if max_chars <= 0:
        raise ValueError(f"max_chars must be positive, got {max_chars}")
    kept: list[str] = []
    used = 0
    for raw in texts_newest_first:
        text = clean(raw) if raw else ""
        if not text:
            continue
        extra = len(text) + (1 if kept else 0)
        if used + extra <= max_chars:
            kept.append(text)
            used += extra
            continue
        if not kept:  # the newest review alone is too long: cut it at a word boundary
            cut = text[:max_chars]
            space = cut.rfind(" ")
            kept.append(cut[:space] if space > 0 else cut)
        break
    return "\n".join(kept)
