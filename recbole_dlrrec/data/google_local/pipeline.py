"""``convert``: read -> split (+ k-core) -> train-only features -> encode -> write, in that order."""
from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from recbole_dlrrec import atomic
from recbole_dlrrec.data import text_build
from recbole_dlrrec.data.dataset_folder import DatasetFolder
from recbole_dlrrec.data.google_local import features as feat
from recbole_dlrrec.data.google_local import write
from recbole_dlrrec.data.google_local.read import (
    DEFAULT_MAX_LINE_BYTES,
    ConversionError,
    fetch_texts,
    read_meta,
    read_reviews,
)

DEFAULT_RATIOS = (0.8, 0.1, 0.1)
DEFAULT_LABEL_THRESHOLD = 4.0
DEFAULT_CATEGORY_FILTER = "restaurant"
DEFAULT_SEED = 2026

ImageEncoder = Callable[[dict, list], Any]
#: Registry of image encoders: name -> callable, or None for "off". See the package docstring.
IMAGE_ENCODERS: dict[str, Optional[ImageEncoder]] = {"none": None}


def register_image_encoder(name: str, fn: ImageEncoder) -> None:
    """Make ``fn`` selectable as ``--image_encoder name``."""
    if not name or name == "none":
        raise ValueError("image encoder name must be non-empty and not 'none'")
    IMAGE_ENCODERS[name] = fn


@dataclass(frozen=True)
class ConvertOptions:
    """How to convert (each is also a ``--flag`` of the command line).

    Args:
        split: "time" (cut the global timeline) or "random" (seeded shuffle).
        ratios: train/valid/test shares, positive, summing to 1.
        seed: seed of the random split.
        label_threshold: label = 1 when rating >= this; must be in (1, 5] so both labels can occur.
        category_filter: keep businesses with a category containing this text (case-insensitive);
            None keeps all.
        strict: malformed or incomplete lines are fatal (file:line) instead of counted.
        include_leaky_meta: also write avg_rating / num_of_reviews (LEAKY: all-time values).
        user_text_max_chars: cap of a user's profile text.
        k_core: keep users and businesses with at least this many TRAIN reviews (None: all).
        user_history: also write NAME.userhist.npz (a text per train row from its user's earlier
            reviews: one encoder call per train row with history, the slowest part of a build).
        encoder_model / encoder_cache / encoder_batch_size / encoder_device: the default
            TextEncoder's settings (device "auto": the GPU when torch sees one, else the CPU).
        image_encoder: a name in IMAGE_ENCODERS ("none": off).
        max_line_bytes: a longer input line is skipped unread and counted (``line_too_long``),
            so one huge line cannot take the memory of many.
        force: delete files the converter did not write inside an existing OUT/NAME of its own
            (refused by default, naming them; dataset_folder.py).
        show_progress: progress bars.
    """

    split: str = "time"
    ratios: Sequence[float] = DEFAULT_RATIOS
    seed: int = DEFAULT_SEED
    label_threshold: float = DEFAULT_LABEL_THRESHOLD
    category_filter: Optional[str] = DEFAULT_CATEGORY_FILTER
    strict: bool = False
    include_leaky_meta: bool = False
    user_text_max_chars: int = text_build.DEFAULT_USER_TEXT_MAX_CHARS
    k_core: Optional[int] = None
    user_history: bool = True
    encoder_model: Optional[str] = None
    encoder_cache: Optional[str] = None
    encoder_batch_size: int = 64
    encoder_device: str = "auto"
    image_encoder: str = "none"
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    force: bool = False
    show_progress: bool = True

    def validate(self) -> None:
        """Every option checked before any input is read (one-line ConversionError)."""
        if self.image_encoder not in IMAGE_ENCODERS:
            raise ConversionError(f"unknown image encoder {self.image_encoder!r}; known: {sorted(IMAGE_ENCODERS)}")
        if self.split not in ("time", "random"):
            raise ConversionError(f"split must be 'time' or 'random', got {self.split!r}")
        feat.check_ratios(self.ratios)
        t = self.label_threshold
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t) or not 1 < t <= 5:
            raise ConversionError(
                f"label_threshold must be in (1, 5] (ratings are 1-5; label = rating >= threshold), got {t!r}: "
                "anything else gives a dataset with no positive or no negative row"
            )
        if self.user_text_max_chars <= 0:
            raise ConversionError(f"user_text_max_chars must be positive, got {self.user_text_max_chars}")
        if self.k_core is not None and (isinstance(self.k_core, bool) or not isinstance(self.k_core, int)
                                        or self.k_core < 1):
            raise ConversionError(f"k_core must be a positive integer, got {self.k_core!r}")
        if isinstance(self.max_line_bytes, bool) or not isinstance(self.max_line_bytes, int) or self.max_line_bytes < 1:
            raise ConversionError(f"max_line_bytes must be a positive integer, got {self.max_line_bytes!r}")
        if self.encoder_batch_size <= 0:
            raise ConversionError(f"encoder_batch_size must be positive, got {self.encoder_batch_size}")
        if self.encoder_device != "auto":
            from recbole_dlrrec.data.encoder import resolve_device

            resolve_device(self.encoder_device)  # an unknown or absent device fails before any input is read

    def params(self) -> dict:
        """The options that shape the dataset, as stored in the report."""
        return {
            "split": self.split,
            "ratios": list(self.ratios),
            "seed": self.seed,
            "label_threshold": self.label_threshold,
            "category_filter": self.category_filter,
            "strict": self.strict,
            "include_leaky_meta": self.include_leaky_meta,
            "user_text_max_chars": self.user_text_max_chars,
            "image_encoder": self.image_encoder,
            "k_core": self.k_core,
            "max_line_bytes": self.max_line_bytes,
        }


def convert(
    reviews_path: str,
    meta_path: str,
    name: str,
    out_dir: str = "dataset",
    options: Optional[ConvertOptions] = None,
    *,
    encoder: Any = None,
    provenance: Optional[dict] = None,
    **option_overrides: Any,
) -> dict:
    """Convert Google Local files into ``<out_dir>/<name>/`` and return the report dict.

    ``options`` (default ``ConvertOptions()``) may be given field by field as keywords
    (``convert(r, m, "x", split="random")``). ``encoder`` may be any object with
    ``encode(list[str]) -> float32 [n, dim]``; by default a TextEncoder over
    ``options.encoder_model`` with its cache at ``options.encoder_cache`` (default
    ``<out_dir>/.encoder_cache/vectors.sqlite``). ``provenance`` (e.g. the generator and seed of
    generated input) is stored as ``source`` in the report.

    Checked before any input is read: the options, the name, and the output folder (see
    recbole_dlrrec.data.dataset_folder: only a dataset this tool wrote is ever replaced).
    """
    started = time.perf_counter()
    opts = dataclasses.replace(options or ConvertOptions(), **option_overrides)
    opts.validate()
    image_fn = IMAGE_ENCODERS[opts.image_encoder]
    with DatasetFolder(out_dir, name, force=opts.force) as folder:
        businesses, filtered, meta_tally = read_meta(meta_path, opts.category_filter, opts.strict, opts.show_progress,
                                                     opts.max_line_bytes)
        meta_tally.check_invariant()
        if not businesses:
            raise ConversionError(
                f"{meta_path}: no business left after filtering: {meta_tally.dropped.get('category_filter', 0)} "
                f"dropped by category_filter={opts.category_filter!r}, other drops {dict(meta_tally.dropped)}"
            )
        reviews, review_tally = read_reviews(reviews_path, businesses, filtered, opts.strict, opts.show_progress,
                                             max_line_bytes=opts.max_line_bytes)
        review_tally.check_invariant()
        if not reviews:
            raise ConversionError(
                f"{reviews_path}: no review left after filtering ({review_tally.lines_read} lines read; "
                f"dropped: {dict(sorted(review_tally.dropped.items()))})"
            )
        parts = feat.split_reviews(reviews, opts.split, opts.ratios, opts.seed)
        core_stats = None
        if opts.k_core is not None:
            parts, core_stats = feat.k_core(parts, opts.k_core)

        check_both_labels(parts, opts.label_threshold, reviews_path)
        feat.check_unique_pairs(parts)  # a (user, item) pair names one row: the history file's key

        # Pass 2: the texts (and, for an image encoder, picture links) of the train rows that
        # feed a feature (a user text, or a history text of a later train row); everything
        # else was never held.
        train = parts["train"]
        with_text = feat.user_text_rows(train, opts.user_text_max_chars)
        history_rows = feat.history_text_rows(train, opts.user_text_max_chars) if opts.user_history else []
        # A user text holds at most user_text_max_chars characters of any review, so each text is
        # kept cleaned and cut at cap + 2: user_text then decides and cuts exactly as on the whole
        # text (a longer text still does not fit, even if its cut ends in a space that it strips),
        # and memory holds at most that much per fetched review.
        fetch_texts(reviews_path, with_text + history_rows,
                    [r for r in train if r.n_pics] if image_fn is not None else [], opts.show_progress,
                    keep_chars=opts.user_text_max_chars + 2, max_line_bytes=opts.max_line_bytes)

        items = sorted({r.item for rows in parts.values() for r in rows})
        users = sorted({r.user for rows in parts.values() for r in rows})
        # The leakage boundary: features see the train rows and nothing else.
        features = feat.train_features(
            parts["train"], businesses, items, users, opts.user_text_max_chars, image_fn, opts.image_encoder
        )
        history = feat.user_history(train, opts.user_text_max_chars) if opts.user_history else None
        for r in with_text + history_rows:  # the features hold what they need; the raw texts go
            r.text = None
        item_vecs, user_vecs, history_vecs, encoder_info = _encode_all(encoder, features, history, opts, out_dir)

        with folder.writing():
            written = write.write_dataset(
                folder, name, parts, businesses, items, users, features, item_vecs, user_vecs,
                opts.label_threshold, opts.include_leaky_meta,
            )
            if history is not None:
                write.write_user_history(folder, name, history, history_vecs, written["dim"])
            report = _report(name, provenance, opts, meta_tally, review_tally, businesses, items, users,
                             features, written, core_stats, encoder_info, history)
            report["seconds"] = time.perf_counter() - started
            atomic.write_text(folder.file("REPORT.md"), write.report_markdown(report))
        report = folder.commit(report)
    return report


def check_both_labels(parts: dict, label_threshold: float, reviews_path: str) -> None:
    """Refuse (ConversionError) a dataset whose rows all have one label: AUC, the metric that
    selects models, is undefined on it, and a model trained on one label learns nothing. A
    single split with one label is warned about in the report instead (``one_label_warnings``),
    and training refuses that split (runtime/quick_start.py). ``parts``: split -> list of Review."""
    n_rows = sum(len(rows) for rows in parts.values())
    positives = sum(1 for rows in parts.values() for r in rows if r.rating >= label_threshold)
    if n_rows and positives in (0, n_rows):
        label, compare = (1, ">=") if positives else (0, "<")
        raise ConversionError(
            f"{reviews_path}: every kept review ({n_rows}) has label {label} (rating {compare} "
            f"label_threshold={label_threshold:g}): AUC needs both labels; choose another "
            "--label_threshold or add reviews"
        )


def one_label_warnings(splits: dict) -> list[str]:
    """A warning per split (``splits``: name -> the report's split stats) whose rows all have
    one label: training and evaluation refuse such a split (AUC is undefined on it)."""
    return [
        f"the {split} split has {stats['interactions']} row(s), all with label "
        f"{1 if stats['positives'] else 0}: training and evaluation refuse it (AUC needs both labels)"
        for split, stats in splits.items()
        if stats["positives"] in (0, stats["interactions"])
    ]


def _encode_all(encoder: Any, features: feat.TrainFeatures, history: feat.UserHistory, opts: ConvertOptions,
                out_dir: str):
    """(item, user, history vectors, report info): one encoder (and so one cache) for every text."""
    own_encoder = None
    if encoder is None:
        from recbole_dlrrec.data.encoder import TextEncoder

        own_encoder = encoder = TextEncoder(
            model_path=opts.encoder_model,
            batch_size=opts.encoder_batch_size,
            device=opts.encoder_device,
            cache_path=opts.encoder_cache or os.path.join(out_dir, ".encoder_cache", "vectors.sqlite"),
            show_progress=opts.show_progress,
        )
    try:
        item_vecs, item_stats = feat.encode(encoder, features.item_texts)
        user_vecs, user_stats = feat.encode(encoder, features.user_texts)
        history_vecs, history_stats = feat.encode(encoder, history.texts if history is not None else [])
    finally:
        if own_encoder is not None:
            own_encoder.close()
    for vecs in (user_vecs, history_vecs):
        if vecs.size and vecs.shape[1] != item_vecs.shape[1]:
            raise ConversionError("text encoder returned different widths for item and user texts")
    info = {
        "encoder": getattr(encoder, "model_id", type(encoder).__name__),
        "cached": item_stats.get("cached", 0) + user_stats.get("cached", 0),
        "encoded": item_stats.get("encoded", len(features.item_texts))
        + user_stats.get("encoded", len(features.user_texts)),
        "history": {
            "cached": history_stats.get("cached", 0),
            "encoded": history_stats.get("encoded", len(history.texts) if history is not None else 0),
        },
    }
    return item_vecs, user_vecs, history_vecs, info


def _report(name, provenance, opts, meta_tally, review_tally, businesses, items, users, features, written,
            core_stats, encoder_info, history) -> dict:
    stats = written["splits"]
    n_all = sum(s["interactions"] for s in stats.values())
    n_pos = sum(s["positives"] for s in stats.values())
    report = {
        "name": name,
        "source": provenance,
        "params": opts.params(),
        "meta": meta_tally.as_dict(),
        "reviews": review_tally.as_dict(),
        "businesses_without_kept_reviews": len(businesses) - len(items),
        "numeric_fields_left_out": written["numeric_fields_left_out"],
        "k_core": core_stats,
        "splits": stats,
        "warnings": one_label_warnings(stats),
        "totals": {
            "interactions": n_all,
            "users": len(users),
            "items": len(items),
            "positives": n_pos,
            "negatives": n_all - n_pos,
            "positive_to_negative": n_pos / max(1, n_all - n_pos),
            "text_share": sum(s["rows_with_text"] for s in stats.values()) / n_all,
        },
        "vectors": {"items": len(items), "users": len(features.vec_users), "dim": written["dim"],
                    **{k: v for k, v in encoder_info.items() if k != "history"}},
        "user_history": None if history is None else {
            "file": f"{name}.{write.USER_HIST_SUFFIX}.npz",
            "train_rows_with_history": history.with_history,
            "train_rows_without_history": len(history.row) - history.with_history,
            "texts": len(history.texts),
            **encoder_info["history"],
        },
        "leakage_guards": [
            "valid/test review text feeds no feature",
            "user text vectors and n_train_reviews from train rows only",
            *(["a train row's history text holds its user's strictly earlier train reviews only"] if history else []),
            "pic_count from train reviews only",
            *(["k-core counted on train rows only"] if core_stats else []),
            "avg_rating/num_of_reviews "
            + ("INCLUDED (LEAKY, all-time)" if opts.include_leaky_meta else "excluded"),
        ],
    }
    return report
