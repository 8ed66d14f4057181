"""Time-boxed trials of run_tune.py (--trial_time_budget_s): the spec keeps the budget and Ray
gets it as the trials' stop rule; no budget, no stop rule (today's searches unchanged)."""

from __future__ import annotations

import pytest

from recbole_dlrrec.experiments import ray_backend, tune
from recbole_dlrrec.experiments.search_records import TuneRunError
from recbole_dlrrec.experiments.tune_request import time_box

CONFIG = {"epochs": 3, "seed": 7, "valid_metric": "AUC", "valid_metric_bigger": True}


def _spec(budget):
    request = tune.TuneRequest(
        model="DLRM", dataset="tiny", name="r", num_samples=2, evaluate_best=True, trial_time_budget_s=budget
    )
    return tune._new_spec(request, "DLRM", "space.yaml", CONFIG)


def test_the_budget_goes_into_the_spec_and_into_rays_stop_rule():
    spec = _spec(90)
    assert spec["trial_time_budget_s"] == 90.0
    assert time_box(spec) == {"time_total_s": 90.0}
    assert _spec(None)["trial_time_budget_s"] is None and time_box(_spec(None)) is None
    assert time_box({}) is None  # a run_spec.json from before the key: no time box


@pytest.mark.parametrize("budget", [0, -5.0])
def test_a_budget_that_is_not_positive_is_refused(budget):
    with pytest.raises(TuneRunError, match="--trial_time_budget_s must be > 0"):
        _spec(budget)


@pytest.mark.slow
def test_the_command_line_passes_the_budget():
    from recbole_dlrrec.cli import tune as run_tune

    args, _, _ = run_tune.parse_args(["--dataset=tiny", "--num_samples=2", "--trial_time_budget_s=45"])
    assert args.trial_time_budget_s == 45.0
    assert run_tune.parse_args(["--dataset=tiny", "--num_samples=2"])[0].trial_time_budget_s is None


@pytest.mark.slow
def test_fit_gives_ray_the_stop_rule(tmp_path):
    from ray import tune as ray_tune

    from recbole_dlrrec.experiments.tune_space import SearchSpace

    seen = {}

    class Tuner:
        def __init__(self, trainable, **kwargs):
            seen.update(kwargs)

        def fit(self):
            raise KeyboardInterrupt  # stop before Ray starts anything

    class FakeTune:
        def __getattr__(self, name):
            return Tuner if name == "Tuner" else getattr(ray_tune, name)

    spec = {**_spec(30), "cpus_per_trial": 1.0, "gpus_per_trial": 0.0, "reduction_factor": 3}
    space = SearchSpace(str(tmp_path / "space.yaml"))
    record = str(tmp_path / "finished.jsonl")
    assert ray_backend.fit(FakeTune(), False, spec, space, lambda config: None, str(tmp_path), str(tmp_path), record)
    assert seen["run_config"].stop == {"time_total_s": 30.0}
