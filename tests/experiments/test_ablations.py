"""Controlled ablations: DLRREC's selected configuration with one switch changed at a time."""

from __future__ import annotations

import json
import os

import pytest
from conftest import write_tiny_dataset

from recbole_dlrrec.experiments import ablations, board_cells, tuned_board


def test_each_switch_changes_one_thing_from_the_selection():
    jaccard_mlp = ablations.switches({"reduction": "mlp", "cl_similarity": "jaccard", "user_text": "auto"})
    assert [(label, switch) for label, _, switch in jaccard_mlp] == [
        ("noCL", {"w1": 0.0, "w2": 0.0}),
        ("swingPos", {"cl_similarity": "swing"}),
        ("V0", {"reduction": "pca"}),
        ("V0-noCL", {"reduction": "pca", "w1": 0.0, "w2": 0.0}),
        ("noUserText", {"user_text": "none"}),
    ]
    # a selection that already uses SWING, PCA and no user text switches the other way, or not at all
    other = ablations.switches({"reduction": "pca", "cl_similarity": "swing", "user_text": "none"})
    assert [(label, switch) for label, _, switch in other][1:3] == [
        ("jaccardPos", {"cl_similarity": "jaccard"}),
        ("coTrained", {"reduction": "mlp"}),
    ]
    assert "noUserText" not in [label for label, _, _ in other]
    cells = ablations.ablation_cells({"w1": 0.3, "learning_rate": 0.01}, jaccard_mlp[:1], [2020])
    assert cells[0].name == "DLRREC.noCL" and cells[0].model == "DLRREC"
    assert cells[0].settings == {"w1": 0.0, "w2": 0.0, "learning_rate": 0.01, "cls_threshold": "auto"}


def _board(tmp_path):
    data_path = write_tiny_dataset(str(tmp_path / "data"))
    return board_cells.Leaderboard(
        "tiny",
        results_dir=str(tmp_path),
        out_name="tiny-tuned",
        overrides={"data_path": data_path, "epochs": 2},
        log=lambda message: None,
    )


def test_a_board_without_a_dlrrec_search_is_refused_in_one_line(tmp_path):
    board = board_cells.Leaderboard("tiny", results_dir=str(tmp_path), out_name="tiny-tuned", log=lambda m: None)
    with pytest.raises(ablations.NoSelectionError, match="no saved DLRREC search to ablate"):
        ablations.run_ablations(board, [2020])


@pytest.mark.slow
def test_ablations_run_at_the_selected_config_and_are_tested_against_it(tmp_path):
    board = _board(tmp_path)
    selected = {"learning_rate": 0.005, "reduction_dim": 8, "w1": 0.2, "w2": 0.05}
    folder = tuned_board.tuning_dir(board.out_dir, "DLRREC")
    os.makedirs(folder)
    with open(os.path.join(folder, "tuning.json"), "w") as handle:
        json.dump({"status": "ok", "params": selected}, handle)
    path = ablations.run_ablations(board, [2020, 2021], n_boot=50)
    text = open(path).read()
    assert path == os.path.join(board.out_dir, "ablations.md")
    for seed in (2020, 2021):
        reference = board.load_cell(board_cells.CellSpec("DLRREC", "DLRREC", seed))
        assert reference["status"] == "ok" and reference["settings"] == {**selected, "cls_threshold": "auto"}
        heads_off = board.load_cell(board_cells.CellSpec("DLRREC.noCL", "DLRREC", seed))
        assert heads_off["status"] == "ok"
        assert heads_off["settings"] == {**selected, "w1": 0.0, "w2": 0.0, "cls_threshold": "auto"}
        v0 = board.load_cell(board_cells.CellSpec("DLRREC.V0", "DLRREC", seed))
        assert v0["settings"]["reduction"] == "pca" and v0["settings"]["w1"] == 0.2
    for label in ("DLRREC.noCL", "DLRREC.swingPos", "DLRREC.V0", "DLRREC.V0-noCL", "DLRREC.noUserText"):
        assert f"| {label} | DLRREC (" in text, label  # a significance row against the selected DLRREC
    assert "Holm correction over this board's 5 comparisons" in text and "whole **users**" in text
    stamp = os.path.getmtime(path.replace("ablations.md", os.path.join("cells", "DLRREC.noCL-seed2020.json")))
    ablations.run_ablations(board, [2020, 2021], n_boot=50)  # resumable: every cell kept
    assert os.path.getmtime(os.path.join(board.cells_dir, "DLRREC.noCL-seed2020.json")) == stamp
