"""The cold-item split validates on cold items: valid and test on held-out items of their own, one
dataset per draw seed, and folders of the earlier scheme rebuilt."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import write_tiny_dataset

from recbole_dlrrec.experiments import cold_start


def _items_per_split(items: np.ndarray, seed: int, fraction: float = 0.1):
    held, n_items, parts = cold_start._split_rows(items, "toy", fraction, fraction, seed)
    return held, n_items, parts, {part: set(items[index].tolist()) for part, index in parts.items()}


def test_valid_and_test_hold_disjoint_unseen_items_and_every_row_once():
    items = np.random.default_rng(0).integers(0, 200, size=5000).astype(str)
    held, n_items, parts, seen = _items_per_split(items, seed=2020)
    assert n_items == 200 and held["valid"].size == held["test"].size == 20
    assert not seen["valid"] & seen["test"]
    assert not seen["train"] & seen["valid"] and not seen["train"] & seen["test"]
    # Every valid row is cold: its item is one of the held-out valid items, none of train's.
    assert seen["valid"] == set(held["valid"].tolist()) and seen["test"] == set(held["test"].tolist())
    assert np.array_equal(np.sort(np.concatenate(list(parts.values()))), np.arange(items.size))


def test_draw_seeds_give_their_own_items_and_the_same_seed_the_same():
    items = np.random.default_rng(1).integers(0, 300, size=4000).astype(str)
    first = _items_per_split(items, seed=2020)[0]
    again = _items_per_split(items, seed=2020)[0]
    other = _items_per_split(items, seed=2021)[0]
    for part in ("valid", "test"):
        assert np.array_equal(first[part], again[part])
        assert not np.array_equal(first[part], other[part])


def test_names_and_bad_fractions():
    assert cold_start.cold_name("ml-100k", 2021) == "ml-100k-cold-d2021" and cold_start.cold_name("x") == "x-cold"
    assert cold_start.is_cold_name("ml-100k-cold") and cold_start.is_cold_name("ml-100k-cold-d2022")
    assert not cold_start.is_cold_name("ml-100k") and not cold_start.is_cold_name("cold-d1x")
    with pytest.raises(cold_start.ColdSplitError, match="cannot hold"):
        cold_start._split_rows(np.array(list("abc")), "toy", 0.5, 0.4, 0)
    labels = np.array([1.0, 1.0, 0.0, 1.0])
    parts = {"valid": np.array([0, 1]), "test": np.array([2, 3])}
    with pytest.raises(cold_start.ColdSplitError, match="valid rows of the held-out items hold only label"):
        cold_start._check_both_classes(labels, parts, "toy-cold-d1")


def _split_items(folder: str, name: str) -> dict:
    """The item ids of each written .inter file, read as text."""
    out = {}
    for part in cold_start.SPLITS:
        with open(os.path.join(folder, f"{name}.{part}.inter"), encoding="utf-8") as handle:
            column = handle.readline().split("\t").index("item_id:token")
            out[part] = {line.split("\t")[column] for line in handle if line.strip()}
    return out


@pytest.mark.slow
def test_each_draw_is_its_own_folder_and_old_scheme_folders_are_rebuilt(tmp_path):
    root = write_tiny_dataset(str(tmp_path))
    with pytest.raises(cold_start.ColdSplitError, match="valid_fraction"):
        cold_start.make_cold_items_dataset("tiny", data_path=root, fraction=0.5, valid_fraction=0.5)
    with pytest.raises(cold_start.ColdSplitError, match="already a cold-item dataset"):
        cold_start.make_cold_items_dataset("tiny-cold-d2020", data_path=root)
    names = [cold_start.make_cold_items_dataset("tiny", data_path=root, seed=s, log=lambda m: None) for s in (7, 8)]
    assert names == ["tiny-cold-d7", "tiny-cold-d8"]
    first, second = (_split_items(os.path.join(root, n), n) for n in names)
    assert first["test"] != second["test"]
    for split in (first, second):
        assert not split["valid"] & split["test"] and not split["train"] & (split["valid"] | split["test"])
    report_path = os.path.join(root, names[0], "REPORT.json")
    report = json.load(open(report_path))
    assert report["provenance"]["scheme"] == cold_start.SCHEME and report["valid_users_unseen_in_train"] >= 0
    # A folder the first scheme wrote (valid = warm rows; provenance without the scheme) is rebuilt.
    valid_file = os.path.join(root, names[0], f"{names[0]}.valid.inter")
    with open(os.path.join(root, names[0], f"{names[0]}.train.inter"), encoding="utf-8") as handle:
        warm = handle.readlines()[:20]
    with open(valid_file, "w", encoding="utf-8") as handle:
        handle.writelines(warm)
    old = {"source": "tiny", "fraction": 0.1, "valid_share": 1 / 9, "seed": 7, "keep_user_text": False, "version": 1}
    with open(report_path, "w", encoding="utf-8") as handle:
        json.dump({**report, "provenance": old}, handle)
    messages = []
    assert cold_start.make_cold_items_dataset("tiny", data_path=root, seed=7, log=messages.append) == names[0]
    assert "already built" not in messages[0]
    assert json.load(open(report_path))["provenance"]["scheme"] == cold_start.SCHEME
    assert _split_items(os.path.join(root, names[0]), names[0]) == first
