"""The training step: train_precision (bf16 autocast), fused_optimizer, the CPU dropout, and
DLRREC's one-pass step (towers and token table read once for the rec and contrastive parts)."""

from __future__ import annotations

import pytest
import torch

from recbole_dlrrec.nn.layers import Dropout
from recbole_dlrrec.runtime import training
from recbole_dlrrec.runtime.quick_start import build_model, load_splits
from recbole_dlrrec.runtime.training import build_trainer, resolve_precision


# -- train_precision ---------------------------------------------------------------------------
def test_precision_resolution(monkeypatch):
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("BF16", "cpu") == "bf16"
    assert resolve_precision(None, "cpu") == "fp32"
    monkeypatch.setattr(training, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"
    assert resolve_precision("auto", "cuda") == "fp32"  # launch-bound there: bf16 did not help
    monkeypatch.setattr(training, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "fp32"  # emulated bf16 would be slower
    with pytest.raises(ValueError, match="'train_precision' must be one of auto|fp32|bf16, got 'half'"):
        resolve_precision("fp16", "cpu")


def test_config_turns_recbole_amp_on_only_for_bf16(tiny_config):
    bf16 = tiny_config("DLRREC", train_precision="bf16")
    assert bf16["enable_amp"] is True and bf16["train_precision"] == "bf16"
    fp32 = tiny_config("DLRREC", train_precision="fp32")
    assert not fp32["enable_amp"]
    # RecBole's own models keep RecBole's float32 unless asked.
    assert not tiny_config("DeepFM")["enable_amp"]
    assert tiny_config("DeepFM")["train_precision"] == "fp32"


def test_bad_precision_value_is_a_clear_error(tiny_config):
    with pytest.raises(ValueError, match=r"'train_precision' must be one of fp32\|bf16\|auto, got 'half'"):
        tiny_config("DLRREC", train_precision="half")


@pytest.mark.slow
def test_bf16_training_keeps_fp32_weights_and_evaluates_in_fp32(tiny_config):
    config = tiny_config("DLRREC", train_precision="bf16", w1=0.3, w2=0.3)
    _, train, _, _ = load_splits(config)
    model = build_model(config, train)
    assert model.text_sides["item"].vectors.dtype == torch.bfloat16  # stored as the tower reads them
    trainer = build_trainer(config, model)
    trainer._train_epoch(train, 0)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    batch = next(iter(train))
    model.eval()
    with torch.no_grad():
        scores = model.predict(batch)
    assert scores.dtype == torch.float32 and torch.isfinite(scores).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rec, item, user = model.calculate_loss(batch)
    assert all(torch.isfinite(part) for part in (rec, item, user))


def test_fp32_keeps_fp32_text_vectors(tiny_config):
    config = tiny_config("DLRREC", train_precision="fp32")
    _, train, _, _ = load_splits(config)
    assert build_model(config, train).text_sides["user"].vectors.dtype == torch.float32


# -- fused_optimizer ---------------------------------------------------------------------------
@pytest.mark.slow
def test_fused_optimizer_is_the_same_adam(tiny_config):
    def trained(fused: bool):
        config = tiny_config("DLRM", fused_optimizer=fused, train_precision="fp32", dropout_prob=0.0)
        _, train, _, _ = load_splits(config)
        model = build_model(config, train)
        trainer = build_trainer(config, model)
        assert isinstance(trainer.optimizer, torch.optim.Adam)
        assert bool(trainer.optimizer.param_groups[0]["fused"]) == fused
        before = torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])
        trainer._train_epoch(train, 0)
        return before, torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    (init, plain), (_, fused) = trained(False), trained(True)
    assert (plain - init).abs().max() > 1e-3  # it did train
    assert torch.allclose(plain, fused, atol=1e-5, rtol=1e-4)  # same update rule, other kernel


def test_other_optimizers_are_left_alone(tiny_config):
    config = tiny_config("DLRM", learner="sgd")
    _, train, _, _ = load_splits(config)
    trainer = build_trainer(config, build_model(config, train))
    assert isinstance(trainer.optimizer, torch.optim.SGD)


# -- Dropout -----------------------------------------------------------------------------------
def test_cpu_dropout_keeps_the_expectation_and_the_rate():
    torch.manual_seed(0)
    layer = Dropout(0.1)
    x = torch.ones(1000, 1000)
    y = layer(x)
    kept = (y != 0).float().mean().item()
    assert abs(kept - 0.9) < 0.002
    assert abs(y.mean().item() - 1.0) < 0.003  # E[output] = input
    assert torch.equal(y.unique().sort().values, torch.tensor([0.0, float(y.max())]))


def test_cpu_dropout_gradient_is_the_mask_and_eval_is_identity():
    torch.manual_seed(1)
    layer = Dropout(0.3)
    x = torch.randn(64, 32, requires_grad=True)
    y = layer(x)
    y.sum().backward()
    scale = 1 / (1 - round(0.3 * 65536) / 65536)
    assert torch.allclose(x.grad, (y != 0).float() * scale)
    layer.eval()
    assert torch.equal(layer(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)


def test_cpu_dropout_is_seeded_by_torch():
    layer = Dropout(0.5)
    x = torch.ones(4096)
    torch.manual_seed(7)
    first = layer(x)
    torch.manual_seed(7)
    assert torch.equal(first, layer(x))
    assert not torch.equal(first, layer(x))


# -- DLRREC's one-pass step ----------------------------------------------------------------------
@pytest.mark.parametrize("cl_repr", ["fused", "text", "id"])
def test_one_pass_loss_equals_the_separate_parts(tiny_config, cl_repr):
    """calculate_loss reads the towers and the token table once for the rec loss and both
    heads; in eval mode (no dropout) it must equal the loss built part by part."""
    # SWING positives: the tiny fixture's Jaccard top-k (the default) masks every negative out.
    config = tiny_config("DLRREC", w1=0.5, w2=0.5, cl_repr=cl_repr, train_precision="fp32", cl_similarity="swing")
    _, train, _, _ = load_splits(config)
    model = build_model(config, train)
    model.eval()
    batch = next(iter(train))
    states = {side: sampler.generator.get_state() for side, sampler in model.samplers.items()}
    rec, item, user = model.calculate_loss(batch)
    for side, state in states.items():
        model.samplers[side].generator.set_state(state)
    expected_rec = model.rec_loss_value(model(batch), batch)
    expected_item = 0.5 * model.contrastive_loss("item", batch[model.ITEM_ID])
    expected_user = 0.5 * model.contrastive_loss("user", batch[model.USER_ID])
    assert torch.allclose(rec, expected_rec, atol=1e-6)
    assert torch.allclose(item, expected_item, atol=1e-6)
    assert torch.allclose(user, expected_user, atol=1e-6)
    assert float(item.detach()) > 0 and float(user.detach()) > 0


# -- recorded predictions ---------------------------------------------------------------------
def test_recorded_predictions_are_the_last_evaluations_rows(tiny_config):
    config = tiny_config("DLRM", epochs=1)
    _, train, valid, test = load_splits(config)
    recording = build_trainer(config, build_model(config, train), record_predictions=True)
    assert isinstance(recording.evaluator, training.PredictionRecorder)
    assert recording.evaluator.labels is None
    recording.fit(train, valid, saved=False, show_progress=False)
    recorded = recording.evaluate(test, load_best_model=False)
    labels, scores = recording.evaluator.labels, recording.evaluator.scores
    # Recording changes no result: RecBole's own evaluator gives the same metrics.
    recording.evaluator = recording.evaluator.evaluator
    assert recording.evaluate(test, load_best_model=False) == recorded
    assert labels.dtype.name == scores.dtype.name == "float32"
    batches = [batch[0] if isinstance(batch, tuple) else batch for batch in test]
    model = recording.model.eval()
    with torch.no_grad():
        predicted = torch.cat([model.predict(batch) for batch in batches]).numpy()
    expected = torch.cat([batch[config["LABEL_FIELD"]] for batch in batches]).numpy()
    assert labels.tolist() == expected.tolist() and len(labels) == len(test.dataset)
    assert scores.tolist() == pytest.approx(predicted.tolist(), abs=1e-6)
    # Each test row's ids and its user's and item's train rows, in the order the rows were scored.
    assert recording.evaluate(test, load_best_model=False) == recorded  # a plain evaluator: nothing kept
    recording.evaluator = training.PredictionRecorder(recording.evaluator)
    recording.evaluate(test, load_best_model=False)
    assert recording.evaluator.keep_row_ids(train.dataset, test.dataset)
    ids = recording.evaluator.row_ids
    users = torch.cat([batch[config["USER_ID_FIELD"]] for batch in batches]).numpy()
    items = torch.cat([batch[config["ITEM_ID_FIELD"]] for batch in batches]).numpy()
    assert ids["user_id"].tolist() == users.tolist() and ids["item_id"].tolist() == items.tolist()
    train_users = train.dataset.inter_feat[config["USER_ID_FIELD"]].numpy().tolist()
    train_items = train.dataset.inter_feat[config["ITEM_ID_FIELD"]].numpy().tolist()
    assert ids["user_train_rows"].tolist() == [train_users.count(u) for u in users.tolist()]
    assert ids["item_train_rows"].tolist() == [train_items.count(i) for i in items.tolist()]
    # Rows that do not match the dataset's labels (another order) keep no ids; a new evaluation drops them.
    recording.evaluator.labels = recording.evaluator.labels.copy()
    recording.evaluator.labels[0] = 1 - recording.evaluator.labels[0]
    assert not recording.evaluator.keep_row_ids(train.dataset, test.dataset) and recording.evaluator.row_ids is None
    recording.evaluator.keep_row_ids(train.dataset, test.dataset)
    recording.evaluate(valid, load_best_model=False)
    assert recording.evaluator.row_ids is None
