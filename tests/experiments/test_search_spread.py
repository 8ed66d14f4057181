"""Several searches per model on a tuned board: which models get them, their cells, the spread
of their winners and the ties it calls."""

from __future__ import annotations

import json
import math
import os

import pytest
from conftest import write_tiny_dataset
from test_tuned_board import FakeSearch

from recbole_dlrrec.experiments import search_spread, significance, tuned_board
from recbole_dlrrec.experiments.board_cells import CellSpec


def _tuned(model, score, status="ok"):
    return tuned_board.TunedModel(model, status, {}, False, {"best_valid_score": score})


def test_headline_models_are_the_named_rows_and_the_baselines_best_on_validation():
    models = ["DLRREC", "DLRREC-noCL", "DLRREC-V0", "DLRM", "LR", "FM", "DeepFM", "DCNV2", "NFM"]
    first = [_tuned("DLRREC", 0.80), _tuned("DLRREC-noCL", 0.90), _tuned("DLRREC-V0", 0.7), _tuned("DLRM", 0.99)]
    first += [_tuned("LR", 0.60), _tuned("FM", 0.75), _tuned("DeepFM", 0.74), _tuned("DCNV2", 0.76)]
    first += [_tuned("NFM", 0.95, status="failed")]
    assert search_spread.headline_models(models, first) == ["DLRREC", "DLRREC-V0", "DLRM", "DCNV2", "FM", "DeepFM"]
    assert search_spread.headline_models(["LR", "FM"], first[4:6], baselines=1) == ["FM"]


def _comparison(model, baseline, diff, verdict="DLRREC better"):
    return significance.Comparison(
        model=model,
        baseline=baseline,
        baseline_valid_auc=0.7,
        model_test_auc=0.7 + diff,
        baseline_test_auc=0.7,
        seeds=5,
        diff=diff,
        ci_low=diff - 0.001,
        ci_high=diff + 0.001,
        level=0.95,
        n_boot=10,
        n_rows=100,
        p=0.01,
        t=3.0,
        significant=True,
        verdict=verdict,
    )


def test_a_gap_below_the_larger_search_spread_is_a_tie():
    entries = [_comparison("DLRREC", "FM", 0.004), _comparison("DLRREC-V0", "FM", 0.02), {"model": "x"}]
    entries.append(_comparison("DLRREC-noCL", "LR", 0.001))  # neither row has several searches: left alone
    assert search_spread.mark_search_ties(entries, {"DLRREC": 0.003, "FM": 0.005}) == 1
    assert entries[0].verdict == "tie: |Δ| 0.0040 < search spread 0.0050 (DLRREC better)"
    assert entries[1].verdict == "DLRREC better" and entries[3].verdict == "DLRREC better"


def test_spread_row_is_max_minus_min_of_the_searches():
    row = search_spread.SpreadRow("FM", [0.70, None, 0.73, 0.71], 0.01, 4)
    assert math.isclose(row.spread, 0.03)
    assert math.isnan(search_spread.SpreadRow("FM", [0.70, None], 0.01, 2).spread)


def test_a_plan_naming_a_model_not_on_the_board_is_refused():
    with pytest.raises(tuned_board.TuneBudgetError, match="--search_seed_models names models not on the board: NFM"):
        tuned_board.SearchPlan(2, ("NFM",)).check(["LR", "FM"])
    with pytest.raises(tuned_board.TuneBudgetError, match="--search_seeds must be >= 1"):
        tuned_board.SearchPlan(0).check(["LR"])


@pytest.mark.slow
def test_a_tiny_board_with_two_searches_shows_their_spread_and_resumes(tmp_path):
    """LR and FM on tiny, 2 seeds, FM searched twice (sampler seeds 2020, 2021: another winner):
    the second winner runs over both seeds as FM+search2021, the board shows both searches'
    test AUC and their spread; a rerun searches nothing and trains nothing."""
    data_path = write_tiny_dataset(str(tmp_path / "data"))
    search = FakeSearch()
    plan = tuned_board.SearchPlan(2, ("FM",))

    def run():
        return tuned_board.run_tuned_leaderboard(
            "tiny",
            ["LR", "FM"],
            2,
            tuned_board.TuneBudget(trials=2, max_epochs=2),
            overrides={"data_path": data_path},
            results_dir=str(tmp_path),
            log=lambda message: None,
            search=search,
            plan=plan,
        )

    board, paths, tuned = run()
    assert [(r.model, r.seed) for r in search.requests] == [("LR", 2020), ("FM", 2020), ("FM", 2021)]
    second = json.load(open(os.path.join(board.out_dir, "tuning", "FM", "search-2021", "tuning.json")))
    assert second["status"] == "ok" and second["params"] != tuned[1].params  # another search, another winner
    aucs = []
    for label, params in (("FM", tuned[1].params), ("FM+search2021", second["params"])):
        cells = [board.load_cell(CellSpec(label, "FM", seed)) for seed in (2020, 2021)]
        assert all(c and c["status"] == "ok" for c in cells), cells
        assert all({k: c["settings"][k] for k in params} == params for c in cells)
        aucs.append(sum(c["result"]["test_result"]["auc"] for c in cells) / 2)
    text = open(paths["md"]).read()
    assert "## Search spread" in text
    assert f"| FM | {aucs[0]:.4f}, {aucs[1]:.4f} | {abs(aucs[0] - aucs[1]):.4f} |" in text
    assert "FM+search2021" not in open(paths["csv"]).read()  # the board's rows are the first searches
    stamps = {n: os.path.getmtime(os.path.join(board.cells_dir, n)) for n in os.listdir(board.cells_dir)}
    run()
    assert len(search.requests) == 3  # every search reused
    assert stamps == {n: os.path.getmtime(os.path.join(board.cells_dir, n)) for n in os.listdir(board.cells_dir)}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--search_seeds", "3"], "--search_seeds, --search_seed_models and --ablations need --tune N"),
        (["--ablations"], "--search_seeds, --search_seed_models and --ablations need --tune N"),
        (["--tune", "2", "--epochs", "2", "--search_seeds", "0"], "--search_seeds must be >= 1, got 0"),
        (["--tune", "2", "--epochs", "2", "--models", "LR,FM", "--ablations"], "--ablations needs DLRREC among"),
        (["--tune", "2", "--epochs", "2", "--search_scheduler", "fifo"], "invalid choice: 'fifo'"),
    ],
)
def test_search_options_are_checked_by_the_parser(argv, message, capsys):
    from recbole_dlrrec.cli import leaderboard

    with pytest.raises(SystemExit) as stop:
        leaderboard.parse_args(["--dataset=tiny", *argv])
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_the_parser_builds_the_search_plan_options():
    from recbole_dlrrec.cli import leaderboard

    args, models, _ = leaderboard.parse_args(
        ["--dataset=tiny", "--tune", "2", "--epochs", "2", "--search_seeds", "3", "--search_seed_models", "DLRM, FM"]
    )
    assert (args.search_seeds, leaderboard._names(args.search_seed_models), args.search_scheduler) == (
        3,
        ["DLRM", "FM"],
        None,
    )
