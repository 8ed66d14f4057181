"""GAUC, ECE and AUC by segment from a cell's per-row file, and the board's section."""

from __future__ import annotations

import numpy as np
import pytest

from recbole_dlrrec.experiments import cell_metrics
from recbole_dlrrec.experiments.cell_rows import CellRows

# Users 1 (3 train rows) and 2 (unseen); items 10 (unseen), 11 (1 train row), 12 (5), 13 (9).
ROWS = CellRows(
    labels=np.array([1, 0, 1, 0, 1, 0, 1, 0], dtype=float),
    scores=np.array([0.9, 0.2, 0.4, 0.6, 0.7, 0.3, 0.8, 0.1]),
    user_ids=np.array([1, 1, 1, 1, 2, 2, 2, 2]),
    item_ids=np.array([10, 11, 12, 13, 10, 11, 12, 13]),
    user_train_rows=np.array([3, 3, 3, 3, 0, 0, 0, 0]),
    item_train_rows=np.array([0, 1, 5, 9, 0, 1, 5, 9]),
)


def test_segments_split_users_by_train_rows_and_seen_items_in_popularity_terciles():
    masks = cell_metrics.segment_masks(ROWS)
    assert masks["users seen"].tolist() == [True] * 4 + [False] * 4
    assert masks["items unseen"].tolist() == [True, False, False, False] * 2
    # seen items' train rows 1, 5, 9: cuts at the 1/3 and 2/3 quantiles (3.67, 6.33)
    assert masks["items low"].tolist() == [False, True, False, False] * 2
    assert masks["items mid"].tolist() == [False, False, True, False] * 2
    assert masks["items high"].tolist() == [False, False, False, True] * 2


def test_cell_metrics_hand_computed():
    out = cell_metrics.cell_metrics(ROWS)
    # user 1: positives 0.9, 0.4 vs negatives 0.2, 0.6 -> 3 of 4; user 2: 0.7, 0.8 vs 0.3, 0.1 -> 4 of 4
    assert out["gauc"] == pytest.approx((4 * 0.75 + 4 * 1.0) / 8) and out["gauc_users_skipped"] == 0
    assert out["auc users seen"] == pytest.approx(0.75) and out["auc users unseen"] == pytest.approx(1.0)
    assert out["auc items unseen"] != out["auc items unseen"]  # both rows positive: nan
    assert out["rows items low"] == 2 and np.isnan(out["auc items low"])  # item 11: negatives only
    assert out["ece"] == pytest.approx(
        __import__("recbole_dlrrec.runtime.metrics", fromlist=["x"]).expected_calibration_error(
            ROWS.labels, ROWS.scores
        )
    )
    old = cell_metrics.cell_metrics(CellRows(ROWS.labels, ROWS.scores))
    assert set(old) == {"ece"}  # a cell without ids: calibration only


def test_section_shows_mean_and_std_over_seeds_and_marks_cells_without_ids():
    seeds = [cell_metrics.cell_metrics(ROWS), cell_metrics.cell_metrics(ROWS)]
    lines = cell_metrics.metrics_rows(
        {"DLRREC": seeds, "FM": [cell_metrics.cell_metrics(CellRows(ROWS.labels, ROWS.scores))], "LR": []}
    )
    assert lines[0].startswith("| DLRREC | 0.8750 ± 0.0000 (0 users skipped) |")
    assert "0.7500 ± 0.0000 [4 rows]" in lines[0] and "n/a [2 rows]" in lines[0]
    assert lines[1].startswith("| FM | no ids |") and lines[2].startswith("| LR | no per-row files |")


def test_threshold_of_reads_the_validation_choice():
    assert cell_metrics.threshold_of({"result": {"cls_threshold": {"value": 0.31, "rule": "max_f1"}}}) == 0.31
    assert cell_metrics.threshold_of({"result": {"cls_threshold": 0.5}}) is None
