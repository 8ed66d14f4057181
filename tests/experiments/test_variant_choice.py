"""The DLRREC defaults choice: ranked by validation across the tuned boards, test never chooses."""
from __future__ import annotations

import csv
import os

import pytest

from recbole_dlrrec.experiments import variant_choice

FIELDS = ["model", "status", "valid_auc_mean", "auc_mean"]


def _board(root, dataset, rows):
    folder = os.path.join(root, f"{dataset}-tuned")
    os.makedirs(folder)
    with open(os.path.join(folder, "leaderboard.csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS)
        writer.writeheader()
        for model, status, valid, test in rows:
            writer.writerow({"model": model, "status": status, "valid_auc_mean": valid, "auc_mean": test})


def test_ranks_by_mean_validation_never_by_test(tmp_path):
    root = str(tmp_path)
    _board(root, "a", [("DLRREC", "ok", 0.70, 0.60), ("DLRREC-noCL", "ok", 0.69, 0.90), ("DeepFM", "ok", 0.99, 0.99),
                       ("DLRREC-V0", "ok", 0.80, 0.50), ("DLRREC-hardNeg", "failed", "", "")])
    _board(root, "b", [("DLRREC", "ok", 0.60, 0.60), ("DLRREC-noCL", "ok", 0.62, 0.90)])
    ranked = variant_choice.rank(variant_choice.read_scores(root, ["a", "b"]), ["a", "b"])
    # DeepFM is no DLRREC; the failed row is left out; V0 ran on one dataset only: ranked last.
    assert [s.model for s in ranked] == ["DLRREC-noCL", "DLRREC", "DLRREC-V0"]
    text = variant_choice.report(ranked, ["a", "b"])
    assert "Best on validation: **DLRREC-noCL** (w1: 0.0, w2: 0.0)" in text
    assert "0.8000 (1 datasets)" in text


def test_a_missing_board_is_one_line_and_exit_2(tmp_path, capsys):
    assert variant_choice.main(["--datasets", "nope", "--results_dir", str(tmp_path)]) == 2
    assert "nope-tuned/leaderboard.csv: no tuned board" in capsys.readouterr().err


def test_writes_the_table(tmp_path):
    _board(str(tmp_path), "a", [("DLRREC", "ok", 0.7, 0.6)])
    out = tmp_path / "choice.md"
    assert variant_choice.main(["--datasets", "a", "--results_dir", str(tmp_path), "--out", str(out)]) == 0
    assert "| 1 | DLRREC | 0.7000 |" in out.read_text()
