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
   split is never touched by a trial: selection is on validation only. With ``--search_scheduler
   none`` nothing is pruned: the configurations are drawn from the seed before any trial starts
   (``SearchSpace.draws``, kept in run_spec.json), every trial trains until RecBole stops it, and
   the records and the winner's tie-break follow the draw order, not the order trials ran in.
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

``--resume`` continues a run as it was started: every option that shapes it (RUN_OPTIONS: the
model, the space, the fixed overrides, the trial count, the epoch cap, the seed, the resources
per trial, ASHA's settings, whether the best config is re-trained and tested) comes from its
``run_spec.json``; the same option given again with another value is refused in one line.

This module is the driver; the Ray calls are in ``ray_backend.py``, the records it writes
(trials.csv, best_config.yaml, run_spec.json, finished_trials.jsonl) in ``search_records.py``,
the plots in ``plots.py``.
"""

from __future__ import annotations

import functools
import os
import time
import warnings
from dataclasses import dataclass
from typing import List, Optional, Tuple

from recbole_dlrrec import atomic
from recbole_dlrrec.experiments import ray_auth, ray_backend
from recbole_dlrrec.experiments.plots import plot_params
from recbole_dlrrec.experiments.search_records import (
    TrialRecord,
    TuneRunError,
    best_config_values,
    finished_record_path,
    format_value,
    in_draw_order,
    read_finished,
    read_run_spec,
    search_phrase,
    select_best,
    summary_table,
    write_best_config,
    write_run_spec,
    write_trials_csv,
)
from recbole_dlrrec.experiments.tune_request import (
    DEFAULT_GRACE_PERIOD,
    RAY_DIRNAME,
    TUNE_ROOT,
    TuneRequest,
    new_request,
    resumed_request,
    with_run_name,
)
from recbole_dlrrec.experiments.tune_space import SearchSpace, load_space


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


def interrupted_line(request: TuneRequest) -> str:
    """What to tell a user who stopped the search: how to continue it (once its run spec is
    written, --resume can), else to start it again."""
    if request.name and os.path.isfile(
        os.path.join(run_dirs(request.out_root, request.dataset, request.name)[0], "run_spec.json")
    ):
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
    out = {
        "data_path": os.path.abspath(data_root),
        "checkpoint_dir": os.path.abspath(checkpoint_dir),
        "show_progress": False,
    }
    side = config["side_data_path"] if "side_data_path" in config else None
    if side:
        out["side_data_path"] = os.path.abspath(side)
    return out


def _check_fixed(fixed: dict) -> None:
    banned = {
        "epochs": "--max_epochs",
        "seed": "--seed",
        "eval_step": "nothing (validation runs every epoch)",
        "checkpoint_dir": "nothing (run_tune.py sets it)",
        "gpu_id": "--gpus_per_trial",
    }
    for key, use in banned.items():
        if key in fixed:
            raise TuneRunError(f"--{key} cannot be a fixed override of run_tune.py; use {use}")


def _new_spec(request: TuneRequest, model_name: str, space_file: str, config) -> dict:
    max_epochs = int(request.max_epochs if request.max_epochs is not None else config["epochs"])
    if max_epochs < 1:
        raise TuneRunError(f"--max_epochs must be >= 1, got {max_epochs}")
    num_samples = int(request.num_samples or 0)  # new_request refused None
    if num_samples < 1:
        raise TuneRunError(f"--num_samples must be >= 1, got {request.num_samples}")
    budget = request.trial_time_budget_s
    if budget is not None and not budget > 0:
        raise TuneRunError(f"--trial_time_budget_s must be > 0 seconds, got {budget}")
    return {
        "model": request.model,
        "model_class": model_name,
        "dataset": request.dataset,
        "name": request.name,
        "num_samples": num_samples,
        "max_epochs": max_epochs,
        "space_file": os.path.abspath(space_file),
        "fixed": dict(request.fixed),
        "config_files": [os.path.abspath(f) for f in request.config_files],
        "seed": int(request.seed if request.seed is not None else config["seed"]),
        "cpus_per_trial": request.cpus_per_trial,
        "gpus_per_trial": request.gpus_per_trial,
        "grace_period": int(request.grace_period or DEFAULT_GRACE_PERIOD),
        "reduction_factor": request.reduction_factor,
        "valid_metric": str(config["valid_metric"]),
        "valid_metric_bigger": bool(config["valid_metric_bigger"]),
        "evaluate_best": bool(request.evaluate_best),
        "trial_time_budget_s": None if budget is None else float(budget),
        "scheduler": request.scheduler,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _retrain_best(spec: dict, best: TrialRecord, session: dict, experiment_dir: str, out_dir: str) -> dict:
    """Train the best config again in the driver and evaluate the test split once."""
    from recbole_dlrrec.runtime.quick_start import atomic_write_json, build_config, run
    from recbole_dlrrec.runtime.threads import threads_within

    overrides = {
        **spec["fixed"],
        **session,
        **best.params,
        "epochs": spec["max_epochs"],
        "seed": spec["seed"],
        "checkpoint_dir": os.path.join(experiment_dir, "best_model"),
    }
    overrides.setdefault("state", "WARNING")
    with threads_within(int(spec["cpus_per_trial"])):  # as in the trial: same numbers
        config = build_config(spec["model"], spec["dataset"], spec["config_files"], overrides, prepare=False)
        path = os.path.join(out_dir, "best_test_result.json")
        results = run(spec["model"], config=config, saved=True, evaluate_test=True, result_file=path)
    results["tuning"] = {
        "run": spec["name"],
        "trial_id": best.trial_id,
        "trial_status": best.status,
        "trial_best_valid_score": best.best_score,
        "trial_best_epoch": best.best_epoch,
        "params": best.params,
        "space_file": os.path.join(out_dir, "space.yaml"),
        "selected_on": f"validation {spec['valid_metric']} ({'max' if spec['valid_metric_bigger'] else 'min'})",
    }
    atomic_write_json(path, results)
    return results


# -- the request as it will run ----------------------------------------------------------------
def _resolved(request: TuneRequest) -> Tuple[str, str, str]:
    """(model, run name, space file) of a request that new_request / resumed_request resolved."""
    if request.model is None or request.name is None or request.space_file is None:
        raise TypeError("the request is not resolved: call new_request or resumed_request first")
    return request.model, request.name, request.space_file


# -- the steps of a search ---------------------------------------------------------------------
def _checked_space(request: TuneRequest):
    """Step 1, checks that need no data (the cluster, the model, the space file, its keys and
    values). Returns (the config stack, the space)."""
    from recbole_dlrrec.config.stack import PROPERTIES_DIR, ConfigStack

    if request.address:
        ray_backend.check_ray_address(request.address)
        ray_auth.check_driver_token(request.address)
    model, _, space_file = _resolved(request)
    stack = ConfigStack(model, request.dataset, request.config_files, request.fixed)
    stack.check()  # every fixed value and file, before any data or Ray
    return stack, load_space(space_file, stack.model_name, PROPERTIES_DIR, _layered_files(stack))


def _layered_files(stack) -> List[str]:
    """The stack's files (the dataset's file may appear once the data is prepared)."""
    return stack.plugin_files() + stack.dataset_files() + stack.config_files


def _start_run(request: TuneRequest, model_name: str, space: SearchSpace, config, out_dir: str) -> dict:
    """A new run's folder: the merged space (shared.yaml + the model's file, as one file that
    --resume reads alone) and run_spec.json. Returns the spec."""
    spec = _new_spec(request, model_name, _resolved(request)[2], config)
    if spec["scheduler"] == "none":  # the trial set, fixed before any trial runs (and kept for --resume)
        spec["draws"] = space.draws(spec["num_samples"], spec["seed"])
    os.makedirs(out_dir, exist_ok=True)
    atomic.write_text(
        os.path.join(out_dir, "space.yaml"),
        space.to_text(header=[f"Search space of run {request.name}, merged from: {', '.join(space.files)}."]),
    )
    write_run_spec(os.path.join(out_dir, "run_spec.json"), spec)
    return spec


def _search(
    request: TuneRequest, spec: dict, space: SearchSpace, session: dict, out_dir: str
) -> Tuple[List[TrialRecord], bool]:
    """Step 3, the search in Ray. Returns (every trial's record, interrupted); without pruning,
    in the order the configurations were drawn."""
    _, storage, experiment_dir = run_dirs(request.out_root, request.dataset, _resolved(request)[1])
    overrides = {**spec["fixed"], **session, "epochs": spec["max_epochs"], "eval_step": 1, "seed": spec["seed"]}
    ray, tune = ray_backend.import_ray(local=not request.address)
    record_path = finished_record_path(out_dir)
    finished = read_finished(record_path) if request.resume else {}
    if finished:
        print(f"{len(finished)} trial(s) finished before: kept, not trained again ({record_path})", flush=True)
    trainable = functools.partial(
        ray_backend.trial,
        model=spec["model"],
        dataset=spec["dataset"],
        config_files=spec["config_files"],
        overrides=overrides,
        space=space,
        threads=int(max(1, spec["cpus_per_trial"])),
        finished=finished,
        bigger=bool(spec["valid_metric_bigger"]),
    )
    # Ray names trial folders after it; typeshed's partial has no __name__ (a partial takes attributes).
    trainable.__name__ = spec["model_class"]  # type: ignore[attr-defined]
    with ray_backend.ray_session(ray, request.address, request.num_cpus):
        print(
            f"search {spec['name']}: {spec['num_samples']} trials of {spec['model']} on {spec['dataset']}, "
            f"{search_phrase(spec)}, space {request.space_file}",
            flush=True,
        )
        interrupted = ray_backend.fit(
            tune, request.resume, spec, space, trainable, storage, experiment_dir, record_path
        )
        records = ray_backend.read_trials(experiment_dir, space, read_finished(record_path))
    if "draws" in spec:
        records = in_draw_order(records, spec["draws"])
    return records, interrupted


def _write_best_config(
    spec: dict, records: List[TrialRecord], best: TrialRecord, interrupted: bool, out_dir: str
) -> str:
    """best_config.yaml of the best trial, checked to be accepted as is by run_recbole.py."""
    from recbole_dlrrec.runtime.quick_start import build_config

    metric = spec["valid_metric"]
    note = (
        f"run {spec['name']}, {len(records)} trials, {search_phrase(spec)}, "
        f"trial {best.trial_id} best valid {metric} {format_value(best.best_score)}"
        + ("; search interrupted, partial" if interrupted else "")
    )
    best_file = write_best_config(
        os.path.join(out_dir, "best_config.yaml"),
        best_config_values(best.params, spec["fixed"], spec["max_epochs"], spec["seed"]),
        spec["model"],
        spec["dataset"],
        note,
    )
    build_config(spec["model"], spec["dataset"], [best_file], {}, prepare=False)
    return best_file


def _write_outputs(
    request: TuneRequest,
    spec: dict,
    space: SearchSpace,
    records: List[TrialRecord],
    interrupted: bool,
    session: dict,
    out_dir: str,
) -> TuneOutcome:
    """Step 4: trials.csv, the plots, best_config.yaml, and (unless interrupted or told not to)
    the best config re-trained and evaluated on test once."""
    experiment_dir = run_dirs(request.out_root, request.dataset, _resolved(request)[1])[2]
    metric, bigger = spec["valid_metric"], spec["valid_metric_bigger"]
    write_trials_csv(os.path.join(out_dir, "trials.csv"), records, space.keys, metric)
    best = select_best(records, bigger)
    title = f"{spec['model']} on {spec['dataset']}: {len(records)} trials ({spec['name']})"
    plots = plot_params(out_dir, records, space, metric, title, best)
    best_file = _write_best_config(spec, records, best, interrupted, out_dir) if best is not None else None
    summary = summary_table(records, space.keys, metric, bigger)
    test_file = retrain = None
    if not interrupted and best is not None and request.evaluate_best:
        print(f"re-training the best config (trial {best.trial_id}) and evaluating it on test ...", flush=True)
        retrain = _retrain_best(spec, best, session, experiment_dir, out_dir)
        test_file = retrain["result_file"]
        summary += (
            f"\nbest trial {best.trial_id}: valid {metric} {format_value(best.best_score)} in the search; "
            f"re-trained: valid {format_value(retrain['best_valid_score'])}, "
            f"test {metric} {format_value((retrain['test_result'] or {}).get(metric.lower()))}"
        )
    print(summary, flush=True)
    print(f"outputs: {out_dir}", flush=True)
    return TuneOutcome(
        out_dir=out_dir,
        experiment_dir=experiment_dir,
        metric=metric,
        bigger=bigger,
        trials=records,
        best=best,
        best_config_file=best_file,
        test_result_file=test_file,
        retrain=retrain,
        plots=plots,
        interrupted=interrupted,
        summary=summary,
    )


def run_search(request: TuneRequest) -> TuneOutcome:
    """Validate, prepare the data once, run the ASHA search, write the outputs (module doc).
    `request` is left as given; a resumed run's options come from its run_spec.json."""
    request = with_run_name(request)
    name = request.name or ""  # with_run_name named it
    out_dir, _, experiment_dir = run_dirs(request.out_root, request.dataset, name)
    spec_path = os.path.join(out_dir, "run_spec.json")
    spec = None
    if request.resume:
        spec = read_run_spec(spec_path)
        request = resumed_request(request, spec, spec_path)
    else:
        if os.path.exists(spec_path):
            raise TuneRunError(
                f"run {request.name} exists in {out_dir}; pass --resume to continue it or choose another --name"
            )
        _check_fixed(request.fixed)
        request = new_request(request)
    stack, space = _checked_space(request)
    # RecBole's pandas / torch deprecation warnings are not this run's business.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.")
    # 2. the data, once
    print(f"preparing {request.dataset} for {request.model} (dataset, text vectors, SWING cache) ...", flush=True)
    started = time.time()
    model, _, space_file = _resolved(request)
    config = _prepare_data(model, request.dataset, request.config_files, request.fixed)
    print(f"data ready in {time.time() - started:.1f} s", flush=True)
    from recbole_dlrrec.config.stack import PROPERTIES_DIR

    # Again, now with the dataset's keys.
    space = load_space(space_file, stack.model_name, PROPERTIES_DIR, _layered_files(stack))
    if spec is None:
        spec = _start_run(request, stack.model_name, space, config, out_dir)
    _ignore_ray_folder(request.out_root)
    session = _session_overrides(config, os.path.join(experiment_dir, "checkpoints"))
    # Made here, once: every trial's RecBole Trainer runs ensure_dir on it (exists? else makedirs),
    # and two trials starting together raced on it (FileExistsError, a trial lost).
    os.makedirs(session["checkpoint_dir"], exist_ok=True)
    records, interrupted = _search(request, spec, space, session, out_dir)
    return _write_outputs(request, spec, space, records, interrupted, session, out_dir)
