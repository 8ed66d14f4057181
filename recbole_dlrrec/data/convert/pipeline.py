"""``convert``: read -> split (+ k-core) -> train-only features -> encode -> write, in that order.

The same steps for every source; a source (``recbole_dlrrec.data.convert.source.Source``) only
says how its lines become neutral records.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

from recbole_dlrrec import atomic
from recbole_dlrrec.data.convert import features as feat
from recbole_dlrrec.data.convert import history as hist
from recbole_dlrrec.data.convert import review_means as means
from recbole_dlrrec.data.convert import split as splitting
from recbole_dlrrec.data.convert import write
from recbole_dlrrec.data.convert.options import IMAGE_ENCODERS, ConvertOptions
from recbole_dlrrec.data.convert.reading import fetch_texts, read_meta, read_reviews
from recbole_dlrrec.data.convert.records import ConversionError
from recbole_dlrrec.data.convert.source import Source
from recbole_dlrrec.data.dataset_folder import DatasetFolder


def convert(
    source: Source,
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
    """Convert ``source``'s two files into ``<out_dir>/<name>/`` and return the report dict.

    ``options`` (default ``ConvertOptions()``) may be given field by field as keywords
    (``convert(source, r, m, "x", split="random")``; each source's package has this function
    bound to its source: ``google_local.convert(r, m, "x", ...)``). ``encoder`` may be any object with
    ``encode(list[str]) -> float32 [n, dim]``; by default a TextEncoder over
    ``options.encoder_model`` with its cache at ``options.encoder_cache`` (default
    ``<out_dir>/.encoder_cache/vectors.sqlite``). ``provenance`` (e.g. the generator and seed of
    generated input) is stored as ``source`` in the report.

    Checked before any input is read: the options, the name, and the output folder (see
    recbole_dlrrec.data.dataset_folder: only a dataset this tool wrote is ever replaced).
    """
    started = time.perf_counter()
    opts = dataclasses.replace(options or ConvertOptions(), **option_overrides)
    opts = opts.with_source_defaults(source.default_category_filter)
    opts.validate()
    image_fn = IMAGE_ENCODERS[opts.image_encoder]
    with DatasetFolder(out_dir, name, force=opts.force) as folder:
        businesses, filtered, meta_tally = read_meta(
            source, meta_path, opts.category_filter, opts.strict, opts.show_progress, opts.max_line_bytes
        )
        meta_tally.check_invariant()
        if not businesses:
            raise ConversionError(
                f"{meta_path}: no business left after filtering: {meta_tally.dropped.get('category_filter', 0)} "
                f"dropped by category_filter={opts.category_filter!r}, other drops {dict(meta_tally.dropped)}"
            )
        reviews, review_tally = read_reviews(
            source,
            reviews_path,
            businesses,
            filtered,
            opts.strict,
            opts.show_progress,
            max_line_bytes=opts.max_line_bytes,
        )
        review_tally.check_invariant()
        if not reviews:
            raise ConversionError(
                f"{reviews_path}: no review left after filtering ({review_tally.lines_read} lines read; "
                f"dropped: {dict(sorted(review_tally.dropped.items()))})"
            )
        parts = splitting.split_reviews(reviews, opts.split, opts.ratios, opts.seed)
        core_stats = None
        if opts.k_core is not None:
            parts, core_stats = splitting.k_core(parts, opts.k_core)

        check_both_labels(parts, opts.label_threshold, reviews_path)
        splitting.check_unique_pairs(parts)  # a (user, item) pair names one row: the history file's key

        # Pass 2: the texts (and, for an image encoder, picture links) of the train rows that
        # feed a feature (a user text, or a history text of a later train row); everything
        # else was never held.
        train = parts["train"]
        mean = opts.user_vector == "mean"  # every train review's text is encoded once (review_means.py)
        with_text = means.review_rows(train) if mean else hist.user_text_rows(train, opts.user_text_max_chars)
        concat_history = opts.user_history and not mean
        history_rows = hist.history_text_rows(train, opts.user_text_max_chars) if concat_history else []
        with_pics = [r for r in train if r.n_pics] if image_fn is not None else []
        # A user text holds at most user_text_max_chars characters of any review, so each text is
        # kept cleaned and cut at cap + 2: user_text then decides and cuts exactly as on the whole
        # text (a longer text still does not fit, even if its cut ends in a space that it strips),
        # and memory holds at most that much per fetched review.
        fetch_texts(
            source,
            reviews_path,
            with_text + history_rows,
            with_pics,
            opts.show_progress,
            keep_chars=opts.user_text_max_chars + 2,
            max_line_bytes=opts.max_line_bytes,
        )
        train.keep_fetched(with_text + history_rows + with_pics)  # the rows read from train see them
        del with_pics

        items = [train.item_ids[i] for i in np.unique(np.concatenate([p.arrays["item"] for p in parts.values()]))]
        users = [train.user_ids[u] for u in np.unique(np.concatenate([p.arrays["user"] for p in parts.values()]))]
        # The leakage boundary: features see the train rows and nothing else.
        features = feat.train_features(
            parts["train"], businesses, items, users, opts.user_text_max_chars, image_fn, opts.image_encoder
        )
        history = hist.user_history(train, opts.user_text_max_chars) if concat_history else None
        texts = means.review_texts(with_text, opts.user_text_max_chars) if mean else []
        train.texts.clear()  # the features hold what they need; the raw texts go
        for r in with_text + history_rows:
            r.text = None
        composed: dict = {}
        if mean:
            item_vecs, user_vecs, composed, encoder_info = _encode_means(
                encoder, features, with_text, texts, train, opts, out_dir
            )
        else:
            item_vecs, user_vecs, history_vecs, encoder_info = _encode_all(encoder, features, history, opts, out_dir)

        with folder.writing():
            written = write.write_dataset(
                folder,
                source,
                name,
                parts,
                businesses,
                items,
                users,
                features,
                item_vecs,
                user_vecs,
                opts.label_threshold,
                opts.include_leaky_meta,
            )
            if history is not None:
                write.write_user_history(folder, name, history, history_vecs, written["dim"])
            if composed:
                if opts.user_history:
                    write.write_row_vectors(folder, name, write.USER_HIST_SUFFIX, composed["user"])
                write.write_item_reviews(folder, name, composed["item"])
            report = _report(
                name,
                provenance,
                opts,
                meta_tally,
                review_tally,
                businesses,
                items,
                users,
                features,
                written,
                core_stats,
                encoder_info,
                history,
                composed,
            )
            report["seconds"] = time.perf_counter() - started
            atomic.write_text(folder.file("REPORT.md"), write.report_markdown(report, source))
        report = folder.commit(report)
    return report


def check_both_labels(parts: dict, label_threshold: float, reviews_path: str) -> None:
    """Refuse (ConversionError) a dataset whose rows all have one label: AUC, the metric that
    selects models, is undefined on it, and a model trained on one label learns nothing. A
    single split with one label is warned about in the report instead (``one_label_warnings``),
    and training refuses that split (runtime/quick_start.py). ``parts``: split -> ReviewColumns."""
    n_rows = sum(len(rows) for rows in parts.values())
    positives = sum(int((rows.arrays["rating"] >= label_threshold).sum()) for rows in parts.values())
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


@contextlib.contextmanager
def _opened(encoder: Any, opts: ConvertOptions, out_dir: str) -> Iterator[Any]:
    """``encoder``, or (None) a TextEncoder of the options, closed on the way out."""
    if encoder is not None:
        yield encoder
        return
    from recbole_dlrrec.data.encoder import TextEncoder

    own = TextEncoder(
        model_path=opts.encoder_model,
        batch_size=opts.encoder_batch_size,
        device=opts.encoder_device,
        cache_path=opts.encoder_cache or os.path.join(out_dir, ".encoder_cache", "vectors.sqlite"),
        show_progress=opts.show_progress,
        workers=opts.encoder_workers,
        backend=opts.encoder_backend,
        ray_address=opts.ray_address,
        ray_actors=opts.encoder_ray_actors,
    )
    try:
        yield own
    finally:
        own.close()


def _encode_means(encoder: Any, features: feat.TrainFeatures, rows: list, texts: list, train: Sequence, opts, out_dir):
    """``user_vector: mean``: (item, user vectors, {"user", "item": Composed}, report info). The
    item metadata texts and each train review's text (``texts``, of ``rows``) are encoded; user
    vectors, per-row histories and item review vectors are means of the review vectors."""
    with _opened(encoder, opts, out_dir) as encoder:
        item_vecs, item_stats = feat.encode(encoder, features.item_texts)
        review_vecs, review_stats = feat.encode(encoder, texts)
    if not texts:
        review_vecs = np.zeros((0, item_vecs.shape[1]), dtype=np.float32)
    if review_vecs.shape[1] != item_vecs.shape[1]:
        raise ConversionError("text encoder returned different widths for item and review texts")
    composed = {
        "user": means.compose_side("user", rows, review_vecs, train, with_rows=opts.user_history),
        "item": means.compose_side("item", rows, review_vecs, train),
    }
    user_full = dict(zip(composed["user"].full_ids, composed["user"].full))
    if set(user_full) != set(features.vec_users):
        raise ConversionError("internal: the users with review vectors are not the users with a user text")
    user_vecs = np.asarray([user_full[u] for u in features.vec_users], dtype=np.float32)
    info = {
        "encoder": getattr(encoder, "model_id", type(encoder).__name__),
        "cached": item_stats.get("cached", 0) + review_stats.get("cached", 0),
        "encoded": item_stats.get("encoded", len(features.item_texts)) + review_stats.get("encoded", len(texts)),
        "reviews": {
            "texts": len(texts),
            "cached": review_stats.get("cached", 0),
            "encoded": review_stats.get("encoded", len(texts)),
        },
    }
    return item_vecs, user_vecs.reshape(len(features.vec_users), item_vecs.shape[1]), composed, info


def _encode_all(
    encoder: Any, features: feat.TrainFeatures, history: Optional[hist.UserHistory], opts: ConvertOptions, out_dir: str
):
    """(item, user, history vectors, report info): one encoder (and so one cache) for every text."""
    with _opened(encoder, opts, out_dir) as encoder:
        item_vecs, item_stats = feat.encode(encoder, features.item_texts)
        user_vecs, user_stats = feat.encode(encoder, features.user_texts)
        history_vecs, history_stats = feat.encode(encoder, history.texts if history is not None else [])
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


def _report(
    name,
    provenance,
    opts,
    meta_tally,
    review_tally,
    businesses,
    items,
    users,
    features,
    written,
    core_stats,
    encoder_info,
    history,
    composed,
) -> dict:
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
        "vectors": {
            "items": len(items),
            "users": len(features.vec_users),
            "dim": written["dim"],
            **{k: v for k, v in encoder_info.items() if k not in ("history", "reviews")},
        },
        "user_history": _history_report(name, history, composed, encoder_info, opts),
        **({"review_vectors": means.report(name, composed, encoder_info)} if composed else {}),
        "leakage_guards": [
            "valid/test review text feeds no feature",
            "user text vectors and n_train_reviews from train rows only",
            *(["a train row's history text holds its user's strictly earlier train reviews only"] if history else []),
            *(means.LEAKAGE_GUARDS if composed else []),
            "pic_count from train reviews only",
            *(["k-core counted on train rows only"] if core_stats else []),
            "avg_rating/num_of_reviews " + ("INCLUDED (LEAKY, all-time)" if opts.include_leaky_meta else "excluded"),
        ],
    }
    return report


def _history_report(name: str, history, composed: dict, encoder_info: dict, opts: ConvertOptions) -> Optional[dict]:
    """The report's ``user_history``: the file and its rows; texts encoded for it (concat) or
    vectors composed (mean); None when it was not written."""
    if history is not None:
        rows, extra = history.row, {"texts": len(history.texts), **encoder_info["history"]}
    elif composed and opts.user_history:
        rows, extra = composed["user"].row, {"vectors": len(composed["user"].vectors), "composed": "mean"}
    else:
        return None
    with_history = sum(1 for r in rows if r >= 0)
    return {
        "file": f"{name}.{write.USER_HIST_SUFFIX}.npz",
        "train_rows_with_history": with_history,
        "train_rows_without_history": len(rows) - with_history,
        **extra,
    }


def converter(source: Source) -> Callable[..., dict]:
    """``convert`` bound to ``source``: ``fn(reviews_path, meta_path, name, out_dir="dataset",
    options=None, **keywords) -> report``, the keywords those of :func:`convert`."""

    def convert_source(
        reviews_path: str,
        meta_path: str,
        name: str,
        out_dir: str = "dataset",
        options: Optional[ConvertOptions] = None,
        **keywords: Any,
    ) -> dict:
        return convert(source, reviews_path, meta_path, name, out_dir, options, **keywords)

    convert_source.__name__ = convert_source.__qualname__ = "convert"
    convert_source.__doc__ = (
        f"Convert {source.title} reviews + business data into ``<out_dir>/<name>/`` "
        "(recbole_dlrrec.data.convert.pipeline.convert, bound to this source)."
    )
    return convert_source
