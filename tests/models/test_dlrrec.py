"""DLRREC: shapes, the co-training gradient path, ablation switches, PCA freezing, determinism,
checkpoints and bad input."""
from __future__ import annotations

import io

import pytest
import torch

from recbole_dlrrec.runtime.quick_start import build_model, load_splits, run


@pytest.fixture
def model_and_batch(tiny_config):
    def make(**overrides):
        config = tiny_config("DLRREC", **overrides)
        _, train, valid, test = load_splits(config)
        model = build_model(config, train)
        return model, next(iter(train)), (config, train, valid, test)

    return make


def test_forward_shapes_include_text_vectors(model_and_batch):
    model, batch, (config, *_ ) = model_and_batch()
    vectors, dense = model.feature_vectors(batch)
    # 4 token + 1 token_seq + dense + item text + user text
    assert vectors.shape == (len(batch), 8, config["embedding_size"])
    assert model(batch).shape == (len(batch),)
    assert model.text_sides["item"].tower(model.text_sides["item"].vectors[:3].float()).shape == (3, config["reduction_dim"])
    rec, item, user = model.calculate_loss(batch)
    assert rec.dim() == item.dim() == user.dim() == 0


def _tower_grads(model, loss):
    model.zero_grad()
    loss.backward(retain_graph=True)
    return {
        side: sum(float(p.grad.abs().sum()) for p in mod.tower.parameters() if p.grad is not None)
        for side, mod in model.text_sides.items()
    }


def test_reduction_tower_gets_gradients_from_rec_and_contrastive_losses(model_and_batch):
    model, batch, _ = model_and_batch(w1=0.5, w2=0.5)
    rec, item, user = model.calculate_loss(batch)
    from_rec = _tower_grads(model, rec)
    assert from_rec["item"] > 0 and from_rec["user"] > 0
    from_ii = _tower_grads(model, item)
    assert from_ii["item"] > 0 and from_ii["user"] == 0  # L_ii shapes only the item tower
    from_uu = _tower_grads(model, user)
    assert from_uu["user"] > 0 and from_uu["item"] == 0


def test_zero_weights_give_exactly_the_no_contrastive_loss(model_and_batch):
    off, batch, _ = model_and_batch(w1=0.0, w2=0.0)
    on, _, _ = model_and_batch(w1=0.3, w2=0.2)
    off.eval(), on.eval()  # no dropout: the same weights must give the same L_rec
    rec_off, item_off, user_off = off.calculate_loss(batch)
    assert float(item_off) == 0.0 and float(user_off) == 0.0
    assert torch.equal(rec_off + item_off + user_off, off.rec_loss_value(off(batch), batch))
    rec_on, item_on, user_on = on.calculate_loss(batch)
    assert torch.equal(rec_on, rec_off)  # same seed, same init: only the heads differ
    assert float(item_on) > 0 and float(user_on) > 0
    assert off.samplers == {}  # no SWING work when the heads are off


def test_pca_reduction_is_frozen_during_training(tiny_config):
    from recbole.utils import get_trainer

    config = tiny_config("DLRREC", reduction="pca", epochs=2)
    _, train, valid, _ = load_splits(config)
    model = build_model(config, train)
    tower = model.text_sides["item"].tower
    assert not any(True for _ in tower.parameters())  # PCA has no trainable weights
    before = {k: v.clone() for k, v in tower.state_dict().items()}
    assert before["pca_components"].abs().sum() > 0  # fitted, not zeros
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    trainer.fit(train, valid, saved=False)
    for key, value in tower.state_dict().items():
        assert torch.equal(value, before[key]), key
    # ...while the adapter after it did train.
    assert any(p.requires_grad for p in model.text_sides["item"].adapter.parameters())


@pytest.mark.slow
def test_same_seed_same_result(tiny_config, tmp_path):
    results = [
        run("DLRREC", config=tiny_config("DLRREC", epochs=2, seed=7), saved=False, result_file=str(tmp_path / f"{i}.json"))
        for i in range(2)
    ]
    assert results[0]["valid_result"] == results[1]["valid_result"]
    assert results[0]["test_result"] == results[1]["test_result"]
    other = run("DLRREC", config=tiny_config("DLRREC", epochs=2, seed=8), saved=False, result_file=str(tmp_path / "o.json"))
    assert other["valid_result"] != results[0]["valid_result"]


def test_save_load_round_trip_weights_only(model_and_batch):
    model, batch, (config, train, *_ ) = model_and_batch()
    model.eval()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = build_model(config, train)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    fresh.eval()
    assert torch.equal(model.predict(batch), fresh.predict(batch))


def test_two_epoch_run_reports_all_metrics_and_collapse(tiny_config, tmp_path):
    results = run("DLRREC", config=tiny_config("DLRREC", epochs=2), result_file=str(tmp_path / "r.json"))
    assert len(results["epochs"]) == 2
    assert set(results["test_result"]) == {"auc", "logloss", "accuracy", "fpr", "precision", "recall", "f1"}
    assert 0.0 <= results["test_result"]["auc"] <= 1.0


@pytest.mark.parametrize(
    "overrides, message",
    [
        # tau, w1, w2, reduction: refused by the config stack before any data (tests/config/).
        ({"reduction_dim": 64}, "reduction_dim=64 is larger than"),  # tiny vectors are 24-d
        ({"item_text_vec": None, "user_text_vec": None}, "expected fields: item and user text vectors"),
        ({"item_text_vec": "nosuch"}, "tiny.nosuch.npz does not exist"),
    ],
)
def test_bad_settings_raise_clear_value_errors(tiny_config, overrides, message):
    config = tiny_config("DLRREC", **overrides)
    _, train, _, _ = load_splits(config)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        build_model(config, train)


def test_nan_loss_names_the_part(model_and_batch):
    model, batch, _ = model_and_batch()
    with torch.no_grad():
        model.over_arch.model[0].weight.fill_(float("nan"))
    with pytest.raises(ValueError, match="loss part L_rec is nan"):
        model.calculate_loss(batch)
    model, batch, _ = model_and_batch(cl_repr="text")
    with torch.no_grad():
        model.text_sides["user"].vectors.fill_(float("nan"))
        model.text_sides["user"].adapter.weight.fill_(float("nan"))
    with pytest.raises(ValueError, match="loss part"):
        model.calculate_loss(batch)


def test_reduction_none_is_plain_dlrm(tiny_config):
    config = tiny_config("DLRREC", reduction="none", w1=0.0, w2=0.0)
    _, train, _, _ = load_splits(config)
    model = build_model(config, train)
    assert len(model.text_sides) == 0 and model.num_extra_vectors == 0
    dlrm = build_model(tiny_config("DLRM"), train)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in dlrm.parameters())


# -- text path switches and the backbone under DLRREC -------------------------------------------
def test_reduction_adapter_none_needs_matching_sizes(tiny_config):
    config = tiny_config("DLRREC", reduction_adapter="none")
    _, train, _, _ = load_splits(config)
    with pytest.raises(ValueError, match="reduction_adapter: none needs reduction_dim == embedding_size, "
                                         "got reduction_dim=8 and embedding_size=16"):
        build_model(config, train)


@pytest.mark.parametrize(
    "overrides, key",
    [({"reduction_adapter": "mlp"}, "reduction_adapter"), ({"text_dropout": -0.1}, "text_dropout"),
     ({"interaction": "cross"}, "interaction")],
)
def test_bad_text_switches_are_refused_by_the_config_stack(tiny_config, overrides, key):
    from recbole_dlrrec.config.keys import ConfigKeyError

    with pytest.raises(ConfigKeyError, match=f"config key '{key}'"):
        tiny_config("DLRREC", **overrides)


def test_pca_without_adapter_is_the_two_step_v0(model_and_batch):
    """reduction pca + reduction_adapter none + reduction_dim == embedding_size: the frozen PCA
    output is the interaction's text vector, with nothing trained in between."""
    model, batch, (config, *_) = model_and_batch(reduction="pca", reduction_adapter="none", reduction_dim=16,
                                                 no_history="zero")
    for side, module in model.text_sides.items():
        assert list(module.parameters()) == [], side
        ids = batch[config["ITEM_ID_FIELD"] if side == "item" else config["USER_ID_FIELD"]]
        pca = module.tower
        expected = (module.vectors[ids].float() - pca.pca_mean) @ pca.pca_components.T
        torch.testing.assert_close(module(ids), expected)
    vectors, _ = model.feature_vectors(batch)
    torch.testing.assert_close(vectors[:, -2:], torch.stack(model.extra_vectors(batch), 1))
    # With the default linear adapter and R != D, a trained Linear sits after the PCA.
    linear, _, _ = model_and_batch(reduction="pca")
    assert sum(p.numel() for p in linear.text_sides["item"].parameters()) == 8 * 16 + 16
    # no_history 'learned' (the default) adds one trained vector, for the users without text only.
    learned, _, _ = model_and_batch(reduction="pca", reduction_adapter="none", reduction_dim=16)
    assert [name for name, _ in learned.text_sides["user"].named_parameters()] == ["missing_vector"]


def test_embedding_l2_is_one_more_loss_part(model_and_batch):
    plain, batch, _ = model_and_batch()
    model, _, _ = model_and_batch(embedding_l2=0.01)
    plain.eval(), model.eval()
    parts = model.calculate_loss(batch)
    assert len(parts) == 4 and len(plain.calculate_loss(batch)) == 3
    assert torch.equal(parts[0], plain.calculate_loss(batch)[0])  # same init, same L_rec
    torch.testing.assert_close(parts[3], model.embedding_penalty(batch))
    model.zero_grad()
    parts[3].backward()
    assert float(model.sparse_arch.token_table.weight.grad.abs().sum()) > 0


def test_tower_gets_gradients_through_the_dcn_interaction(model_and_batch):
    model, batch, _ = model_and_batch(interaction="dcn", dcn_low_rank=4, w1=0.0, w2=0.0, text_dropout=0.2)
    rec = model.calculate_loss(batch)[0]
    grads = _tower_grads(model, rec)
    assert grads["item"] > 0 and grads["user"] > 0
    cross = model.interaction_arch.cross
    assert all(float(p.grad.abs().sum()) > 0 for p in cross.parameters())
