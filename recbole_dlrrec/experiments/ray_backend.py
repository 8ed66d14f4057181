"""Every Ray call of the project: the local Ray session or the cluster, the trial that runs in a
Ray worker, the search (ASHA, or every drawn configuration to the epoch cap), and reading the
trials back.

    with ray_session(ray, address, num_cpus):              # ray, tune = import_ray()
        interrupted = fit(tune, resume, spec, space, trainable, storage, experiment_dir, record_path)
        records = read_trials(experiment_dir, space, read_finished(record_path))

A local Ray is watched by ``ray_reaper.py``, which stops every process of it when the driver
ends, however it ends. The records, files and summary the search writes are Ray-free
(search_records.py); the driver that ties them together is tune.py.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from typing import Callable, Dict, List, Optional

from recbole_dlrrec.experiments import ray_auth
from recbole_dlrrec.experiments.search_records import (
    TrialRecord,
    TuneRunError,
    append_finished,
    failure_message,
    finished_entry,
    finished_status,
    format_value,
    is_better,
    match_finished,
    params_key,
    read_finished,
    record_from_entry,
    record_from_result,
)
from recbole_dlrrec.experiments.tune_request import time_box
from recbole_dlrrec.experiments.tune_space import SearchSpace

LOCAL_OBJECT_STORE_BYTES = 128 * 1024 * 1024  # trials exchange only small dicts of metrics
# Environment for Ray, set before ray is imported: no usage stats, one copy of repeated logs.
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "1", "RAY_AIR_NEW_OUTPUT": "0"}


def _reset_root_logging() -> None:
    """RecBole's init_logger uses logging.basicConfig, a no-op once the root logger has
    handlers: drop the previous trial's handlers when Ray reuses this worker."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()


class _TrialReports:
    """What a trial tells Tune after every epoch: the score, the best score and epoch so far,
    the whole validation curve and the seconds since the trial started. `report`: tune.report."""

    def __init__(self, report: Callable[[dict], None]):
        self.report = report
        self.best: Optional[float] = None
        self.best_epoch: Optional[int] = None
        self.epoch = 0
        self.started = time.time()
        self.curve: List[float] = []

    def payload(self, score: float, last: bool, **extra) -> dict:
        return {
            "valid_score": score,
            "best_valid_score": self.best,
            "best_epoch": self.best_epoch,
            "epoch": self.epoch,
            "last": last,
            "trial_seconds": time.time() - self.started,
            "valid_curve": list(self.curve),
            **extra,
        }

    def record_epoch(self, score: float, bigger_is_better: bool) -> int:
        self.epoch = epoch = self.epoch + 1
        self.curve.append(score)
        if self.best is None or is_better(score, self.best, bigger_is_better):
            self.best, self.best_epoch = score, epoch
        return epoch

    def replay(self, done: dict, bigger: bool) -> None:
        """Report a trial that finished before the interruption as it was recorded, marked
        ``replayed`` with its recorded id, so that ASHA sees the same curve."""
        replayed = {"replayed": done["trial_id"], "trial_seconds": done.get("seconds")}
        curve = done.get("curve") or []
        for i, score in enumerate(curve):
            self.record_epoch(float(score), bigger)
            self.report({**self.payload(float(score), bool(done.get("last")) and i == len(curve) - 1), **replayed})
        if done.get("status") == "failed":
            self.report({**self.payload(float("nan"), True, failed=done.get("error") or "failed"), **replayed})

    def epoch_callback(self, epoch_idx: int, valid_score, trainer) -> None:
        """quick_start.run's epoch callback: report the validation score of every epoch."""
        score = float(valid_score)
        if not math.isfinite(score):
            raise FloatingPointError(f"validation {trainer.config['valid_metric']} is {score}")
        epoch = self.record_epoch(score, trainer.config["valid_metric_bigger"])
        # `last`: RecBole will not train further (budget spent, or its own early stopping).
        last = epoch >= trainer.epochs or trainer.cur_step > trainer.stopping_step
        self.report(self.payload(score, bool(last)))

    def failed(self, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        self.report(self.payload(float("nan"), True, failed=reason))


def trial(
    params: dict,
    *,
    model: str,
    dataset: str,
    config_files: List[str],
    overrides: dict,
    space: SearchSpace,
    threads: int,
    finished: Optional[Dict[str, dict]] = None,
    bigger: bool = True,
) -> None:
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
    drawn = space.coerce({k: v for k, v in params.items() if k in space.params})  # not the draw index
    trial_overrides = {**overrides, **drawn, "gpu_id": ",".join(str(g) for g in gpu_ids)}
    reports = _TrialReports(tune.report)
    done = match_finished(finished or {}, tune.get_context().get_trial_id(), drawn)
    if done is not None:  # finished before the interruption: replay, do not train
        reports.replay(done, bigger)
        return
    try:
        config = build_config(model, dataset, config_files, trial_overrides, prepare=False)
        run(
            model,
            config=config,
            saved=False,
            evaluate_test=False,
            result_file=os.path.join(os.getcwd(), "valid_result.json"),
            epoch_callbacks=[reports.epoch_callback],
        )
    except Exception as exc:  # noqa: BLE001  (a failed trial; ASHA's stop is a SystemExit and passes)
        reports.failed(exc)


def import_ray(local: bool):
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
            raise TuneRunError(
                "--address=auto: no Ray cluster was started on this machine "
                "(start one with `ray start --head`, or pass --address=HOST:PORT)"
            )
        return
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise TuneRunError(f"--address={address!r}: expected HOST:PORT (the head's `ray start --head --port`) or auto")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise TuneRunError(
            f"--address={address}: no Ray cluster answers there ({exc.strerror or exc}); "
            f"start its head with `ray start --head --port={port}`"
        ) from None


def _start_reaper(ray, temp_dir: str) -> subprocess.Popen:
    """ray_reaper.py watching this process: when it ends (even by SIGKILL), the reaper stops what
    is left of the local Ray started in `temp_dir` and removes the folder."""
    return subprocess.Popen(
        [
            sys.executable,
            os.path.join(os.path.dirname(os.path.abspath(__file__)), "ray_reaper.py"),
            temp_dir,
            os.path.dirname(os.path.abspath(ray.__file__)),
            str(os.getpid()),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@contextlib.contextmanager
def ray_session(ray, address: Optional[str], num_cpus: Optional[int]):
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
            raise TuneRunError(
                f"--address={address}: cannot join the Ray cluster ({str(exc).splitlines()[0]})"
            ) from None
        try:
            yield
        finally:
            ray.shutdown()
        return
    temp_dir = _short_temp_dir()
    reaper = _start_reaper(ray, temp_dir)
    in_main_thread = threading.current_thread() is threading.main_thread()  # signal.signal needs it
    previous = signal.getsignal(signal.SIGTERM)
    try:
        ray_auth.give_local_ray_a_token()
        ray.init(
            num_cpus=num_cpus or os.cpu_count() or 1,
            object_store_memory=LOCAL_OBJECT_STORE_BYTES,
            _temp_dir=temp_dir,
            _node_ip_address=ray_auth.LOCAL_HOST,
            **common,
        )
        if in_main_thread:  # after ray.init, whose C++ core installs a SIGTERM handler that aborts
            signal.signal(signal.SIGTERM, lambda signum, frame: signal.raise_signal(signal.SIGINT))
        yield
    finally:
        try:
            ray.shutdown()
        finally:
            if in_main_thread and previous is not None:
                signal.signal(signal.SIGTERM, previous)
            assert reaper.stdin is not None  # started with stdin=PIPE
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
            params = ", ".join(f"{k}={format_value(v)}" for k, v in _trial_params(space, trial).items())
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
            self._line(
                trials,
                trial,
                status,
                f"{result.get('epoch', 0)} epoch(s), best valid {metric} "
                f"{format_value(result.get('best_valid_score'))}",
            )

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


def read_trials(
    experiment_dir: str, space: SearchSpace, finished: Optional[Dict[str, dict]] = None
) -> List[TrialRecord]:
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
        glob.glob(os.path.join(experiment_dir, "experiment_state-*.json"))
    )


def trial_order(count: int) -> List[int]:
    """The order in which the drawn configurations of a search without pruning are started
    (the draw order; a test reverses it to show that the winner does not depend on it)."""
    return list(range(count))


def _drawn_value(draws: List[dict], key: str, config: dict):
    """The value of `key` in the configuration the trial's ``draw`` index names (Ray's sample_from)."""
    return draws[config["draw"]][key]


def _search_setup(tune, spec: dict, space: SearchSpace) -> dict:
    """The TuneConfig settings and param space of a new search. With ``draws`` in the spec
    (scheduler none), Ray samples nothing: a grid over the draw indices, in `trial_order`, starts
    exactly the drawn configurations (each key read from its draw), each trained until RecBole
    stops it (the epoch cap or its early stopping on validation, alike for every trial), and the
    FIFO scheduler stops none. Otherwise ASHA over configurations Ray draws from the seed."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    if "draws" in spec:
        draws = spec["draws"]
        param_space = {"draw": tune.grid_search(trial_order(len(draws)))}
        for key in space.params:
            param_space[key] = tune.sample_from(functools.partial(_drawn_value, draws, key))
        setup = dict(scheduler=FIFOScheduler(), search_alg=BasicVariantGenerator(), num_samples=1)
        return {**setup, "param_space": param_space}
    scheduler = ASHAScheduler(
        time_attr="training_iteration",
        max_t=spec["max_epochs"],
        grace_period=min(spec["grace_period"], spec["max_epochs"]),
        reduction_factor=spec["reduction_factor"],
    )
    searcher = BasicVariantGenerator(random_state=spec["seed"])
    setup = dict(scheduler=scheduler, search_alg=searcher, num_samples=spec["num_samples"])
    return {**setup, "param_space": _ray_param_space(tune, space)}


def fit(
    tune, resume: bool, spec: dict, space: SearchSpace, trainable, storage: str, experiment_dir: str, record_path: str
) -> bool:
    """Run (or continue) the search. Returns True when it was interrupted (Ctrl-C)."""
    from ray.tune import FailureConfig, RunConfig

    resources = tune.with_resources(trainable, {"cpu": spec["cpus_per_trial"], "gpu": spec["gpus_per_trial"]})
    if resume and _ray_state_saved(tune, experiment_dir):
        # The restored run config brings back its scheduler, searcher and progress callback.
        tuner = tune.Tuner.restore(
            experiment_dir, trainable=resources, resume_unfinished=True, resume_errored=False, restart_errored=False
        )
    else:
        # (a run killed before Ray saved its state starts again: same sampler seed, same draws;
        # the trials in the record are replayed, not trained)
        progress = _ray_progress_callback(tune, spec["num_samples"], space, spec["valid_metric"], record_path)
        setup = _search_setup(tune, spec, space)
        tuner = tune.Tuner(
            resources,
            param_space=setup.pop("param_space"),
            tune_config=tune.TuneConfig(
                metric="valid_score", mode="max" if spec["valid_metric_bigger"] else "min", **setup
            ),
            run_config=RunConfig(
                name=spec["name"],
                storage_path=storage,
                verbose=0,
                callbacks=[progress],
                failure_config=FailureConfig(max_failures=0, fail_fast=False),
                stop=time_box(spec),
            ),
        )
    try:
        tuner.fit()
    except KeyboardInterrupt:
        return True
    records = read_trials(experiment_dir, space, read_finished(record_path))
    return any(r.status in ("interrupted", "not_started") for r in records)
