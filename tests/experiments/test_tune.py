"""run_tune.py / recbole_dlrrec.experiments.tune: ASHA search on per-epoch validation, outputs, failures."""

from __future__ import annotations

import csv
import dataclasses
import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from recbole_dlrrec.errors import InputError
from recbole_dlrrec.experiments import search_records, tune, tune_request
from recbole_dlrrec.experiments.tune_space import SpaceError, parse_space

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATASET = "restaurants"


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# The three paper knobs only: the shipped DLRREC space's reduction_dim 64 exceeds the tiny
# dataset's 24-dim text vectors, so its trials could fail at random.
PAPER_KNOBS = "w1: {loguniform: [0.001, 1.0]}\nw2: {loguniform: [0.001, 1.0]}\ntau: {loguniform: [0.03, 1.0]}\n"


def _space(tmp_path, text, name="space.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _no_experiment(out_root):
    """True when no Ray experiment was started under out_root."""
    return not glob.glob(os.path.join(str(out_root), tune.RAY_DIRNAME, "*", "*", "experiment_state-*.json"))


# -- the tiny search on the bundled dataset ------------------------------------------------------
@pytest.fixture(scope="module")
def restaurants_search(tmp_path_factory):
    """3 trials x 2 epochs of DLRREC on restaurants with the default space (shared by tests).
    The timing leaves out the one-off generation of the bundled dataset."""
    from recbole_dlrrec.config.stack import DEFAULT_DATA_PATH
    from recbole_dlrrec.runtime.quick_start import prepare_dataset

    prepare_dataset(DATASET, DEFAULT_DATA_PATH)
    out_root = tmp_path_factory.mktemp("tune")
    started = time.time()
    outcome = tune.run_search(
        tune.TuneRequest(
            model="DLRREC",
            dataset=DATASET,
            num_samples=3,
            max_epochs=2,
            name="tiny",
            seed=7,
            out_root=str(out_root),
            fixed={"show_progress": False},
        )
    )
    return outcome, time.time() - started


@pytest.mark.slow
def test_tiny_search_writes_outputs(restaurants_search):
    outcome, seconds = restaurants_search
    assert seconds < 180, f"the tiny search took {seconds:.0f} s"
    rows = _rows(os.path.join(outcome.out_dir, "trials.csv"))
    assert len(rows) == 3
    assert {"trial_id", "status", "epochs", "valid_auc_last", "valid_auc_best", "w1", "w2", "tau", "error"} <= set(
        rows[0]
    )
    for row in rows:
        assert row["status"] in ("completed", "pruned"), row
        assert 1 <= int(row["epochs"]) <= 2
        assert 0.0 < float(row["valid_auc_best"]) <= 1.0
        assert 1e-3 <= float(row["w1"]) <= 1.0 and 1e-3 <= float(row["w2"]) <= 1.0
        assert 0.03 <= float(row["tau"]) <= 1.0
        # a trial that ran both epochs is "completed"; one stopped after one epoch was pruned by ASHA
        assert (row["status"] == "completed") == (int(row["epochs"]) == 2)
    for key in ("w1", "w2", "tau"):
        png = os.path.join(outcome.out_dir, f"valid_auc_vs_{key}.png")
        with open(png, "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    best = max(rows, key=lambda r: float(r["valid_auc_best"]))
    assert outcome.best.trial_id == best["trial_id"]
    summary = outcome.summary
    assert best["trial_id"] in summary and "best valid AUC" in summary


@pytest.mark.slow
def test_trials_report_every_epoch_and_never_see_test(restaurants_search):
    outcome, _ = restaurants_search
    rows = {r["trial_id"]: r for r in _rows(os.path.join(outcome.out_dir, "trials.csv"))}
    trial_dirs = [
        d
        for d in glob.glob(os.path.join(outcome.experiment_dir, "*"))
        if os.path.isfile(os.path.join(d, "result.json"))
    ]
    assert len(trial_dirs) == 3
    for folder in trial_dirs:
        with open(os.path.join(folder, "result.json")) as handle:
            reports = [json.loads(line) for line in handle if line.strip()]
        row = rows[reports[-1]["trial_id"]]
        # one report per epoch, numbered 1, 2, ...: ASHA sees the curve, not just the end
        assert [r["epoch"] for r in reports] == list(range(1, int(row["epochs"]) + 1))
        result_file = os.path.join(folder, "valid_result.json")
        if os.path.isfile(result_file):  # written when run() returned (not for an ASHA stop)
            with open(result_file) as handle:
                assert json.load(handle)["test_result"] is None


@pytest.mark.slow
def test_best_config_is_accepted_by_run_recbole(restaurants_search):
    from recbole_dlrrec.cli import train as run_recbole
    from recbole_dlrrec.runtime.quick_start import build_config

    outcome, _ = restaurants_search
    path = outcome.best_config_file
    text = open(path).read()
    assert "--model=DLRREC" in text and "--dataset=restaurants" in text
    args, files, overrides = run_recbole.parse_args(
        ["--model=DLRREC", f"--dataset={DATASET}", f"--config_files={path}"]
    )
    config = build_config(args.model, args.dataset, files, overrides, prepare=False)
    for key in ("w1", "w2", "tau"):
        assert config[key] == pytest.approx(outcome.best.params[key])
    assert config["epochs"] == 2 and config["seed"] == 7


@pytest.mark.slow
def test_best_config_is_evaluated_on_test_once(restaurants_search):
    outcome, _ = restaurants_search
    with open(outcome.test_result_file) as handle:
        result = json.load(handle)
    assert set(result["test_result"]) >= {"auc", "logloss", "accuracy"}
    assert result["tuning"]["trial_id"] == outcome.best.trial_id
    for key in ("w1", "w2", "tau"):
        assert result["config"][key] == pytest.approx(outcome.best.params[key])
    # same config and seed: the re-run's validation score is the trial's, when the trial ran every epoch
    if outcome.best.status == "completed":
        assert result["best_valid_score"] == pytest.approx(outcome.best.best_score, abs=1e-3)


@pytest.mark.slow
def test_trials_reuse_the_prepared_caches(restaurants_search):
    outcome, _ = restaurants_search
    folder = os.path.join(ROOT, "dataset", DATASET)
    first_trial = min(os.path.getctime(d) for d in glob.glob(os.path.join(outcome.experiment_dir, "DLRREC_*")))
    written = [
        f
        for f in glob.glob(os.path.join(folder, "**", "*"), recursive=True)
        if os.path.isfile(f) and os.path.getmtime(f) > first_trial
    ]
    assert not written, f"trials wrote data files: {written}"


# -- errors before any trial ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ("w1: {lognormal: [0.1, 1.0]}\n", "unknown distribution 'lognormal'"),
        ("w1: [0.1, 1.0]\n", "expected one {distribution: [args]}"),
        ("w1: {loguniform: [0.0, 1.0]}\n", "loguniform needs 0 < low"),
        ("w1: {uniform: [1.0, 0.1]}\n", "needs low < high"),
        ("w1: {quniform: [1, 10]}\n", "quniform takes [low, high, q]"),
        ("w1: {choice: []}\n", "needs at least one value"),
        ("reduction_dim: {uniform: [8, 32]}\n", "takes an int"),
        ("tau: {choice: [fast]}\n", "config key 'tau' takes float"),
        ("epochs: {choice: [1, 2]}\n", "epochs cannot be tuned"),
        ("w1: {loguniform: [0.1, 1.0]\n", "not valid YAML"),
        ("", "the search space is empty"),
    ],
)
def test_bad_space_file_fails_before_any_trial(tmp_path, tiny_data_path, text, expected):
    path = _space(tmp_path, text)
    request = tune.TuneRequest(
        model="DLRREC",
        dataset="tiny",
        num_samples=2,
        max_epochs=1,
        space_file=path,
        fixed={"data_path": tiny_data_path},
        out_root=str(tmp_path / "out"),
    )
    with pytest.raises(ValueError) as info:
        tune.run_search(request)
    message = str(info.value)
    assert expected in message and path in message and "\n" not in message
    assert _no_experiment(tmp_path / "out")


@pytest.mark.parametrize(
    "model, text, expected",
    [
        ("DLRREC", "w1: {loguniform: [0.1, 1.0]}\nfoo_bar: {choice: [1, 2]}\n", ":2: unknown config key 'foo_bar'"),
        ("DLRREC", "w11: {loguniform: [0.1, 1.0]}\n", "Did you mean w1"),
        ("DLRREC", "mlp_hidden_size: {choice: [[64], [32]]}\n", "mlp_hidden_size is not a config key of DLRREC"),
        ("DeepFM", "tau: {loguniform: [0.1, 1.0]}\n", "tau is not a config key of DeepFM"),
    ],
)
def test_unknown_key_fails_before_any_trial(tmp_path, tiny_data_path, model, text, expected):
    path = _space(tmp_path, text)
    request = tune.TuneRequest(
        model=model,
        dataset="tiny",
        num_samples=2,
        max_epochs=1,
        space_file=path,
        fixed={"data_path": tiny_data_path},
        out_root=str(tmp_path / "out"),
    )
    with pytest.raises(ValueError, match="unknown config key|is not a config key") as info:
        tune.run_search(request)
    assert expected in str(info.value) and path in str(info.value)
    assert _no_experiment(tmp_path / "out")


def test_unknown_fixed_override_fails_before_any_trial(tmp_path, tiny_data_path):
    request = tune.TuneRequest(
        model="DLRREC",
        dataset="tiny",
        num_samples=2,
        max_epochs=1,
        fixed={"data_path": tiny_data_path, "w11": 0.3},
        out_root=str(tmp_path / "out"),
    )
    with pytest.raises(ValueError, match="unknown config key 'w11'"):
        tune.run_search(request)
    assert _no_experiment(tmp_path / "out")


def test_shipped_spaces_parse_and_match_their_models():
    from recbole_dlrrec.config.stack import PROPERTIES_DIR, plugin_config_files
    from recbole_dlrrec.experiments.tune_space import default_space_file, load_space

    dlrrec = load_space(
        default_space_file("DLRREC", PROPERTIES_DIR), "DLRREC", PROPERTIES_DIR, plugin_config_files("DLRREC")
    )
    tuned = {k: (p.dist, p.args) for k, p in dlrrec.params.items()}
    assert {k: tuned[k] for k in ("w1", "w2", "tau")} == {
        "w1": ("loguniform", (0.001, 1.0)),
        "w2": ("loguniform", (0.001, 1.0)),
        "tau": ("loguniform", (0.03, 1.0)),
    }
    # + the shared ranges of properties/tune/shared.yaml (tests/experiments/test_tuned_board.py checks them)
    assert {"learning_rate", "weight_decay", "dropout_prob", "embedding_size"} <= set(tuned)
    deepfm = load_space(
        default_space_file("DeepFM", PROPERTIES_DIR), "DeepFM", PROPERTIES_DIR, plugin_config_files("DeepFM")
    )
    assert "learning_rate" in deepfm.params and deepfm.params["embedding_size"].as_int


def test_space_parsing_casts_int_keys_and_reads_recbole_floats(tmp_path):
    from recbole_dlrrec.config.keys import KeySpec

    specs = {"swing_topk": KeySpec("swing_topk", frozenset({"int"}), "swing.yaml")}
    space = parse_space(
        _space(tmp_path, "swing_topk: {quniform: [10, 50, 10]}\nlearning_rate: {loguniform: [1e-4, 1e-2]}\n"), specs
    )
    assert space.coerce({"swing_topk": 30.0}) == {"swing_topk": 30}
    assert isinstance(space.coerce({"swing_topk": 30.0})["swing_topk"], int)
    assert space.params["learning_rate"].args == (1e-4, 1e-2) and space.params["learning_rate"].log_scale
    with pytest.raises(SpaceError, match="needs integer low, high and q"):
        parse_space(_space(tmp_path, "swing_topk: {quniform: [10, 50, 2.5]}\n", "b.yaml"), specs)


# -- failures inside trials -------------------------------------------------------------------------
@pytest.mark.slow
def test_failing_trial_is_recorded_and_the_search_goes_on(tmp_path, tiny_data_path):
    """reduction_dim 64 is wider than the tiny text vectors (24-d), a check that needs the data:
    those trials fail inside the trial, the others complete."""
    path = _space(tmp_path, "reduction_dim: {choice: [64, 8]}\n")
    outcome = tune.run_search(
        tune.TuneRequest(
            model="DLRREC",
            dataset="tiny",
            num_samples=4,
            max_epochs=1,
            space_file=path,
            seed=3,
            fixed={"data_path": tiny_data_path},
            out_root=str(tmp_path / "out"),
            name="fail",
            evaluate_best=False,
        )
    )
    rows = _rows(os.path.join(outcome.out_dir, "trials.csv"))
    assert len(rows) == 4
    failed = [r for r in rows if r["status"] == "failed"]
    done = [r for r in rows if r["status"] != "failed"]
    assert failed and done, rows
    for row in failed:
        assert int(float(row["reduction_dim"])) == 64 and row["valid_auc_best"] == ""
        assert "reduction_dim=64 is larger than" in row["error"]
    for row in done:
        assert int(float(row["reduction_dim"])) == 8 and row["status"] == "completed" and row["error"] == ""
    assert outcome.best.params["reduction_dim"] == 8
    assert "reduction_dim: 8" in open(outcome.best_config_file).read()


def test_a_space_value_no_trial_could_take_is_refused_before_ray(tmp_path, tiny_data_path):
    """tau = -1 breaks the key's rule (> 0): the space file is refused with file:line, before Ray starts."""
    path = _space(tmp_path, "tau: {choice: [-1.0, 0.2]}\n")
    with pytest.raises(SpaceError, match=r"space.yaml:1: config key 'tau' must be > 0"):
        tune.run_search(
            tune.TuneRequest(
                model="DLRREC",
                dataset="tiny",
                num_samples=4,
                max_epochs=1,
                space_file=path,
                seed=3,
                fixed={"data_path": tiny_data_path},
                out_root=str(tmp_path / "out"),
                name="refused",
                evaluate_best=False,
            )
        )
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("trials.csv"))


# -- Ctrl-C and --resume ----------------------------------------------------------------------------
@pytest.mark.slow
def test_interrupt_keeps_finished_trials_and_resume_completes(tmp_path, tiny_data_path):
    out_root = tmp_path / "out"
    base = [sys.executable, os.path.join(ROOT, "run_tune.py"), "--dataset=tiny", f"--out_root={out_root}"]
    space = _space(tmp_path, PAPER_KNOBS)
    start = base + [
        "--model=DLRREC",
        "--num_samples=3",
        "--max_epochs=4",
        "--name=r",
        "--seed=1",
        f"--space={space}",
        "--cpus_per_trial=2",
        "--num_cpus=2",
        "--no_test",
        f"--data_path={tiny_data_path}",
    ]
    proc = subprocess.Popen(start, cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:  # wait for the first finished trial, then press Ctrl-C
        lines.append(line)
        if line.startswith("[1/3]"):
            proc.send_signal(signal.SIGINT)
            break
    lines += proc.stdout.readlines()
    assert proc.wait(timeout=120) == 130, "".join(lines)
    out_dir = out_root / "tiny" / "r"
    rows = _rows(out_dir / "trials.csv")
    statuses = [r["status"] for r in rows]
    assert any(s in ("completed", "pruned") for s in statuses), statuses
    assert any(s in ("interrupted", "not_started") for s in statuses), statuses
    assert "--resume" in "".join(lines)

    # No option given again: the run continues with its own (--no_test included: no test evaluation).
    resumed = subprocess.run(
        base + ["--name=r", "--resume"], cwd=str(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    rows = _rows(out_dir / "trials.csv")
    assert len(rows) == 3 and all(r["status"] in ("completed", "pruned") for r in rows), rows
    assert (out_dir / "best_config.yaml").is_file()
    assert not (out_dir / "best_test_result.json").exists() and "evaluating it on test" not in resumed.stdout


def _started_run(out_root, **changes):
    """The folder of run "r" on tiny as run_search leaves it once started: its run_spec.json."""
    out_dir = os.path.join(str(out_root), "tiny", "r")
    spec = {
        "model": "DLRREC",
        "model_class": "DLRREC",
        "dataset": "tiny",
        "name": "r",
        "num_samples": 3,
        "max_epochs": 4,
        "space_file": os.path.join(str(out_root), "space.yaml"),
        "fixed": {"data_path": "/data"},
        "config_files": [],
        "seed": 1,
        "cpus_per_trial": 2.0,
        "gpus_per_trial": 0.0,
        "grace_period": 1,
        "reduction_factor": 3,
        "valid_metric": "AUC",
        "valid_metric_bigger": True,
        "evaluate_best": False,
        "trial_time_budget_s": 600.0,
        "scheduler": "asha",
        "created": "2026-01-01 00:00:00",
        **changes,
    }
    search_records.write_run_spec(os.path.join(out_dir, "run_spec.json"), spec)
    return out_dir, spec


def test_resume_reads_a_run_from_before_the_scheduler_choice_as_asha(tmp_path):
    out_dir, spec = _started_run(tmp_path, scheduler="ASHA")  # what every run recorded before "none"
    request = tune.TuneRequest(model=None, dataset="tiny", name="r", resume=True, scheduler="asha")
    assert tune.resumed_request(request, spec, os.path.join(out_dir, "run_spec.json")).scheduler == "asha"
    with pytest.raises(InputError, match="was started with --search_scheduler=asha, not with --search_scheduler=none"):
        tune.resumed_request(
            dataclasses.replace(request, scheduler="none"), spec, os.path.join(out_dir, "run_spec.json")
        )


def test_resume_takes_every_option_from_the_run(tmp_path):
    out_dir, spec = _started_run(tmp_path)
    spec_path = os.path.join(out_dir, "run_spec.json")
    request = tune.TuneRequest(model=None, dataset="tiny", name="r", resume=True, out_root=str(tmp_path))
    resumed = tune.resumed_request(request, spec, spec_path)
    for attr, (key, _) in tune_request.RUN_OPTIONS.items():
        if attr != "space_file":
            assert getattr(resumed, attr) == spec[key], attr
    assert resumed.space_file == os.path.join(out_dir, "space.yaml")  # the merged copy of the run's space
    assert request.evaluate_best is None and request.num_samples is None  # the request given is left as it was
    same = tune.TuneRequest(
        model="DLRREC",
        dataset="tiny",
        name="r",
        resume=True,
        num_samples=3,
        seed=1,
        fixed={"data_path": "/data"},
        evaluate_best=False,
        out_root=str(tmp_path),
    )
    assert tune.resumed_request(same, spec, spec_path).max_epochs == 4  # the same values again: accepted
    # A run_spec.json from before evaluate_best was recorded: the request says, else the default.
    del spec["evaluate_best"]
    assert tune.resumed_request(request, spec, spec_path).evaluate_best is True
    assert tune.resumed_request(same, spec, spec_path).evaluate_best is False


@pytest.mark.parametrize(
    "options, message",
    [
        (["--num_samples=5"], "was started with --num_samples=3, not with --num_samples=5"),
        (["--model=DeepFM"], "was started with --model=DLRREC, not with --model=DeepFM"),
        (["--seed=2"], "was started with --seed=1, not with --seed=2"),
        (["--max_epochs=9"], "was started with --max_epochs=4, not with --max_epochs=9"),
        (["--cpus_per_trial=1"], "was started with --cpus_per_trial=2.0, not with --cpus_per_trial=1.0"),
        (["--grace_period=2"], "was started with --grace_period=1, not with --grace_period=2"),
        (["--learning_rate=0.5"], "was started with --data_path=/data, not with --learning_rate=0.5"),
        (["--config_files=a.yaml"], "was started without --config_files, not with --config_files="),
        (
            ["--trial_time_budget_s=60"],
            "was started with --trial_time_budget_s=600.0, not with --trial_time_budget_s=60.0",
        ),
    ],
)
def test_resume_refuses_an_option_the_run_was_not_started_with(tmp_path, capsys, options, message):
    from recbole_dlrrec.cli import tune as run_tune

    _started_run(tmp_path)
    assert run_tune.main(["--dataset=tiny", "--name=r", "--resume", *options, f"--out_root={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err and "run_spec.json" in err, err


def test_resume_refuses_no_test_on_a_run_started_with_test(tmp_path, capsys):
    from recbole_dlrrec.cli import tune as run_tune

    _started_run(tmp_path, evaluate_best=True)
    assert run_tune.main(["--dataset=tiny", "--name=r", "--resume", "--no_test", f"--out_root={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "was started without --no_test, not with --no_test" in err, err


@pytest.mark.slow
def test_run_name_taken_and_resume_without_run(tmp_path, tiny_data_path):
    out_root = str(tmp_path / "out")
    with pytest.raises(search_records.TuneRunError, match="nothing to resume"):
        tune.run_search(
            tune.TuneRequest(model="DLRREC", dataset="tiny", num_samples=0, name="nope", resume=True, out_root=out_root)
        )
    os.makedirs(os.path.join(out_root, "tiny", "taken"))
    search_records.write_run_spec(os.path.join(out_root, "tiny", "taken", "run_spec.json"), {"dataset": "tiny"})
    with pytest.raises(search_records.TuneRunError, match="run taken exists"):
        tune.run_search(
            tune.TuneRequest(
                model="DLRREC",
                dataset="tiny",
                num_samples=1,
                name="taken",
                fixed={"data_path": tiny_data_path},
                out_root=out_root,
            )
        )


# -- kill -9 of the driver ----------------------------------------------------------------------------
def _descendants(pid, seen):
    """Note every live descendant of `pid` in `seen` (pid -> psutil.Process)."""
    import psutil

    try:
        for child in psutil.Process(pid).children(recursive=True):
            seen.setdefault(child.pid, child)
    except psutil.NoSuchProcess:
        pass


def _run_watched(cmd, cwd, log_path, until=None, timeout=300):
    """Start `cmd`, noting its descendants every 0.2 s until it exits or `until()` is true.
    Returns (process, noted descendants)."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, text=True)
    seen = {}
    deadline = time.time() + timeout
    while proc.poll() is None and not (until and until()):
        assert time.time() < deadline, open(log_path).read()
        _descendants(proc.pid, seen)
        time.sleep(0.2)
    return proc, seen


def _assert_all_gone(processes, log_path):
    import psutil

    _, alive = psutil.wait_procs(list(processes.values()), timeout=60)
    described = [f"{p.pid} {' '.join(p.cmdline())[:150]}" for p in alive if p.is_running()]
    assert not described, f"left running: {described}\n" + open(log_path).read()


def _ray_temp_dirs(processes):
    import re

    import psutil

    dirs = set()
    for proc in processes.values():
        try:
            dirs.update(re.findall(r"(/[^\s=]*/ray-dlrrec-[^/\s]+)", " ".join(proc.cmdline())))
        except psutil.Error:
            continue
    return dirs


@pytest.mark.slow
@pytest.mark.parametrize("ray_state", ["kept", "lost"])
def test_kill_9_keeps_finished_trials_and_leaves_no_ray_process(tmp_path, tiny_data_path, ray_state):
    """kill -9 of the tuning driver once a trial finished; --resume keeps that trial (its
    record line and scores), trains only the others, and no Ray process outlives either run.
    `lost`: Ray's experiment state is deleted after the kill (as when the driver dies before
    Ray first saves it): the resumed search starts over and replays the recorded trials."""
    import psutil

    out_root = tmp_path / "out"
    record = out_root / "tiny" / "k" / search_records.FINISHED_FILE
    base = [sys.executable, os.path.join(ROOT, "run_tune.py"), "--dataset=tiny", f"--out_root={out_root}"]
    start = base + [
        "--model=DLRREC",
        "--num_samples=3",
        "--max_epochs=2",
        "--name=k",
        "--seed=1",
        f"--space={_space(tmp_path, PAPER_KNOBS)}",
        "--cpus_per_trial=2",
        "--num_cpus=2",
        "--no_test",
        f"--data_path={tiny_data_path}",
    ]
    first_log = tmp_path / "first.log"
    proc, seen = _run_watched(
        start, str(tmp_path), first_log, until=lambda: bool(search_records.read_finished(str(record)))
    )
    _descendants(proc.pid, seen)
    assert proc.poll() is None, "the search ended before it could be killed:\n" + first_log.read_text()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    before = record.read_text()
    kept = search_records.read_finished(str(record))
    temp_dirs = _ray_temp_dirs(seen)
    assert temp_dirs and any(p.name().startswith(("raylet", "gcs_server")) for p in seen.values() if p.is_running())
    _assert_all_gone(seen, first_log)
    for proc_info in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc_info.info.get("cmdline") or ())
        assert not any(d in cmdline for d in temp_dirs), cmdline
    assert not any(os.path.exists(d) for d in temp_dirs)
    if ray_state == "lost":
        for path in glob.glob(str(out_root / tune.RAY_DIRNAME / "tiny" / "k" / "experiment_state-*.json")):
            os.remove(path)

    second_log = tmp_path / "resume.log"
    resumed, seen = _run_watched(base + ["--name=k", "--resume", "--no_test"], str(tmp_path), second_log)
    assert resumed.wait() == 0, second_log.read_text()
    _assert_all_gone(seen, second_log)
    # The finished trials were not trained again: each trial has one record line, the old
    # lines are untouched, and the outputs carry the recorded scores.
    assert record.read_text().startswith(before)
    lines = record.read_text().splitlines()
    assert len(lines) == 3 and len(search_records.read_finished(str(record))) == 3, lines
    rows = _rows(out_root / "tiny" / "k" / "trials.csv")
    assert len(rows) == 3 and all(r["status"] in ("completed", "pruned") for r in rows), rows
    by_params = {search_records.params_key({k: float(r[k]) for k in ("w1", "w2", "tau")}): r for r in rows}
    for entry in kept.values():
        row = by_params[search_records.params_key({k: float(entry["params"][k]) for k in ("w1", "w2", "tau")})]
        assert float(row["valid_auc_best"]) == entry["best_score"] and row["status"] == entry["status"]
        assert int(row["epochs"]) == entry["epochs"]
    if ray_state == "lost":  # the new search drew the recorded values again and replayed them
        assert "(finished before; kept)" in second_log.read_text()


# -- the record of finished trials and the Ray reaper (no Ray started) ------------------------------
def test_finished_record_round_trip_and_matching(tmp_path):
    path = str(tmp_path / search_records.FINISHED_FILE)
    assert search_records.read_finished(path) == {}
    params = {"w1": 0.1234567891234, "tau": 0.2}
    record = search_records.record_from_result(
        "a_00000",
        "pruned",
        params,
        {
            "epoch": 2,
            "valid_score": 0.61,
            "best_valid_score": 0.62,
            "best_epoch": 1,
            "trial_seconds": 3.5,
            "last": False,
        },
    )
    search_records.append_finished(path, search_records.finished_entry(record, [0.62, 0.61], False))
    failed = search_records.record_from_result(
        "a_00001", "failed", {"w1": 0.5, "tau": 0.2}, {"epoch": 0, "failed": "ValueError: x"}
    )
    search_records.append_finished(path, search_records.finished_entry(failed, [], True))
    finished = search_records.read_finished(path)
    assert list(finished) == ["a_00000", "a_00001"]
    assert search_records.record_from_entry(finished["a_00000"]) == record  # floats round-trip exactly
    assert search_records.record_from_entry(finished["a_00001"]).error == "ValueError: x"
    assert search_records.match_finished(finished, "a_00000", params)["curve"] == [0.62, 0.61]
    # drawn again under a new id
    assert search_records.match_finished(finished, "b_00007", params)["trial_id"] == "a_00000"
    assert search_records.match_finished(finished, "a_00000", {**params, "tau": 0.3}) is None  # same id, other values
    with open(path, "a") as handle:
        handle.write("{not json\n")
    with pytest.raises(search_records.TuneRunError, match=r"finished_trials.jsonl:3: not a finished-trial record"):
        search_records.read_finished(path)


@pytest.mark.slow
def test_reaper_stops_what_a_killed_driver_left(tmp_path):
    """A stand-in driver starts the reaper and a 'Ray' child, then dies by SIGKILL: the child is
    stopped and the run's temp folder removed."""
    import psutil

    temp_dir = tmp_path / "ray-dlrrec-test"
    temp_dir.mkdir()
    reaper = os.path.join(ROOT, "recbole_dlrrec", "experiments", "ray_reaper.py")
    driver_code = (
        "import subprocess, sys, time\n"
        "import os\n"
        f"subprocess.Popen([sys.executable, {reaper!r}, {str(temp_dir)!r}, '/no/ray/package', str(os.getpid())],"
        " stdin=subprocess.PIPE,"
        " start_new_session=True)\n"
        # like Ray's dashboard agent: a descendant whose command line names Ray's package, not the temp folder
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)', "
        "'/no/ray/package/dashboard/agent.py'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    driver = subprocess.Popen([sys.executable, "-c", driver_code], stdout=subprocess.PIPE, text=True)
    child = psutil.Process(int(driver.stdout.readline()))
    time.sleep(1.5)  # the reaper notes the child (it polls every second)
    driver.kill()
    driver.wait(timeout=10)
    gone, alive = psutil.wait_procs([child], timeout=20)
    assert child in gone and not alive
    deadline = time.time() + 10
    while temp_dir.exists() and time.time() < deadline:
        time.sleep(0.1)
    assert not temp_dir.exists()


@pytest.mark.slow
def test_sigterm_stops_like_ctrl_c_and_leaves_no_ray_process(tmp_path, tiny_data_path):
    out_root = tmp_path / "out"
    record = out_root / "tiny" / "t" / search_records.FINISHED_FILE
    cmd = [
        sys.executable,
        os.path.join(ROOT, "run_tune.py"),
        "--dataset=tiny",
        f"--out_root={out_root}",
        "--model=DLRREC",
        "--num_samples=3",
        "--max_epochs=4",
        "--name=t",
        "--seed=1",
        "--cpus_per_trial=2",
        f"--space={_space(tmp_path, PAPER_KNOBS)}",
        "--num_cpus=2",
        "--no_test",
        f"--data_path={tiny_data_path}",
    ]
    log = tmp_path / "run.log"
    proc, seen = _run_watched(cmd, str(tmp_path), log, until=lambda: bool(search_records.read_finished(str(record))))
    _descendants(proc.pid, seen)
    assert proc.poll() is None, log.read_text()
    proc.terminate()
    assert proc.wait(timeout=120) == 130, log.read_text()
    _assert_all_gone(seen, log)
    text = log.read_text()
    assert f"interrupted; continue with --resume --name t --dataset=tiny --out_root={out_root}" in text
    assert "Traceback" not in text
    rows = _rows(out_root / "tiny" / "t" / "trials.csv")
    assert any(r["status"] in ("completed", "pruned") for r in rows), rows


def test_trials_csv_reads_back_what_it_wrote(tmp_path):
    trial = search_records.TrialRecord
    records = [
        trial(
            "t_0",
            "completed",
            {"w1": 0.1234567890123, "top_mlp": [64, 32], "interaction": "dcn"},
            epochs=9,
            last_score=0.7,
            best_score=0.71,
            best_epoch=6,
            seconds=12.5,
        ),
        trial("t_1", "failed", {"w1": 1e-05, "top_mlp": [128], "interaction": "dot"}, error="boom"),
    ]
    path = str(tmp_path / "trials.csv")
    search_records.write_trials_csv(path, records, ["w1", "top_mlp", "interaction"], "AUC")
    assert search_records.read_trials_csv(path) == records
    with open(path, "w") as handle:
        handle.write("trial_id,score\nt_0,0.5\n")
    with pytest.raises(InputError, match="not a trials.csv"):
        search_records.read_trials_csv(path)
