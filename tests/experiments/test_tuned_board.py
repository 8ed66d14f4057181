"""The tuned leaderboard (run_leaderboard.py --tune N): one search budget for every model, the
shared search ranges, bad input before any work, reuse / --retune of a saved search."""

from __future__ import annotations

import csv
import glob
import json
import math
import os
import sys

import pytest
from conftest import leaderboard_argv as _argv
from conftest import write_tiny_dataset

from recbole_dlrrec.config.registry import resolve_model
from recbole_dlrrec.config.stack import PROPERTIES_DIR, plugin_config_files
from recbole_dlrrec.experiments import board_cells, board_report, code_digest, search_inputs, tuned_board
from recbole_dlrrec.experiments.tune_space import SHARED_SPACE_FILE, SpaceError, load_space, model_space, parse_space

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
from recbole_dlrrec.cli import leaderboard as run_leaderboard  # noqa: E402

TUNE_DIR = os.path.join(PROPERTIES_DIR, "tune")
SHARED_KEYS = ("learning_rate", "weight_decay", "dropout_prob", "embedding_size")


def _space(model):
    return model_space(model, PROPERTIES_DIR, plugin_config_files(resolve_model(model)[0].__name__))


# -- the search spaces -------------------------------------------------------------------------
@pytest.mark.parametrize("model", board_cells.DEFAULT_MODELS)
def test_every_board_model_has_a_space_that_parses_against_it(model):
    space = _space(model)  # raises SpaceError naming file and line for a bad key or value
    assert space.params, model
    _, variant = resolve_model(model)
    assert not set(variant) & set(space.params), f"{model} tunes a key its variant fixes"
    base = resolve_model(model)[0].__name__
    assert os.path.isfile(os.path.join(TUNE_DIR, f"{model if not variant else base}.yaml"))


def test_shared_ranges_are_identical_across_models():
    shared = parse_space(os.path.join(TUNE_DIR, SHARED_SPACE_FILE))
    assert set(shared.params) == set(SHARED_KEYS)
    ranges = {k: (p.dist, p.args) for k, p in shared.params.items()}
    for model in board_cells.DEFAULT_MODELS:
        space = _space(model)
        for key in SHARED_KEYS:
            if key in space.params:
                assert (space.params[key].dist, space.params[key].args) == ranges[key], (model, key)
            else:  # left out on purpose, and said so
                assert key in space.left_out, (model, key)
    # most models tune every shared key
    assert all(key in _space("DeepFM").params for key in SHARED_KEYS)


def test_a_model_file_cannot_set_a_shared_range_again(tmp_path):
    (tmp_path / SHARED_SPACE_FILE).write_text("learning_rate: {loguniform: [0.0001, 0.01]}\n")
    own = tmp_path / "DeepFM.yaml"
    own.write_text("mlp_hidden_size: {choice: [[64, 64]]}\nlearning_rate: {loguniform: [0.001, 0.1]}\n")
    with pytest.raises(SpaceError, match=r"DeepFM.yaml:2: learning_rate is a shared key"):
        parse_space(str(own))
    own.write_text("tau: ~\n")
    with pytest.raises(SpaceError, match=r"DeepFM.yaml:1: tau: `~` leaves out a shared key"):
        parse_space(str(own))
    own.write_text("mlp_hidden_size: {choice: [[64, 64]]}\nlearning_rate: ~\n")
    space = parse_space(str(own))
    assert set(space.params) == {"mlp_hidden_size"} and "learning_rate" in space.left_out


def test_a_bad_shared_value_is_refused_naming_the_shared_file(tmp_path):
    (tmp_path / SHARED_SPACE_FILE).write_text("embedding_size: {uniform: [8, 32]}\n")
    own = tmp_path / "DeepFM.yaml"
    own.write_text("mlp_hidden_size: {choice: [[64, 64]]}\n")
    with pytest.raises(SpaceError, match=r"shared.yaml:1: embedding_size"):
        load_space(str(own), "DeepFM", PROPERTIES_DIR, plugin_config_files("DeepFM"))


@pytest.mark.parametrize("model", ["DLRREC-noCL", "AutoInt", "LR"])
def test_merged_space_text_reads_back_the_same(tmp_path, model):
    """What a search saves beside its outputs (space.yaml) stands alone: same params, no shared file."""
    from recbole_dlrrec.config.keys import known_keys

    space = _space(model)
    path = tmp_path / "space.yaml"
    path.write_text(space.to_text(header=["merged"]))
    files = plugin_config_files(resolve_model(model)[0].__name__)
    back = parse_space(str(path), known_keys(PROPERTIES_DIR, files))
    assert back.shared_path is None
    assert {k: (p.dist, p.args, p.as_int) for k, p in back.params.items()} == {
        k: (p.dist, p.args, p.as_int) for k, p in space.params.items()
    }
    for key in space.left_out:
        assert f"# left out: {key}" in path.read_text()


# -- bad input: one line, exit 2, before any work -----------------------------------------------
@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("tuneddata"))


def _one_error_line(capsys, *parts):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    for part in parts:
        assert part in err[0], err[0]


def test_bad_input_is_one_line_before_any_work(data_path, tmp_path, capsys, monkeypatch):
    def no_search(*args, **kwargs):
        raise AssertionError("a search started")

    monkeypatch.setattr("recbole_dlrrec.experiments.tune.run_search", no_search)
    out = str(tmp_path)
    assert run_leaderboard.main(_argv(data_path, out, "--tune", "2", "--models", "DLRM,NoSuchModel")) == 2
    _one_error_line(capsys, "NoSuchModel")
    argv = _argv(data_path, out, "--tune", "2", "--models", "DLRM")
    argv[0] = "--dataset=nowhere"
    assert run_leaderboard.main(argv) == 2
    _one_error_line(capsys, "nowhere")
    argv = _argv(data_path, out, "--tune", "2", "--models", "DLRM", "--search_scheduler", "asha", "--grace_period", "1")
    assert run_leaderboard.main(argv) == 2
    _one_error_line(capsys, "--grace_period must be >= 3")
    with pytest.raises(SystemExit) as stop:  # the grace period is ASHA's: refused by the parser
        run_leaderboard.main(_argv(data_path, out, "--tune", "2", "--models", "DLRM", "--grace_period", "3"))
    assert stop.value.code == 2 and "--grace_period is ASHA's" in capsys.readouterr().err
    assert not os.listdir(out)  # nothing written


@pytest.mark.parametrize(
    "text, part",
    [
        (None, "search space file not found"),
        ("top_mlp: {choice: [[64]]\n", "not valid YAML"),
        ("top_mlp: {normal: [0, 1]}\n", "unknown distribution"),
        ("cin_layer_size: {choice: [[64, 64]]}\n", "cin_layer_size is not a config key of DLRM"),
    ],
)
def test_missing_or_malformed_space_file_is_one_line(data_path, tmp_path, capsys, monkeypatch, text, part):
    tune_dir = tmp_path / "properties" / "tune"
    tune_dir.mkdir(parents=True)
    (tune_dir / SHARED_SPACE_FILE).write_text(open(os.path.join(TUNE_DIR, SHARED_SPACE_FILE)).read())
    if text is not None:
        (tune_dir / "DLRM.yaml").write_text(text)
    real = tuned_board.board_space

    def board_space_from(model, dataset, overrides=None):
        from recbole_dlrrec.experiments import tune_space

        original = tune_space.default_space_file
        monkeypatch.setattr(tune_space, "default_space_file", lambda name, _: str(tune_dir / f"{name}.yaml"))
        try:
            return real(model, dataset, overrides)
        finally:
            monkeypatch.setattr(tune_space, "default_space_file", original)

    monkeypatch.setattr(tuned_board, "board_space", board_space_from)
    out = tmp_path / "out"
    assert run_leaderboard.main(_argv(data_path, str(out), "--tune", "2", "--models", "DLRM")) == 2
    _one_error_line(capsys, part, "DLRM.yaml")
    assert not out.exists()


def test_tune_flags_need_tune_and_epochs(data_path, tmp_path):
    with pytest.raises(SystemExit):
        run_leaderboard.parse_args(["--dataset=tiny", "--retune"])
    with pytest.raises(SystemExit):
        run_leaderboard.parse_args(["--dataset=tiny", "--tune", "3"])  # no --epochs
    with pytest.raises(SystemExit):
        run_leaderboard.parse_args(["--dataset=tiny", "--tune", "3", "--epochs", "2", "--experiments"])
    with pytest.raises(SystemExit):
        run_leaderboard.parse_args(["--dataset=tiny", "--trial_time_budget_s", "60"])


# -- saved searches: reuse, staleness, --retune, failures (a stand-in search, no Ray) ------------
class FakeSearch:
    """Stands in for tune.run_search: writes trials.csv / best_config.yaml as it does, picks
    the trial with the best validation score, counts its calls."""

    def __init__(self, fail_for=()):
        self.requests = []
        self.fail_for = set(fail_for)

    def __call__(self, request):
        from recbole_dlrrec.experiments import search_records, tune

        self.requests.append(request)
        if request.model in self.fail_for:
            raise RuntimeError("every trial died")
        space = parse_space(request.space_file)
        values = [dict(zip(space.keys, v)) for v in zip(*[p.sample_values() for p in space.params.values()])]
        # the last draw wins; with an odd sampler seed the first does (another search, another winner)
        ranks = range(len(values)) if request.seed % 2 == 0 else range(len(values) - 1, -1, -1)
        trials = [
            search_records.TrialRecord(
                f"t{i}", "completed", params, epochs=2, last_score=0.6 + r / 100, best_score=0.6 + r / 100, best_epoch=2
            )
            for i, (r, params) in enumerate(zip(ranks, values))
        ]
        out_dir = os.path.join(request.out_root, request.dataset, request.name)
        os.makedirs(out_dir)
        search_records.write_trials_csv(os.path.join(out_dir, "trials.csv"), trials, space.keys, "AUC")
        best = search_records.select_best(trials, True)
        search_records.write_best_config(
            os.path.join(out_dir, "best_config.yaml"),
            search_records.best_config_values(best.params, request.fixed, request.max_epochs, request.seed),
            request.model,
            request.dataset,
            "fake",
        )
        return tune.TuneOutcome(
            out_dir=out_dir,
            experiment_dir=out_dir,
            metric="AUC",
            bigger=True,
            trials=trials,
            best=best,
            best_config_file=None,
            test_result_file=None,
            retrain=None,
            plots=[],
            interrupted=False,
            summary="",
        )


def _board(data_path, out):
    return board_cells.Leaderboard(
        "tiny",
        results_dir=str(out),
        out_name="tiny-tuned",
        overrides={"data_path": data_path, "epochs": 2},
        log=lambda message: None,
    )


def test_saved_search_is_reused_until_asked_or_stale(data_path, tmp_path):
    board = _board(data_path, tmp_path)
    space = tuned_board.board_space("FM", "tiny", board.overrides)
    budget = tuned_board.TuneBudget(trials=2, max_epochs=2, scheduler="asha", grace_period=3)
    search = FakeSearch()
    first = tuned_board.tune_model(board, "FM", space, budget, search=search)
    assert first.status == "ok" and not first.reused and len(search.requests) == 1
    request = search.requests[0]
    assert (request.num_samples, request.max_epochs, request.grace_period, request.evaluate_best) == (2, 2, 3, False)
    assert request.scheduler == "asha"
    assert "epochs" not in request.fixed and "checkpoint_dir" not in request.fixed
    folder = tuned_board.tuning_dir(board.out_dir, "FM")
    assert sorted(os.listdir(folder)) == ["best_config.yaml", "space.yaml", "trials.csv", "tuning.json"]
    kept = open(os.path.join(folder, "best_config.yaml")).read()  # its comment names itself, not the run folder
    assert f"--config_files={os.path.relpath(os.path.join(folder, 'best_config.yaml'))}" in kept

    again = tuned_board.tune_model(board, "FM", space, budget, search=search)
    assert again.reused and again.params == first.params and len(search.requests) == 1
    tuned_board.tune_model(board, "FM", space, budget, retune=True, search=search)
    assert len(search.requests) == 2
    for changed in (
        tuned_board.TuneBudget(trials=3, max_epochs=2, scheduler="asha"),
        tuned_board.TuneBudget(trials=2, max_epochs=3, scheduler="asha"),
        tuned_board.TuneBudget(trials=2, max_epochs=2, scheduler="asha", grace_period=4),
    ):
        tuned_board.tune_model(board, "FM", space, changed, search=search)
        tuned_board.tune_model(board, "FM", space, changed, search=search)  # the new search is reused
    assert len(search.requests) == 5
    narrower = space.without(["weight_decay"], "test")
    tuned_board.tune_model(board, "FM", narrower, tuned_board.TuneBudget(trials=2, max_epochs=3), search=search)
    assert len(search.requests) == 6


def test_an_asha_search_is_not_reused_as_one_without_pruning(data_path, tmp_path):
    """The tuned board searches without pruning by default; a saved ASHA search (every search
    before the choice) is searched again, saying why, and the ASHA settings no longer matter."""
    board = _board(data_path, tmp_path)
    messages = []
    board.log = messages.append
    space = tuned_board.board_space("FM", "tiny", board.overrides)
    search = FakeSearch()
    tuned_board.tune_model(board, "FM", space, tuned_board.TuneBudget(2, 2, scheduler="asha"), search=search)
    none = tuned_board.TuneBudget(trials=2, max_epochs=2)
    assert none.scheduler == "none" and "none pruned" in none.describe()
    assert not tuned_board.tune_model(board, "FM", space, none, search=search).reused
    assert search.requests[-1].scheduler == "none" and len(search.requests) == 2
    assert any("scheduler (asha -> none)" in m for m in messages), messages
    other_grace = tuned_board.TuneBudget(trials=2, max_epochs=2, grace_period=5)
    assert tuned_board.tune_model(board, "FM", space, other_grace, search=search).reused
    record = json.load(open(os.path.join(tuned_board.tuning_dir(board.out_dir, "FM"), "tuning.json")))
    assert record["inputs"]["scheduler"] == "none" and "grace_period" not in record["inputs"]


def test_changed_dataset_files_retune(tmp_path):
    own_data = write_tiny_dataset(str(tmp_path / "data"))
    board = _board(own_data, tmp_path / "out")
    space = tuned_board.board_space("FM", "tiny", board.overrides)
    budget = tuned_board.TuneBudget(trials=2, max_epochs=2)
    search = FakeSearch()
    tuned_board.tune_model(board, "FM", space, budget, search=search)
    tuned_board.tune_model(board, "FM", space, budget, search=search)
    assert len(search.requests) == 1
    inter = os.path.join(own_data, "tiny", "tiny.train.inter")
    os.utime(inter, (1, 1))  # rebuilt byte for byte (a later session's conversion): still the same data
    tuned_board.tune_model(board, "FM", space, budget, search=search)
    assert len(search.requests) == 1
    with open(inter, "a") as handle:
        handle.write("u1\ti1\t1\t99999\n")  # different data
    tuned_board.tune_model(board, "FM", space, budget, search=search)
    assert len(search.requests) == 2


def test_a_new_side_file_retunes_only_the_plugin_models(tmp_path):
    """RecBole's models never read the text side files: a new .npz keeps their searches."""
    own_data = write_tiny_dataset(str(tmp_path / "data"))
    folder = os.path.join(own_data, "tiny")
    before = {side: tuned_board.data_files_digest("tiny", own_data, side_files=side) for side in (True, False)}
    with open(os.path.join(folder, "tiny.userhist.npz"), "wb") as handle:
        handle.write(b"new side file")
    after = {side: tuned_board.data_files_digest("tiny", own_data, side_files=side) for side in (True, False)}
    assert after[False] == before[False] and after[True] != before[True]
    assert not code_digest.is_plugin_model("FM") and code_digest.is_plugin_model("DLRREC")


def test_changed_model_code_retunes(data_path, tmp_path, monkeypatch):
    board = _board(data_path, tmp_path)
    space = tuned_board.board_space("FM", "tiny", board.overrides)
    budget = tuned_board.TuneBudget(trials=2, max_epochs=2)
    search = FakeSearch()
    tuned_board.tune_model(board, "FM", space, budget, search=search)
    monkeypatch.setattr(search_inputs, "code_version", lambda model: "other")
    tuned_board.tune_model(board, "FM", space, budget, search=search)
    assert len(search.requests) == 2


def test_a_trial_time_budget_reaches_the_search_and_retunes_only_when_set(data_path, tmp_path):
    """--trial_time_budget_s (large datasets) goes into every search request; a search saved
    without one stays current when none is given, and a new budget searches again."""
    board = _board(data_path, tmp_path)
    space = tuned_board.board_space("FM", "tiny", board.overrides)
    search = FakeSearch()
    tuned_board.tune_model(board, "FM", space, tuned_board.TuneBudget(trials=2, max_epochs=2), search=search)
    tuned_board.tune_model(board, "FM", space, tuned_board.TuneBudget(trials=2, max_epochs=2), search=search)
    assert len(search.requests) == 1 and search.requests[0].trial_time_budget_s is None
    boxed = tuned_board.TuneBudget(trials=2, max_epochs=2, trial_time_budget_s=30.0)
    tuned_board.tune_model(board, "FM", space, boxed, search=search)
    assert len(search.requests) == 2 and search.requests[1].trial_time_budget_s == 30.0
    with pytest.raises(tuned_board.TuneBudgetError, match="trial_time_budget_s"):
        tuned_board.TuneBudget(trials=2, max_epochs=2, trial_time_budget_s=0).check()


def test_a_changed_default_the_space_does_not_search_retunes(data_path, tmp_path, monkeypatch):
    """A default held fixed by every trial (a head switch in DLRREC.yaml) changes what the search
    trained; a default the space searches is overridden by every trial, so it does not matter."""
    board = _board(data_path, tmp_path)
    space = tuned_board.board_space("FM", "tiny", board.overrides)
    budget = tuned_board.TuneBudget(trials=2, max_epochs=2)
    search = FakeSearch()
    tuned_board.tune_model(board, "FM", space, budget, search=search)
    real = board_cells.Leaderboard.expected_defaults
    searched = space.keys[0]
    monkeypatch.setattr(
        board_cells.Leaderboard, "expected_defaults", lambda self, spec: {**real(self, spec), searched: "another value"}
    )
    assert tuned_board.tune_model(board, "FM", space, budget, search=search).reused
    messages = []
    board.log = messages.append
    monkeypatch.setattr(
        board_cells.Leaderboard, "expected_defaults", lambda self, spec: {**real(self, spec), "a_head_switch": "new"}
    )
    assert not tuned_board.tune_model(board, "FM", space, budget, search=search).reused
    assert len(search.requests) == 2
    assert any("defaults in properties/ (a_head_switch)" in m for m in messages)
    assert tuned_board.tune_model(board, "FM", space, budget, search=search).reused  # the new search stands


def test_a_search_recorded_before_defaults_were_tracked_is_judged_without_them(data_path, tmp_path):
    board = _board(data_path, tmp_path)
    space = tuned_board.board_space("FM", "tiny", board.overrides)
    budget = tuned_board.TuneBudget(trials=2, max_epochs=2)
    search = FakeSearch()
    tuned_board.tune_model(board, "FM", space, budget, search=search)
    path = os.path.join(tuned_board.tuning_dir(board.out_dir, "FM"), "tuning.json")
    with open(path) as handle:
        record = json.load(handle)
    del record["inputs"]["defaults"]
    record["fingerprint"] = tuned_board.digest(record["inputs"])
    with open(path, "w") as handle:
        json.dump(record, handle)
    assert tuned_board.tune_model(board, "FM", space, budget, search=search).reused


def test_failed_search_is_recorded_and_tried_again(data_path, tmp_path):
    board = _board(data_path, tmp_path)
    space = tuned_board.board_space("FM", "tiny", board.overrides)
    budget = tuned_board.TuneBudget(trials=2, max_epochs=2)
    search = FakeSearch(fail_for={"FM"})
    failed = tuned_board.tune_model(board, "FM", space, budget, search=search)
    assert failed.status == "failed" and "every trial died" in failed.record["error"]
    with open(os.path.join(tuned_board.tuning_dir(board.out_dir, "FM"), "tuning.json")) as handle:
        assert json.load(handle)["status"] == "failed"
    search.fail_for.clear()
    assert tuned_board.tune_model(board, "FM", space, budget, search=search).status == "ok"
    assert len(search.requests) == 2


@pytest.mark.slow
def test_failed_search_fails_its_cells_and_the_rest_goes_on(data_path, tmp_path):
    budget = tuned_board.TuneBudget(trials=2, max_epochs=2, grace_period=1, allow_short_grace=True)
    board, paths, tuned = tuned_board.run_tuned_leaderboard(
        "tiny",
        ["LR", "FM"],
        1,
        budget,
        overrides={"data_path": data_path},
        results_dir=str(tmp_path),
        log=lambda message: None,
        search=FakeSearch(fail_for={"LR"}),
    )
    assert [t.status for t in tuned] == ["failed", "ok"]
    rows = {r["model"]: r for r in csv.DictReader(open(paths["csv"]))}
    assert rows["LR"]["status"] == "failed" and "tuning failed" in rows["LR"]["error"]
    assert rows["FM"]["status"] == "ok"
    cell = board.load_cell(board_cells.CellSpec("FM", "FM", 2020))
    # The cells run the chosen config, with Accuracy / FPR / F1 at the threshold chosen on validation.
    assert cell["settings"] == {**tuned[1].params, "cls_threshold": "auto"}
    for key, value in tuned[1].params.items():
        assert cell["result"]["config"][key] == value
    assert cell["result"]["cls_threshold"]["rule"] == "max_f1"
    text = open(paths["md"]).read()
    assert "threshold chosen on VALIDATION" in text and "## Per-user, calibration and segment metrics" in text
    assert "| FM | " in text.split("## Per-user, calibration and segment metrics")[1]
    assert "# Tuned leaderboard: tiny" in text and "Tuning budget" in text and "## Tuned configurations" in text
    assert (
        "properties/tune/shared.yaml" in text
        and "Defaults board" in text
        and "(not run yet: run_leaderboard.py --dataset=tiny without --tune)" in text
    )


# -- end to end, with Ray ------------------------------------------------------------------------
def _runs(out):
    return sorted(glob.glob(os.path.join(out, "tiny-tuned", "tuning", ".runs", "tiny", "*")))


def _best_trial_row(path):
    """The trials.csv row with the best validation AUC (the column the search selects on)."""
    rows = [r for r in csv.DictReader(open(path)) if r["status"] != "failed" and r["valid_auc_best"]]
    return max(rows, key=lambda r: float(r["valid_auc_best"]))


@pytest.mark.slow
def test_tuned_board_end_to_end_reuse_and_retune(data_path, tmp_path, monkeypatch):
    """2 trials x 2 models x 2 epochs (grace 1, allowed in tests only): the board runs, the
    chosen config is the best VALIDATION trial, a rerun reuses the searches without starting
    Ray, --retune searches again."""
    import yaml

    from recbole_dlrrec.experiments import tune

    out = str(tmp_path)
    argv = _argv(data_path, out, "--models", "FM,DeepFM", "--tune", "2", "--tune_cpus", "2")
    assert run_leaderboard.main(argv) == 0
    board_dir = os.path.join(out, "tiny-tuned")
    assert len(_runs(out)) == 2
    chosen = {}
    for model in ("FM", "DeepFM"):
        folder = os.path.join(board_dir, "tuning", model)
        record = json.load(open(os.path.join(folder, "tuning.json")))
        assert record["status"] == "ok"
        # 2 trials in parallel (--tune_cpus 2): none lost to a race on the shared checkpoint folder
        assert record["trial_counts"]["failed"] == 0, open(os.path.join(folder, "trials.csv")).read()
        best = _best_trial_row(os.path.join(folder, "trials.csv"))
        assert record["trial_id"] == best["trial_id"]
        assert math.isclose(record["best_valid_score"], float(best["valid_auc_best"]))
        config = yaml.safe_load(open(os.path.join(folder, "best_config.yaml")))
        for key, value in record["params"].items():
            assert config[key] == value
            assert json.dumps(value) == best[key] or str(value) == best[key]
        cell = json.load(open(os.path.join(board_dir, "cells", f"{model}-seed2020.json")))
        assert cell["status"] == "ok" and cell["settings"] == {**record["params"], "cls_threshold": "auto"}
        chosen[model] = record
    text = open(os.path.join(board_dir, "leaderboard.md")).read()
    assert "# Tuned leaderboard: tiny" in text and "2 trials per model" in text and "none pruned" in text

    started = []
    original = tune.run_search
    monkeypatch.setattr(tune, "run_search", lambda request: started.append(request) or original(request))
    assert run_leaderboard.main(argv) == 0  # the saved searches are up to date: no Ray
    assert started == [] and len(_runs(out)) == 2
    for model in ("FM", "DeepFM"):
        assert json.load(open(os.path.join(board_dir, "tuning", model, "tuning.json"))) == chosen[model]

    assert run_leaderboard.main([*argv, "--retune"]) == 0
    assert [r.model for r in started] == ["FM", "DeepFM"] and len(_runs(out)) == 4
    for model in ("FM", "DeepFM"):
        record = json.load(open(os.path.join(board_dir, "tuning", model, "tuning.json")))
        assert record["status"] == "ok" and record["started_at"] >= chosen[model]["started_at"]
        assert record["run_dir"] != chosen[model]["run_dir"]


@pytest.mark.slow
def test_defaults_board_is_labelled_and_points_to_the_tuned_one(data_path, tmp_path):
    assert run_leaderboard.main(_argv(data_path, str(tmp_path), "--models", "LR")) == 0
    text = open(os.path.join(str(tmp_path), "tiny", "leaderboard.md")).read()
    assert text.startswith("# Leaderboard (defaults): tiny")
    assert "Defaults board: every model at its config defaults, no tuning" in text and "`tiny-tuned/`" in text


def test_run_code_hash_covers_every_config_module_but_the_registry():
    """A new module in config/ must join the hash RecBole's cells are keyed by, or the plugin
    models' hash when only they read it (the typed options), or be named here as not affecting
    their numbers, as the name -> class registry is."""
    package = os.path.dirname(os.path.abspath(code_digest.__file__)).rsplit(os.sep, 1)[0]
    modules = {os.path.join("config", f) for f in os.listdir(os.path.join(package, "config")) if f.endswith(".py")}
    hashed = set(code_digest.RUN_CODE) | set(code_digest.MODEL_CODE)
    assert os.path.join("config", "options.py") in code_digest.MODEL_CODE
    assert modules - hashed == {os.path.join("config", "registry.py")}


def test_tuned_board_prepares_a_bundled_dataset_where_its_side_files_live(monkeypatch, tmp_path):
    """ml-100k's own files stay in RecBole; its side files go where its config's side_data_path
    says (a tuned board once called the builder with no folder at all)."""
    from recbole_dlrrec.runtime import quick_start

    prepared = []

    class Stop(Exception):
        pass

    def fake_prepare(dataset, data_path, side_data_path=None):
        prepared.append((dataset, side_data_path))
        raise Stop

    monkeypatch.setattr(quick_start, "prepare_dataset", fake_prepare)
    monkeypatch.setattr(tuned_board, "check_tuned_inputs", lambda *args: {})
    with pytest.raises(Stop):
        tuned_board.run_tuned_leaderboard(
            "ml-100k",
            ["FM"],
            1,
            tuned_board.TuneBudget(trials=2, max_epochs=2),
            results_dir=str(tmp_path),
            log=lambda message: None,
        )
    assert prepared == [("ml-100k", "dataset/ml-100k")]


def test_the_header_names_models_that_trained_to_the_epoch_cap():
    def record(name, curve, status="ok"):
        return {
            "name": name,
            "status": status,
            "result": {
                "valid_metric": "AUC",
                "config": {"epochs": 12},
                "epochs": [{"epoch": i, "valid_score": v} for i, v in enumerate(curve)],
            },
        }

    rising = [0.5 + i / 100 for i in range(12)]  # still +0.10 over its last 10 epochs
    flat = [0.7] * 12
    records = [
        record("LR", rising),
        record("LR", rising[:6]),
        record("FM", flat),
        record("DLRM", rising[:5]),
        record("NFM", rising, status="failed"),
    ]
    note = board_report.cap_note(records, 12)
    assert note == (
        "Trained to the 12-epoch cap without stopping early: FM (1 of 1 seeds; validation gained at most "
        "0.0000 over the last 10 epochs), LR (1 of 2 seeds; validation gained at most 0.1000 over the last 10 epochs)."
    )
    assert board_report.cap_note(records, 50) == ""
    # The header reads the cap from the cells' config.
    assert f"- {note}" in board_report.header_notes("tiny", [2020], records, {}, ["LR", "FM", "DLRM"])


def test_header_names_min_steps_and_where_a_tuned_dlrrec_took_its_settings():
    config = {"epochs": 50, "stopping_step": 5, "valid_metric": "AUC", "min_steps": 100, "w1": 0.2}
    records = [{"status": "ok", "name": "DLRREC", "result": {"config": config}}]
    untuned = "\n".join(board_report.header_notes("tiny", [2020], records, {}, ["DLRREC"]))
    assert "validation AUC (never before 100 optimizer steps);" in untuned
    assert "DLRREC settings (properties/model/DLRREC.yaml when run;" in untuned
    tuned = "\n".join(board_report.header_notes("tiny", [2020], records, {}, ["DLRREC"], per_model=["w1"]))
    assert "DLRREC settings (its tuned configuration (Tuned configurations below)" in tuned
    config["min_steps"] = None
    assert "optimizer steps" not in "\n".join(board_report.header_notes("tiny", [2020], records, {}, ["DLRREC"]))
