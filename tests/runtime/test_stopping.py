"""runtime/stopping.py: min_steps and stopping_patience_steps on top of RecBole's early stopping."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from recbole_dlrrec.runtime.stopping import NEVER, StepBudget, apply_step_budget, patience_in_validations


def fake_trainer(stopping_step=5, eval_step=1):
    calls = []
    trainer = SimpleNamespace(stopping_step=stopping_step, eval_step=eval_step, epochs=50)
    trainer._train_epoch = lambda data, epoch, **kw: calls.append(epoch) or 0.0
    return trainer, calls


@pytest.mark.parametrize(
    "patience, per_epoch, eval_step, expected",
    [(100, 10, 1, 9), (101, 10, 1, 10), (100, 10, 2, 4), (5, 10, 1, 0), (1, 1, 1, 0), (60, 1, 1, 59)],
)
def test_patience_in_steps_is_the_fewest_validations_that_span_it(patience, per_epoch, eval_step, expected):
    got = patience_in_validations(patience, per_epoch, eval_step)
    assert got == expected
    # RecBole stops after got + 1 validations without a better score: at least `patience` steps...
    assert (got + 1) * per_epoch * eval_step >= patience
    # ...and one validation fewer would not span them.
    assert got == 0 or got * per_epoch * eval_step < patience


def test_no_stop_before_min_steps_then_the_configured_patience():
    trainer, calls = fake_trainer(stopping_step=3)
    budget = apply_step_budget({"min_steps": 25, "stopping_patience_steps": None}, trainer, steps_per_epoch=10)
    assert isinstance(budget, StepBudget)
    seen = []
    for epoch in range(4):
        trainer._train_epoch(None, epoch)  # RecBole validates right after each epoch
        seen.append(trainer.stopping_step)
    assert calls == [0, 1, 2, 3]
    assert seen == [NEVER, NEVER, 3, 3]  # 10, 20 steps: no stop; 30 >= 25: RecBole's patience


def test_patience_steps_replace_stopping_step():
    trainer, _ = fake_trainer(stopping_step=5, eval_step=2)
    apply_step_budget({"min_steps": None, "stopping_patience_steps": 40}, trainer, steps_per_epoch=4)
    assert trainer.stopping_step == math.ceil(40 / 8) - 1


def test_both_null_leave_the_trainer_alone():
    trainer, _ = fake_trainer()
    train_epoch = trainer._train_epoch
    assert apply_step_budget({"min_steps": None, "stopping_patience_steps": None}, trainer, 10) is None
    assert trainer._train_epoch is train_epoch and trainer.stopping_step == 5


@pytest.mark.slow
def test_a_run_trains_at_least_min_steps_even_with_no_patience(tiny_config, tmp_path):
    from recbole_dlrrec.runtime.quick_start import load_splits, run

    config = tiny_config("DLRM", stopping_step=0, learning_rate=0.05, min_steps=1, epochs=12)
    _, train, _, _ = load_splits(config)
    per_epoch = len(train)
    quick = run("DLRM", config=config, saved=False, result_file=str(tmp_path / "a.json"))
    assert len(quick["epochs"]) < 8  # stopping_step 0 at a high rate stops early on the tiny data
    config = tiny_config("DLRM", stopping_step=0, learning_rate=0.05, min_steps=8 * per_epoch, epochs=12)
    results = run("DLRM", config=config, saved=False, result_file=str(tmp_path / "b.json"))
    assert len(results["epochs"]) >= 8


@pytest.mark.slow
def test_dlrrec_at_defaults_takes_the_minimum_steps_on_a_small_real_slice(tmp_path, real_data_slice):
    """A few hundred real rows are one batch per epoch: stopping_step alone stopped DLRREC after
    a handful of steps; its default min_steps keeps it training (up to the epochs cap)."""
    from recbole_dlrrec.cli.convert import main as convert
    from recbole_dlrrec.runtime.quick_start import build_config, load_splits, run

    reviews, meta = real_data_slice
    out = str(tmp_path / "data")
    assert convert(["--reviews", reviews, "--meta", meta, "--name", "glslice", "--out", out, "--quiet"]) == 0
    settings = {"data_path": out, "checkpoint_dir": str(tmp_path / "saved"), "state": "WARNING", "show_progress": False}
    config = build_config("DLRREC", "glslice", config_dict=settings)
    assert config["min_steps"] == 100 and config["stopping_step"] == 5  # the defaults under test
    _, train, _, _ = load_splits(config)
    per_epoch = len(train)
    assert per_epoch <= 2  # a small file: an epoch is one or two optimizer steps
    results = run("DLRREC", config=config, saved=False, result_file=str(tmp_path / "r.json"))
    steps = len(results["epochs"]) * per_epoch
    assert steps >= min(config["min_steps"], config["epochs"] * per_epoch)
