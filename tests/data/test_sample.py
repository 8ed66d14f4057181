"""Tests of the generated restaurant sample (recbole_dlrrec.data.sample)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from recbole_dlrrec.data import google_local as gl
from recbole_dlrrec.data import sample
from recbole_dlrrec.data.encoder import HashEncoder

SMALL = {"n_restaurants": 60, "n_users": 120, "n_reviews": 1500}


def file_bytes(path):
    with open(path, "rb") as handle:
        return handle.read()


@pytest.fixture(scope="module")
def default_build(tmp_path_factory):
    """The default-size sample, converted with the hash encoder (no model): (report, folder)."""
    root = tmp_path_factory.mktemp("default")
    reviews, meta = sample.generate(str(root / "raw"))
    report = gl.convert(reviews, meta, "restaurants", str(root), encoder=HashEncoder(4), show_progress=False)
    return report, str(root / "restaurants"), reviews, meta


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    first = sample.generate(str(tmp_path / "a"), seed=7, **SMALL)
    again = sample.generate(str(tmp_path / "b"), seed=7, **SMALL)
    other = sample.generate(str(tmp_path / "c"), seed=8, **SMALL)
    for x, y, z in zip(first, again, other):
        assert file_bytes(x) == file_bytes(y)
        assert file_bytes(x) != file_bytes(z)
    assert [os.path.basename(p) for p in first] == ["reviews.json.gz", "meta.json.gz"]


def test_records_have_the_google_local_fields(tmp_path):
    reviews, meta = sample.generate(str(tmp_path), seed=1, **SMALL)
    with gzip.open(reviews, "rt", encoding="utf-8") as handle:
        first_review = json.loads(handle.readline())
    with gzip.open(meta, "rt", encoding="utf-8") as handle:
        first_meta = json.loads(handle.readline())
    assert list(first_review) == ["user_id", "name", "time", "rating", "text", "pics", "resp", "gmap_id"]
    assert list(first_meta) == [
        "name",
        "address",
        "gmap_id",
        "description",
        "latitude",
        "longitude",
        "category",
        "avg_rating",
        "num_of_reviews",
        "price",
        "hours",
        "MISC",
        "state",
        "relative_results",
        "url",
    ]
    assert sample.T_START_MS <= first_review["time"] <= sample.T_END_MS
    assert isinstance(first_meta["category"], list)


@pytest.mark.slow
def test_default_sizes_meet_the_floors(default_build):
    report, _, _, _ = default_build
    assert report["meta"]["kept"] >= 1000  # restaurants after the category filter
    assert report["totals"]["items"] >= 1000
    assert report["totals"]["users"] >= 3000
    assert report["totals"]["interactions"] >= 60000


@pytest.mark.slow
def test_label_ratio_is_about_seven_to_one(default_build):
    world = sample.simulate()
    assert (world.rev_rating >= 4).mean() == pytest.approx(0.875, abs=0.002)
    report = default_build[0]
    assert 6.5 <= report["totals"]["positive_to_negative"] <= 8.0
    for split in gl.SPLITS:
        assert 0.85 <= report["splits"][split]["positive_share"] <= 0.9


@pytest.mark.slow
def test_every_cleaning_rule_fires(default_build):
    report = default_build[0]
    for reason in (
        "blank_line",
        "malformed_json",
        "not_an_object",
        "missing_field:user_id",
        "null_rating",
        "invalid_value:rating",
        "business_not_matching_category",
        "unknown_business",
        "duplicate",
        "repeat_user_business",
    ):
        assert report["reviews"]["dropped"].get(reason, 0) > 0, reason
    for reason in ("duplicate", "category_filter", "malformed_json", "missing_field:name"):
        assert report["meta"]["dropped"].get(reason, 0) > 0, reason
    for part in ("meta", "reviews"):
        tally = report[part]
        assert tally["lines_read"] == tally["kept"] + sum(tally["dropped"].values())
    assert 0.75 <= report["totals"]["text_share"] <= 0.9
    assert report["splits"]["test"]["users_not_in_train"] > 0  # late joiners: cold-start users


@pytest.mark.slow
def test_ratings_depend_on_visible_and_hidden_factors():
    world = sample.simulate(seed=3)
    rating = world.rev_rating.astype(float)
    assert np.corrcoef(rating, world.rev_score_visible)[0, 1] > 0.25
    assert np.corrcoef(rating, world.rev_score_hidden)[0, 1] > 0.25
    # The hidden community taste alone carries signal that no text shows.
    community_taste = world.item_loadings[world.rev_item, world.user_community[world.rev_user]]
    assert np.corrcoef(rating, community_taste)[0, 1] > 0.15


def chi_square(groups: dict) -> tuple[float, int]:
    """Pearson chi-square of independence between group and a 0/1 label, with its degrees of freedom."""
    names = sorted(groups)
    pos = np.array([sum(groups[g]) for g in names], dtype=float)
    n = np.array([len(groups[g]) for g in names], dtype=float)
    p = pos.sum() / n.sum()
    stat = ((pos - n * p) ** 2 / (n * p) + ((n - pos) - n * (1 - p)) ** 2 / (n * (1 - p))).sum()
    return float(stat), len(names) - 1


@pytest.mark.slow
def test_item_attributes_in_the_files_predict_the_label(default_build):
    _, folder, _, _ = default_build
    with open(os.path.join(folder, "restaurants.item"), encoding="utf-8") as handle:
        rows = [line.rstrip("\n").split("\t") for line in handle][1:]
    cuisine_of = {r[0]: r[2].split(" ")[0] for r in rows}
    price_of = {r[0]: r[1] for r in rows}
    by_cuisine: dict[str, list[float]] = {}
    by_price: dict[str, list[float]] = {}
    with open(os.path.join(folder, "restaurants.train.inter"), encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            _, item, _, label, _ = line.rstrip("\n").split("\t")
            by_cuisine.setdefault(cuisine_of[item], []).append(float(label))
            by_price.setdefault(price_of[item], []).append(float(label))
    assert set(by_cuisine) == {c[0].replace(" ", "_") for c in sample.CUISINES}
    # Far beyond chance (the 0.1% critical value is below 3 x df for these df).
    stat, df = chi_square(by_cuisine)
    assert stat > 20 * df
    stat, df = chi_square(by_price)
    assert stat > 10 * df
    # The cuisine with the lowest built-in appeal has the lowest share of positive labels.
    rate = {c: np.mean(v) for c, v in by_cuisine.items()}
    worst = min(sample.CUISINES, key=lambda c: c[3])[0].replace(" ", "_")
    assert min(rate, key=rate.get) == worst


@pytest.mark.slow
def test_ensure_restaurants_builds_once_and_reuses(tmp_path, monkeypatch):
    calls = []
    original = gl.convert

    def counting_convert(*args, **kwargs):
        calls.append(kwargs.get("split"))
        return original(*args, **kwargs)

    monkeypatch.setattr(gl, "convert", counting_convert)
    data_path = str(tmp_path / "dataset")
    folder = sample.ensure_restaurants(data_path, encoder=HashEncoder(), show_progress=False, **SMALL)
    assert folder == os.path.join(data_path, "restaurants")
    assert calls == ["time"]
    assert os.path.isfile(os.path.join(data_path, "raw", "restaurants", "reviews.json.gz"))
    stamp = os.path.getmtime(os.path.join(folder, "restaurants.train.inter"))
    assert sample.ensure_restaurants(data_path, encoder=HashEncoder(), **SMALL) == folder
    assert calls == ["time"]  # reused, not rebuilt
    assert os.path.getmtime(os.path.join(folder, "restaurants.train.inter")) == stamp
    with open(os.path.join(folder, "REPORT.json"), encoding="utf-8") as handle:
        assert json.load(handle)["source"]["seed"] == sample.DEFAULT_SEED
    sample.ensure_restaurants(data_path, seed=5, encoder=HashEncoder(), show_progress=False, **SMALL)
    assert len(calls) == 2  # another seed: rebuilt
    sample.ensure_restaurants(data_path, seed=5, force=True, encoder=HashEncoder(), show_progress=False, **SMALL)
    assert len(calls) == 3
    with pytest.raises(TypeError, match="n_items"):
        sample.ensure_restaurants(data_path, n_items=5)


@pytest.mark.slow
def test_cli_builds_with_the_real_encoder_and_code_reuses_it(tmp_path, monkeypatch):
    tiny = {"n_restaurants": 12, "n_users": 10, "n_reviews": 60}
    args = [f"--{k}={v}" for k, v in tiny.items()]
    done = subprocess.run(
        [sys.executable, "-m", "recbole_dlrrec.data.sample", "--out", str(tmp_path), "--seed", "4", "--quiet", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "restaurants ready" in done.stdout
    with np.load(os.path.join(tmp_path, "restaurants", "restaurants.itemvec.npz")) as z:
        assert z["vectors"].shape[1] == 384

    # A later call from code (as run_recbole does) reuses what the CLI built.
    def no_convert(*args, **kwargs):
        raise AssertionError("rebuilt although the CLI had built the same dataset")

    monkeypatch.setattr(gl, "convert", no_convert)
    assert sample.ensure_restaurants(str(tmp_path), seed=4, **tiny) == os.path.join(str(tmp_path), "restaurants")
