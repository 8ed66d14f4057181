"""The cold-item split validates on cold items: valid and test on held-out items of their own, one
dataset per draw seed, and folders of the earlier scheme rebuilt."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import write_tiny_dataset

from recbole_dlrrec.experiments import cold_start


def _items_per_split(items: np.ndarray, seed: int, fraction: float = 0.1):
    held, n_items, parts = cold_start._split_rows(items, "toy", fraction, fraction, seed)
    return held, n_items, parts, {part: set(items[index].tolist()) for part, index in parts.items()}


def test_valid_and_test_hold_disjoint_unseen_items_and_every_row_once():
    items = np.random.default_rng(0).integers(0, 200, size=5000).astype(str)
    held, n_items, parts, seen = _items_per_split(items, seed=2020)
    assert n_items == 200 and held["valid"].size == held["test"].size == 20
    assert not seen["valid"] & seen["test"]
    assert not seen["train"] & seen["valid"] and not seen["train"] & seen["test"]
    # Every valid row is cold: its item is one of the held-out valid items, none of train's.
    assert seen["valid"] == set(held["valid"].tolist()) and seen["test"] == set(held["test"].tolist())
    assert np.array_equal(np.sort(np.concatenate(list(parts.values()))), np.arange(items.size))


def test_draw_seeds_give_their_own_items_and_the_same_seed_the_same():
    items = np.random.default_rng(1).integers(0, 300, size=4000).astype(str)
    first = _items_per_split(items, seed=2020)[0]
    again = _items_per_split(items, seed=2020)[0]
    other = _items_per_split(items, seed=2021)[0]
    for part in ("valid", "test"):
        assert np.array_equal(first[part], again[part])
        assert not np.array_equal(first[part], other[part])


def test_names_and_bad_fractions():
    assert cold_start.cold_name("ml-100k", 2021) == "ml-100k-cold-d2021" and cold_start.cold_name("x") == "x-cold"
    assert cold_start.is_cold_name("ml-100k-cold") and cold_start.is_cold_name("ml-100k-cold-d2022")
    assert not cold_start.is_cold_name("ml-100k") and not cold_start.is_cold_name("cold-d1x")
    with pytest.raises(cold_start.ColdSplitError, match="cannot hold"):
        cold_start._split_rows(np.array(list("abc")), "toy", 0.5, 0.4, 0)
    labels = np.array([1.0, 1.0, 0.0, 1.0])
    parts = {"valid": np.array([0, 1]), "test": np.array([2, 3])}
    with pytest.raises(cold_start.ColdSplitError, match="valid rows of the held-out items hold only label"):
        cold_start._check_both_classes(labels, parts, "toy-cold-d1")


def _split_items(folder: str, name: str) -> dict:
    """The item ids of each written .inter file, read as text."""
    out = {}
    for part in cold_start.SPLITS:
        with open(os.path.join(folder, f"{name}.{part}.inter"), encoding="utf-8") as handle:
            column = handle.readline().split("\t").index("item_id:token")
            out[part] = {line.split("\t")[column] for line in handle if line.strip()}
    return out


@pytest.mark.slow
def test_each_draw_is_its_own_folder_and_old_scheme_folders_are_rebuilt(tmp_path):
    root = write_tiny_dataset(str(tmp_path))
    with pytest.raises(cold_start.ColdSplitError, match="valid_fraction"):
        cold_start.make_cold_items_dataset("tiny", data_path=root, fraction=0.5, valid_fraction=0.5)
    with pytest.raises(cold_start.ColdSplitError, match="already a cold-item dataset"):
        cold_start.make_cold_items_dataset("tiny-cold-d2020", data_path=root)
    names = [cold_start.make_cold_items_dataset("tiny", data_path=root, seed=s, log=lambda m: None) for s in (7, 8)]
    assert names == ["tiny-cold-d7", "tiny-cold-d8"]
    first, second = (_split_items(os.path.join(root, n), n) for n in names)
    assert first["test"] != second["test"]
    for split in (first, second):
        assert not split["valid"] & split["test"] and not split["train"] & (split["valid"] | split["test"])
    report_path = os.path.join(root, names[0], "REPORT.json")
    report = json.load(open(report_path))
    assert report["provenance"]["scheme"] == cold_start.SCHEME and report["valid_users_unseen_in_train"] >= 0
    # A folder the first scheme wrote (valid = warm rows; provenance without the scheme) is rebuilt.
    valid_file = os.path.join(root, names[0], f"{names[0]}.valid.inter")
    with open(os.path.join(root, names[0], f"{names[0]}.train.inter"), encoding="utf-8") as handle:
        warm = handle.readlines()[:20]
    with open(valid_file, "w", encoding="utf-8") as handle:
        handle.writelines(warm)
    old = {"source": "tiny", "fraction": 0.1, "valid_share": 1 / 9, "seed": 7, "keep_user_text": False, "version": 1}
    with open(report_path, "w", encoding="utf-8") as handle:
        json.dump({**report, "provenance": old}, handle)
    messages = []
    assert cold_start.make_cold_items_dataset("tiny", data_path=root, seed=7, log=messages.append) == names[0]
    assert "already built" not in messages[0]
    assert json.load(open(report_path))["provenance"]["scheme"] == cold_start.SCHEME
    assert _split_items(os.path.join(root, names[0]), names[0]) == first


def _leaderboard_argv(root: str, out: str, *extra: str):
    from conftest import leaderboard_argv

    return leaderboard_argv(root, out, "--scenario", "cold_items", "--cold_fraction", "0.2", *extra)


@pytest.mark.slow
def test_cli_runs_each_draw_and_pools_them_resumably(tmp_path, capsys):
    import run_leaderboard

    root = write_tiny_dataset(str(tmp_path / "data"))
    out = str(tmp_path / "results")
    argv = _leaderboard_argv(root, out, "--models", "DLRREC,DLRM", "--cold_draws", "2")
    assert run_leaderboard.main(argv) == 0
    for draw in ("tiny-cold-d2020", "tiny-cold-d2021"):
        assert os.path.isfile(os.path.join(root, draw, f"{draw}.valid.inter"))
        board = open(os.path.join(out, draw, "leaderboard.md")).read()
        assert "draw seed" in board and "another 20% all theirs in valid" in board
    pooled = open(os.path.join(out, "tiny-cold", "leaderboard.md")).read()
    assert "over 2 draw(s)" in pooled and "| tiny-cold-d2020 | tiny-cold-d2021 |" in pooled
    assert "Pooled over 2 cold draws" in open(os.path.join(out, "tiny-cold", "significance.md")).read()
    capsys.readouterr()
    assert run_leaderboard.main(argv) == 0  # resumes: the draws' datasets and cells are reused
    err = capsys.readouterr().err
    assert err.count("2 of 2 cells already done") == 2 and "tiny-cold-d2021 already built" in err
    for bad in (["--cold_draws", "0"], ["--cold_draws", "2", "--experiments"]):
        with pytest.raises(SystemExit):
            run_leaderboard.main(_leaderboard_argv(root, out, *bad))
    with pytest.raises(SystemExit):
        run_leaderboard.main(["--dataset=tiny", "--cold_draws", "2"])


@pytest.mark.slow
def test_tuned_cold_board_tunes_each_draw_and_pools_into_the_cold_tuned_folder(tmp_path, monkeypatch):
    """Each draw's tuned board is an ordinary tuned board of that draw's dataset (its own search on
    its own cold validation rows); the pooled report goes to <dataset>-cold-tuned/."""
    from recbole_dlrrec.cli import leaderboard as cli
    from recbole_dlrrec.experiments import board_cells, tuned_board

    root = write_tiny_dataset(str(tmp_path / "data"))
    out = str(tmp_path / "results")
    tuned = []

    def fake_tuned(dataset, models, seed_count, budget, results_dir, **kwargs):
        tuned.append(dataset)

        def runner(model, dataset, config_dict, **_):
            value = 0.7 if model == "FM" else 0.8
            return {"test_result": {"auc": value}, "best_epoch": 0, "timings": {"seconds_per_epoch": 0.1}}

        board = board_cells.Leaderboard(
            dataset, results_dir=results_dir, out_name=tuned_board.tuned_out_name(dataset), runner=runner
        )
        board.run_cells(board_cells.cells(models, board_cells.seeds_for(seed_count)))
        return board, {}, []

    monkeypatch.setattr(tuned_board, "run_tuned_leaderboard", fake_tuned)
    monkeypatch.setattr(tuned_board, "check_tuned_inputs", lambda *a, **k: {})
    argv = _leaderboard_argv(root, out, "--models", "DLRREC,FM", "--cold_draws", "3", "--tune", "2")
    assert cli.main(argv) == 0
    assert tuned == ["tiny-cold-d2020", "tiny-cold-d2021", "tiny-cold-d2022"]
    pooled = open(os.path.join(out, "tiny-cold-tuned", "leaderboard.md")).read()
    assert "Cold-item tuned leaderboard over 3 draw(s)" in pooled and "`tiny-cold-d2022-tuned/`" in pooled
    assert pooled.count("| 3/3 |") == 2  # 3 draws x 1 seed, both models


@pytest.mark.slow
def test_a_split_without_both_labels_is_refused_and_leaves_nothing(tmp_path, monkeypatch):
    root = write_tiny_dataset(str(tmp_path))
    monkeypatch.setattr(cold_start, "_labels", lambda header, rows, settings: np.ones(len(rows)))
    with pytest.raises(cold_start.ColdSplitError, match="tiny-cold-d2020: the valid rows"):
        cold_start.make_cold_items_dataset("tiny", data_path=root, log=lambda m: None)
    assert sorted(os.listdir(root)) == ["tiny"]
