"""One model on two boards that score the same test rows: two builds of one dataset (the
`--user_vector mean` build against the default `concat` build), tested the way a board tests its rows.

    python -m recbole_dlrrec.experiments.board_versus \\
        --left google-local-hi-ms-mean-tuned --right google-local-hi-ms-tuned \\
        --models DLRREC,DLRREC-V0 --out results/google-local-hi-ms-mean-tuned/versus.md

Each board folder (under --results_dir) holds its own search and seeds of the model. Per seed,
the two cells must score the same test rows (same labels, users and items, in the same order);
a board pair that does not is refused, naming the seed. The table is the boards' own: the
paired bootstrap over the board's unit (whole users, or whole items on a cold board), one draw
per replicate shared by the seeds, the t-test and sign test over seeds, Holm over the models
compared. Mean validation AUC of both sides is shown too: which build to use is chosen there.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from recbole_dlrrec.errors import InputError
from recbole_dlrrec.experiments import board_significance
from recbole_dlrrec.experiments import significance as sig
from recbole_dlrrec.experiments.board_cells import CellSpec, Leaderboard, seeds_for
from recbole_dlrrec.experiments.cell_rows import CellRows
from recbole_dlrrec.experiments.report_cli import print_report


class BoardPairError(InputError, ValueError):
    """The two boards cannot be compared row for row (missing folder, different test rows)."""


def open_board(results_dir: str, folder: str) -> Leaderboard:
    """A finished board folder for reading (its dataset name decides the resampling unit)."""
    path = os.path.join(results_dir, folder)
    if not os.path.isdir(os.path.join(path, "cells")):
        raise BoardPairError(f"{path}: no board here (no cells/ folder)")
    dataset = folder[: -len("-tuned")] if folder.endswith("-tuned") else folder
    return Leaderboard(dataset, results_dir=results_dir, out_name=folder)


def _same_rows(a: CellRows, b: CellRows) -> bool:
    if a.labels.shape != b.labels.shape or not np.array_equal(a.labels, b.labels):
        return False
    if a.has_ids and b.has_ids:
        (users_a, items_a, *_), (users_b, items_b, *_) = a.id_columns(), b.id_columns()
        return np.array_equal(users_a, users_b) and np.array_equal(items_a, items_b)
    return True


def seed_pairs(left: Leaderboard, right: Leaderboard, model: str, seeds: Sequence[int]):
    """Per seed where both boards finished `model`: (test AUC left, right, valid AUC left, right,
    (rows left, rows right)). Raises BoardPairError when a seed's two cells score different rows."""
    out = []
    for seed in seeds:
        spec = CellSpec(model, model, seed)
        a, b = left.load_cell(spec), right.load_cell(spec)
        if not (a and b and a.get("status") == "ok" and b.get("status") == "ok"):
            continue
        ra, rb = left.test_scores(spec), right.test_scores(spec)
        if ra is None or rb is None:
            raise BoardPairError(
                f"{model} seed {seed}: a cell has no per-row test scores ({left.out_dir}, {right.out_dir})"
            )
        if not _same_rows(ra, rb):
            raise BoardPairError(
                f"{model} seed {seed}: {left.out_dir} and {right.out_dir} score different test rows "
                "(not two builds of one split)"
            )
        valid = [r["result"].get("valid_result", {}).get("auc", float("nan")) for r in (a, b)]
        out.append((a["result"]["test_result"]["auc"], b["result"]["test_result"]["auc"], *valid, (ra, rb)))
    return out


def compare_boards(
    left: Leaderboard,
    right: Leaderboard,
    models: Sequence[str],
    seeds: Sequence[int],
    labels: Tuple[str, str],
    n_boot: int = sig.DEFAULT_BOOTSTRAP,
) -> Tuple[List[board_significance.Entry], Dict[str, Tuple[float, float]]]:
    """Each model, left board against right (as model against baseline), Holm over the models;
    and each model's mean validation AUC on the left and the right board."""
    unit = board_significance.resampling_unit(left.dataset)
    entries: List[board_significance.Entry] = []
    valid: Dict[str, Tuple[float, float]] = {}
    for model in models:
        name, base = f"{model} ({labels[0]})", f"{model} ({labels[1]})"
        pairs = seed_pairs(left, right, model, seeds)
        if not pairs:
            entries.append({"model": name, "baseline": base, "verdict": "no seed finished on both boards"})
            continue
        valid[model] = (float(np.mean([p[2] for p in pairs])), float(np.mean([p[3] for p in pairs])))
        groups, used = board_significance.paired_groups([p[4] for p in pairs], unit)
        entries.append(
            sig.compare(
                name,
                base,
                [p[0] for p in pairs],
                [p[1] for p in pairs],
                groups,
                baseline_valid_auc=valid[model][1],
                n_boot=n_boot,
                unit=used,
            )
        )
    board_significance.holm_over_board(entries)
    return entries, valid


def versus_markdown(
    left: Leaderboard, right: Leaderboard, entries, labels: Tuple[str, str], n_boot: int, valid: dict
) -> str:
    family = sum(isinstance(e, sig.Comparison) for e in entries)
    lines = [
        f"# {labels[0]} against {labels[1]}: {left.dataset} and {right.dataset}",
        "",
        f"Each row is one model with its own search and seeds on each board ({left.out_dir}, {right.out_dir}); "
        "both boards score the same test rows.",
        "",
        "| Model | Valid AUC " + labels[0] + " | Valid AUC " + labels[1] + " |",
        "|---|---|---|",
        *(f"| {model} | {a:.4f} | {b:.4f} |" for model, (a, b) in valid.items()),
        "",
        *board_significance.method_lines(left.dataset, family, n_boot),
        "",
        board_significance.significance_markdown(entries),
    ]
    return "\n".join(lines)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="One model on two boards of the same test rows, tested row for row.")
    p.add_argument("--left", required=True, help="board folder under --results_dir (the rows tested)")
    p.add_argument("--right", required=True, help="board folder under --results_dir (the reference)")
    p.add_argument("--models", required=True, help="comma-separated models that ran on both boards")
    p.add_argument("--labels", default="", help="two comma-separated labels (default: the folder names)")
    p.add_argument("--seeds", type=int, default=5, help="how many seeds (2020, 2021, ...); default 5")
    p.add_argument("--n_boot", type=int, default=sig.DEFAULT_BOOTSTRAP)
    p.add_argument("--results_dir", default="results")
    p.add_argument("--out", default="", help="also write the table here")
    return p.parse_args(argv)


def _labels(args: argparse.Namespace) -> Tuple[str, str]:
    if not args.labels:
        return args.left, args.right
    names = args.labels.split(",")
    if len(names) != 2:
        raise BoardPairError(f"--labels {args.labels!r}: give two labels, comma-separated")
    return names[0], names[1]


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    models = [m for m in args.models.split(",") if m]

    def build() -> str:
        labels = _labels(args)
        left, right = open_board(args.results_dir, args.left), open_board(args.results_dir, args.right)
        entries, valid = compare_boards(left, right, models, seeds_for(args.seeds), labels, n_boot=args.n_boot)
        return versus_markdown(left, right, entries, labels, args.n_boot, valid)

    return print_report(build, args.out)


if __name__ == "__main__":
    sys.exit(main())
