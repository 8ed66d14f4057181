"""Writing: the atomic files, NAME.yaml and the report, into a :class:`DatasetFolder`.

Every file goes through ``recbole_dlrrec.atomic``; the folder is swapped into place by
``recbole_dlrrec.data.dataset_folder`` once everything is written.
"""

from __future__ import annotations

import zipfile
from typing import Iterable, Iterator, Sequence

import numpy as np

from recbole_dlrrec import atomic
from recbole_dlrrec.data.convert.columns import ReviewColumns
from recbole_dlrrec.data.convert.records import Business
from recbole_dlrrec.data.convert.source import Source
from recbole_dlrrec.data.convert.split import SPLITS
from recbole_dlrrec.data.side_files import (
    ITEM_IMAGE_VEC_SUFFIX,
    ITEM_REV_HIST_SUFFIX,
    ITEM_REV_SUFFIX,
    ITEM_VEC_SUFFIX,
    USER_HIST_SUFFIX,
    USER_VEC_SUFFIX,
)

INTER_HEADER = ("user_id:token", "item_id:token", "rating:float", "label:float", "timestamp:float")
ITEM_HEADER = (
    "item_id:token",
    "price:token",
    "categories:token_seq",
    "latitude:float",
    "longitude:float",
    "pic_count:float",
)
LEAKY_ITEM_HEADER = ("avg_rating:float", "num_of_reviews:float")
USER_HEADER = ("user_id:token", "n_train_reviews:float")


def _fmt_float(value: float | None) -> str:
    if value is None:
        return ""
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _tsv(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["\t".join(header)]
    lines.extend("\t".join(r) for r in rows)
    return "\n".join(lines) + "\n"


def write_tsv(path: str, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """The bytes of ``_tsv(header, rows)`` written row by row (atomically): an interaction file
    of millions of rows never exists as one string or one list of rows in memory."""
    with atomic.atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            handle.write("\t".join(header) + "\n")
            handle.writelines("\t".join(row) + "\n" for row in rows)


def save_npz(path: str, **arrays: np.ndarray) -> None:
    """Write an uncompressed .npz with fixed zip timestamps (same arrays -> same bytes), atomically."""
    with atomic.atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            for key, array in arrays.items():
                info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                with archive.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def _field_names(header: Sequence[str], kind: str | None = None) -> list[str]:
    """Field names of an atomic header, optionally only those of one RecBole type."""
    pairs = [column.split(":", 1) for column in header]
    return [name for name, typ in pairs if kind is None or typ == kind]


def _drop_constant_numeric(
    header: Sequence[str], rows: Sequence[Sequence[str]]
) -> tuple[tuple[str, ...], list[list[str]], dict[str, str]]:
    """(header, rows, left_out) without the float columns that hold fewer than two distinct
    values; ``left_out`` maps each removed field to why ("all missing" or "constant: V")."""
    left_out: dict[str, str] = {}
    keep = []
    for index, column in enumerate(header):
        name, _, typ = column.partition(":")
        values = {row[index] for row in rows if row[index] != ""} if typ == "float" else None
        if values is not None and len(values) < 2:
            left_out[name] = "all missing" if not values else f"constant: {next(iter(values))}"
        else:
            keep.append(index)
    return (tuple(header[i] for i in keep), [[row[i] for i in keep] for row in rows], left_out)


def _yaml_text(
    source: Source,
    name: str,
    item_header: Sequence[str],
    user_header: Sequence[str],
    include_leaky_meta: bool,
    has_image_vectors: bool,
) -> str:
    item_cols = _field_names(item_header)
    user_cols = _field_names(user_header)
    numeric = _field_names(item_header, "float") + _field_names(user_header, "float")
    leaky_note = (
        f"\n# LEAKY: avg_rating and num_of_reviews are {source.leaky_owner} all-time figures (valid/test included);"
        "\n# this dataset was built with --include_leaky_meta for experiments only."
        if include_leaky_meta
        else ""
    )
    image_line = (
        f"item_image_vec: {ITEM_IMAGE_VEC_SUFFIX}    # (str) Side file {name}.{ITEM_IMAGE_VEC_SUFFIX}.npz with image "
        "vectors (ids, vectors).\n"
        if has_image_vectors
        else ""
    )
    return f"""# RecBole settings for dataset '{name}', written by {source.module}.
# Rebuild with the converter instead of editing by hand.{leaky_note}
field_separator: "\\t"           # (str) Atomic files are tab-separated.
seq_separator: " "              # (str) categories (token_seq) holds space-separated tokens.
USER_ID_FIELD: user_id          # (str) User token = {source.user_token}.
ITEM_ID_FIELD: item_id          # (str) Item token = {source.item_token}.
LABEL_FIELD: label              # (str) 1 if rating >= the converter's label_threshold, else 0 (precomputed).
TIME_FIELD: timestamp           # (str) ms since epoch; in the .inter files but not loaded (the split is fixed).
threshold: ~                    # (dict) Labels are already in the files: RecBole must not derive them.
load_col:                       # (dict) Columns RecBole loads; rating and timestamp stay out (rating is the label's source).
  inter: [user_id, item_id, label]
  item: [{", ".join(item_cols)}]
  user: [{", ".join(user_cols)}]
numerical_features: [{", ".join(numeric)}]   # (list) Float fields the context models embed.
normalize_field: [{", ".join(numeric)}]   # (list) Min-max scaled by RecBole; text vectors are side files, untouched.
benchmark_filename: [train, valid, test]   # (list) Pre-split {name}.train/valid/test.inter files.
eval_args:                      # (dict) No split key on purpose: the benchmark files are the split.
  group_by: ~
  order: TO
  mode: labeled
train_neg_sample_args: ~        # (dict) Negatives are real low ratings, not sampled.
metrics: [AUC, PRAUC, LogLoss, Accuracy, FPR, Precision, Recall, F1]  # (list) Value metrics (precision/recall are the classification ones; PRAUC = average precision).
valid_metric: AUC               # (str) Early stopping and model selection use validation AUC.
eval_batch_size: 4096           # (int) Rows per evaluation batch.
item_text_vec: {ITEM_VEC_SUFFIX}           # (str) Side file {name}.{ITEM_VEC_SUFFIX}.npz: item text vectors ({source.item_text_parts}).
user_text_vec: {USER_VEC_SUFFIX}           # (str) Side file {name}.{USER_VEC_SUFFIX}.npz: user text vectors (own TRAIN reviews only).
{image_line}"""


def _split_stats(rows: ReviewColumns, threshold: float, train_users: np.ndarray, train_items: np.ndarray) -> dict:
    """One split's figures; ``train_users`` / ``train_items``: a flag per user / item code."""
    a = rows.arrays
    users, items = np.unique(a["user"]), np.unique(a["item"])
    positives = int((a["rating"] >= threshold).sum())
    with_text = int(a["has_text"].sum())
    return {
        "interactions": len(rows),
        "users": len(users),
        "items": len(items),
        "positives": positives,
        "negatives": len(rows) - positives,
        "positive_share": positives / len(rows),
        "rows_with_text": with_text,
        "text_share": with_text / len(rows),
        "users_not_in_train": int((~train_users[users]).sum()),
        "items_not_in_train": int((~train_items[items]).sum()),
        "time_min": int(a["time"].min()),
        "time_max": int(a["time"].max()),
    }


def report_markdown(report: dict, source: Source) -> str:
    out = [f"# Conversion report: {report['name']}", ""]
    out.append(f"Reviews: `{report['reviews']['path']}`  ")
    out.append(f"Meta: `{report['meta']['path']}`  ")
    params = report["params"]
    out.append(
        "Split: {split} {ratios}, seed {seed}; label = rating >= {label_threshold}; "
        "category filter: {category_filter!r}; leaky meta: {include_leaky_meta}; "
        "image encoder: {image_encoder}; k-core: {k_core}".format(**{"k_core": None, **params})
    )
    out.append("")
    for warning in report.get("warnings") or ():
        out.append(f"**WARNING: {warning}.**")
        out.append("")
    for part in ("meta", "reviews"):
        tally = report[part]
        out.append(
            f"## {part}: {tally['lines_read']} lines read, {tally['kept']} kept, {tally['dropped_total']} dropped"
        )
        out.append("")
        if tally["dropped"]:
            out.append("| dropped because | lines |")
            out.append("| --- | ---: |")
            for reason, count in tally["dropped"].items():
                out.append(f"| {reason} | {count} |")
            out.append("")
        if tally["malformed_lines"]:
            out.append(
                "Malformed lines: "
                + ", ".join(str(n) for n in tally["malformed_lines"][:50])
                + (" ..." if len(tally["malformed_lines"]) > 50 else "")
            )
            out.append("")
        if tally.get("long_lines"):
            out.append(
                f"Lines over max_line_bytes={params.get('max_line_bytes')} (skipped unread): "
                + ", ".join(str(n) for n in tally["long_lines"][:50])
                + (" ..." if len(tally["long_lines"]) > 50 else "")
            )
            out.append("")
        if tally["dropped"].get("duplicate_conflicting"):
            out.append(
                f"duplicate_conflicting: the same {source.item_field} again with different content; "
                "the first line is kept (as for exact duplicates)."
            )
            out.append("")
        if tally.get("converted"):
            out.append("Converted (line kept): " + ", ".join(f"{k} {v}" for k, v in tally["converted"].items()) + ".")
            out.append("")
        if tally["field_anomalies"]:
            out.append(
                "Field anomalies (line kept, field treated as missing): "
                + ", ".join(f"{k} {v}" for k, v in tally["field_anomalies"].items())
            )
            out.append("")
    core = report.get("k_core")
    if core:
        out.append(f"## k-core (k = {core['k']}, counted on train rows, {core['iterations']} passes)")
        out.append("")
        out.append(
            f"Dropped {core['users_dropped']} users and {core['items_dropped']} businesses; rows dropped: "
            + ", ".join(f"{s} {n}" for s, n in core["rows_dropped"].items())
            + "."
        )
        out.append("")
    out.append("## splits")
    out.append("")
    out.append(
        "| split | interactions | users | items | positives | negatives | positive share "
        "| rows with text | users not in train | items not in train |"
    )
    out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for split in SPLITS:
        s = report["splits"][split]
        out.append(
            f"| {split} | {s['interactions']} | {s['users']} | {s['items']} | {s['positives']} | "
            f"{s['negatives']} | {s['positive_share']:.3f} | {s['text_share']:.3f} | "
            f"{s['users_not_in_train']} | {s['items_not_in_train']} |"
        )
    t = report["totals"]
    out.append("")
    out.append(
        f"Totals: {t['interactions']} interactions, {t['users']} users, {t['items']} items; "
        f"positive:negative = {t['positive_to_negative']:.2f}:1; share of rows with text "
        f"{t['text_share']:.3f}; businesses kept in meta but never reviewed: "
        f"{report['businesses_without_kept_reviews']}."
    )
    v = report["vectors"]
    out.append(
        f"Text vectors: {v['items']} items, {v['users']} users (of {t['users']}), dim {v['dim']}; "
        f"encoder {v['encoder']}: {v['cached']} from cache, {v['encoded']} encoded."
    )
    h = report.get("user_history")
    if h:
        out.append(
            f"User history ({h['file']}: per train row, its user's strictly earlier train reviews): "
            f"{h['train_rows_with_history']} train rows with earlier text, "
            f"{h['train_rows_without_history']} without; "
            + (
                f"{h['texts']} distinct texts, {h['cached']} from cache, {h['encoded']} encoded."
                if "texts" in h
                else f"{h['vectors']} distinct vectors, means of earlier review vectors."
            )
        )
    rv = report.get("review_vectors")
    if rv:
        out.append(
            f"Review vectors (user_vector: mean): {rv['texts']} train review texts, {rv['cached']} from cache, "
            f"{rv['encoded']} encoded; item review vectors ({rv['item_file']}, {rv['item_rows_file']}): "
            f"{rv['items_with_reviews']} items, {rv['train_rows_with_earlier_item_review']} train rows with an "
            f"earlier item review, {rv['train_rows_without']} without."
        )
    out.append("")
    left_out = report.get("numeric_fields_left_out") or {}
    if left_out:
        out.append(
            "Numeric fields left out (one value or none: min-max scaling would make them NaN): "
            + ", ".join(f"{k} ({v})" for k, v in left_out.items())
            + "."
        )
        out.append("")
    out.append("Leakage guards: " + "; ".join(report["leakage_guards"]) + ".")
    out.append("")
    out.append(f"Time taken: {report['seconds']:.1f} s.")
    return "\n".join(out) + "\n"


def inter_rows(rows: ReviewColumns, label_threshold: float, chunk: int = 1 << 16) -> Iterator[tuple[str, ...]]:
    """Rows of a NAME.<split>.inter file (INTER_HEADER order), one at a time, read from the
    columns a chunk at a time (a Review object per row would cost more than the writing)."""
    a = rows.arrays
    rating_text = {
        value: (_fmt_float(value), "1" if value >= label_threshold else "0")
        for value in np.unique(a["rating"]).tolist()
    }
    for start in range(0, len(rows), chunk):
        part = slice(start, start + chunk)
        for u, i, rating, t in zip(
            a["user"][part].tolist(), a["item"][part].tolist(), a["rating"][part].tolist(), a["time"][part].tolist()
        ):
            yield (rows.user_ids[u], rows.item_ids[i], *rating_text[rating], str(t))


def item_rows(
    items: Sequence[str], businesses: dict[str, Business], pic_count: dict, include_leaky_meta: bool
) -> list[list[str]]:
    """Rows of NAME.item (ITEM_HEADER order, + LEAKY_ITEM_HEADER with include_leaky_meta)."""
    out = []
    for item in items:
        b = businesses[item]
        row = [
            item,
            b.price,
            " ".join(b.category_tokens),
            _fmt_float(b.latitude),
            _fmt_float(b.longitude),
            str(pic_count.get(item, 0)),
        ]
        if include_leaky_meta:
            row += [_fmt_float(b.avg_rating), _fmt_float(b.num_of_reviews)]
        out.append(row)
    return out


def write_dataset(
    folder,
    source: Source,
    name: str,
    parts: dict[str, ReviewColumns],
    businesses: dict,
    items: Sequence[str],
    users: Sequence[str],
    features,
    item_vecs: np.ndarray,
    user_vecs: np.ndarray,
    label_threshold: float,
    include_leaky_meta: bool,
) -> dict:
    """Write the atomic files, vectors and NAME.yaml into ``folder`` (a DatasetFolder);
    returns the report parts they give: per-split ``splits`` and ``numeric_fields_left_out``."""

    def path(suffix: str) -> str:
        return folder.file(f"{name}.{suffix}")

    stats: dict[str, dict] = {}
    train = parts["train"]
    train_users = np.zeros(len(train.user_ids), dtype=bool)
    train_users[train.arrays["user"]] = True
    train_items = np.zeros(len(train.item_ids), dtype=bool)
    train_items[train.arrays["item"]] = True
    for split_name in SPLITS:
        rows = parts[split_name]
        write_tsv(path(f"{split_name}.inter"), INTER_HEADER, inter_rows(rows, label_threshold))
        stats[split_name] = _split_stats(rows, label_threshold, train_users, train_items)

    item_header = ITEM_HEADER + (LEAKY_ITEM_HEADER if include_leaky_meta else ())
    items_out = item_rows(items, businesses, features.pic_count, include_leaky_meta)
    users_out = [[u, str(features.n_train_reviews.get(u, 0))] for u in users]
    # A numeric column with one value (or none) carries nothing, and RecBole's min-max
    # scaling turns it into 0/0 = NaN in every row: such columns are left out, and reported.
    item_header, items_out, item_left_out = _drop_constant_numeric(item_header, items_out)
    user_header, users_out, user_left_out = _drop_constant_numeric(USER_HEADER, users_out)
    atomic.write_text(path("item"), _tsv(item_header, items_out))
    atomic.write_text(path("user"), _tsv(user_header, users_out))

    dim = int(item_vecs.shape[1])
    save_npz(path(f"{ITEM_VEC_SUFFIX}.npz"), ids=np.array(list(items), dtype=str), vectors=item_vecs)
    save_npz(
        path(f"{USER_VEC_SUFFIX}.npz"),
        ids=np.array(features.vec_users, dtype=str).reshape(-1),
        vectors=user_vecs.reshape(len(features.vec_users), dim),
    )
    if features.image_vectors:
        save_npz(
            path(f"{ITEM_IMAGE_VEC_SUFFIX}.npz"),
            ids=np.array(list(items), dtype=str),
            vectors=np.stack(features.image_vectors),
        )
    atomic.write_text(
        path("yaml"),
        _yaml_text(source, name, item_header, user_header, include_leaky_meta, bool(features.image_vectors)),
    )
    return {"splits": stats, "numeric_fields_left_out": {**item_left_out, **user_left_out}, "dim": dim}


def write_user_history(folder, name: str, history, vectors: np.ndarray, dim: int) -> None:
    """NAME.userhist.npz: ``users`` / ``items`` (tokens, one entry per TRAIN row), ``row`` (int64
    index into ``vectors``, -1 = no earlier review with text) and ``vectors`` (float32, m x dim,
    one per distinct history text); see ``features.user_history``."""
    _save_rows(folder.file(f"{name}.{USER_HIST_SUFFIX}.npz"), history, vectors, len(history.texts), dim)


def _save_rows(path: str, rows, vectors: np.ndarray, n_vectors: int, dim: int) -> None:
    """A per-train-row file (the userhist layout) of ``rows`` (``users``, ``items``, ``row``)."""
    save_npz(
        path,
        users=np.array(rows.users, dtype=str).reshape(-1),
        items=np.array(rows.items, dtype=str).reshape(-1),
        row=np.array(rows.row, dtype=np.int64).reshape(-1),
        vectors=np.asarray(vectors, dtype=np.float32).reshape(n_vectors, dim),
    )


def write_row_vectors(folder, name: str, suffix: str, composed) -> None:
    """NAME.<suffix>.npz in the userhist layout from a ``review_means.Composed``: per TRAIN row
    the index of its before-row mean vector (-1: no earlier review)."""
    dim = composed.full.shape[1]
    _save_rows(folder.file(f"{name}.{suffix}.npz"), composed, composed.vectors, len(composed.vectors), dim)


def write_item_reviews(folder, name: str, composed) -> None:
    """NAME.itemrev.npz (``ids``, ``vectors``: each item's mean train review vector, items with
    a train review text only) and NAME.itemrevhist.npz (per TRAIN row, the mean over the item's
    strictly earlier train reviews), from the item side's ``review_means.Composed``."""
    dim = composed.full.shape[1]
    save_npz(
        folder.file(f"{name}.{ITEM_REV_SUFFIX}.npz"),
        ids=np.array(composed.full_ids, dtype=str).reshape(-1),
        vectors=np.asarray(composed.full, dtype=np.float32).reshape(len(composed.full_ids), dim),
    )
    write_row_vectors(folder, name, ITEM_REV_HIST_SUFFIX, composed)
