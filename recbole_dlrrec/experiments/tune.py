"""Hyperparameter search with Ray Tune: ASHA on the validation metric of every epoch.

    python run_tune.py --model=DLRREC --dataset=restaurants --num_samples=20 --max_epochs=10

One search, in order:

1. The space file (``tune_space``) and the fixed ``--key=value`` overrides are checked; a bad
   file or key fails here, before any data is built or any trial starts.
2. The data is prepared once in the driver: ``build_config`` + ``load_splits`` + ``build_model``
   with the default config, so the atomic files, the text vectors and the SWING cache exist.
   Trials then build their configs with ``prepare=False`` and absolute ``data_path`` /
   ``side_data_path`` / ``checkpoint_dir`` (Ray runs each trial in its own working directory),
   so they only read those files (a tuned SWING key makes its own cache entry, once).
3. Each trial is ``quick_start.run(..., evaluate_test=False, saved=False)``; an epoch callback
   reports the validation metric after EVERY epoch, so ASHA stops weak trials early. The test
   split is never touched by a trial: selection is on validation only.
4. A trial that raises (DLRREC raises ValueError on a NaN loss) or whose validation metric is
   not finite catches it, reports ``failed`` (the reason, one line) with a NaN score, and ends;
   it is recorded as ``failed`` and the search goes on (a worker that dies outright is Ray's
   ERROR status, recorded as ``failed`` too).
5. The best trial (best validation score over its epochs; direction from
   ``config['valid_metric_bigger']``) is RE-TRAINED in the driver with the same config and seed,
   and only this run evaluates the test split, once. Re-training instead of restoring a trial
   checkpoint keeps trials free of checkpoint I/O (about 20 x max_epochs model files); with a
   fixed seed on CPU the re-run repeats the trial's validation curve (the summary shows both).
6. Outputs in ``results/tune/<dataset>/<run>/``: ``trials.csv``, ``best_config.yaml`` (accepted
   by ``run_recbole.py --config_files=...``), ``best_test_result.json``,
   ``valid_<metric>_vs_<key>.png`` per tuned numeric key, ``space.yaml`` and ``run_spec.json``
   (what ``--resume`` needs), ``finished_trials.jsonl`` (below). Ray's own experiment folder
   (trial logs, RecBole logs, the re-trained model) lives in
   ``results/tune/.ray/<dataset>/<run>/``, which carries a ``.gitignore`` of its own.

Interruptions. Ctrl-C (or SIGTERM) stops the search after Ray saves its state; what finished
is written out and ``--resume`` (``Tuner.restore``) continues the unfinished trials later. Ray
saves its state only now and then, so after a ``kill -9`` it could restore a finished trial as
unfinished and train it again. The run's own record does not depend on it: the driver adds each
trial to ``finished_trials.jsonl`` (config, scores, per-epoch curve; one line per trial, the
file rewritten atomically) the moment it ends, and on ``--resume`` a trial whose id and values
(or, when Ray's state is missing and the search starts over with the same sampler seed, whose
values) are in the record replays the recorded reports instead of training. A local Ray is
watched by ``ray_reaper.py``, which stops every process of it when the driver ends, however it
ends.

Trial status in trials.csv: ``completed`` (trained to max_epochs or to RecBole's own early
stop), ``pruned`` (stopped by ASHA), ``failed`` (raised, or NaN metric; ``error`` says why),
``interrupted`` (stopped by Ctrl-C with some epochs done), ``not_started``.

All Ray calls of the project are in this module (``_ray_*`` functions and ``run_search``); the
rest of it (records, CSV, YAML, plots, summary) is Ray-free.
"""
from __future__ import annotations

import contextlib
import csv
import functools
import glob
import io
import json
import logging
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

from recbole_dlrrec import atomic
from recbole_dlrrec.errors import InputError
from recbole_dlrrec.experiments import ray_auth
from recbole_dlrrec.experiments.tune_space import SearchSpace, default_space_file, load_space

TUNE_ROOT = os.path.join("results", "tune")
RAY_DIRNAME = ".ray"  # results/tune/.ray/<dataset>/<run>/: Ray's experiment folders
LOCAL_OBJECT_STORE_BYTES = 128 * 1024 * 1024  # trials exchange only small dicts of metrics
DEFAULT_GRACE_PERIOD = 1  # ASHA: epochs every trial gets before it can be stopped
DEFAULT_REDUCTION_FACTOR = 3  # ASHA: keep the best 1/3 at each rung (rungs 1, 3, 9, ... epochs)
SUMMARY_ROWS = 10
# Environment for Ray, set before ray is imported: no usage stats, one copy of repeated logs.
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "1", "RAY_AIR_NEW_OUTPUT": "0"}
STATUSES = ("completed", "pruned", "failed", "interrupted", "not_started")
FINISHED_FILE = "finished_trials.jsonl"  # the run's own record of finished trials (module doc, Interruptions)


class TuneRunError(InputError, ValueError):
    """A search that cannot start as asked (run name taken, nothing to resume, bad option)."""


@dataclass
class TuneRequest:
    model: str
    dataset: str
    num_samples: int
    max_epochs: Optional[int] = None  # None: the config's `epochs`
    space_file: Optional[str] = None  # None: properties/tune/<MODEL>.yaml
    fixed: Dict[str, object] = field(default_factory=dict)  # --key=value overrides
    config_files: List[str] = field(default_factory=list)
    address: Optional[str] = None  # None: start Ray inside this process
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    resume: bool = False
    name: Optional[str] = None
    seed: Optional[int] = None  # None: the config's `seed`
    out_root: str = TUNE_ROOT
    grace_period: int = DEFAULT_GRACE_PERIOD
    reduction_factor: float = DEFAULT_REDUCTION_FACTOR
    num_cpus: Optional[int] = None  # local Ray only; None: all CPUs of this machine
    evaluate_best: bool = True  # re-train the best config and evaluate it on test


@dataclass
class TrialRecord:
    trial_id: str
    status: str
    params: Dict[str, object]
    epochs: int = 0
    last_score: Optional[float] = None
    best_score: Optional[float] = None
    best_epoch: Optional[int] = None
    seconds: Optional[float] = None
    error: str = ""


@dataclass
class TuneOutcome:
    out_dir: str
    experiment_dir: str
    metric: str
    bigger: bool
    trials: List[TrialRecord]
    best: Optional[TrialRecord]
    best_config_file: Optional[str]
    test_result_file: Optional[str]
    retrain: Optional[dict]
    plots: List[str]
    interrupted: bool
    summary: str


# -- paths and run spec -----------------------------------------------------------------------
def run_dirs(out_root: str, dataset: str, name: str):
    """(output folder, Ray storage folder, Ray experiment folder), all absolute."""
    out_root = os.path.abspath(out_root)
    storage = os.path.join(out_root, RAY_DIRNAME, dataset)
    return os.path.join(out_root, dataset, name), storage, os.path.join(storage, name)


def _ignore_ray_folder(out_root: str) -> None:
    """results/tune/.ray/ holds Ray's bulky trial folders: keep it out of git."""
    path = os.path.join(os.path.abspath(out_root), RAY_DIRNAME, ".gitignore")
    if not os.path.isfile(path):
        atomic.write_text(path, "# Ray Tune's own experiment folders (written by recbole_dlrrec.experiments.tune)\n*\n")


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def write_run_spec(path: str, spec: dict) -> str:
    return atomic.write_json(path, _json_safe(spec), indent=2, sort_keys=True)


def read_run_spec(path: str) -> dict:
    if not os.path.isfile(path):
        raise TuneRunError(f"nothing to resume: {path} not found (start the run without --resume first)")
    with open(path, encoding="utf-8") as handle:
        try:
            return json.load(handle)
        except json.JSONDecodeError as exc:
            raise TuneRunError(f"{path} is not valid JSON: {exc}") from None


# -- records -> outputs (Ray-free) ------------------------------------------------------------
def metric_column(metric: str) -> str:
    return f"valid_{metric.lower()}"


def is_better(a: float, b: float, bigger: bool) -> bool:
    return a > b if bigger else a < b


def select_best(records: Sequence[TrialRecord], bigger: bool) -> Optional[TrialRecord]:
    """The trial with the best validation score (any status that trained at least one epoch)."""
    best = None
    for record in records:
        score = record.best_score
        if record.status == "failed" or score is None or not math.isfinite(score):
            continue
        if best is None or is_better(score, best.best_score, bigger):
            best = record
    return best


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


def _parse_cell(text: str):
    """A value as _cell wrote it (repr of a float, JSON of a list, a plain string); '' -> None."""
    if text == "":
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _trials_header(keys: Sequence[str], column: str) -> List[str]:
    return ["trial_id", "status", "epochs", f"{column}_last", f"{column}_best", "best_epoch", "seconds", *keys, "error"]


def write_trials_csv(path: str, records: Sequence[TrialRecord], keys: Sequence[str], metric: str) -> str:
    """One row per trial: id, status, epochs run, last/best validation score, best epoch,
    seconds, each tuned key's value, and the error of a failed trial."""
    header = _trials_header(keys, metric_column(metric))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for r in records:
        writer.writerow([r.trial_id, r.status, r.epochs, _cell(r.last_score), _cell(r.best_score),
                         _cell(r.best_epoch), _cell(None if r.seconds is None else round(r.seconds, 2)),
                         *(_cell(r.params.get(k)) for k in keys), r.error])
    return atomic.write_text(path, buffer.getvalue())


def read_trials_csv(path: str) -> List[TrialRecord]:
    """The trials of a trials.csv that write_trials_csv wrote, with their tuned values parsed back."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields = list(reader.fieldnames or ())
        column = next((f[: -len("_best")] for f in fields if f.endswith("_best")), None)
        keys = fields[7:-1]
        if column is None or fields != _trials_header(keys, column):
            raise InputError(f"{path}: not a trials.csv of a search (header {fields})")
        return [TrialRecord(row["trial_id"], row["status"], {k: _parse_cell(row[k]) for k in keys},
                            epochs=int(row["epochs"]), last_score=_parse_cell(row[f"{column}_last"]),
                            best_score=_parse_cell(row[f"{column}_best"]), best_epoch=_parse_cell(row["best_epoch"]),
                            seconds=_parse_cell(row["seconds"]), error=row["error"])
                for row in reader]


def best_config_values(params: Dict[str, object], fixed: Dict[str, object], max_epochs: int, seed: int) -> dict:
    """What best_config.yaml holds: the user's fixed overrides (minus session-only keys), the
    epoch budget and seed the trials ran with, and the tuned values."""
    values = dict(fixed)
    values.update({"epochs": int(max_epochs), "seed": int(seed)})
    values.update(params)
    return values


def write_best_config(path: str, values: dict, model: str, dataset: str, note: str) -> str:
    import yaml

    rel = os.path.relpath(path)
    lines = [
        f"# Tuned with run_tune.py for --model={model} --dataset={dataset} ({note}).",
        f"# The model is not part of this file: python run_recbole.py --model={model} --dataset={dataset} "
        f"--config_files={rel}",
    ]
    for key, value in sorted(_json_safe(values).items()):
        # `key: value` per line; lists and dicts inline ([64, 64]) as in the properties files.
        flow = None if isinstance(value, (list, dict)) else False
        lines.append(yaml.safe_dump({key: value}, default_flow_style=flow, width=1000).strip())
    return atomic.write_text(path, "\n".join(lines) + "\n")


def plot_params(out_dir: str, records: Sequence[TrialRecord], space: SearchSpace, metric: str,
                title: str, best: Optional[TrialRecord]) -> List[str]:
    """One scatter per tuned numeric key: best validation metric of each trial against the
    key's value (log x axis for loguniform keys). Failed trials have no score: counted in the
    title. Returns the PNG paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    scored = [r for r in records if r.best_score is not None and math.isfinite(r.best_score)]
    failed = sum(r.status == "failed" for r in records)
    styles = {"completed": dict(color="C0", marker="o"), "pruned": dict(color="0.55", marker="v"),
              "interrupted": dict(color="C1", marker="s")}
    for param in space.params.values():
        if not param.numeric:
            continue
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for status, style in styles.items():
            points = [(float(r.params[param.key]), r.best_score) for r in scored
                      if r.status == status and _is_number(r.params.get(param.key))]
            if points:
                xs, ys = zip(*points)
                ax.scatter(xs, ys, label=f"{status} ({len(points)})", alpha=0.8, **style)
        if best is not None and _is_number(best.params.get(param.key)):
            ax.scatter([float(best.params[param.key])], [best.best_score], marker="*", s=220,
                       color="C3", zorder=3, label=f"best ({best.trial_id})")
        if param.log_scale:
            ax.set_xscale("log")
            ax.set_xlim(param.args[0] / 1.25, param.args[1] * 1.25)  # the whole searched range
        elif param.dist != "choice":
            margin = 0.04 * (param.args[1] - param.args[0])
            ax.set_xlim(param.args[0] - margin, param.args[1] + margin)
        ax.set_xlabel(f"{param.key} ({param.describe()})")
        ax.set_ylabel(f"best validation {metric}")
        ax.set_title(title + (f"\n{failed} failed trial(s) not shown" if failed else ""), fontsize=9)
        ax.grid(True, alpha=0.3)
        if scored:
            ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(out_dir, f"{metric_column(metric)}_vs_{param.key}.png")
        with atomic.atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)
        paths.append(path)
    return paths


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return json.dumps(value)
    return str(value)


def summary_table(records: Sequence[TrialRecord], keys: Sequence[str], metric: str, bigger: bool,
                  limit: int = SUMMARY_ROWS) -> str:
    """The best `limit` trials as a text table, then the count of each status."""
    ranked = sorted(
        records,
        key=lambda r: (r.best_score is None or r.status == "failed",
                       -(r.best_score or 0.0) if bigger else (r.best_score or 0.0)),
    )
    header = ["rank", "trial", "status", "epochs", f"best valid {metric}", *keys]
    rows = [[str(i + 1), r.trial_id, r.status, str(r.epochs), _fmt(r.best_score), *(_fmt(r.params.get(k)) for k in keys)]
            for i, r in enumerate(ranked[:limit])]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    if len(ranked) > limit:
        lines.append(f"... {len(ranked) - limit} more in trials.csv")
    counts = {s: sum(r.status == s for r in records) for s in STATUSES}
    lines.append("trials: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + f" (of {len(records)})")
    return "\n".join(lines)


def failure_message(text: str) -> str:
    """The one-line reason from Ray's error file of a trial whose worker died: its last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


# -- the record of finished trials (Ray-free) --------------------------------------------------
def finished_record_path(out_dir: str) -> str:
    """``finished_trials.jsonl`` in the run's output folder: one JSON line per finished trial."""
    return os.path.join(out_dir, FINISHED_FILE)


def params_key(params: Dict[str, object]) -> str:
    """The tuned values as canonical JSON (floats round-trip exactly), to compare draws."""
    return json.dumps(_json_safe(params), sort_keys=True)


def finished_status(result: dict) -> str:
    """completed / pruned / failed, for a trial that ended with `result` as its last report."""
    if result.get("failed"):
        return "failed"
    return "completed" if result.get("last") else "pruned"


def record_from_result(trial_id: str, status: str, params: Dict[str, object], result: dict,
                       error: str = "") -> TrialRecord:
    """A TrialRecord from a trial's last report (see `_ray_trial`'s payload)."""
    has_epochs = int(result.get("epoch") or 0) > 0
    return TrialRecord(
        trial_id=trial_id, status=status, params=params, epochs=int(result.get("epoch") or 0),
        last_score=_finite(result.get("valid_score")) if has_epochs else None,
        best_score=_finite(result.get("best_valid_score")) if has_epochs else None,
        best_epoch=result.get("best_epoch") if has_epochs else None,
        seconds=result.get("trial_seconds"),
        error=(result.get("failed") or error) if status == "failed" else "",
    )


def finished_entry(record: TrialRecord, curve: Sequence[float], last: bool) -> dict:
    """One line of the record: the trial's TrialRecord, its validation score after every epoch
    (`curve`, what ASHA saw) and `last` (RecBole would not have trained it further)."""
    return {**_json_safe(asdict(record)), "curve": [float(x) for x in curve], "last": bool(last)}


def append_finished(path: str, entry: dict) -> None:
    """Add one finished trial to the record, as it finishes. The file is rewritten whole and
    atomically (the old lines, then the new one): a kill at any moment leaves the old record or
    the new one, never a torn line."""
    old = b""
    if os.path.isfile(path):
        with open(path, "rb") as handle:
            old = handle.read()
    atomic.write_bytes(path, old + (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8"))


def read_finished(path: str) -> Dict[str, dict]:
    """trial_id -> entry of every finished trial in the record ({} when there is none)."""
    if not os.path.isfile(path):
        return {}
    finished: Dict[str, dict] = {}
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            try:
                entry = json.loads(line)
                finished[str(entry["trial_id"])] = entry
            except (json.JSONDecodeError, KeyError, TypeError):
                raise TuneRunError(f"{path}:{lineno}: not a finished-trial record (written by run_tune.py)") from None
    return finished


def record_from_entry(entry: dict, trial_id: Optional[str] = None) -> TrialRecord:
    """The TrialRecord a record line holds (under `trial_id` when Ray gave the trial a new id)."""
    fields = {k: entry.get(k) for k in TrialRecord.__dataclass_fields__}
    fields["trial_id"] = trial_id or entry["trial_id"]
    fields["params"] = dict(entry.get("params") or {})
    fields["epochs"] = int(entry.get("epochs") or 0)
    fields["error"] = entry.get("error") or ""
    return TrialRecord(**fields)


def match_finished(finished: Dict[str, dict], trial_id: str, params: Dict[str, object]) -> Optional[dict]:
    """The finished trial that this trial of a resumed search repeats, or None.

    First the same trial id with the same values (a trial Ray restored from its saved state,
    saved before the trial finished). Else a finished trial with the same values: after a
    kill before Ray saved any state, the search restarts and its sampler (same seed) draws the
    same values again, under new ids; the same config and seed train to the same numbers."""
    key = params_key(params)
    entry = finished.get(trial_id)
    if entry is not None and params_key(entry.get("params") or {}) == key:
        return entry
    return next((e for e in finished.values() if params_key(e.get("params") or {}) == key), None)


# -- the trial (runs in a Ray worker) ---------------------------------------------------------
def _reset_root_logging() -> None:
    """RecBole's init_logger uses logging.basicConfig, a no-op once the root logger has
    handlers: drop the previous trial's handlers when Ray reuses this worker."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()


def _ray_trial(params: dict, *, model: str, dataset: str, config_files: List[str], overrides: dict,
               space: SearchSpace, threads: int, finished: Optional[Dict[str, dict]] = None,
               bigger: bool = True) -> None:
    """One trial: train `model` with `overrides` + the drawn `params`, reporting the
    validation score after every epoch (and the scores so far, ``valid_curve``, which the
    driver keeps in the run's record when the trial ends).

    A trial of a resumed search that the record says finished already (`finished`,
    `match_finished`) is not trained again: it replays its recorded reports, marked
    ``replayed`` with the recorded trial id, so that ASHA sees the same curve, and ends.

    A trial that raises (or whose validation score is not finite) reports once more with
    ``failed`` set to a one-line reason and a NaN score (ASHA's rung cut-offs ignore NaN), then
    returns: the search goes on and Ray keeps the worker for the next trial. A worker that
    dies outright is an ERROR trial, which the driver records as failed too."""
    import ray
    from ray import tune

    from recbole_dlrrec.runtime.quick_start import build_config, run
    from recbole_dlrrec.runtime.threads import use_threads

    os.chdir(tune.get_context().get_trial_dir())  # RecBole's log/ and log_tensorboard/ go to the trial
    _reset_root_logging()
    use_threads(threads)
    gpu_ids = ray.get_gpu_ids()
    trial_overrides = {**overrides, **space.coerce(params), "gpu_id": ",".join(str(g) for g in gpu_ids)}
    state: Dict[str, object] = {"best": None, "best_epoch": None, "epoch": 0, "started": time.time(), "curve": []}

    def payload(score: float, last: bool, **extra) -> dict:
        return {"valid_score": score, "best_valid_score": state["best"], "best_epoch": state["best_epoch"],
                "epoch": state["epoch"], "last": last, "trial_seconds": time.time() - state["started"],
                "valid_curve": list(state["curve"]), **extra}

    def record_epoch(score: float, bigger_is_better: bool) -> int:
        state["epoch"] = epoch = int(state["epoch"]) + 1
        state["curve"].append(score)
        if state["best"] is None or is_better(score, state["best"], bigger_is_better):
            state["best"], state["best_epoch"] = score, epoch
        return epoch

    done = match_finished(finished or {}, tune.get_context().get_trial_id(), space.coerce(params))
    if done is not None:  # finished before the interruption: replay, do not train
        replayed = {"replayed": done["trial_id"], "trial_seconds": done.get("seconds")}
        curve = done.get("curve") or []
        for i, score in enumerate(curve):
            record_epoch(float(score), bigger)
            tune.report({**payload(float(score), bool(done.get("last")) and i == len(curve) - 1), **replayed})
        if done.get("status") == "failed":
            tune.report({**payload(float("nan"), True, failed=done.get("error") or "failed"), **replayed})
        return

    def report(epoch_idx: int, valid_score, trainer) -> None:
        score = float(valid_score)
        if not math.isfinite(score):
            raise FloatingPointError(f"validation {trainer.config['valid_metric']} is {score}")
        epoch = record_epoch(score, trainer.config["valid_metric_bigger"])
        # `last`: RecBole will not train further (budget spent, or its own early stopping).
        last = epoch >= trainer.epochs or trainer.cur_step > trainer.stopping_step
        tune.report(payload(score, bool(last)))

    try:
        config = build_config(model, dataset, config_files, trial_overrides, prepare=False)
        run(model, config=config, saved=False, evaluate_test=False,
            result_file=os.path.join(os.getcwd(), "valid_result.json"), epoch_callbacks=[report])
    except Exception as exc:  # noqa: BLE001  (a failed trial; ASHA's stop is a SystemExit and passes)
        reason = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        tune.report(payload(float("nan"), True, failed=reason))


# -- Ray adapter ------------------------------------------------------------------------------
def _ray_import(local: bool):
    """Import Ray with this module's settings; `local`: a Ray started here, on 127.0.0.1 only
    (Ray reads that switch when it is imported, so a Ray imported earlier keeps its own)."""
    for key, value in {**RAY_ENV, **(ray_auth.LOCAL_RAY_ENV if local else {})}.items():
        os.environ.setdefault(key, value)
    warnings.filterwarnings("ignore", message=r"pkg_resources is deprecated", category=UserWarning)
    # ASHA takes percentiles over rungs where a failed trial reported NaN; NaN is meant to be ignored.
    warnings.filterwarnings("ignore", message=r"All-NaN slice encountered", category=RuntimeWarning)
    import ray
    from ray import tune

    # One line per trial comes from our callback; Ray's per-trial tracebacks stay in each
    # trial's error.txt instead of the console.
    for name in ("ray.tune", "ray.air"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return ray, tune


def _short_temp_dir() -> str:
    """A new folder for this run's local Ray. Ray puts unix sockets under it, whose paths must
    stay under ~107 bytes, so it is made in /tmp when the user's temp folder has a long name."""
    parent = tempfile.gettempdir()
    return tempfile.mkdtemp(prefix="ray-dlrrec-", dir=parent if len(parent) <= 20 else "/tmp")


def check_ray_address(address: str, timeout_s: float = 5.0) -> None:
    """Raise TuneRunError (one line) unless a Ray cluster can be reached at `address`: HOST:PORT
    must accept a TCP connection (the head's GCS port), and "auto" needs a cluster started on
    this machine (`ray start --head`), whose address Ray records in its temp folder. Checked
    before any data is prepared, so a typo'd address costs seconds, not a dataset build."""
    if address == "auto":
        if os.environ.get("RAY_ADDRESS"):
            address = os.environ["RAY_ADDRESS"]
            if address == "auto":
                raise TuneRunError("--address=auto with RAY_ADDRESS=auto: set RAY_ADDRESS to HOST:PORT")
            return check_ray_address(address, timeout_s)
        # Where `ray start --head` records the address (Ray's own rule: RAY_TMPDIR, TMPDIR, /tmp).
        root = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"
        if not os.path.isfile(os.path.join(root, "ray", "ray_current_cluster")):
            raise TuneRunError("--address=auto: no Ray cluster was started on this machine "
                               "(start one with `ray start --head`, or pass --address=HOST:PORT)")
        return
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise TuneRunError(f"--address={address!r}: expected HOST:PORT (the head's `ray start --head --port`) or auto")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise TuneRunError(f"--address={address}: no Ray cluster answers there ({exc.strerror or exc}); "
                           f"start its head with `ray start --head --port={port}`") from None


@contextlib.contextmanager
def _ray_session(ray, address: Optional[str], num_cpus: Optional[int]):
    """Ray for one search; nothing of it outlives the driver.

    Joining a cluster (`address`): connect, and disconnect at the end. A local Ray: started in a
    temp folder of its own, watched by ``ray_reaper.py`` (which stops what is left of it when
    this process ends, even by SIGKILL), and shut down in a ``finally``. SIGTERM stops the
    search like Ctrl-C does (Ray Tune's handler), so the ``finally`` runs."""
    common = dict(log_to_driver=False, logging_level=logging.WARNING, include_dashboard=False)
    if address:
        try:
            ray.init(address=address, **common)
        except (ConnectionError, ray.exceptions.AuthenticationError) as exc:  # the head went away after
            # check_ray_address, or it wants a token this driver does not have (RAY_AUTH_MODE unset here)
            raise TuneRunError(f"--address={address}: cannot join the Ray cluster ({str(exc).splitlines()[0]})") from None
        try:
            yield
        finally:
            ray.shutdown()
        return
    temp_dir = _short_temp_dir()
    reaper = subprocess.Popen(
        [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "ray_reaper.py"),
         temp_dir, os.path.dirname(os.path.abspath(ray.__file__)), str(os.getpid())],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    in_main_thread = threading.current_thread() is threading.main_thread()  # signal.signal needs it
    previous = signal.getsignal(signal.SIGTERM)
    try:
        ray_auth.give_local_ray_a_token()
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                 _temp_dir=temp_dir, _node_ip_address=ray_auth.LOCAL_HOST, **common)
        if in_main_thread:  # after ray.init, whose C++ core installs a SIGTERM handler that aborts
            signal.signal(signal.SIGTERM, lambda signum, frame: signal.raise_signal(signal.SIGINT))
        yield
    finally:
        try:
            ray.shutdown()
        finally:
            if in_main_thread and previous is not None:
                signal.signal(signal.SIGTERM, previous)
            reaper.stdin.close()  # the reaper stops what ray.shutdown left and removes temp_dir
            try:
                reaper.wait(timeout=60)
            except subprocess.TimeoutExpired:
                print(f"ray_reaper (pid {reaper.pid}) is still cleaning up {temp_dir}", file=sys.stderr)


def _ray_param_space(tune, space: SearchSpace) -> dict:
    out = {}
    for p in space.params.values():
        if p.dist == "choice":
            out[p.key] = tune.choice(list(p.args))
        elif p.dist == "uniform":
            out[p.key] = tune.uniform(*p.args)
        elif p.dist == "loguniform":
            out[p.key] = tune.loguniform(*p.args)
        else:
            out[p.key] = tune.quniform(*p.args)
    return out


def _ray_progress_callback(tune, total: int, space: SearchSpace, metric: str, record_path: str):
    class Progress(tune.Callback):
        """One printed line per finished trial, and its line in the run's record of finished
        trials (`append_finished`), written in the driver as the trial ends: a kill of the
        driver after that keeps it. Stateless (the record is a file), so a restored run
        counts right."""

        @staticmethod
        def _line(trials, trial, status: str, detail: str) -> None:
            done = 1 + sum(t.status in ("TERMINATED", "ERROR") for t in trials if t is not trial)
            params = ", ".join(f"{k}={_fmt(v)}" for k, v in _trial_params(space, trial).items())
            kept = " (finished before; kept)" if (trial.last_result or {}).get("replayed") else ""
            print(f"[{done}/{total}] {trial.trial_id} {params}: {status}, {detail}{kept}", flush=True)

        @staticmethod
        def _keep(trial, status: str, error: str = "") -> None:
            result = trial.last_result or {}
            if result.get("replayed"):  # in the record already
                return
            record = record_from_result(trial.trial_id, status, _trial_params(space, trial), result, error)
            curve = result.get("valid_curve") or []
            append_finished(record_path, finished_entry(record, curve, bool(result.get("last"))))

        def on_trial_complete(self, iteration, trials, trial, **info):
            result = trial.last_result or {}
            status = finished_status(result)
            self._keep(trial, status)
            if status == "failed":
                self._line(trials, trial, "failed", f"after {result.get('epoch', 0)} epoch(s): {result['failed']}")
                return
            self._line(trials, trial, status, f"{result.get('epoch', 0)} epoch(s), best valid {metric} "
                                              f"{_fmt(result.get('best_valid_score'))}")

        def on_trial_error(self, iteration, trials, trial, **info):
            error = _trial_error(trial)
            self._keep(trial, "failed", error)
            self._line(trials, trial, "failed", error)

    return Progress()


def _trial_params(space: SearchSpace, trial) -> Dict[str, object]:
    return space.coerce({k: v for k, v in (trial.config or {}).items() if k in space.params})


def _trial_error(trial) -> str:
    path = getattr(trial, "error_file", None)
    if path and os.path.isfile(path):
        with open(path, encoding="utf-8", errors="replace") as handle:
            return failure_message(handle.read())
    return "failed (no error file)"


def _finite(value) -> Optional[float]:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _ray_read_trials(experiment_dir: str, space: SearchSpace,
                     finished: Optional[Dict[str, dict]] = None) -> List[TrialRecord]:
    """Every trial of the experiment, in trial-id order, from Ray's saved experiment state;
    a trial in the run's record of finished trials (`finished`; a replayed trial by the id it
    replayed) is the recorded one."""
    from ray.tune import ExperimentAnalysis

    for name in ("ray.tune.analysis.experiment_analysis", "ray.tune.analysis"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        analysis = ExperimentAnalysis(experiment_dir)
    except Exception as exc:  # noqa: BLE001  (no state saved yet: nothing finished)
        print(f"no trial state in {experiment_dir} ({type(exc).__name__}: {exc})", file=sys.stderr)
        return []
    finished = finished or {}
    records = []
    for trial in sorted(analysis.trials, key=lambda t: t.trial_id):
        result = trial.last_result or {}
        params = _trial_params(space, trial)
        entry = finished.get(result.get("replayed") or trial.trial_id)
        if entry is not None and params_key(entry.get("params") or {}) == params_key(params):
            records.append(record_from_entry(entry, trial.trial_id))
            continue
        has_epochs = int(result.get("epoch") or 0) > 0
        if trial.status == "ERROR" or result.get("failed"):
            status = "failed"
        elif trial.status == "TERMINATED":
            status = finished_status(result) if has_epochs else "not_started"
        else:
            status = "interrupted" if has_epochs or trial.status in ("RUNNING", "PAUSED") else "not_started"
        error = _trial_error(trial) if status == "failed" and not result.get("failed") else ""
        records.append(record_from_result(trial.trial_id, status, params, result, error))
    return records


def _ray_state_saved(tune, experiment_dir: str) -> bool:
    """True when Ray saved the experiment's state (its tuner and at least one experiment
    checkpoint), which Tuner.restore needs."""
    return tune.Tuner.can_restore(experiment_dir) and bool(
        glob.glob(os.path.join(experiment_dir, "experiment_state-*.json")))


def _ray_fit(tune, request: TuneRequest, spec: dict, space: SearchSpace, trainable, storage: str,
             experiment_dir: str, record_path: str) -> bool:
    """Run (or continue) the search. Returns True when it was interrupted (Ctrl-C)."""
    from ray.tune import FailureConfig, RunConfig
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    resources = tune.with_resources(trainable, {"cpu": spec["cpus_per_trial"], "gpu": spec["gpus_per_trial"]})
    if request.resume and _ray_state_saved(tune, experiment_dir):
        # The restored run config brings back its scheduler, searcher and progress callback.
        tuner = tune.Tuner.restore(experiment_dir, trainable=resources, resume_unfinished=True,
                                   resume_errored=False, restart_errored=False)
    else:
        # (a run killed before Ray saved its state starts again: same sampler seed, same draws;
        # the trials in the record are replayed, not trained)
        progress = _ray_progress_callback(tune, spec["num_samples"], space, spec["valid_metric"], record_path)
        scheduler = ASHAScheduler(time_attr="training_iteration", max_t=spec["max_epochs"],
                                  grace_period=min(spec["grace_period"], spec["max_epochs"]),
                                  reduction_factor=spec["reduction_factor"])
        tuner = tune.Tuner(
            resources,
            param_space=_ray_param_space(tune, space),
            tune_config=tune.TuneConfig(
                metric="valid_score", mode="max" if spec["valid_metric_bigger"] else "min",
                scheduler=scheduler, num_samples=spec["num_samples"],
                search_alg=BasicVariantGenerator(random_state=spec["seed"]),
            ),
            run_config=RunConfig(name=spec["name"], storage_path=storage, verbose=0, callbacks=[progress],
                                 failure_config=FailureConfig(max_failures=0, fail_fast=False)),
        )
    try:
        tuner.fit()
    except KeyboardInterrupt:
        return True
    records = _ray_read_trials(experiment_dir, space, read_finished(record_path))
    return any(r.status in ("interrupted", "not_started") for r in records)


# -- the driver -------------------------------------------------------------------------------
def interrupted_line(request: TuneRequest) -> str:
    """What to tell a user who stopped the search: how to continue it (once its run spec is
    written, --resume can), else to start it again."""
    if request.name and os.path.isfile(os.path.join(run_dirs(request.out_root, request.dataset, request.name)[0],
                                                    "run_spec.json")):
        where = "" if request.out_root == TUNE_ROOT else f" --out_root={request.out_root}"
        return f"interrupted; continue with --resume --name {request.name} --dataset={request.dataset}{where}"
    return "interrupted before the search started; rerun the same command"


def _prepare_data(model: str, dataset: str, config_files: List[str], fixed: dict):
    """Build the dataset, text vectors and SWING cache once (default config + fixed
    overrides); return the config."""
    from recbole_dlrrec.runtime.quick_start import build_config, build_model, load_splits

    config = build_config(model, dataset, config_files, fixed, prepare=True)
    _, train_data, _, _ = load_splits(config)
    build_model(config, train_data)
    return config


def _session_overrides(config, checkpoint_dir: str) -> dict:
    """Absolute paths for trials (Ray changes their working directory)."""
    data_root = os.path.dirname(os.path.normpath(config["data_path"]))
    out = {"data_path": os.path.abspath(data_root), "checkpoint_dir": os.path.abspath(checkpoint_dir),
           "show_progress": False}
    side = config["side_data_path"] if "side_data_path" in config else None
    if side:
        out["side_data_path"] = os.path.abspath(side)
    return out


def _check_fixed(fixed: dict) -> None:
    banned = {"epochs": "--max_epochs", "seed": "--seed", "eval_step": "nothing (validation runs every epoch)",
              "checkpoint_dir": "nothing (run_tune.py sets it)", "gpu_id": "--gpus_per_trial"}
    for key, use in banned.items():
        if key in fixed:
            raise TuneRunError(f"--{key} cannot be a fixed override of run_tune.py; use {use}")


def _new_spec(request: TuneRequest, model_name: str, space_file: str, config) -> dict:
    max_epochs = int(request.max_epochs if request.max_epochs is not None else config["epochs"])
    if max_epochs < 1:
        raise TuneRunError(f"--max_epochs must be >= 1, got {max_epochs}")
    if request.num_samples < 1:
        raise TuneRunError(f"--num_samples must be >= 1, got {request.num_samples}")
    return {
        "model": request.model, "model_class": model_name, "dataset": request.dataset,
        "name": request.name, "num_samples": int(request.num_samples), "max_epochs": max_epochs,
        "space_file": os.path.abspath(space_file), "fixed": dict(request.fixed),
        "config_files": [os.path.abspath(f) for f in request.config_files],
        "seed": int(request.seed if request.seed is not None else config["seed"]),
        "cpus_per_trial": request.cpus_per_trial, "gpus_per_trial": request.gpus_per_trial,
        "grace_period": int(request.grace_period), "reduction_factor": request.reduction_factor,
        "valid_metric": str(config["valid_metric"]), "valid_metric_bigger": bool(config["valid_metric_bigger"]),
        "scheduler": "ASHA", "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _retrain_best(spec: dict, best: TrialRecord, session: dict, experiment_dir: str, out_dir: str) -> dict:
    """Train the best config again in the driver and evaluate the test split once."""
    from recbole_dlrrec.runtime.quick_start import atomic_write_json, build_config, run
    from recbole_dlrrec.runtime.threads import threads_within

    overrides = {**spec["fixed"], **session, **best.params, "epochs": spec["max_epochs"], "seed": spec["seed"],
                 "checkpoint_dir": os.path.join(experiment_dir, "best_model")}
    overrides.setdefault("state", "WARNING")
    with threads_within(int(spec["cpus_per_trial"])):  # as in the trial: same numbers
        config = build_config(spec["model"], spec["dataset"], spec["config_files"], overrides, prepare=False)
        path = os.path.join(out_dir, "best_test_result.json")
        results = run(spec["model"], config=config, saved=True, evaluate_test=True, result_file=path)
    results["tuning"] = {
        "run": spec["name"], "trial_id": best.trial_id, "trial_status": best.status,
        "trial_best_valid_score": best.best_score, "trial_best_epoch": best.best_epoch,
        "params": best.params, "space_file": os.path.join(out_dir, "space.yaml"),
        "selected_on": f"validation {spec['valid_metric']} ({'max' if spec['valid_metric_bigger'] else 'min'})",
    }
    atomic_write_json(path, results)
    return results


def run_search(request: TuneRequest) -> TuneOutcome:
    """Validate, prepare the data once, run the ASHA search, write the outputs (module doc)."""
    from recbole_dlrrec.config.registry import resolve_model
    from recbole_dlrrec.config.stack import PROPERTIES_DIR, ConfigStack

    if not request.name:
        if request.resume:
            raise TuneRunError("--resume needs --name RUN (the run to continue)")
        request.name = f"{request.model}-{time.strftime('%Y%m%d-%H%M%S')}"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", request.name):
        raise TuneRunError(f"--name {request.name!r}: use letters, digits and _ . + - only")
    out_dir, storage, experiment_dir = run_dirs(request.out_root, request.dataset, request.name)
    spec_path = os.path.join(out_dir, "run_spec.json")
    space_copy = os.path.join(out_dir, "space.yaml")

    if request.resume:
        spec = read_run_spec(spec_path)
        if spec["dataset"] != request.dataset:
            raise TuneRunError(f"{spec_path}: run {request.name} is on dataset {spec['dataset']}, not {request.dataset}")
        request.model, request.fixed, request.config_files = spec["model"], spec["fixed"], spec["config_files"]
        space_file = space_copy
    else:
        if os.path.exists(spec_path):
            raise TuneRunError(f"run {request.name} exists in {out_dir}; pass --resume to continue it or choose another --name")
        _check_fixed(request.fixed)
        space_file = request.space_file or default_space_file(resolve_model(request.model)[0].__name__, PROPERTIES_DIR)

    # 1. checks that need no data (the cluster, the model, the space file, its keys and values)
    if request.address:
        check_ray_address(request.address)
        ray_auth.check_driver_token(request.address)
    stack = ConfigStack(request.model, request.dataset, request.config_files, request.fixed)
    stack.check()  # every fixed value and file, before any data or Ray
    model_name = stack.model_name

    def layered_files():  # the stack's files (the dataset's file may appear in step 2)
        return stack.plugin_files() + stack.dataset_files() + stack.config_files

    space = load_space(space_file, model_name, PROPERTIES_DIR, layered_files())

    # RecBole's pandas / torch deprecation warnings are not this run's business.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.")
    # 2. the data, once
    print(f"preparing {request.dataset} for {request.model} (dataset, text vectors, SWING cache) ...", flush=True)
    started = time.time()
    config = _prepare_data(request.model, request.dataset, request.config_files, request.fixed)
    print(f"data ready in {time.time() - started:.1f} s", flush=True)
    space = load_space(space_file, model_name, PROPERTIES_DIR, layered_files())  # now with the dataset's keys

    if not request.resume:
        spec = _new_spec(request, model_name, space_file, config)
        os.makedirs(out_dir, exist_ok=True)
        # The merged space (shared.yaml + the model's file) as one file: --resume reads it alone.
        atomic.write_text(space_copy, space.to_text(header=[f"Search space of run {request.name}, merged from: "
                                                            f"{', '.join(space.files)}."]))
        write_run_spec(spec_path, spec)
    _ignore_ray_folder(request.out_root)
    session = _session_overrides(config, os.path.join(experiment_dir, "checkpoints"))
    # Made here, once: every trial's RecBole Trainer runs ensure_dir on it (exists? else makedirs),
    # and two trials starting together raced on it (FileExistsError, a trial lost).
    os.makedirs(session["checkpoint_dir"], exist_ok=True)
    overrides = {**spec["fixed"], **session, "epochs": spec["max_epochs"], "eval_step": 1, "seed": spec["seed"]}

    # 3. the search
    ray, tune = _ray_import(local=not request.address)
    record_path = finished_record_path(out_dir)
    finished = read_finished(record_path) if request.resume else {}
    if finished:
        print(f"{len(finished)} trial(s) finished before: kept, not trained again ({record_path})", flush=True)
    trainable = functools.partial(
        _ray_trial, model=spec["model"], dataset=spec["dataset"], config_files=spec["config_files"],
        overrides=overrides, space=space, threads=int(max(1, spec["cpus_per_trial"])),
        finished=finished, bigger=bool(spec["valid_metric_bigger"]),
    )
    trainable.__name__ = spec["model_class"]  # Ray names trial folders after it
    with _ray_session(ray, request.address, request.num_cpus):
        print(f"search {spec['name']}: {spec['num_samples']} trials of {spec['model']} on {spec['dataset']}, "
              f"ASHA over {spec['max_epochs']} epochs, space {space_file}", flush=True)
        interrupted = _ray_fit(tune, request, spec, space, trainable, storage, experiment_dir, record_path)
        records = _ray_read_trials(experiment_dir, space, read_finished(record_path))

    # 4. outputs
    metric, bigger = spec["valid_metric"], spec["valid_metric_bigger"]
    write_trials_csv(os.path.join(out_dir, "trials.csv"), records, space.keys, metric)
    best = select_best(records, bigger)
    title = f"{spec['model']} on {spec['dataset']}: {len(records)} trials ({spec['name']})"
    plots = plot_params(out_dir, records, space, metric, title, best)
    best_file = test_file = retrain = None
    if best is not None:
        note = (f"run {spec['name']}, {len(records)} trials, ASHA over {spec['max_epochs']} epochs, "
                f"trial {best.trial_id} best valid {metric} {_fmt(best.best_score)}"
                + ("; search interrupted, partial" if interrupted else ""))
        best_file = write_best_config(os.path.join(out_dir, "best_config.yaml"),
                                      best_config_values(best.params, spec["fixed"], spec["max_epochs"], spec["seed"]),
                                      spec["model"], spec["dataset"], note)
        # The file must be accepted as is by run_recbole.py's config building.
        from recbole_dlrrec.runtime.quick_start import build_config

        build_config(spec["model"], spec["dataset"], [best_file], {}, prepare=False)
    summary = summary_table(records, space.keys, metric, bigger)
    if not interrupted and best is not None and request.evaluate_best:
        print(f"re-training the best config (trial {best.trial_id}) and evaluating it on test ...", flush=True)
        retrain = _retrain_best(spec, best, session, experiment_dir, out_dir)
        test_file = retrain["result_file"]
        summary += (f"\nbest trial {best.trial_id}: valid {metric} {_fmt(best.best_score)} in the search; "
                    f"re-trained: valid {_fmt(retrain['best_valid_score'])}, "
                    f"test {metric} {_fmt((retrain['test_result'] or {}).get(metric.lower()))}")
    print(summary, flush=True)
    print(f"outputs: {out_dir}", flush=True)
    return TuneOutcome(out_dir=out_dir, experiment_dir=experiment_dir, metric=metric, bigger=bigger,
                       trials=records, best=best, best_config_file=best_file, test_result_file=test_file,
                       retrain=retrain, plots=plots, interrupted=interrupted, summary=summary)
