"""Metrics a board computes from each cell's per-row test file: GAUC, calibration, AUC by segment.

    section = metrics_section(board, models, seeds)   # '## Per-user, calibration and segment metrics'

Per cell (cell_rows.CellRows):
- GAUC: per-user AUC averaged with each user's rows as weight (runtime.metrics.group_auc); users
  whose test rows hold one class have no AUC and are left out, counted in the table.
- ECE: expected calibration error, runtime.metrics.ECE_BINS equal-width bins.
- AUC by segment: test rows of users seen / unseen in train; test rows of items unseen in train,
  and of seen items by popularity tercile (low / mid / high: cut at the 1/3 and 2/3 quantiles of
  the train-row counts of the distinct seen items in the test rows; a count on a cut goes to the
  lower tercile). A segment whose rows hold one class has no AUC (n/a).
Each table cell is the mean ± std over the seeds where the value exists. A cell whose file has no
ids (run before cell_rows.py kept them) gives ECE only.

Accuracy, FPR and F1 of the tuned boards are those of the run itself, at the decision threshold
chosen on validation: the tuned board runs every cell with VALID_THRESHOLD (cls_threshold: auto,
runtime/metrics.py choose_threshold).
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence

import numpy as np

from recbole_dlrrec.experiments.board_cells import CellSpec
from recbole_dlrrec.experiments.cell_rows import CellRows
from recbole_dlrrec.runtime.metrics import ECE_BINS, expected_calibration_error, group_auc

# What the tuned board adds to every cell's settings: Accuracy / FPR / F1 at the validation-chosen threshold.
VALID_THRESHOLD = {"cls_threshold": "auto"}
SEGMENTS = ("users seen", "users unseen", "items unseen", "items low", "items mid", "items high")
THRESHOLD_NOTE = (
    "Accuracy, FPR and F1 are taken at the decision threshold chosen on VALIDATION for each cell "
    "(cls_threshold: auto, the F1-optimal threshold on the valid rows), applied unchanged to test."
)


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    from recbole_dlrrec.experiments.significance import auc

    if labels.size == 0 or labels.min() == labels.max():
        return float("nan")
    return auc(labels, scores)


def segment_masks(rows: CellRows) -> Dict[str, np.ndarray]:
    """SEGMENTS -> boolean mask over the rows (module doc); {} without ids."""
    if not rows.has_ids:
        return {}
    _, item_ids, user_train_rows, item_train_rows = rows.id_columns()
    seen_item = item_train_rows > 0
    masks: Dict[str, np.ndarray] = {
        "users seen": user_train_rows > 0,
        "users unseen": user_train_rows == 0,
        "items unseen": ~seen_item,
    }
    _, first = np.unique(item_ids[seen_item], return_index=True)
    counts = item_train_rows[seen_item][first]  # one count per distinct seen item
    if counts.size:
        low, high = np.quantile(counts, [1 / 3, 2 / 3])
        masks["items low"] = seen_item & (item_train_rows <= low)
        masks["items mid"] = seen_item & (item_train_rows > low) & (item_train_rows <= high)
        masks["items high"] = seen_item & (item_train_rows > high)
    else:
        masks.update(
            {name: np.zeros(rows.labels.size, dtype=bool) for name in ("items low", "items mid", "items high")}
        )
    return masks


def cell_metrics(rows: CellRows) -> Dict[str, float]:
    """gauc, gauc_users_skipped, ece and 'auc <segment>' of one cell (nan where undefined)."""
    out = {"ece": expected_calibration_error(rows.labels, rows.scores)}
    if not rows.has_ids:
        return out
    grouped = group_auc(rows.labels, rows.scores, rows.user_ids)
    out.update(gauc=grouped.value, gauc_users_skipped=float(grouped.users_skipped))
    for name, mask in segment_masks(rows).items():
        out[f"auc {name}"] = _auc(rows.labels[mask], rows.scores[mask])
        out[f"rows {name}"] = float(mask.sum())
    return out


def _mean_std(values: Sequence[float]) -> str:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return "n/a"
    if len(finite) == 1:
        return f"{finite[0]:.4f}"
    return f"{np.mean(finite):.4f} ± {np.std(finite, ddof=1):.4f}"


def metrics_rows(per_cell: Dict[str, List[Dict[str, float]]]) -> List[str]:
    """Markdown rows of the section's table from model -> [cell_metrics of each seed]."""
    lines = []
    for model, cells in per_cell.items():
        with_ids = [c for c in cells if "gauc" in c]
        if not cells:
            lines.append(f"| {model} | no per-row files |" + " |" * (len(SEGMENTS) + 1))
            continue
        skipped = f" ({int(np.mean([c['gauc_users_skipped'] for c in with_ids]))} users skipped)" if with_ids else ""
        gauc = (_mean_std([c["gauc"] for c in with_ids]) + skipped) if with_ids else "no ids"
        segments = [
            _mean_std([c.get(f"auc {s}", float("nan")) for c in with_ids]) if with_ids else "no ids" for s in SEGMENTS
        ]
        share = [
            f" [{np.mean([c.get(f'rows {s}', 0) for c in with_ids]):.0f} rows]" if with_ids else "" for s in SEGMENTS
        ]
        lines.append(
            f"| {model} | {gauc} | {_mean_std([c['ece'] for c in cells])} | "
            + " | ".join(v + r for v, r in zip(segments, share))
            + " |"
        )
    return lines


def metrics_section(board, models: Sequence[str], seeds: Sequence[int]) -> str:
    """The leaderboard's section: one row per model, from its cells' per-row files."""

    per_cell: Dict[str, List[Dict[str, float]]] = {}
    for model in models:
        rows = [board.test_scores(CellSpec(model, model, seed)) for seed in seeds]
        per_cell[model] = [cell_metrics(r) for r in rows if r is not None]
    header = [
        "Model",
        "GAUC (users with one class skipped)",
        f"ECE ({ECE_BINS} bins)",
        *[f"AUC {name}" for name in SEGMENTS],
    ]
    return "\n".join(
        [
            "## Per-user, calibration and segment metrics",
            "",
            "From each cell's per-row test file (mean ± std over seeds). GAUC: per-user AUC weighted by the user's "
            "test "
            f"rows; ECE: expected calibration error over {ECE_BINS} equal-width probability bins; AUC by segment: "
            "test rows "
            "of users seen / unseen in train, of items unseen in train, and of seen items by popularity tercile of "
            "their "
            "train rows (cut over the distinct seen test items); [rows] = mean rows per seed. n/a: the segment has "
            "no rows "
            "or one class; no ids: cells from before per-row ids were kept.",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
            *metrics_rows(per_cell),
            "",
        ]
    )


def threshold_of(record: Optional[dict]) -> Optional[float]:
    """The validation-chosen threshold a cell ran with, or None (a fixed threshold)."""
    chosen = ((record or {}).get("result") or {}).get("cls_threshold")
    return float(chosen["value"]) if isinstance(chosen, dict) and "value" in chosen else None
