"""DLRREC's user_text / no_history switches: which user text vector each row sees.

A tiny dataset with unique (user, item) pairs and a {dataset}.userhist.npz listing every train
row (a third of them without earlier text) stands in for a converted Google Local dataset.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch
from conftest import write_tiny_dataset

from recbole_dlrrec.data.convert.write import save_npz
from recbole_dlrrec.data.text_vectors import TextVectorsMissingError
from recbole_dlrrec.models.dlrrec_strategies import REPRESENTATIONS
from recbole_dlrrec.runtime.quick_start import build_config, build_model, load_splits

SPLITS = ("train", "valid", "test")
DIM = 24  # the tiny dataset's text vector width


def _unique_pairs(folder: str, name: str) -> None:
    """Keep the first row of each (user, item) pair over train, valid, test (as the converter does)."""
    seen = set()
    for split in SPLITS:
        path = os.path.join(folder, f"{name}.{split}.inter")
        header, *rows = open(path).read().splitlines()
        kept = []
        for row in rows:
            pair = tuple(row.split("\t")[:2])
            if pair not in seen:
                seen.add(pair)
                kept.append(row)
        with open(path, "w") as handle:
            handle.write("\n".join([header, *kept]) + "\n")


def _train_pairs(folder: str, name: str = "tiny"):
    return [row.split("\t")[:2] for row in open(os.path.join(folder, f"{name}.train.inter")).read().splitlines()[1:]]


def _write_history(folder: str, pairs, row, vectors, name: str = "tiny", leave_out: str = "") -> str:
    arrays = dict(
        users=np.array([p[0] for p in pairs]),
        items=np.array([p[1] for p in pairs]),
        row=np.asarray(row, dtype=np.int64),
        vectors=np.asarray(vectors, dtype=np.float32),
    )
    path = os.path.join(folder, f"{name}.userhist.npz")
    save_npz(path, **{k: v for k, v in arrays.items() if k != leave_out})
    return path


@pytest.fixture(scope="module")
def hist_data(tmp_path_factory):
    """(data_path with tiny.userhist.npz, data_path without it, train pairs, row, vectors)."""
    plain = write_tiny_dataset(tmp_path_factory.mktemp("plain"))
    _unique_pairs(os.path.join(plain, "tiny"), "tiny")
    root = str(tmp_path_factory.mktemp("hist"))
    shutil.copytree(os.path.join(plain, "tiny"), os.path.join(root, "tiny"))
    pairs = _train_pairs(os.path.join(root, "tiny"))
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(len(pairs) // 2, DIM)).astype(np.float32)
    row = np.array([-1 if k % 3 == 0 else k % len(vectors) for k in range(len(pairs))], dtype=np.int64)
    _write_history(os.path.join(root, "tiny"), pairs, row, vectors)
    return root, plain, pairs, row, vectors


def _model(data_path, model="DLRREC", **overrides):
    config = build_config(model, "tiny", config_dict={"data_path": data_path, **overrides})
    dataset, train, valid, test = load_splits(config)
    return build_model(config, train), config, dataset, train, valid


def _listed(model, config, dataset, batch, pairs, row):
    """For each row of `batch`: its userhist row (-1: none), or None when it is not listed."""
    of_pair = {tuple(p): int(r) for p, r in zip(pairs, row)}
    users = dataset.id2token(config["USER_ID_FIELD"], batch[config["USER_ID_FIELD"]].numpy())
    items = dataset.id2token(config["ITEM_ID_FIELD"], batch[config["ITEM_ID_FIELD"]].numpy())
    return [of_pair.get((u, i)) for u, i in zip(users, items)]


# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_auto_picks_before_row_when_the_file_exists_and_full_otherwise(hist_data):
    root, plain, *_ = hist_data
    model, *_ = _model(root)
    assert model.user_text == "before_row" and model.history_lookup is not None
    model, *_ = _model(plain)
    assert model.user_text == "full" and model.history_lookup is None


def test_a_train_row_gets_its_before_row_vector_and_a_valid_row_the_full_one(hist_data):
    root, _, pairs, row, vectors = hist_data
    model, config, dataset, train, valid = _model(root, no_history="zero")
    model.eval()
    tower = model.text_sides["user"]
    n_users = dataset.user_num
    assert tower.vectors.shape == (n_users + len(vectors), DIM)
    batch = next(iter(train))
    listed = _listed(model, config, dataset, batch, pairs, row)
    assert None not in listed  # every train row is listed
    rows = model.tower_rows("user", batch)
    users = batch[config["USER_ID_FIELD"]]
    expected = torch.tensor([n_users + r if r >= 0 else 0 for r in listed])
    assert torch.equal(rows, expected)
    with_history = torch.tensor([r >= 0 for r in listed])
    assert with_history.any() and (~with_history).any()
    assert torch.equal(
        tower.vectors[rows[with_history]],  # (stored in bf16 under bf16 autocast)
        torch.from_numpy(vectors[[r for r in listed if r >= 0]]).to(tower.vectors.dtype),
    )
    user_text = model.extra_vectors(batch)[list(model.text_sides).index("user")]
    torch.testing.assert_close(user_text, tower(expected))
    full = tower(users)  # what user_text: full would give
    assert not torch.allclose(user_text[with_history], full[with_history])
    torch.testing.assert_close(user_text[~with_history], tower(torch.zeros_like(users[~with_history])))

    vbatch = next(iter(valid))
    vbatch = vbatch[0] if isinstance(vbatch, tuple) else vbatch
    assert set(_listed(model, config, dataset, vbatch, pairs, row)) == {None}
    assert torch.equal(model.tower_rows("user", vbatch), vbatch[config["USER_ID_FIELD"]])
    # The contrastive heads and the collapse monitor represent a user by id: the full vector.
    model.representation_strategy = REPRESENTATIONS["text"]()
    torch.testing.assert_close(model.representation("user", users), full)


@pytest.mark.slow
def test_learned_no_history_is_used_exactly_for_the_rows_without_text_and_trained(hist_data):
    root, _, pairs, row, _ = hist_data
    model, config, dataset, train, _ = _model(root, w1=0.0, w2=0.0)
    tower = model.text_sides["user"]
    assert tower.missing_vector is not None
    batch = next(iter(train))
    listed = torch.tensor([r >= 0 for r in _listed(model, config, dataset, batch, pairs, row)])
    model.eval()
    with torch.no_grad():
        tower.missing_vector.fill_(0.25)
    user_text = model.extra_vectors(batch)[list(model.text_sides).index("user")]
    assert torch.equal(user_text[~listed], torch.full(((~listed).sum().item(), model.embedding_size), 0.25))
    assert not torch.isclose(user_text[listed], torch.tensor(0.25)).all(dim=1).any()
    model.train()
    rec, *_ = model.calculate_loss(batch)
    rec.backward()
    # Every new parameter, and the tower the history rows pass through, gets a gradient.
    assert tower.missing_vector.grad is not None and tower.missing_vector.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in tower.tower.parameters())
    # A cold user (no vector at all) takes it too, also under user_text: full.
    model, config, dataset, _, valid = _model(root, user_text="full")
    cold = dataset.field2token_id[config["USER_ID_FIELD"]]["u79"]  # the tiny dataset's user without text
    torch.testing.assert_close(
        model.text_sides["user"](torch.tensor([cold, cold])),
        model.text_sides["user"].missing_vector.expand(2, -1).detach(),
        rtol=0,
        atol=0,
    )
    zero, *_ = _model(root, no_history="zero")
    assert zero.text_sides["user"].missing_vector is None


@pytest.mark.slow
def test_none_builds_no_user_tower(hist_data):
    root, *_ = hist_data
    model, config, _, train, _ = _model(root, user_text="none")
    assert list(model.text_sides) == ["item"] and model.num_extra_vectors == 1 and model.history_lookup is None
    batch = next(iter(train))
    vectors, _ = model.feature_vectors(batch)
    full, *_ = _model(root, user_text="full")
    assert vectors.shape[1] == full.feature_vectors(batch)[0].shape[1] - 1
    assert all(torch.isfinite(part) for part in model.calculate_loss(batch))  # L_uu on ID embeddings


@pytest.mark.slow
def test_variants_name_the_switch(hist_data):
    root, *_ = hist_data
    model, config, *_ = _model(root, model="DLRREC-itemText")
    assert config["user_text"] == "none" and "user" not in model.text_sides
    model, config, *_ = _model(root, model="DLRREC-fullUserText")
    assert config["user_text"] == "full" and model.history_lookup is None and model.user_text == "full"


@pytest.mark.slow
def test_pca_v0_fits_on_the_user_id_rows_as_before(hist_data):
    root, *_ = hist_data
    history, *_ = _model(root, reduction="pca")
    full, *_ = _model(root, reduction="pca", user_text="full")
    for key in ("pca_mean", "pca_components"):
        torch.testing.assert_close(
            getattr(history.text_sides["user"].tower, key), getattr(full.text_sides["user"].tower, key)
        )


@pytest.mark.slow
def test_defaults_without_a_history_file_keep_the_numbers_where_every_user_has_text(tmp_path):
    """No userhist file and a text for every user (ml-100k's case): the defaults (auto, learned)
    train exactly as user_text: full, no_history: zero (the behaviour before the switches)."""
    from recbole_dlrrec.data.text_vectors import save_text_vectors

    root = write_tiny_dataset(str(tmp_path), n_rows=1200)
    folder = os.path.join(root, "tiny")
    with np.load(os.path.join(folder, "tiny.uservec.npz")) as z:
        vectors = np.concatenate([z["vectors"], z["vectors"][:1]])
    save_text_vectors(os.path.join(folder, "tiny.uservec.npz"), [f"u{u}" for u in range(80)], vectors)
    runs = []
    for overrides in ({}, {"user_text": "full", "no_history": "zero"}):
        model, config, _, train, _ = _model(root, **overrides)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        losses = []
        for _, batch in zip(range(3), train):
            optimizer.zero_grad()
            loss = sum(model.calculate_loss(batch))
            loss.backward()
            optimizer.step()
            losses.append(float(loss))
        state = {k: v for k, v in model.state_dict().items() if "missing_vector" not in k}
        runs.append((losses, state))
    assert runs[0][0] == runs[1][0]
    assert runs[0][1].keys() == runs[1][1].keys()
    assert all(torch.equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])


def test_before_row_without_the_file_names_the_expected_path(hist_data):
    _, plain, *_ = hist_data
    with pytest.raises(TextVectorsMissingError, match=r"user_text='before_row' needs .*tiny[/\\]tiny\.userhist\.npz"):
        _model(plain, user_text="before_row")


def test_bad_values_are_refused_by_the_config_stack(hist_data):
    from recbole_dlrrec.config.keys import ConfigKeyError

    root, *_ = hist_data
    for key, value in (("user_text", "past"), ("no_history", "random")):
        with pytest.raises(ConfigKeyError, match=f"config key '{key}'"):
            build_config("DLRREC", "tiny", config_dict={"data_path": root, key: value})


@pytest.mark.parametrize(
    "problem, message",
    [
        ("duplicate", r"tiny\.userhist\.npz: user '\w+' and item '\w+' are listed twice"),
        ("no_row", r"tiny\.userhist\.npz: not a user history file with 'users', 'items', 'row' and 'vectors'"),
        ("row_range", r"tiny\.userhist\.npz: 'row' must lie in \[-1, "),
        ("width", r"tiny\.userhist\.npz: vectors are 5-d, the user text vectors 24-d"),
        ("lengths", r"tiny\.userhist\.npz: 'users', 'items' and 'row' must be 1-d of one length"),
    ],
)
def test_a_bad_history_file_is_one_line_naming_it(hist_data, tmp_path, problem, message):
    root, _, pairs, row, vectors = hist_data
    shutil.copytree(os.path.join(root, "tiny"), str(tmp_path / "tiny"))
    folder = str(tmp_path / "tiny")
    if problem == "duplicate":
        _write_history(folder, pairs + pairs[:1], np.append(row, 0), vectors)
    elif problem == "no_row":
        _write_history(folder, pairs, row, vectors, leave_out="row")
    elif problem == "row_range":
        _write_history(folder, pairs, np.where(row >= 0, row + len(vectors), row), vectors)
    elif problem == "width":
        _write_history(folder, pairs, row, vectors[:, :5])
    else:
        _write_history(folder, pairs, row[:-1], vectors)
    with pytest.raises(TextVectorsMissingError, match=message) as caught:
        _model(str(tmp_path))
    assert "\n" not in str(caught.value)
