"""The generated input of bench_convert.py: a Google-Local-shaped reviews file and its meta file.

Shaped after a real file where one is given (``profile(path)``): the review texts' lengths are
drawn from the real texts' lengths (each generated text has the length of a real one), and the
user and business skew of the generator is printed beside the real file's (``skew``). Without a
real file (tests, a clone without the data) a lognormal fitted to google-local-hi-ms stands in.

    reviews, meta = generate("/tmp/bench_convert/1000000", 1_000_000, lengths=profile(REAL)["lengths"])
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os

import numpy as np

GENERATOR_VERSION = 3
#: Power-law exponents of the draws ``n * u ** e``: chosen so the top 1% / 10% of users and of
#: businesses hold about the share of reviews they hold in google-local-hi-ms (see ``skew``).
USER_EXPONENT = 1.6
ITEM_EXPONENT = 3.5
TEXT_SHARE = 0.65  # the real sample keeps texted reviews only; whole state files have many without

_WORDS = (
    "the food was great good amazing service friendly staff and place very nice we had a lovely time "
    "dinner lunch breakfast pizza sushi tacos burger coffee fresh hot cold slow fast price prices "
    "cheap expensive worth it will come back again recommend highly best ever in town not bad okay "
    "parking busy quiet clean dirty wait long short table menu dessert drinks beer wine cocktails "
    "portion portions big small delicious tasty bland salty sweet spicy owner manager rude kind"
).split()
_CATEGORIES = (
    "Pizza restaurant",
    "Sushi restaurant",
    "Mexican restaurant",
    "Cafe",
    "Italian restaurant",
    "Restaurant",
    "Thai restaurant",
    "Seafood restaurant",
    "Bar & grill",
    "Breakfast restaurant",
)
_OTHER = ("Gas station", "Hair salon", "Pharmacy", "Grocery store", "Bank", "Dentist", "Gym", "Car wash")


def skew(counts: np.ndarray) -> dict:
    """Share of all reviews held by the top 1% and top 10% (of those with any), and the median."""
    v = np.sort(np.asarray(counts)[np.asarray(counts) > 0])[::-1]
    total = max(1, int(v.sum()))
    return {
        "n": int(len(v)),
        "per": total / max(1, len(v)),
        "median": float(np.median(v)) if len(v) else 0.0,
        "top1": float(v[: max(1, len(v) // 100)].sum() / total),
        "top10": float(v[: max(1, len(v) // 10)].sum() / total),
    }


def profile(path: str, max_lines: int | None = None) -> dict:
    """A reviews file's text lengths (characters, texted reviews), text share and skew (of its
    first ``max_lines`` lines when given)."""
    lengths, users, items = [], {}, {}
    lines = 0
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if max_lines is not None and lines >= max_lines:
                break
            record = json.loads(line)
            lines += 1
            text = record.get("text")
            if text and text.strip():
                lengths.append(len(text))
            users[record["user_id"]] = users.get(record["user_id"], 0) + 1
            items[record["gmap_id"]] = items.get(record["gmap_id"], 0) + 1
    return {
        "lines": lines,
        "lengths": np.array(lengths, dtype=np.int64),
        "text_share": len(lengths) / max(1, lines),
        "users": skew(np.fromiter(users.values(), np.int64)),
        "items": skew(np.fromiter(items.values(), np.int64)),
    }


def _text(rng: np.random.Generator, chars: int) -> str:
    """Words from a small vocabulary, cut to exactly ``chars`` characters (at least 1)."""
    words, size = [], 0
    while size <= chars:  # the words joined are size - 1 characters long
        word = _WORDS[int(rng.integers(len(_WORDS)))]
        words.append(word)
        size += len(word) + 1
    return " ".join(words)[: max(1, chars)].capitalize()


def _meta(path: str, gmap: list[str], rng: np.random.Generator, lengths: np.ndarray) -> None:
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as out:
        for i, gid in enumerate(gmap):
            pool = _CATEGORIES if rng.random() < 0.7 else _OTHER  # the default filter keeps restaurants
            cats = [pool[j] for j in rng.choice(len(pool), size=int(rng.integers(1, 3)), replace=False)]
            record = {
                "name": f"Place {i}",
                "address": f"{i} Main St, Town, ST 00000",
                "gmap_id": gid,
                "description": _text(rng, int(rng.choice(lengths))) if rng.random() < 0.4 else None,
                "latitude": float(20 + rng.random()),
                "longitude": float(-156 + rng.random()),
                "category": cats,
                "avg_rating": 4.2,
                "num_of_reviews": 10,
                "price": "$" * int(rng.integers(1, 5)) if rng.random() < 0.6 else None,
                "hours": None,
                "MISC": {"Service options": ["Dine-in", "Takeout"]} if rng.random() < 0.7 else None,
                "state": "Open",
                "relative_results": None,
                "url": "https://example.com/place",
            }
            out.write(json.dumps(record) + "\n")


def _review_lines(start: int, m: int, ids: tuple[list[str], list[str]], rng, lengths: np.ndarray) -> list[str]:
    user_ids, gmap = ids
    users = (len(user_ids) * rng.random(m) ** USER_EXPONENT).astype(np.int64)
    items = (len(gmap) * rng.random(m) ** ITEM_EXPONENT).astype(np.int64)
    times = rng.integers(1_300_000_000_000, 1_630_000_000_000, m)
    ratings = rng.choice(5, m, p=(0.05, 0.04, 0.09, 0.2, 0.62)) + 1
    text_chars = rng.choice(lengths, m)
    draws = rng.random((m, 5))
    lines: list[str] = []
    for k in range(m):
        if draws[k, 0] < 0.005 and lines:
            lines.append(lines[-1])  # an exact repeat
            continue
        record = {
            "user_id": user_ids[users[k]],
            "name": "Some Person",
            "time": int(times[k]),
            "rating": None if draws[k, 2] < 0.003 else int(ratings[k]),
            "text": _text(rng, int(text_chars[k])) if draws[k, 3] < TEXT_SHARE else None,
            "pics": [{"url": [f"https://example.com/p/{k}.jpg"]}] if draws[k, 4] < 0.03 else None,
            "resp": {"time": int(times[k]) + 86_400_000, "text": "Thank you for your review!"}
            if draws[k, 4] > 0.95
            else None,
            "gmap_id": gmap[items[k]] if draws[k, 1] >= 0.01 else f"0xgone:0x{k + start:x}",
        }
        lines.append(json.dumps(record))
    return lines


def fallback_lengths(seed: int = 0, n: int = 10_000) -> np.ndarray:
    """Text lengths when no real file is at hand: a lognormal with google-local-hi-ms's median
    (67 characters) and spread, 20 to 4,000 characters."""
    return np.clip(np.random.default_rng(seed).lognormal(np.log(67), 0.95, n), 20, 4000).astype(np.int64)


def generate(workdir: str, n_lines: int, seed: int = 0, lengths: np.ndarray | None = None) -> tuple[str, str]:
    """Write reviews.json.gz (``n_lines`` lines) and meta.json.gz into ``workdir``, texts drawn
    with ``lengths`` (default :func:`fallback_lengths`); reuse them when a marker says they were
    made with the same size, seed, lengths and generator."""
    lengths = fallback_lengths() if lengths is None else np.asarray(lengths, dtype=np.int64)
    os.makedirs(workdir, exist_ok=True)
    reviews, meta = os.path.join(workdir, "reviews.json.gz"), os.path.join(workdir, "meta.json.gz")
    marker = os.path.join(workdir, "generated.json")
    spec = {
        "lines": n_lines,
        "seed": seed,
        "version": GENERATOR_VERSION,
        "lengths": hashlib.sha256(lengths.tobytes()).hexdigest()[:16],
    }
    if os.path.exists(marker) and os.path.exists(reviews) and os.path.exists(meta):
        with open(marker, encoding="utf-8") as handle:
            if json.load(handle) == spec:
                return reviews, meta
    rng = np.random.default_rng(seed)
    n_items, n_users = max(20, n_lines // 100), max(50, n_lines // 6)
    gmap = [f"0x{rng.integers(1 << 60):x}:0x{rng.integers(1 << 60):x}" for _ in range(n_items)]
    _meta(meta, gmap, rng, lengths)
    user_ids = [str(10**20 + int(rng.integers(1 << 62)) * 7) for _ in range(n_users)]  # 21 digits, as in the files
    chunk = 100_000
    with gzip.open(reviews, "wt", encoding="utf-8", compresslevel=1) as out:
        for start in range(0, n_lines, chunk):
            out.write(
                "\n".join(_review_lines(start, min(chunk, n_lines - start), (user_ids, gmap), rng, lengths)) + "\n"
            )
    with open(marker, "w", encoding="utf-8") as handle:
        json.dump(spec, handle)
    return reviews, meta
