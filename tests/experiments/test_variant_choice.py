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
    _board(
        root,
        "a",
        [
            ("DLRREC", "ok", 0.70, 0.60),
            ("DLRREC-noCL", "ok", 0.69, 0.90),
            ("DeepFM", "ok", 0.99, 0.99),
            ("DLRREC-V0", "ok", 0.80, 0.50),
            ("DLRREC-hardNeg", "failed", "", ""),
        ],
    )
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
    _trials(str(tmp_path), "a", "DLRREC", [(0.5, "[64]", 0.7, 9)])
    out = tmp_path / "choice.md"
    assert variant_choice.main(["--datasets", "a", "--results_dir", str(tmp_path), "--out", str(out)]) == 0
    text = out.read_text()
    assert "| 1 | DLRREC | 0.7000 |" in text
    assert "## Settings of DLRREC" in text and "w1: 0.5" in text


TRIAL_FIELDS = [
    "trial_id",
    "status",
    "epochs",
    "valid_auc_last",
    "valid_auc_best",
    "best_epoch",
    "seconds",
    "w1",
    "tau",
    "top_mlp",
    "interaction",
    "error",
]


def _trials(root, dataset, model, rows):
    folder = os.path.join(root, f"{dataset}-tuned", "tuning", model)
    os.makedirs(folder)
    with open(os.path.join(folder, "trials.csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, TRIAL_FIELDS)
        writer.writeheader()
        for number, (w1, top_mlp, valid, epochs) in enumerate(rows):
            writer.writerow(
                {
                    "trial_id": f"t_{number:05d}",
                    "status": "completed" if valid else "failed",
                    "epochs": epochs,
                    "valid_auc_last": valid,
                    "valid_auc_best": valid,
                    "best_epoch": epochs,
                    "seconds": 1.0,
                    "w1": repr(w1),
                    "tau": repr(0.1),
                    "top_mlp": top_mlp,
                    "interaction": "dcn",
                    "error": "" if valid else "boom",
                }
            )


def test_settings_are_the_configuration_best_on_mean_validation_over_every_search(tmp_path):
    root = str(tmp_path)
    # Configuration w1=0.5 is best on a alone, w1=0.01 best on the mean; w1=0.2 failed on b (left out);
    # w1=0.3 was drawn on a only (left out).
    _trials(
        root,
        "a",
        "DLRREC-CLplus",
        [(0.5, "[64]", 0.90, 9), (0.01, "[64, 32]", 0.85, 3), (0.2, "[64]", 0.99, 9), (0.3, "[64]", 0.99, 3)],
    )
    _trials(root, "b", "DLRREC-CLplus", [(0.01, "[64, 32]", 0.70, 20), (0.5, "[64]", 0.60, 3), (0.2, "[64]", "", 1)])
    trials = variant_choice.read_shared_trials(root, ["a", "b"], "DLRREC-CLplus")
    assert [t.params["w1"] for t in trials] == [0.01, 0.5]
    assert trials[0].params["top_mlp"] == [64, 32] and trials[0].params["interaction"] == "dcn"
    text = variant_choice.settings_report("DLRREC-CLplus", trials, ["a", "b"])
    assert "0.8500 (3) | 0.7000 (20) | 0.7750 |" in text
    yaml_block = text.split("```yaml\n")[1].split("```")[0]
    import yaml

    assert yaml.safe_load(yaml_block) == {"w1": 0.01, "tau": 0.1, "top_mlp": [64, 32], "interaction": "dcn"}
    assert "properties/model/DLRREC.yaml" in text


def test_settings_need_every_dataset_search(tmp_path):
    _trials(str(tmp_path), "a", "DLRREC", [(0.5, "[64]", 0.9, 9)])
    with pytest.raises(variant_choice.BoardMissingError, match="b-tuned/tuning/DLRREC/trials.csv"):
        variant_choice.read_shared_trials(str(tmp_path), ["a", "b"], "DLRREC")
