"""The paper's experiments, run as extra leaderboard cells (resumable like the board's own).

    run_all(board, seeds)     # after run_leaderboard; writes under results/<NAME>/

1. ablation.{md,csv,png}       L_rec only (DLRREC-noCL), + L_uu (DLRREC-Luu), + L_ii (DLRREC-Lii),
                               all (DLRREC).
2. reduction_size.{md,csv,png} DLRREC with reduction_dim 16 / 32 / 64 / 128: test AUC and
                               training time against size (the board's DLRREC cell is reused for
                               the size it already has).
3. v0_vs_unified.{md,csv,png}  DLRREC against the two-step V0 (DLRREC-V0: frozen PCA, then
                               train) at a similar trainable parameter count: when V0's count is
                               off by more than PARAM_TOLERANCE, V0's top MLP is widened (same
                               shape, scaled) until the counts match, and the table says so.
4. swing_audit.{md,csv}, swing_hist.png, tsne_items.png, swing_cosine.png
                               SWING score histogram (swing.plot_score_histogram); t-SNE of the
                               item representations (model.representation, the contrasted cl_repr)
                               of DLRREC and DLRREC-noCL, coloured by main category; mean cosine of
                               SWING neighbour pairs against random pairs, with and without the
                               contrastive losses. Uses the first seed's checkpoints.
"""

from __future__ import annotations

import os
import traceback
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from recbole_dlrrec import atomic
from recbole_dlrrec.experiments import plots
from recbole_dlrrec.experiments.board_cells import CellSpec, Leaderboard, cells
from recbole_dlrrec.experiments.board_tables import Column, Row, format_number
from recbole_dlrrec.experiments.paper_report import experiment_header, result_rows, write_table
from recbole_dlrrec.experiments.paper_swing_audit import swing_audit

ABLATION = (
    ("L_rec only", "DLRREC-noCL"),
    ("L_rec + L_uu", "DLRREC-Luu"),
    ("L_rec + L_ii", "DLRREC-Lii"),
    ("L_rec + L_ii + L_uu", "DLRREC"),
)
# R below, at and above D = embedding_size (16 by default): the text reaches the interaction
# through min(R, D) numbers (an R -> D adapter cannot widen it), so sizes above D only add tower width.
REDUCTION_SIZES = (4, 8, 16, 32)
PARAM_TOLERANCE = 0.10  # V0 counts within 10% of DLRREC's are "similar"
V0_SCALES = tuple(np.round(np.arange(0.5, 6.01, 0.125), 3))  # top-MLP width multipliers tried for V0


# -- 1. ablation ---------------------------------------------------------------------------
def ablation(board: Leaderboard, seeds: Sequence[int], notes: Sequence[str] = ()) -> Dict[str, str]:
    models = [model for _, model in ABLATION]
    specs = cells(models, seeds)
    board.run_cells(specs)
    losses = {model: label for label, model in ABLATION}
    rows = result_rows(board, specs, seeds)
    extra = [Column("Losses", "losses", lambda r: losses[r.name])]
    header = experiment_header(
        board,
        "Ablation of the contrastive losses",
        seeds,
        notes,
        [
            "Same DLRREC (co-trained reduction, same inputs) with the InfoNCE heads switched on one by one: "
            "w1 weights L_ii (item-item), w2 weights L_uu (user-user); 0 switches a head off."
        ],
    )
    paths = write_table(board, "ablation", header, rows, extra)
    paths["png"] = plots.auc_bar_chart(
        rows,
        os.path.join(board.out_dir, "ablation.png"),
        title=f"Ablation: {board.dataset} (test AUC, mean ± std over {len(seeds)} seed(s))",
    )
    return paths


# -- 2. reduction size ---------------------------------------------------------------------
def _reduction_specs(base_dim, sizes: Sequence[int], seeds: Sequence[int]) -> Tuple[List[CellSpec], Dict[str, str]]:
    """The cells of the reduction-size sweep (the leaderboard's own DLRREC cell where its R is one
    of `sizes`) and each cell name's label "R=<size>"."""
    specs: List[CellSpec] = []
    labels: Dict[str, str] = {}
    for size in sizes:
        if base_dim is not None and int(base_dim) == int(size):
            name, settings = "DLRREC", {}
        else:
            name, settings = f"DLRREC-r{size}", {"reduction_dim": int(size)}
        labels[name] = f"R={size}"
        specs += [CellSpec(name, "DLRREC", seed, settings) for seed in seeds]
    specs.sort(key=lambda s: s.seed)
    return specs, labels


def _ok_records(board: Leaderboard, specs: List[CellSpec], labels: Dict[str, str], row: Row) -> List[dict]:
    """The finished cell records behind one row of the sweep."""
    named = [s for s in specs if labels[s.name] == row.name]
    return [r for r in board.records_for(named)[row.extra["cell"]] if r.get("status") == "ok"]


def _reduction_intro(sizes: Sequence[int], base_dim) -> List[str]:
    """The sweep's explanation under its header."""
    return [
        "DLRREC with the text reduction (text vector -> R) for R in "
        + ", ".join(map(str, sizes))
        + " (everything else as the leaderboard's DLRREC"
        + (f", whose own R = {base_dim} is reused" if base_dim is not None else "")
        + "). "
        "The text reaches the interaction through min(R, D) numbers, D = embedding_size: the R -> D adapter "
        "cannot widen it, so only R below D narrows the text's path; R above D adds tower width only. "
        "Training time: mean seconds per epoch, and total training seconds (early stopping makes the epoch count "
        "differ)."
    ]


def reduction_size(
    board: Leaderboard, seeds: Sequence[int], sizes: Sequence[int] = REDUCTION_SIZES, notes: Sequence[str] = ()
) -> Dict[str, str]:
    board.run_cells(cells(["DLRREC"], seeds))
    base = board.records_for(cells(["DLRREC"], seeds[:1]))["DLRREC"]
    base_dim = None
    if base and base[0].get("status") == "ok":
        base_dim = base[0]["result"]["config"].get("reduction_dim")
    specs, labels = _reduction_specs(base_dim, sizes, seeds)
    board.run_cells(specs)
    rows = result_rows(board, specs, seeds, labels)
    by_label = {r.name: r for r in rows}
    ordered = [by_label[f"R={size}"] for size in sizes]
    train_seconds, embedding = {}, {}
    for row in ordered:
        records = _ok_records(board, specs, labels, row)
        train_seconds[row.name] = (
            float(np.mean([r["result"]["timings"]["train_s"] for r in records])) if records else float("nan")
        )
        if records:
            embedding[row.name] = int(records[0]["result"]["config"]["embedding_size"])
    extra = [
        Column("reduction_dim", "reduction_dim", lambda r: int(r.name[2:])),
        Column(
            "bottleneck min(R, D)",
            "bottleneck",
            lambda r: min(int(r.name[2:]), embedding[r.name]) if r.name in embedding else None,
            lambda v: "-" if v is None else str(v),
        ),
        Column("Train s (total)", "train_seconds_mean", lambda r: train_seconds[r.name], lambda v: format_number(v, 1)),
    ]
    header = experiment_header(board, "Reduction size", seeds, notes, _reduction_intro(sizes, base_dim))
    paths = write_table(board, "reduction_size", header, ordered, extra)
    auc = [r.metrics.get("auc", (np.nan, np.nan)) for r in ordered]
    seconds = []
    for row in ordered:
        records = _ok_records(board, specs, labels, row)
        values = [r["result"]["timings"]["seconds_per_epoch"] for r in records]
        seconds.append((np.mean(values) if values else np.nan, np.std(values, ddof=1) if len(values) > 1 else np.nan))
    paths["png"] = plots.reduction_size_chart(
        list(sizes),
        [a[0] for a in auc],
        [a[1] for a in auc],
        [s[0] for s in seconds],
        [s[1] for s in seconds],
        os.path.join(board.out_dir, "reduction_size.png"),
        title=f"Reduction size: {board.dataset} (mean ± std over {len(seeds)} seed(s))",
    )
    return paths


# -- 3. unified DLRREC against V0 ----------------------------------------------------------
def _count(module) -> int:
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad))


def match_v0_top_mlp(board: Leaderboard, seed: int, target: int) -> tuple:
    """(top_mlp, count, default_top_mlp, default_count) for DLRREC-V0 whose trainable count is
    closest to `target`, widening the default top MLP by the factors in V0_SCALES."""
    from recbole_dlrrec.nn.layers import OverArch
    from recbole_dlrrec.runtime.quick_start import build_config, build_model, load_splits

    spec = CellSpec("DLRREC-V0", "DLRREC-V0", seed)
    config = build_config("DLRREC-V0", board.dataset, config_dict=board.cell_config(spec))
    _, train_data, _, _ = load_splits(config)
    model = build_model(config, train_data)
    default_top = list(config["top_mlp"])
    default_count = _count(model)
    in_features = model.over_arch.model[0].in_features
    dropout = config["dropout_prob"] or 0.0
    rest = default_count - _count(model.over_arch)
    best: Optional[Tuple[List[int], int]] = None  # (hidden, count)
    for scale in V0_SCALES:
        hidden = [max(1, int(round(width * scale))) for width in default_top]
        count = rest + _count(OverArch(in_features, hidden, dropout))
        if best is None or abs(count - target) < abs(best[1] - target):
            best = (hidden, count)
    assert best is not None, "V0_SCALES is not empty"
    return best[0], best[1], default_top, default_count


def unified_vs_v0(board: Leaderboard, seeds: Sequence[int], notes: Sequence[str] = ()) -> Dict[str, str]:
    board.run_cells(cells(["DLRREC", "DLRREC-V0"], seeds))
    grouped = board.records_for(cells(["DLRREC", "DLRREC-V0"], seeds))
    ok = {name: [r for r in records if r.get("status") == "ok"] for name, records in grouped.items()}
    if not ok["DLRREC"] or not ok["DLRREC-V0"]:
        raise RuntimeError("DLRREC or DLRREC-V0 has no finished cell; see the leaderboard for the error")
    target = int(ok["DLRREC"][0]["result"]["num_parameters"])
    v0_count = int(ok["DLRREC-V0"][0]["result"]["num_parameters"])
    config = ok["DLRREC"][0]["result"]["config"]
    names = ["DLRREC", "DLRREC-V0"]
    top_mlp = {"DLRREC": config.get("top_mlp"), "DLRREC-V0": ok["DLRREC-V0"][0]["result"]["config"].get("top_mlp")}
    explanation = [
        f"Trainable parameters: DLRREC {target:,}, DLRREC-V0 {v0_count:,} (difference {target - v0_count:+,}). "
        f"The gap is DLRREC's co-trained reduction tower (per text side: {config.get('reduction_hidden')} hidden MLP "
        f"to R = {config.get('reduction_dim')}, with {config.get('reduction_norm')} norm), all trainable; V0 reduces "
        "with a PCA "
        "projection fitted on the train split and frozen, stored as a buffer, so it adds no trainable parameters. "
        f"Both keep the same contrastive heads (w1 = {config.get('w1')}, w2 = {config.get('w2')}) and the same inputs."
    ]
    specs = cells(names, seeds)
    if abs(v0_count - target) > PARAM_TOLERANCE * target:
        hidden, count, default_top, default_count = match_v0_top_mlp(board, seeds[0], target)
        names.append("DLRREC-V0-matched")
        top_mlp["DLRREC-V0-matched"] = hidden
        extra_specs = [CellSpec("DLRREC-V0-matched", "DLRREC-V0", seed, {"top_mlp": hidden}) for seed in seeds]
        board.run_cells(extra_specs)
        specs += extra_specs
        explanation.append(
            f"Because the counts differ by more than {PARAM_TOLERANCE:.0%}, DLRREC-V0-matched widens V0's top MLP from "
            f"{default_top} to {hidden} (override top_mlp={hidden}), giving {count:,} trainable parameters "
            f"({(count - target) / target:+.1%} against DLRREC): the extra capacity sits where V0 can train it."
        )
    else:
        explanation.append(f"The counts are within {PARAM_TOLERANCE:.0%}; no adjustment was needed.")
    specs.sort(key=lambda s: (s.seed, names.index(s.name)))
    rows = result_rows(board, specs, seeds)
    rows.sort(key=lambda r: names.index(r.name))
    extra = [
        Column("Reduction", "reduction", lambda r: "co-trained MLP" if r.name == "DLRREC" else "frozen PCA (two-step)"),
        Column("top_mlp", "top_mlp", lambda r: str(top_mlp.get(r.name))),
    ]
    header = experiment_header(board, "Unified DLRREC against the two-step V0", seeds, notes, explanation)
    paths = write_table(board, "v0_vs_unified", header, rows, extra)
    numbered = [r for r in rows if r.has_numbers]
    paths["png"] = plots.params_vs_auc_chart(
        [r.name for r in numbered],
        [r.num_parameters or 0 for r in numbered],
        [r.metrics["auc"][0] for r in numbered],
        [r.metrics["auc"][1] for r in numbered],
        os.path.join(board.out_dir, "v0_vs_unified.png"),
        title=f"Unified vs two-step V0: {board.dataset}",
    )
    return paths


EXPERIMENTS: Dict[str, Callable] = {
    "ablation": ablation,
    "reduction_size": reduction_size,
    "v0_vs_unified": unified_vs_v0,
    "swing_audit": swing_audit,
}


# Experiments that train cells of their own (the others reuse the leaderboard's cells).
TRAINS_NEW_CELLS = ("reduction_size", "v0_vs_unified")


def run_all(
    board: Leaderboard,
    seeds: Sequence[int],
    notes: Sequence[str] = (),
    which: Sequence[str] = tuple(EXPERIMENTS),
    new_cell_seeds: Optional[Sequence[int]] = None,
) -> Dict[str, dict]:
    """Run the experiments in order; one that fails is logged (and its .md says why) and the
    others still run. `new_cell_seeds` (default: `seeds`) are the seeds of the experiments that
    train cells of their own (TRAINS_NEW_CELLS), to fit a time budget."""
    out = {}
    for name in which:
        board.log(f"experiment {name} on {board.dataset}")
        use = list(new_cell_seeds or seeds) if name in TRAINS_NEW_CELLS else list(seeds)
        try:
            out[name] = EXPERIMENTS[name](board, use, notes=notes)
            board.log(f"experiment {name} written: {out[name].get('md')}")
        except Exception as exc:  # keep the other experiments going
            message = " ".join(str(exc).split()) or type(exc).__name__
            board.log(f"experiment {name} FAILED: {type(exc).__name__}: {message}")
            atomic.write_text(
                os.path.join(board.out_dir, f"{name}.md"),
                f"# {name}: {board.dataset}\n\nFailed: {type(exc).__name__}: {message}\n\n```\n"
                f"{traceback.format_exc()[-3000:]}```\n",
            )
            out[name] = {"error": f"{type(exc).__name__}: {message}"}
    return out
