"""patches.py fix 3: RecBole 1.2.1's Dataset on pandas 3 (fills by assignment, empty seq cells,
per-row lengths). Each test fails on pandas 3 without its patch; on pandas 2 the patched path
must give what RecBole gave."""

from __future__ import annotations

import logging
import os
import types

import numpy as np
import pandas as pd
import pytest

from recbole_dlrrec import patches
from tests.conftest import write_tiny_dataset

PANDAS3 = int(pd.__version__.split(".")[0]) >= 3


@pytest.fixture(autouse=True, scope="module")
def _patched():
    """Every test here runs with the fixes installed (importing the package installs none)."""
    patches.apply()


def _fake_dataset(feat: pd.DataFrame, field2type: dict):
    """The attributes Dataset._fill_nan reads, on one feature table."""
    return types.SimpleNamespace(
        logger=logging.getLogger("test"), feat_name_list=["item_feat"], item_feat=feat, field2type=field2type
    )


def test_fill_nan_fills_tokens_and_floats():
    from recbole.data.dataset.dataset import Dataset
    from recbole.utils import FeatureType

    def table():
        return pd.DataFrame({"item_id": [1, 2, 3], "brand": [1.0, np.nan, 2.0], "price": [1.0, np.nan, 3.0]})

    types_ = {"item_id": FeatureType.TOKEN, "brand": FeatureType.TOKEN, "price": FeatureType.FLOAT}
    fake = _fake_dataset(table(), types_)
    Dataset._fill_nan(fake)
    assert fake.item_feat["brand"].tolist() == [1.0, 0.0, 2.0]  # missing token -> [PAD]
    assert fake.item_feat["price"].tolist() == [1.0, 2.0, 3.0]  # missing float -> the field's mean

    original = _fake_dataset(table(), types_)
    Dataset._fill_nan.__wrapped__(original)  # RecBole's own _fill_nan
    if PANDAS3:  # the chained in-place fill fills a copy: the NaN stays, silently
        assert original.item_feat["price"].isna().sum() == 1
    else:
        pd.testing.assert_frame_equal(original.item_feat, fake.item_feat)


def test_fill_nan_empty_sequences():
    from recbole.data.dataset.dataset import Dataset
    from recbole.utils import FeatureType

    feat = pd.DataFrame({"tags": [np.array([3, 4]), np.nan], "vals": [np.nan, np.array([0.5])]})
    fake = _fake_dataset(feat, {"tags": FeatureType.TOKEN_SEQ, "vals": FeatureType.FLOAT_SEQ})
    Dataset._fill_nan(fake)
    assert fake.item_feat["tags"][1].dtype == np.int64 and len(fake.item_feat["tags"][1]) == 0
    assert fake.item_feat["vals"][0].dtype == np.float64 and len(fake.item_feat["vals"][0]) == 0


def test_agg_len_is_per_row_from_recbole_only():
    series = pd.Series([np.array([1, 2, 3]), np.array([4])])
    from_recbole = {"__name__": "recbole.data.dataset.dataset"}
    exec("lengths = series.agg(len)", from_recbole, namespace := {"series": series})
    assert namespace["lengths"].tolist() == [3, 1]
    if PANDAS3:  # everyone else gets pandas' own answer: len of the whole Series
        assert series.agg(len) == 2


def _tiny_with_gaps(root) -> str:
    """The tiny dataset, with item i3's tags and price left empty and a user feature file that
    lacks user u5 (RecBole adds the row with NaN features)."""
    data_path = write_tiny_dataset(root)
    item_file = os.path.join(data_path, "tiny", "tiny.item")
    with open(item_file) as handle:
        lines = handle.read().splitlines()
    lines[1 + 3] = "i3\tc3\t\t"
    with open(item_file, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    user_file = os.path.join(data_path, "tiny", "tiny.user")
    with open(user_file) as handle:
        lines = [line for line in handle.read().splitlines() if not line.startswith("u5\t")]
    with open(user_file, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return data_path


@pytest.fixture(scope="module")
def gappy_config(tmp_path_factory):
    from recbole_dlrrec.runtime.quick_start import build_config

    data_path = _tiny_with_gaps(tmp_path_factory.mktemp("gaps"))
    return build_config("DLRM", "tiny", config_dict={"data_path": data_path})


def _load(config):
    from recbole.data import create_dataset

    return create_dataset(config)


def test_dataset_with_missing_cells(gappy_config):
    dataset = _load(gappy_config)
    item = dataset.token2id("item_id", "i3")
    tags = dataset.item_feat["tags"]  # item_feat is still a DataFrame: one id array per row
    assert len(tags[item]) == 0  # empty cell: no tags (RecBole pads it later)
    i4 = dataset.token2id("item_id", "i4")
    assert sorted(dataset.id2token("tags", tags[i4])) == ["t1", "t4"]  # rows keep their own ids
    price = dataset.item_feat["price_level"].to_numpy()
    assert np.isfinite(np.stack(price).astype(float)).all()  # the missing price took the mean
    user = dataset.token2id("user_id", "u5")
    assert dataset.user_feat["age_band"][user] == 0  # missing user row: [PAD]


@pytest.mark.skipif(not PANDAS3, reason="RecBole's own code works on pandas 2")
def test_without_seq_cell_fix_loading_fails(gappy_config, monkeypatch):
    from recbole.data.dataset.dataset import Dataset

    monkeypatch.setattr(Dataset, "_load_feat", Dataset._load_feat.__wrapped__)
    with pytest.raises(AttributeError, match="split"):
        _load(gappy_config)


@pytest.mark.skipif(not PANDAS3, reason="RecBole's own code works on pandas 2")
def test_without_agg_len_fix_remap_fails(gappy_config, monkeypatch):
    monkeypatch.setattr(pd.Series, "agg", pd.Series.agg.__wrapped__)
    with pytest.raises(ValueError):
        _load(gappy_config)


def test_dataset_loads_without_chained_assignment_warnings(gappy_config):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _load(gappy_config)
    assert [str(w.message)[:80] for w in caught if w.category.__name__ == "ChainedAssignmentError"] == []


def test_feature_file_loads_as_recbole_loads_it(tmp_path, monkeypatch):
    """Where RecBole's own _load_feat works (no empty sequence cell), load_feature_file gives the
    same frame and the same field records, seq_len cuts included."""
    from recbole.data.dataset.dataset import Dataset
    from recbole.utils import FeatureSource

    from recbole_dlrrec.runtime.quick_start import build_config

    data_path = write_tiny_dataset(tmp_path)
    item_file = os.path.join(data_path, "tiny", "tiny.item")
    with open(item_file) as handle:  # a float_seq field beside the token_seq one
        lines = handle.read().splitlines()
    lines = [lines[0] + "\tscores:float_seq"] + [f"{line}\t{n % 3 + 0.5} {n}.25" for n, line in enumerate(lines[1:])]
    with open(item_file, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    config = build_config(
        "DLRM",
        "tiny",
        config_dict={
            "data_path": data_path,
            "seq_len": {"tags": 1},
            "load_col": {"item": ["item_id", "tags", "scores", "price_level"]},
        },
    )

    def loaded(load_feat):
        fake = types.SimpleNamespace(
            logger=logging.getLogger("test"),
            config=config,
            field2source={},
            field2type={},
            field2seqlen={},
            field2bucketnum={},
        )
        fake._get_load_and_unload_col = lambda source: Dataset._get_load_and_unload_col(fake, source)
        frame = load_feat(fake, item_file, FeatureSource.ITEM)
        return frame, (fake.field2source, fake.field2type, fake.field2seqlen, fake.field2bucketnum)

    ours, ours_fields = loaded(Dataset._load_feat)
    theirs, their_fields = loaded(Dataset._load_feat.__wrapped__)
    assert list(ours.columns) == list(theirs.columns) == ["item_id", "tags", "price_level", "scores"]
    assert ours_fields == their_fields and ours_fields[2] == {"item_id": 1, "tags": 1, "price_level": 1, "scores": 2}
    for column in ours.columns:
        for mine, recbole in zip(ours[column], theirs[column]):
            np.testing.assert_array_equal(mine, recbole)
            assert np.asarray(mine).dtype == np.asarray(recbole).dtype
