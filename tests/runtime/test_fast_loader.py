"""fast_loader: the same rows, joined values and (on the CPU) batch order as RecBole's loaders,
the join done once, RecBole's Trainer unchanged, and RecBole's loader kept where it must be."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from recbole_dlrrec import patches

patches.apply()  # these tests build RecBole's loaders directly, so the fixes go in before RecBole's imports
from recbole.data.dataloader.general_dataloader import FullSortEvalDataLoader, NegSampleEvalDataLoader, TrainDataLoader
from recbole.data.dataset import Dataset

from recbole_dlrrec.runtime.fast_loader import (
    FastEvalDataLoader,
    FastTrainDataLoader,
    fast_dataloaders,
    join_columns,
    unsupported_reason,
)
from recbole_dlrrec.runtime.quick_start import load_splits, run


def _assert_same_interaction(a, b):
    assert list(a.interaction) == list(b.interaction)
    for name in a.interaction:
        assert a[name].dtype == b[name].dtype, name
        assert torch.equal(a[name], b[name]), name


def _rows(interaction):
    """Each row as a tuple of all its field values (a multiset key)."""
    cols = [interaction[name].reshape(len(interaction), -1) for name in interaction.interaction]
    flat = torch.cat([c.double() for c in cols], dim=1)
    return Counter(map(tuple, flat.tolist()))


@pytest.fixture
def standard_splits(tiny_config):
    def make(model="DeepFM", **overrides):
        config = tiny_config(model, fast_dataloader=False, **overrides)
        return config, load_splits(config)

    return make


def test_join_columns_equals_recbole_join(standard_splits):
    _, (_, train, valid, _) = standard_splits()
    for dataset in (train._dataset, valid._dataset):
        before = list(dataset.inter_feat.interaction)
        joined = join_columns(dataset)
        recbole_rows = dataset[np.arange(len(dataset))]  # Dataset.__getitem__ = inter_feat[index] + join
        assert list(joined) == list(recbole_rows.interaction)
        assert {"age_band", "cuisine", "tags", "price_level"} <= set(joined)  # user and item features
        for name, values in joined.items():
            assert values.dtype == recbole_rows[name].dtype and torch.equal(values, recbole_rows[name]), name
        assert list(dataset.inter_feat.interaction) == before  # the dataset itself is not modified


@pytest.mark.parametrize("batch_size", [256, 240])  # 2400 train rows: a short last batch, and none
def test_train_batches_identical_to_recbole_on_cpu(standard_splits, batch_size):
    config, (_, train, valid, test) = standard_splits(train_batch_size=batch_size)
    fast = FastTrainDataLoader(config, train._dataset, train._sampler, shuffle=train.shuffle, device="cpu")
    assert len(fast) == len(train) == math.ceil(len(train._dataset) / batch_size)
    for epoch in range(4):
        if epoch == 1:  # a partial pass (as a test peeking at one batch) keeps the two in step too
            pairs = [(next(iter(train)), next(iter(fast)))]
        else:  # each loader runs to its end, as the Trainer's for-loop does
            pairs = list(zip(list(train), list(fast)))
            assert len(pairs) == len(train)
        for standard_batch, fast_batch in pairs:
            _assert_same_interaction(standard_batch, fast_batch)


def test_one_epoch_holds_every_row_once_with_recbole_joined_values(standard_splits):
    config, (_, train, _, _) = standard_splits()
    dataset = train._dataset
    expected = _rows(dataset[np.arange(len(dataset))])
    fast = FastTrainDataLoader(config, dataset, shuffle=True)
    for _ in range(2):
        seen = Counter()
        for batch in fast:
            seen += _rows(batch)
        assert seen == expected


def test_same_seed_same_order_other_seed_other_order(standard_splits):
    config, (_, train, _, _) = standard_splits()

    def first(seed):
        return [b["item_id"] for b in FastTrainDataLoader(_with(config, seed=seed), train._dataset, shuffle=True)][:3]

    a, b, c = first(7), first(7), first(8)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


def _with(config, **values):
    for key, value in values.items():
        config[key] = value
    return config


def test_eval_batches_identical_to_recbole(standard_splits):
    config, (_, _, valid, test) = standard_splits(eval_batch_size=100)
    for loader, phase in ((valid, "valid"), (test, "test")):
        assert type(loader) is NegSampleEvalDataLoader
        fast = FastEvalDataLoader(config, loader._dataset, loader._sampler, phase=phase)
        assert len(fast) == len(loader) == 3
        for standard_batch, fast_batch in zip(loader, fast):
            assert standard_batch[1:] == fast_batch[1:] == (None, None, None)
            _assert_same_interaction(standard_batch[0], fast_batch[0])


def test_batches_are_sliced_from_the_joined_table_not_joined_again(standard_splits, monkeypatch):
    config, (_, train, valid, test) = standard_splits()
    fast_train, fast_valid, _ = fast_dataloaders(config, train, valid, test)
    calls = []
    monkeypatch.setattr(Dataset, "join", lambda self, df: calls.append(1) or df)
    batches = list(fast_train) + [b[0] for b in fast_valid]
    assert calls == [] and sum(len(b) for b in batches) == len(train._dataset) + len(valid._dataset)
    # An eval batch is a copy: editing it in place leaves the table alone.
    batch = next(iter(fast_valid))[0]
    batch["label"].fill_(-1)
    assert (fast_valid.columns["label"] >= 0).all()


@pytest.mark.slow
def test_load_splits_swaps_loaders_by_config(tiny_config):
    _, train, valid, test = load_splits(tiny_config("DLRREC"))  # plugin model: on by default
    assert (type(train), type(valid), type(test)) == (FastTrainDataLoader, FastEvalDataLoader, FastEvalDataLoader)
    assert train.dataset is train._dataset and train.shuffle
    _, train, valid, _ = load_splits(tiny_config("DeepFM"))  # RecBole model: off by default
    assert (type(train), type(valid)) == (TrainDataLoader, NegSampleEvalDataLoader)
    config = tiny_config("DeepFM", fast_dataloader=True, train_batch_size=100)
    _, train, valid, _ = load_splits(config)
    assert type(train) is FastTrainDataLoader and len(train) == 24
    config["train_batch_size"] = 1000
    train.update_config(config)
    assert len(train) == 3 and len(next(iter(train))) == 1000


def test_recbole_loader_kept_where_fast_one_cannot_reproduce_it(tiny_config):
    config = tiny_config(
        "DeepFM",
        fast_dataloader=True,
        metrics=["Recall", "NDCG"],
        valid_metric="Recall@10",
        eval_args={"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": "user", "mode": "full"},
    )
    _, train, valid, test = load_splits(config)
    assert type(train) is FastTrainDataLoader
    assert type(valid) is FullSortEvalDataLoader and type(test) is FullSortEvalDataLoader
    assert "FullSortEvalDataLoader" in unsupported_reason(config, valid)
    # Training negative sampling is left to RecBole.
    _, train, _, _ = load_splits(tiny_config("DeepFM", fast_dataloader=False))
    train.neg_sample_args = {"distribution": "uniform", "sample_num": 1}
    assert unsupported_reason(train.config, train) == "negative sampling"


@pytest.mark.slow
@pytest.mark.parametrize("model", ["DeepFM", "DLRREC"])
def test_trainer_results_match_standard_path(tiny_config, tmp_path, model):
    """RecBole's Trainer and Evaluator run unchanged on the fast loaders; with the same seed the
    CPU batches are the standard path's own, so valid and test AUC agree to float precision (on a
    GPU the fast loader's order is its own: agreement within seed noise)."""
    results = {}
    for fast in (False, True):
        config = tiny_config(model, fast_dataloader=fast, epochs=3, train_batch_size=128, learning_rate=0.01)
        results[fast] = run(model, config=config, saved=False, result_file=str(tmp_path / f"{model}-{fast}.json"))
    on_cpu = str(results[True]["environment"]["device"]) == "cpu"
    for split in ("valid_result", "test_result"):
        standard, fast = results[False][split]["auc"], results[True][split]["auc"]
        assert 0.5 < standard < 1.0  # it learned something
        assert fast == pytest.approx(standard, abs=1e-6 if on_cpu else 0.05)
    assert results[True]["config"]["fast_dataloader"] is True
