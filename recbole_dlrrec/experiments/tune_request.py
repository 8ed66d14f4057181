"""A tuning request and how a run's options are settled: a new run's defaults, and a resumed run's
options read back from its run_spec.json (a conflicting one refused in one line)."""

from __future__ import annotations

import dataclasses
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from recbole_dlrrec.experiments.search_records import TuneRunError, json_safe
from recbole_dlrrec.experiments.tune_space import default_space_file, space_model_name

TUNE_ROOT = os.path.join("results", "tune")
RAY_DIRNAME = ".ray"  # results/tune/.ray/<dataset>/<run>/: Ray's experiment folders
DEFAULT_MODEL = "DLRREC"
DEFAULT_GRACE_PERIOD = 1  # ASHA: epochs every trial gets before it can be stopped
DEFAULT_REDUCTION_FACTOR = 3  # ASHA: keep the best 1/3 at each rung (rungs 1, 3, 9, ... epochs)
# Schedulers: "asha" prunes on the validation metric of every epoch (fast, but which trials it
# stops depends on which reach a rung first, so timing); "none" trains every trial to the epoch
# cap (RecBole's early stopping alike for all) from configurations drawn up front.
SCHEDULERS = ("none", "asha")
DEFAULT_SCHEDULER = "asha"  # run_tune.py's; the tuned board's is "none" (tuned_board.TuneBudget)
DEFAULT_CPUS_PER_TRIAL = 1.0
DEFAULT_GPUS_PER_TRIAL = 0.0


@dataclass
class TuneRequest:
    """One search as asked. An option left None takes its default in a new run and the run's
    own value on ``resume`` (RUN_OPTIONS)."""

    model: Optional[str]  # None: DEFAULT_MODEL
    dataset: str
    num_samples: Optional[int] = None  # needed by a new run
    max_epochs: Optional[int] = None  # None: the config's `epochs`
    space_file: Optional[str] = None  # None: properties/tune/<MODEL>.yaml
    fixed: Dict[str, object] = field(default_factory=dict)  # --key=value overrides
    config_files: List[str] = field(default_factory=list)
    address: Optional[str] = None  # None: start Ray inside this process
    cpus_per_trial: Optional[float] = None  # None: DEFAULT_CPUS_PER_TRIAL
    gpus_per_trial: Optional[float] = None  # None: DEFAULT_GPUS_PER_TRIAL
    resume: bool = False
    name: Optional[str] = None
    seed: Optional[int] = None  # None: the config's `seed`
    out_root: str = TUNE_ROOT
    grace_period: Optional[int] = None  # None: DEFAULT_GRACE_PERIOD
    reduction_factor: Optional[float] = None  # None: DEFAULT_REDUCTION_FACTOR
    num_cpus: Optional[int] = None  # local Ray only; None: all CPUs of this machine
    evaluate_best: Optional[bool] = None  # re-train the best config and evaluate it on test; None: True
    trial_time_budget_s: Optional[float] = None  # a trial stops after the epoch that passes it; None: no limit
    scheduler: Optional[str] = None  # one of SCHEDULERS; None: DEFAULT_SCHEDULER


# Request field -> (run_spec.json key, the command-line option that sets it): what a resumed run
# takes from its spec. Where it runs (address, num_cpus) may change between the two.
RUN_OPTIONS = {
    "model": ("model", "--model"),
    "num_samples": ("num_samples", "--num_samples"),
    "max_epochs": ("max_epochs", "--max_epochs"),
    "space_file": ("space_file", "--space"),
    "fixed": ("fixed", "--key=value"),
    "config_files": ("config_files", "--config_files"),
    "seed": ("seed", "--seed"),
    "cpus_per_trial": ("cpus_per_trial", "--cpus_per_trial"),
    "gpus_per_trial": ("gpus_per_trial", "--gpus_per_trial"),
    "grace_period": ("grace_period", "--grace_period"),
    "reduction_factor": ("reduction_factor", "--reduction_factor"),
    "evaluate_best": ("evaluate_best", "--no_test"),
    "trial_time_budget_s": ("trial_time_budget_s", "--trial_time_budget_s"),
    "scheduler": ("scheduler", "--search_scheduler"),
}
# Defaults of a new run, and of a resumed run whose spec predates the key (run_spec.json from
# before evaluate_best was recorded: those runs evaluated test unless told otherwise).
NEW_RUN_DEFAULTS = {
    "model": DEFAULT_MODEL,
    "cpus_per_trial": DEFAULT_CPUS_PER_TRIAL,
    "gpus_per_trial": DEFAULT_GPUS_PER_TRIAL,
    "grace_period": DEFAULT_GRACE_PERIOD,
    "reduction_factor": DEFAULT_REDUCTION_FACTOR,
    "evaluate_best": True,
    "scheduler": DEFAULT_SCHEDULER,
}


def with_run_name(request: TuneRequest) -> TuneRequest:
    """The request with its run name (default <MODEL>-<time>), checked; a new object, so a
    caller that names the run to resume after Ctrl-C names the one that ran."""
    name = request.name
    if not name:
        if request.resume:
            raise TuneRunError("--resume needs --name RUN (the run to continue)")
        name = f"{request.model or DEFAULT_MODEL}-{time.strftime('%Y%m%d-%H%M%S')}"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", name):
        raise TuneRunError(f"--name {name!r}: use letters, digits and _ . + - only")
    return dataclasses.replace(request, name=name)


def _given(request: TuneRequest, attr: str):
    """The request's value of a RUN_OPTIONS field in run_spec.json's terms, or None when not given."""
    value = getattr(request, attr)
    if attr in ("fixed", "config_files"):
        return None if not value else json_safe(value if attr == "fixed" else [os.path.abspath(f) for f in value])
    if attr == "space_file":
        return None if value is None else os.path.abspath(value)
    return value


def _option_text(flag: str, value) -> str:
    if flag == "--no_test":
        return "without --no_test" if value else "with --no_test"
    if flag == "--key=value":
        return "with " + (" ".join(f"--{k}={v}" for k, v in sorted(value.items())) or "no --key=value")
    if flag == "--config_files":
        return f"with --config_files={','.join(value)}" if value else "without --config_files"
    return f"with {flag}={value}"


def _recorded(spec: dict, key: str):
    """A run_spec.json value; the scheduler in SCHEDULERS' spelling (runs before the choice
    recorded "ASHA", the only scheduler then)."""
    value = spec.get(key)
    return value.lower() if key == "scheduler" and isinstance(value, str) else value


def resumed_request(request: TuneRequest, spec: dict, spec_path: str) -> TuneRequest:
    """The request of a resumed run: every RUN_OPTIONS value from its spec (a key the spec
    predates: the request's value, else the default). TuneRunError (one line) when the request
    gives an option with another value than the run was started with."""
    if spec.get("dataset") != request.dataset:
        raise TuneRunError(
            f"{spec_path}: run {request.name} is on dataset {spec.get('dataset')}, not {request.dataset}"
        )
    values: Dict[str, Any] = {}
    for attr, (key, flag) in RUN_OPTIONS.items():
        recorded, given = _recorded(spec, key), _given(request, attr)
        if given is not None and recorded is not None and given != recorded:
            raise TuneRunError(
                f"--resume: run {request.name} was started {_option_text(flag, recorded)}, not "
                f"{_option_text(flag, given)} ({spec_path}); a resumed run keeps the options it was "
                "started with"
            )
        if recorded is not None:
            values[attr] = recorded
        elif given is None and attr in NEW_RUN_DEFAULTS:
            values[attr] = NEW_RUN_DEFAULTS[attr]
    values["space_file"] = os.path.join(os.path.dirname(spec_path), "space.yaml")  # the merged copy
    return dataclasses.replace(request, **values)


def new_request(request: TuneRequest) -> TuneRequest:
    """The request of a new run, its unset options at their defaults."""
    if request.num_samples is None:
        raise TuneRunError("--num_samples is needed to start a run (only --resume takes the run's own)")
    if request.scheduler is not None and request.scheduler not in SCHEDULERS:
        raise TuneRunError(f"--search_scheduler={request.scheduler}: choose one of {', '.join(SCHEDULERS)}")
    from recbole_dlrrec.config.registry import resolve_model
    from recbole_dlrrec.config.stack import PROPERTIES_DIR

    values: Dict[str, Any] = {
        attr: default for attr, default in NEW_RUN_DEFAULTS.items() if getattr(request, attr) is None
    }
    model = str(values.get("model", request.model))
    space_file = request.space_file or default_space_file(space_model_name(resolve_model(model)[0]), PROPERTIES_DIR)
    return dataclasses.replace(request, **values, space_file=space_file)


def time_box(spec: dict) -> Optional[dict]:
    """Ray's stop rule for a run with ``trial_time_budget_s``: a trial ends after the epoch whose
    report finds its total time past the budget (its best validation so far stands), so a
    dataset whose epochs take long still gives every trial a turn. None: no time box."""
    budget = spec.get("trial_time_budget_s")
    return None if budget is None else {"time_total_s": float(budget)}
