"""Cold-item split: a derived dataset whose valid and test rows are all on items never seen in training.

    make_cold_items_dataset("ml-100k", seed=2021)  ->  "ml-100k-cold-d2021" in dataset/ml-100k-cold-d2021/

From every interaction row of the source dataset (its single .inter file, or its
train/valid/test benchmark files together), two disjoint sets of items are drawn with the draw
seed `seed`: a `fraction` of the items for test and a `valid_fraction` (default: the same) for
validation. ALL rows of the test items go to test, ALL rows of the valid items to valid, every
other row to train. So early stopping and the tuned board's search choose on cold rows, as the
test scores them, and no item is in two splits. Each draw seed is its own dataset, NAME =
`<source>-cold-d<seed>` (cold_draws.py runs a board on several and pools them). The result is
written in the source's own layout:

    NAME.train.inter / .valid.inter / .test.inter        same columns as the source
    NAME.item                                          copy of the source's .item
    NAME.user                                          copy, or rewritten when it holds
                                                       n_train_reviews (recounted on the new train)
    NAME.<item_text_vec>.npz                           symlink to the source's item text vectors
    NAME.yaml                                          the source's dataset settings with
                                                       benchmark_filename set and no split key
    NAME.cold_split.json                               what was done: seed, items, row counts
    REPORT.json                                        the same, with "name": the marker that lets
                                                       a later run (force=True) replace the folder

The folder is written by recbole_dlrrec.data.dataset_folder, as the converter's is: built beside
the target and swapped in; a folder built under another scheme or settings (its REPORT.json's
provenance differs: scheme, fractions, seed) is rebuilt, and an existing NAME that this tool did
not write (no REPORT.json or cold_split.json naming it) is refused, never overwritten.

User text vectors are left out by default (`keep_user_text=False`): the Google Local converter
builds them from each user's TRAIN reviews of the ORIGINAL split, and some of those reviews are
test rows here, so keeping them would leak test text. Item text vectors come from item metadata
only, and cold items are exactly where they should help: an untrained ID embedding is all an
ID-only model has for them.
"""

from __future__ import annotations

import os
import re
import shutil
from typing import Dict, List, Optional, Tuple

import numpy as np

from recbole_dlrrec import atomic
from recbole_dlrrec.data.dataset_folder import DatasetFolder, read_report
from recbole_dlrrec.errors import InputError

COLD_SUFFIX = "-cold"
_COLD_NAME = re.compile(r"-cold(?:-d\d+)?$")
DEFAULT_FRACTION = 0.1
DEFAULT_SEED = 2020
SPLITS = ("train", "valid", "test")
FORMAT_VERSION = 2
# Version 1 validated on a random share of the warm rows; version 2 on rows of held-out items.
SCHEME = "cold-valid-items"
# What the cold dataset's note says when user text vectors are left out.
USER_TEXT_DROPPED = "dropped (keep_user_text=False: they may hold reviews of the original split, now test rows)"


class ColdSplitError(InputError, ValueError):
    """The source dataset cannot be split into cold items (missing files, bad fraction, ...)."""


def cold_name(dataset: str, draw_seed: Optional[int] = None) -> str:
    """`<dataset>-cold` (the name the draws of a board share) or, with a draw seed, that draw's
    dataset `<dataset>-cold-d<seed>`."""
    return dataset + COLD_SUFFIX + ("" if draw_seed is None else f"-d{int(draw_seed)}")


def is_cold_name(dataset: str) -> bool:
    """A cold-items dataset or board name (`*-cold`, `*-cold-d<seed>`)."""
    return bool(_COLD_NAME.search(dataset))


def _read_header(path: str) -> List[str]:
    with open(path, encoding="utf-8") as handle:
        return handle.readline().rstrip("\n").split("\t")


def _column(header: List[str], field: str, path: str) -> int:
    names = [h.split(":")[0] for h in header]
    if field not in names:
        raise ColdSplitError(f"{path}: header has no field {field!r} (fields: {', '.join(names)})")
    return names.index(field)


def _read_rows(path: str) -> List[str]:
    with open(path, encoding="utf-8") as handle:
        handle.readline()
        return [line.rstrip("\n") for line in handle if line.strip()]


def _link(target: str, link_path: str) -> None:
    """A relative symlink (a copy where symlinks are not allowed)."""
    relative = os.path.relpath(os.path.abspath(target), os.path.dirname(os.path.abspath(link_path)))
    try:
        os.symlink(relative, link_path)
    except OSError:
        _copy(target, link_path)


def _copy(source: str, target: str) -> None:
    """Copy a file through the one atomic writer."""
    with atomic.atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def _source_settings(dataset: str, data_path: str) -> dict:
    """The source's dataset settings: the config stack's dataset layer (config/stack.py)."""
    from recbole_dlrrec.config.stack import dataset_settings

    return dataset_settings(dataset, data_path)


def _source_inter_files(config) -> List[str]:
    folder, name = config["data_path"], config["dataset"]
    names = config["benchmark_filename"]
    paths = (
        [os.path.join(folder, f"{name}.{part}.inter") for part in names]
        if names
        else [os.path.join(folder, f"{name}.inter")]
    )
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise ColdSplitError(f"source interaction file(s) not found: {', '.join(missing)}")
    return paths


def _provenance(source: str, fraction: float, valid_fraction: float, seed: int, keep_user_text: bool) -> dict:
    return {
        "source": source,
        "scheme": SCHEME,
        "fraction": fraction,
        "valid_fraction": valid_fraction,
        "seed": seed,
        "keep_user_text": keep_user_text,
        "version": FORMAT_VERSION,
    }


def _is_built(folder: str, name: str, provenance: dict) -> bool:
    report = read_report(folder, name)
    if report is None:
        return False
    needed = [f"{name}.{part}.inter" for part in SPLITS] + [f"{name}.yaml"]
    return report.get("provenance") == provenance and all(os.path.exists(os.path.join(folder, f)) for f in needed)


def make_cold_items_dataset(
    dataset: str,
    data_path: Optional[str] = None,
    out_data_path: Optional[str] = None,
    fraction: float = DEFAULT_FRACTION,
    valid_fraction: Optional[float] = None,
    seed: int = DEFAULT_SEED,
    keep_user_text: bool = False,
    force: bool = False,
    log=print,
) -> str:
    """Write (or reuse) draw `seed` of the cold-item version of `dataset`; returns its name
    (`dataset-cold-d<seed>`).

    Args:
        data_path: where the source lives when it is not RecBole-bundled (default dataset/).
        out_data_path: where NAME-cold/ is written (default dataset/). Pass the same value as
            data_path when training on it.
        fraction: share of the items whose rows all go to test; valid_fraction: share of the
            items whose rows all go to valid (default: fraction); seed: the draw of both sets.
    """
    from recbole_dlrrec.config.stack import DEFAULT_DATA_PATH

    if not 0 < float(fraction) < 1:
        raise ColdSplitError(f"cold-item fraction must be in (0, 1), got {fraction}")
    valid_fraction = float(fraction if valid_fraction is None else valid_fraction)
    if not 0 < valid_fraction < 1 or float(fraction) + valid_fraction >= 1:
        raise ColdSplitError(
            f"valid_fraction must be in (0, 1) and leave items for train beside fraction {fraction}, "
            f"got {valid_fraction}"
        )
    if is_cold_name(dataset):
        raise ColdSplitError(f"{dataset!r} is already a cold-item dataset")
    out_data_path = out_data_path or data_path or DEFAULT_DATA_PATH
    name = cold_name(dataset, seed)
    final = os.path.join(out_data_path, name)
    provenance = _provenance(dataset, float(fraction), valid_fraction, int(seed), bool(keep_user_text))
    if not force and _is_built(final, name, provenance):
        log(f"cold-item dataset {name} already built in {final}")
        return name

    # Checked before the source is read: only a folder this tool wrote is ever replaced.
    with DatasetFolder(out_data_path, name) as folder:
        held, n_items, parts = _write_cold_dataset(folder, dataset, name, data_path, provenance)
    log(
        f"cold-item dataset {name}: of {n_items} items, {held['valid'].size} held out for valid and "
        f"{held['test'].size} for test; rows "
        + ", ".join(f"{part} {index.size}" for part, index in parts.items())
        + f"; written to {final}"
    )
    return name


def _read_source(config) -> Tuple[List[str], List[str], np.ndarray, np.ndarray]:
    """The source dataset's .inter rows: (header, rows, item id per row, user id per row)."""
    sources = _source_inter_files(config)
    header = _read_header(sources[0])
    for path in sources[1:]:
        if _read_header(path) != header:
            raise ColdSplitError(f"{path}: header differs from {sources[0]}")
    item_col = _column(header, config["ITEM_ID_FIELD"], sources[0])
    user_col = _column(header, config["USER_ID_FIELD"], sources[0])
    rows = [row for path in sources for row in _read_rows(path)]
    items = np.array([row.split("\t")[item_col] for row in rows])
    users = np.array([row.split("\t")[user_col] for row in rows])
    return header, rows, items, users


def _split_rows(
    items: np.ndarray, dataset: str, fraction: float, valid_fraction: float, seed: int
) -> Tuple[Dict[str, np.ndarray], int, Dict[str, np.ndarray]]:
    """Draw the test and the valid items (disjoint) and split the rows by item: a test item's
    rows go to test, a valid item's to valid, the others to train. Returns (held-out items per
    split, distinct items, row indices per split)."""
    rng = np.random.default_rng(int(seed))
    distinct = np.unique(items)
    n_test = max(1, int(round(float(fraction) * distinct.size)))
    n_valid = max(1, int(round(float(valid_fraction) * distinct.size)))
    if n_test + n_valid >= distinct.size:
        raise ColdSplitError(f"{dataset} has {distinct.size} items; cannot hold {n_test} + {n_valid} out")
    drawn = rng.choice(distinct, size=n_test + n_valid, replace=False)
    held = {"valid": np.sort(drawn[n_test:]), "test": np.sort(drawn[:n_test])}
    parts: Dict[str, np.ndarray] = {
        "train": np.flatnonzero(~np.isin(items, drawn)),
        "valid": np.flatnonzero(np.isin(items, held["valid"])),
        "test": np.flatnonzero(np.isin(items, held["test"])),
    }
    return held, int(distinct.size), parts


def _write_side_files(config, tmp: str, name: str, users_in_train: np.ndarray, keep_user_text: bool) -> None:
    """The source's .item file, its .user file (only train users' text kept), and links to its
    text vector files (the user vectors only with `keep_user_text`)."""
    src_folder, src_name = config["data_path"], config["dataset"]
    item_file = os.path.join(src_folder, f"{src_name}.item")
    if os.path.isfile(item_file):
        _copy(item_file, os.path.join(tmp, f"{name}.item"))
    user_file = os.path.join(src_folder, f"{src_name}.user")
    if os.path.isfile(user_file):
        _write_user_file(user_file, os.path.join(tmp, f"{name}.user"), config["USER_ID_FIELD"], users_in_train)
    side = config["side_data_path"] or src_folder
    vectors = {"item_text_vec": config["item_text_vec"]}
    if keep_user_text:
        vectors["user_text_vec"] = config["user_text_vec"]
    for suffix in vectors.values():
        if suffix:
            source_vec = os.path.join(side, f"{src_name}.{suffix}.npz")
            if not os.path.isfile(source_vec):
                raise ColdSplitError(f"text vector file not found: {source_vec}")
            _link(source_vec, os.path.join(tmp, f"{name}.{suffix}.npz"))


def _write_settings(
    config, tmp: str, name: str, dataset: str, data_path: Optional[str], seed: int, held: dict, keep_user_text: bool
) -> dict:
    """The cold dataset's YAML: the source's settings on the fixed benchmark files. Returns them."""
    import yaml

    from recbole_dlrrec.config.stack import DEFAULT_DATA_PATH

    settings = _source_settings(dataset, data_path or DEFAULT_DATA_PATH)
    if not settings:
        raise ColdSplitError(f"no dataset settings (YAML) found for {dataset!r} under {data_path or DEFAULT_DATA_PATH}")
    eval_args = dict(settings.get("eval_args") or {})
    eval_args.pop("split", None)
    settings.update(
        {
            "benchmark_filename": list(SPLITS),
            "eval_args": eval_args,
            "side_data_path": None,
            "item_text_vec": config["item_text_vec"],
            "user_text_vec": config["user_text_vec"] if keep_user_text else None,
        }
    )
    settings.pop("data_path", None)
    note = (
        f"# Cold-item version of '{dataset}' written by recbole_dlrrec.experiments.cold_start "
        f"(draw seed {seed}): the test rows are all the rows of {held['test'].size} items and the valid "
        f"rows all the rows of {held['valid'].size} other items, none of them seen in train.\n"
        "# Rebuild with make_cold_items_dataset(force=True) rather than editing by hand. User text vectors: "
        + ("kept" if keep_user_text else USER_TEXT_DROPPED)
        + ".\n"
    )
    atomic.write_text(os.path.join(tmp, f"{name}.yaml"), note + yaml.safe_dump(settings, sort_keys=False))
    return settings


def _write_cold_dataset(folder: DatasetFolder, dataset: str, name: str, data_path: Optional[str], provenance: dict):
    """Read the source, split it as `provenance` says, write everything into ``folder`` and
    commit it; returns (held-out items, items, row indices per split)."""
    from recbole_dlrrec.runtime.quick_start import build_config

    overrides = {"data_path": data_path} if data_path else {}
    config = build_config("DLRM", dataset, config_dict=overrides)
    header, rows, items, users = _read_source(config)
    seed, keep_user_text = provenance["seed"], provenance["keep_user_text"]
    held, n_items, parts = _split_rows(items, dataset, provenance["fraction"], provenance["valid_fraction"], seed)
    tmp = folder.path
    assert tmp is not None, "the caller entered the folder's with block"
    with folder.writing():
        head = "\t".join(header) + "\n"
        for part, index in parts.items():
            atomic.write_text(os.path.join(tmp, f"{name}.{part}.inter"), head + "".join(rows[i] + "\n" for i in index))
        _write_side_files(config, tmp, name, users[parts["train"]], keep_user_text)
        settings = _write_settings(config, tmp, name, dataset, data_path, seed, held, keep_user_text)
        labels = _labels(header, rows, settings)
        _check_both_classes(labels, parts, name)
        report = {
            "provenance": provenance,
            "dataset": name,
            "items": n_items,
            "cold_items": int(held["test"].size),  # the test items (the name the first scheme gave them)
            "valid_items": int(held["valid"].size),
            "rows": {part: int(index.size) for part, index in parts.items()},
            "positive_share": {
                part: (float(labels[index].mean()) if labels is not None and index.size else None)
                for part, index in parts.items()
            },
            **{
                f"{part}_users_unseen_in_train": int(np.setdiff1d(users[parts[part]], users[parts["train"]]).size)
                for part in ("valid", "test")
            },
            "valid_item_ids": [str(i) for i in held["valid"]],
            "cold_item_ids": [str(i) for i in held["test"]],
        }
        atomic.write_json(os.path.join(tmp, f"{name}.cold_split.json"), report, indent=2)
    # Links were made relative to the temp folder's parent, which is also the final one's.
    folder.commit(report)
    return held, n_items, parts


def _check_both_classes(labels: Optional[np.ndarray], parts: Dict[str, np.ndarray], name: str) -> None:
    """AUC (the early-stopping and search metric) needs both classes in valid and test."""
    if labels is None:
        return
    for part in ("valid", "test"):
        values = np.unique(labels[parts[part]])
        if values.size < 2:
            raise ColdSplitError(
                f"{name}: the {part} rows of the held-out items hold only label {values.tolist()}; "
                "hold more items out (fraction / valid_fraction)"
            )


def _labels(header: List[str], rows: List[str], settings: dict) -> Optional[np.ndarray]:
    """0/1 labels per row when the rows carry them (a label column, or rating + threshold)."""
    names = [h.split(":")[0] for h in header]
    label_field = settings.get("LABEL_FIELD", "label")
    threshold = settings.get("threshold") or {}
    if label_field in names:
        col, cut = names.index(label_field), 0.5
    elif len(threshold) == 1 and next(iter(threshold)) in names:
        field, cut = next(iter(threshold.items()))
        col = names.index(field)
    else:
        return None
    values = np.array([float(row.split("\t")[col]) for row in rows])
    return (values >= float(cut)).astype(np.float64)


def _write_user_file(source: str, target: str, user_field: str, train_users: np.ndarray) -> None:
    """Copy the user file, or rewrite it when it holds per-user train counts (which would
    otherwise count reviews that are test rows here)."""
    header = _read_header(source)
    names = [h.split(":")[0] for h in header]
    if "n_train_reviews" not in names:
        _copy(source, target)
        return
    count_col, user_col = names.index("n_train_reviews"), _column(header, user_field, source)
    tokens, counts = np.unique(train_users, return_counts=True)
    per_user = dict(zip(tokens.tolist(), counts.tolist()))
    lines = ["\t".join(header)]
    for row in _read_rows(source):
        cells = row.split("\t")
        cells[count_col] = str(float(per_user.get(cells[user_col], 0)))
        lines.append("\t".join(cells))
    atomic.write_text(target, "\n".join(lines) + "\n")
