"""board_versus: one model on two boards of the same test rows, tested row for row."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from recbole_dlrrec.experiments import board_versus, cell_rows
from recbole_dlrrec.experiments import significance as sig


def _board(root, folder, model, seeds, shift, items=None):
    """A finished board folder: per seed, a cell whose scores are the label plus noise plus `shift`."""
    cells = root / folder / "cells"
    cells.mkdir(parents=True)
    n = 400
    users = np.repeat(np.arange(40), n // 40)
    items = np.tile(np.arange(10), n // 10) if items is None else items
    for seed in seeds:
        rng = np.random.default_rng(seed)
        labels = (rng.random(n) < 0.5).astype(np.float32)
        noise = np.random.default_rng([seed, int(shift * 1000)]).normal(size=n)
        scores = labels * (1.0 + shift) + noise
        key = f"{model}-seed{seed}"
        rows = cell_rows.CellRows(labels, scores.astype(np.float32), users, items, np.ones(n), np.ones(n))
        cell_rows.save(str(cells / f"{key}.npy"), rows)
        result = {"test_result": {"auc": sig.auc(labels, scores)}, "valid_result": {"auc": 0.6 + shift}}
        record = {"status": "ok", "model": model, "seed": seed, "result": result, "scores_file": f"{key}.npy"}
        (cells / f"{key}.json").write_text(json.dumps(record))


@pytest.mark.slow  # a 200-replicate bootstrap over 3 seeds
def test_a_better_build_is_found_better_per_user_with_the_valid_aucs_beside(tmp_path, capsys):
    _board(tmp_path, "d-mean-tuned", "DLRREC", [2020, 2021, 2022], shift=1.0)
    _board(tmp_path, "d-tuned", "DLRREC", [2020, 2021, 2022], shift=0.0)
    out = tmp_path / "versus.md"
    argv = ["--left", "d-mean-tuned", "--right", "d-tuned", "--models", "DLRREC", "--labels", "mean,concat"]
    rc = board_versus.main(
        [*argv, "--seeds", "3", "--n_boot", "200", "--results_dir", str(tmp_path), "--out", str(out)]
    )
    assert rc == 0
    text = out.read_text()
    assert "| DLRREC | 1.6000 | 0.6000 |" in text  # mean valid AUC of each side
    row = next(line for line in text.splitlines() if line.startswith("| DLRREC (mean)"))
    assert "DLRREC (concat)" in row and "users: 40" in row and "| yes |" in row and "3/0 of 3" in row


def test_boards_of_different_test_rows_are_refused_naming_the_seed(tmp_path, capsys):
    _board(tmp_path, "a-tuned", "DLRREC", [2020], shift=0.5)
    _board(tmp_path, "b-tuned", "DLRREC", [2020], shift=0.0, items=np.arange(400) % 7)
    argv = ["--left", "a-tuned", "--right", "b-tuned", "--models", "DLRREC", "--seeds", "1"]
    assert board_versus.main([*argv, "--results_dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: DLRREC seed 2020:") and "different test rows" in err and len(err.splitlines()) == 1


def test_a_missing_board_is_one_line(tmp_path, capsys):
    assert board_versus.main(["--left", "x", "--right", "y", "--models", "DLRREC", "--results_dir", str(tmp_path)]) == 2
    assert os.path.join(str(tmp_path), "x") in capsys.readouterr().err


@pytest.mark.parametrize("labels", ["one", "a,b,c"])
def test_labels_must_be_two(tmp_path, capsys, labels):
    argv = ["--left", "x", "--right", "y", "--models", "DLRREC", "--labels", labels, "--results_dir", str(tmp_path)]
    assert board_versus.main(argv) == 2
    assert "--labels" in capsys.readouterr().err
