"""DLRREC's item_review_text: the item's train-review vector as one more item feature.

A tiny dataset with unique (user, item) pairs, a {dataset}.itemrev.npz (one item without reviews)
and a {dataset}.itemrevhist.npz listing every train row (a quarter without an earlier review)
stands in for a ``--user_vector mean`` build; the leak test converts the converter's own history
fixture (HashEncoder) twice.
"""

from __future__ import annotations

import hashlib
import os
import shutil

import numpy as np
import pytest
import torch
from conftest import write_tiny_dataset

from recbole_dlrrec.config.keys import ConfigKeyError
from recbole_dlrrec.data.convert.write import save_npz
from recbole_dlrrec.data.text_vectors import TextVectorsMissingError, save_text_vectors
from recbole_dlrrec.runtime.quick_start import build_config, build_model, load_splits, run
from tests.models.test_dlrrec_user_text import _train_pairs, _unique_pairs

DIM = 24  # the tiny dataset's text vector width
N_ITEMS = 50


@pytest.fixture(scope="module")
def rev_data(tmp_path_factory):
    """(data_path with the item review files, data_path without them, train pairs, row)."""
    plain = write_tiny_dataset(tmp_path_factory.mktemp("plain"))
    _unique_pairs(os.path.join(plain, "tiny"), "tiny")
    root = str(tmp_path_factory.mktemp("rev"))
    folder = os.path.join(root, "tiny")
    shutil.copytree(os.path.join(plain, "tiny"), folder)
    rng = np.random.default_rng(5)
    # The last item has no train review: it reads "no vector" everywhere.
    items = [f"i{j}" for j in range(N_ITEMS - 1)]
    save_text_vectors(os.path.join(folder, "tiny.itemrev.npz"), items, rng.normal(size=(len(items), DIM)))
    pairs = _train_pairs(folder)
    vectors = rng.normal(size=(len(pairs) // 2, DIM)).astype(np.float32)
    row = np.array([-1 if k % 4 == 0 else k % len(vectors) for k in range(len(pairs))], dtype=np.int64)
    save_npz(
        os.path.join(folder, "tiny.itemrevhist.npz"),
        users=np.array([p[0] for p in pairs]),
        items=np.array([p[1] for p in pairs]),
        row=row,
        vectors=vectors,
    )
    return root, plain, pairs, row


def _model(data_path, model="DLRREC", **overrides):
    config = build_config(model, "tiny", config_dict={"data_path": data_path, **overrides})
    dataset, train, valid, test = load_splits(config)
    return build_model(config, train), config, dataset, train, valid


def _rows_of(config, dataset, batch, pairs, row):
    """Each row's itemrevhist row (-1: none), None when the row is not listed."""
    of_pair = {tuple(p): int(r) for p, r in zip(pairs, row)}
    users = dataset.id2token(config["USER_ID_FIELD"], batch[config["USER_ID_FIELD"]].numpy())
    items = dataset.id2token(config["ITEM_ID_FIELD"], batch[config["ITEM_ID_FIELD"]].numpy())
    return [of_pair.get((u, i)) for u, i in zip(users, items)]


def _eval_batch(loader):
    batch = next(iter(loader))
    return batch[0] if isinstance(batch, tuple) else batch


# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_one_more_feature_vector_and_each_row_reads_its_own_review_row(rev_data):
    root, _, pairs, row = rev_data
    off, *_ = _model(root, no_history="zero")
    model, config, dataset, train, valid = _model(root, no_history="zero", item_review_text=True)
    model.eval()
    n = dataset.item_num
    tower = model.text_sides["item"]
    assert model.num_extra_vectors == off.num_extra_vectors + 1 == 3
    assert tower.vectors.shape == (2 * n + len(pairs) // 2, DIM)  # metadata, per item, per train row
    batch = next(iter(train))
    vectors, _ = model.feature_vectors(batch)
    assert vectors.shape == (len(batch), off.feature_vectors(batch)[0].shape[1] + 1, model.embedding_size)
    listed = _rows_of(config, dataset, batch, pairs, row)
    assert None not in listed and -1 in listed and any(r >= 0 for r in listed)
    rows = model.review_lookup(batch[config["USER_ID_FIELD"]], batch[config["ITEM_ID_FIELD"]])
    assert rows.tolist() == [2 * n + r if r >= 0 else n for r in listed]
    items = batch[config["ITEM_ID_FIELD"]]
    extras = model.extra_vectors(batch)
    torch.testing.assert_close(extras[-1], tower(rows), rtol=0, atol=0)
    torch.testing.assert_close(extras[0], tower(items), rtol=0, atol=0)  # the metadata vector as before
    # Valid rows are not listed: the item's full train-period review vector, row N + item.
    vbatch = _eval_batch(valid)
    assert set(_rows_of(config, dataset, vbatch, pairs, row)) == {None}
    vitems = vbatch[config["ITEM_ID_FIELD"]]
    assert torch.equal(model.review_lookup(vbatch[config["USER_ID_FIELD"]], vitems), vitems + n)


@pytest.mark.slow
def test_switch_off_reads_no_review_file_and_keeps_the_bytes(rev_data):
    """Off (the default), a folder with the review files trains and scores byte for byte as one
    without them: nothing of the switch's is built or read."""
    root, plain, *_ = rev_data
    runs = []
    for data_path in (root, plain):
        model, config, _, train, valid = _model(data_path)
        assert config["item_review_text"] is False and model.review_lookup is None
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        torch.manual_seed(0)
        losses = []
        for _, batch in zip(range(3), train):
            optimizer.zero_grad()
            parts = model.calculate_loss(batch)
            sum(parts).backward()
            optimizer.step()
            losses.append([float(p.detach()).hex() for p in parts])
        model.eval()
        scores = model.predict(_eval_batch(valid)).detach().numpy().tobytes()
        state = hashlib.sha256(b"".join(t.detach().numpy().tobytes() for t in model.state_dict().values()))
        runs.append((losses, scores, list(model.state_dict()), state.hexdigest()))
    assert runs[0] == runs[1]


@pytest.mark.slow
def test_a_score_moves_with_its_item_review_vector_and_only_its_own(rev_data):
    root, _, pairs, row = rev_data
    model, config, dataset, train, valid = _model(root, item_review_text=True)
    model.eval()
    tower, n = model.text_sides["item"], dataset.item_num
    vbatch = _eval_batch(valid)
    items = vbatch[config["ITEM_ID_FIELD"]]
    before = model.predict(vbatch)
    target = int(items[0])
    with torch.no_grad():
        tower.vectors[n + target] += 1.0  # the item's train-period review vector
    after = model.predict(vbatch)
    moved = ~torch.isclose(before, after, rtol=0, atol=0)
    assert torch.equal(moved, items == target)
    # A train row reads its own earlier-reviews row: changing it moves that row's score.
    batch = next(iter(train))
    listed = torch.tensor([r is not None and r >= 0 for r in _rows_of(config, dataset, batch, pairs, row)])
    k = int(torch.nonzero(listed)[0])
    rows = model.review_lookup(batch[config["USER_ID_FIELD"]], batch[config["ITEM_ID_FIELD"]])
    before = model.predict(batch)
    with torch.no_grad():
        tower.vectors[rows[k]] -= 1.0
    after = model.predict(batch)
    assert before[k] != after[k]
    assert torch.equal(before[rows != rows[k]], after[rows != rows[k]])


def test_rows_without_a_review_take_the_learned_vector_under_learned(rev_data):
    root, _, pairs, row = rev_data
    model, config, dataset, train, _ = _model(root, item_review_text=True)  # no_history: learned
    tower, n = model.text_sides["item"], dataset.item_num
    model.eval()
    with torch.no_grad():
        tower.missing_vector.fill_(0.5)
    batch = next(iter(train))
    none = torch.tensor([r == -1 for r in _rows_of(config, dataset, batch, pairs, row)])
    review = model.review_vectors(batch)[0]
    assert torch.equal(review[none], torch.full((int(none.sum()), model.embedding_size), 0.5))
    assert not torch.isclose(review[~none], torch.tensor(0.5)).all(dim=1).any()
    # The item without any train review, at evaluation; its metadata vector is its own.
    last = dataset.field2token_id[config["ITEM_ID_FIELD"]][f"i{N_ITEMS - 1}"]
    assert torch.equal(tower(torch.tensor([n + last]))[0], torch.full((model.embedding_size,), 0.5))
    assert not torch.equal(tower(torch.tensor([last]))[0], torch.full((model.embedding_size,), 0.5))


@pytest.mark.slow
def test_a_training_row_it_cannot_find_reads_no_vector_never_its_items_whole_period(rev_data):
    """oov_user_token puts the reserved user (id 0) in some train rows' place: their (user,
    item) is not listed, and the item's whole train period holds their own review."""
    root, *_ = rev_data
    model, config, dataset, train, _ = _model(root, item_review_text=True, oov_user_token=True)
    n = dataset.item_num
    batch = next(iter(train))
    users, items = batch[config["USER_ID_FIELD"]], batch[config["ITEM_ID_FIELD"]]
    reserved = users == 0
    assert reserved.any() and (~reserved).any()
    model.train()
    training = model.review_lookup(users, items)
    assert torch.equal(training[reserved], torch.full((int(reserved.sum()),), n))
    model.eval()
    evaluating = model.review_lookup(users, items)
    assert torch.equal(evaluating[reserved], items[reserved] + n)  # an unseen user at evaluation
    assert torch.equal(training[~reserved], evaluating[~reserved])  # listed rows: their own row


@pytest.mark.slow
def test_missing_files_or_no_item_tower_are_one_line_errors(rev_data):
    root, plain, *_ = rev_data
    with pytest.raises(
        TextVectorsMissingError,
        match=r"tiny[/\\]tiny\.itemrev\.npz \(written by the converter with --user_vector mean\)",
    ) as caught:
        _model(plain, item_review_text=True)
    assert "\n" not in str(caught.value)
    for overrides, why in (({"reduction": "none"}, "reduction is 'none'"), ({"item_text_vec": None}, "item_text_vec")):
        with pytest.raises(ConfigKeyError, match=f"item_review_text: true needs the item text tower, but {why}"):
            _model(root, item_review_text=True, **overrides)


def test_the_variant_names_the_switch(rev_data):
    root, *_ = rev_data
    model, config, *_ = _model(root, model="DLRREC-itemRev")
    assert config["item_review_text"] is True and model.review_lookup is not None


@pytest.mark.slow
def test_one_epoch_trains_with_the_switch_on(rev_data, tmp_path):
    root, *_ = rev_data
    config = build_config("DLRREC", "tiny", config_dict={"data_path": root, "epochs": 1, "item_review_text": True})
    assert config["fast_dataloader"]  # the per-row lookup works from the fast loader's batches
    results = run("DLRREC", config=config, result_file=str(tmp_path / "r.json"))
    assert len(results["epochs"]) == 1 and 0.0 <= results["test_result"]["auc"] <= 1.0


# -- leak: a converted dataset -------------------------------------------------------------
def _review_inputs(tmp_path, edit=None):
    """Per split, (user, item) -> the bytes of the raw review vector the item tower reads for
    that row, on the history fixture converted with --user_vector mean (``edit``: old -> new text)."""
    from recbole.data import create_dataset

    from recbole_dlrrec.models.dlrrec import DLRREC
    from tests.data.test_review_means import _build

    _, folder, _ = _build(tmp_path, edit=edit)
    overrides = {"data_path": os.path.dirname(folder), "item_review_text": True, "reduction_dim": 8}
    config = build_config("DLRREC", "hist", config_dict={**overrides, "w1": 0.0, "w2": 0.0, "use_gpu": False})
    splits = create_dataset(config).build()  # (the fixture's valid split holds one label: no loaders)
    model = DLRREC(config, splits[0]).eval()  # valid/test rows read their items' train period
    out = {}
    for name, split in zip(("train", "valid", "test"), splits):
        users, items = split.inter_feat[config["USER_ID_FIELD"]], split.inter_feat[config["ITEM_ID_FIELD"]]
        rows = model.review_lookup(users, items)
        vectors = model.text_sides["item"].vectors[rows].float()
        keys = zip(split.id2token("user_id", users.numpy()), split.id2token("item_id", items.numpy()))
        out[name] = {key: v.numpy().tobytes() for key, v in zip(keys, vectors)}
    return out


@pytest.mark.slow
def test_editing_a_test_or_valid_review_moves_no_input_vector_and_a_row_never_reads_its_own(tmp_path):
    before = _review_inputs(tmp_path / "a")
    edited = _review_inputs(
        tmp_path / "b", edit={"test text of h": "a", "test other": "b", "valid text of h": "c", "valid other": "d"}
    )
    assert before == edited and len(before["train"]) == 16
    # Control: a train review ("tie two", h at item b3) moves the later train row of b3 (o9's)
    # and never its own row, nor o3's (a tie: not earlier).
    train_edit = _review_inputs(tmp_path / "c", edit={"tie two": "an edited tie"})["train"]
    moved = {key for key in before["train"] if before["train"][key] != train_edit[key]}
    assert moved == {("o9", "b3")}


@pytest.mark.slow
def test_two_gloo_processes_train_with_the_switch_on(rev_data, tmp_path):
    """DDP: each rank looks its rows' review rows up on its own device (no loader change)."""
    from tests.runtime.test_ddp import _train

    root, *_ = rev_data
    result = _train(tmp_path, "DLRREC-itemRev", root, "tiny", "--epochs=1", nproc=2)
    assert result["config"]["world_size"] == 2 and result["config"]["item_review_text"] is True
    assert 0.0 <= result["test_result"]["auc"] <= 1.0


def test_board_cells_recorded_before_the_switch_stay_up_to_date(tmp_path):
    """A DLRREC cell recorded before item_review_text existed ran without it: today's default."""
    from recbole_dlrrec.experiments.board_cells import CellSpec, Leaderboard

    def runner(model, dataset, config_dict, **kwargs):
        defaults = board.expected_defaults(CellSpec(model, model, 2020))
        old = {k: v for k, v in defaults.items() if k != "item_review_text"}
        return {"test_result": {"auc": 0.5}, "best_epoch": 0, "timings": {}, "config": {**old, **config_dict}}

    board = Leaderboard("tiny", results_dir=str(tmp_path), runner=runner, log=lambda m: None)
    spec = CellSpec("DLRREC", "DLRREC", 2020)
    assert board.expected_defaults(spec)["item_review_text"] is False
    (record,) = board.run_cells([spec])
    assert board.stale_reason(spec, record) is None


@pytest.mark.slow
def test_with_semantic_ids_the_review_vector_comes_last(rev_data):
    root, *_ = rev_data
    model, config, _, train, _ = _model(root, item_review_text=True, semantic_ids=2, semantic_id_codes=4)
    model.eval()
    batch = next(iter(train))
    extras = model.extra_vectors(batch)
    assert model.num_extra_vectors == len(extras) == 2 + 2 + 1  # item and user text, 2 levels, reviews
    torch.testing.assert_close(extras[-1], model.review_vectors(batch)[0], rtol=0, atol=0)
    assert model.feature_vectors(batch)[0].shape[1] == _model(root)[0].feature_vectors(batch)[0].shape[1] + 3
