"""Unseen ids in DLRM and DLRREC: oov_embedding, id_dropout_user / _item (nn/oov.py) and
DLRREC's text_to_id (models/dlrrec_oov.py)."""

from __future__ import annotations

import hashlib

import pytest
import torch

from recbole_dlrrec.config.keys import ConfigKeyError
from recbole_dlrrec.runtime.quick_start import build_config, build_model, load_splits

pytestmark = pytest.mark.slow  # each test loads a dataset and builds a model (about 1 s)

ON = {"oov_embedding": True, "id_dropout_user": 0.2, "id_dropout_item": 0.1}


@pytest.fixture(scope="module")
def sparse_data_path(tmp_path_factory):
    """Few rows over many users and items: most of them never occur in TRAIN."""
    from conftest import write_tiny_dataset

    return write_tiny_dataset(
        tmp_path_factory.mktemp("oov"), name="sparse", n_users=300, n_items=300, n_rows=400, seed=3
    )


@pytest.fixture
def sparse(sparse_data_path):
    def make(model="DLRM", **overrides):
        config = build_config(model, "sparse", config_dict={"data_path": sparse_data_path, **overrides})
        _, train, valid, test = load_splits(config)
        return build_model(config, train), train, test

    return make


def _one_step_digest(model, train, test) -> str:
    """sha1 of one Adam step's loss and the evaluation scores of the first test batch after it."""
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    loss = model.calculate_loss(next(iter(train)))
    loss = sum(loss) if isinstance(loss, tuple) else loss
    loss.backward()
    opt.step()
    model.eval()
    with torch.no_grad():
        scores = model.predict(next(iter(test))[0])
    return hashlib.sha1(loss.detach().numpy().tobytes() + scores.numpy().tobytes()).hexdigest()


# Recorded at main's commit ebfe2e7 (before the switches existed), torch
# CPU, the tiny fixture, init_seed(11): one Adam step (lr 0.01) on the first train batch, then the
# eval scores of the first test batch. The switches off must give these bytes.
BEFORE_SWITCHES = {
    "DLRM": "de8eca53f657232ca5d52b0db2fa25a9338aa061",
    "DLRREC": "bfe43dbfe5e346c910c28ae757aa037f61043a1b",
}


@pytest.mark.parametrize("model_name", sorted(BEFORE_SWITCHES))
def test_switches_off_give_the_bytes_of_before(tiny_config, model_name):
    from recbole.utils import init_seed

    config = tiny_config(model_name)
    _, train, _, test = load_splits(config)
    init_seed(11, True)
    model = build_model(config, train)
    assert model.oov_arch is None and not any("oov" in key or "text_to_id" in key for key in model.state_dict())
    assert _one_step_digest(model, train, test) == BEFORE_SWITCHES[model_name]


def test_known_ids_are_the_ids_of_the_train_split(sparse):
    model, train, test = sparse(**ON)
    feat = train.dataset.inter_feat
    for i, field in enumerate(("user_id", "item_id")):
        expected = torch.zeros(train.dataset.num(field), dtype=torch.bool)
        expected[torch.unique(feat[field])] = True
        assert torch.equal(model.oov_arch.known(i), expected)
        test_ids = next(iter(test))[0][field]
        assert not model.oov_arch.known(i)[test_ids].all()  # the fixture has unseen ids in test


@pytest.mark.parametrize("model_name", ["DLRM", "DLRREC"])
def test_an_unseen_id_is_scored_through_its_sides_oov_row(sparse, model_name):
    model, _, test = sparse(model_name, **ON)
    model.eval()
    batch = next(iter(test))[0]
    known = [model.oov_arch.known(i)[batch[f]] for i, f in enumerate(("user_id", "item_id"))]
    with torch.no_grad():
        before = model.predict(batch)
        model.oov_arch.oov_rows[1].add_(1.0)  # the item side's row
        after = model.predict(batch)
    unseen_item = ~known[1]
    assert unseen_item.any() and (~unseen_item).any()
    assert (after[unseen_item] != before[unseen_item]).all()
    assert torch.equal(after[~unseen_item], before[~unseen_item])
    with torch.no_grad():  # the first-order term: one OOV bias per side
        model.oov_arch.oov_bias[0].add_(1.0)  # the user side's
        biased = model.predict(batch)
    unseen_user = ~known[0]
    assert unseen_user.any() and (~unseen_user).any()
    assert (biased[unseen_user] > after[unseen_user]).all()
    assert torch.equal(biased[~unseen_user], after[~unseen_user])


def test_id_dropout_trains_the_oov_rows_on_batches_of_known_ids_only(sparse):
    model, train, _ = sparse(**ON)
    batch = next(iter(train))
    assert model.oov_arch.known(0)[batch["user_id"]].all()  # a train batch: every id known
    model.calculate_loss(batch).backward()
    assert model.oov_arch.oov_rows.grad.abs().sum(1).gt(0).all()
    model.zero_grad()
    model, train, _ = sparse(oov_embedding=True)  # rate 0: nothing replaced in training
    model.calculate_loss(next(iter(train))).backward()
    grad = model.oov_arch.oov_rows.grad
    assert grad is None or not grad.any()


@pytest.mark.parametrize("model_name", ["DLRM", "DLRREC"])
def test_same_seed_same_bytes_with_the_switches_on(sparse, model_name):
    from recbole.utils import init_seed

    digests = []
    for _ in range(2):
        init_seed(5, True)
        model, train, test = sparse(model_name, text_to_id=model_name == "DLRREC", **ON)
        digests.append(_one_step_digest(model, train, test))
    assert digests[0] == digests[1]


def test_each_ddp_rank_draws_its_own_id_dropout_stream(sparse, monkeypatch):
    from recbole_dlrrec.models import dlrm
    from recbole_dlrrec.swing.sampler import rank_seed

    assert sparse(**ON)[0].oov_arch.seed == 2020  # one process: the config's seed
    monkeypatch.setattr(dlrm, "default_rank", lambda: 1)
    assert sparse(**ON)[0].oov_arch.seed == rank_seed(2020, 1) != 2020


def test_text_to_id_gives_an_unseen_item_with_text_the_maps_output(sparse):
    model, train, test = sparse("DLRREC", text_to_id=True, **ON)
    assert len(model.calculate_loss(next(iter(train)))) == 4  # L_rec, w1*L_ii, w2*L_uu, text_to_id
    model.eval()
    batch = next(iter(test))[0]
    unseen_item = ~model.oov_arch.known(1)[batch["item_id"]]
    has_text = model.text_to_id.has_text("item")[batch["item_id"]]
    assert (unseen_item & has_text).any()
    with torch.no_grad():
        before = model.predict(batch)
        model.oov_arch.oov_rows[1].add_(1.0)
        assert torch.equal(model.predict(batch), before)  # every item here has text: no OOV row
        model.text_to_id.maps["item"].net[-1].bias.add_(1.0)
        after = model.predict(batch)
    changed = after != before
    assert changed[unseen_item].all() and not changed[~unseen_item].any()


def test_text_to_id_fit_reads_only_warm_rows_and_trains_only_the_map(sparse):
    model, train, _ = sparse("DLRREC", text_to_id=True, oov_embedding=True)
    *_, fit = model.calculate_loss(next(iter(train)))
    fit.backward()
    named = dict(model.named_parameters())
    with_grad = {name for name, p in named.items() if p.grad is not None and p.grad.any()}
    assert with_grad and all(name.startswith("text_to_id.") for name in with_grad)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"text_to_id": True}, "needs oov_embedding"),
        ({"text_to_id": True, "oov_embedding": True, "reduction": "none"}, "needs text"),
    ],
)
def test_text_to_id_without_what_it_needs_is_refused(sparse, overrides, message):
    with pytest.raises(ConfigKeyError, match=message):
        sparse("DLRREC", **overrides)


@pytest.mark.parametrize(
    "variant, model_class, settings",
    [
        ("DLRREC-oov", "DLRREC", {"oov_embedding": True, "text_to_id": False}),
        ("DLRREC-textToId", "DLRREC", {"oov_embedding": True, "text_to_id": True}),
        ("DLRREC-semanticIds", "DLRREC", {"semantic_ids": 3}),
        ("DLRREC-oovToken", "DLRREC", {"oov_user_token": True}),
        ("DLRM-oovToken", "DLRM", {"oov_user_token": True}),
        ("FM-oovToken", "FM", {"oov_user_token": True}),
    ],
)
def test_the_unseen_id_variants_carry_their_switches_and_train_a_step(sparse, variant, model_class, settings):
    model, train, _ = sparse(variant)
    assert type(model).__name__ == model_class
    assert {key: train.dataset.config[key] for key in settings} == settings
    if settings.get("oov_user_token"):  # the reserved token (id 0) stands for some TRAIN users
        assert int((train.dataset.inter_feat["user_id"] == 0).sum()) > 0
    loss = model.calculate_loss(next(iter(train)))
    loss = sum(loss) if isinstance(loss, tuple) else loss
    assert torch.isfinite(loss)
    loss.backward()
