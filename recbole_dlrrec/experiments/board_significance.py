"""A board's significance tables: every DLRREC-family row against a baseline, from the cells' per-row files.

    entries = significance_rows(board, models, seeds, rows)                    # vs the best baseline
    vs_dlrm = significance_rows(board, models, seeds, rows, baseline="DLRM")
    holm_over_board(entries, vs_dlrm)                                          # one family per board
    significance_markdown(entries), significance_csv(entries), method_lines(...)

The bootstrap resamples whole users on a warm board and whole items on a cold board (a dataset
named *-cold or *-cold-d<seed>: every test row sits on one of a few held-out items), one draw per replicate shared
by every seed (significance.py). A comparison whose cells lack ids (cells from before
cell_rows.py kept them), or whose two models' rows name different ids, resamples rows instead,
and its table row says so.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from recbole_dlrrec.experiments import significance as sig
from recbole_dlrrec.experiments.board_cells import CellSpec, is_dlrrec_family
from recbole_dlrrec.experiments.board_tables import Row, csv_value
from recbole_dlrrec.experiments.cell_rows import CellRows

Entry = Union[sig.Comparison, dict]
_ROWS_NO_IDS = "rows (cells without ids)"
_ROWS_IDS_DIFFER = "rows (the two models' rows name different ids)"


def resampling_unit(dataset: str) -> str:
    """Whole items on a cold-items board (`*-cold`, one draw `*-cold-d<seed>`), whole users on any other."""
    from recbole_dlrrec.experiments.cold_start import is_cold_name

    return sig.UNIT_ITEMS if is_cold_name(dataset) else sig.UNIT_USERS


def _cluster_ids(rows, unit: str) -> Optional[np.ndarray]:
    if not rows.has_ids:
        return None
    return rows.item_ids if unit == sig.UNIT_ITEMS else rows.user_ids


def paired_groups(pairs: Sequence[Tuple[CellRows, CellRows]], unit: str) -> Tuple[List[tuple], str]:
    """Bootstrap groups from each seed's (rows of A, rows of B) (cell_rows.CellRows, same rows),
    and the unit they resample: `unit` when every row names its cluster alike in A and B, else rows."""
    clusters = [(_cluster_ids(a, unit), _cluster_ids(b, unit)) for a, b in pairs]
    used = unit
    known = [(ca, cb) for ca, cb in clusters if ca is not None and cb is not None]
    if len(known) < len(clusters):
        used = _ROWS_NO_IDS
    elif any(not np.array_equal(ca, cb) for ca, cb in known):
        used = _ROWS_IDS_DIFFER
    if used != unit:
        return [(a.labels, a.scores, b.scores) for a, b in pairs], used
    return [(a.labels, a.scores, b.scores, ca) for (a, b), (ca, _) in zip(pairs, clusters)], unit


def _seed_cells(board, name: str, baseline: str, seeds: Sequence[int]):
    """Per seed where both ran: test AUCs, and the per-row pairs where both files hold the same rows."""

    model_aucs, base_aucs, pairs, missing = [], [], [], []
    for seed in seeds:
        a = board.records.get(f"{name}-seed{seed}") or board.load_cell(CellSpec(name, name, seed))
        b = board.records.get(f"{baseline}-seed{seed}") or board.load_cell(CellSpec(baseline, baseline, seed))
        if not (a and b and a.get("status") == "ok" and b.get("status") == "ok"):
            continue
        model_aucs.append(a["result"]["test_result"]["auc"])
        base_aucs.append(b["result"]["test_result"]["auc"])
        ra = board.test_scores(CellSpec(name, name, seed))
        rb = board.test_scores(CellSpec(baseline, baseline, seed))
        if ra is None or rb is None or ra.labels.shape != rb.labels.shape or not np.array_equal(ra.labels, rb.labels):
            missing.append(seed)
            continue
        pairs.append((ra, rb))
    return model_aucs, base_aucs, pairs, missing


def _pooled_cells(boards: Sequence, name: str, baseline: str, seeds: Sequence[int], unit: str):
    """Over `boards` (one, or one per cold draw): the test AUC pairs of every (draw, seed) where both
    ran, the bootstrap groups, their strata (each pair's draw; None for one board), the unit they
    resample and the cells left out of the bootstrap."""
    model_aucs, base_aucs, pairs, strata = [], [], [], []
    missing: List[object] = []  # seeds, or "<draw> seed <s>" over several draws
    for board in boards:
        a, b, found, gone = _seed_cells(board, name, baseline, seeds)
        model_aucs += a
        base_aucs += b
        pairs += found
        strata += [board.dataset] * len(found)
        missing += gone if len(boards) == 1 else [f"{board.dataset} seed {seed}" for seed in gone]
    groups, used = paired_groups(pairs, unit) if pairs else ([], unit)
    return model_aucs, base_aucs, groups, (strata if len(boards) > 1 else None), used, missing


def significance_rows(
    board,
    models: Sequence[str],
    seeds: Sequence[int],
    rows: Sequence[Row],
    n_boot: int = sig.DEFAULT_BOOTSTRAP,
    baseline: Optional[str] = None,
) -> List[Entry]:
    """Every DLRREC-family model with numbers against `baseline` (default: the best baseline by mean
    VALID AUC): a significance.Comparison each, or a dict with the reason it could not be tested.
    Holm's adjustment is left to `holm_over_board`, over every table of the board. `board` may be a
    list: the boards of a cold board's draws, pooled (the draw x seed pairs; items resampled within
    each draw)."""

    boards = list(board) if isinstance(board, (list, tuple)) else [board]
    by_name = {r.name: r for r in rows}
    if baseline is None:
        baseline = sig.select_best_baseline({r.name: r.valid_auc for r in rows if r.has_numbers})
    unit = resampling_unit(boards[0].dataset)
    out: List[Entry] = []
    for name in [m for m in models if is_dlrrec_family(m) and by_name.get(m) and by_name[m].has_numbers]:
        entry = {"model": name, "baseline": baseline}
        if baseline is None:
            out.append({**entry, "verdict": "no baseline with results"})
            continue
        model_aucs, base_aucs, groups, strata, used, missing = _pooled_cells(boards, name, baseline, seeds, unit)
        if not groups:
            reason = f"no paired per-row test scores (seeds {missing})" if missing else "no seed where both ran"
            out.append({**entry, "verdict": reason})
            continue
        try:
            result = sig.compare(
                name,
                baseline,
                model_aucs,
                base_aucs,
                groups,
                baseline_valid_auc=by_name[baseline].valid_auc,
                n_boot=n_boot,
                unit=used,
                strata=strata,
            )
        except sig.SignificanceInputError as exc:
            out.append({**entry, "verdict": f"not testable: {exc}"})
            continue
        if missing:
            result.verdict += f" (bootstrap without seeds {missing}: rows differ or scores missing)"
        out.append(result)
    return out


def holm_over_board(*tables: Sequence[Entry]) -> int:
    """Holm-adjust every tested comparison of a board's tables as one family; returns its size.
    A model-baseline pair shown in two tables (the best baseline is DLRM) counts once."""
    pairs: Dict[Tuple[str, str], List[sig.Comparison]] = {}
    for table in tables:
        for entry in table:
            if isinstance(entry, sig.Comparison):
                pairs.setdefault((entry.model, entry.baseline), []).append(entry)
    sig.apply_holm([same[0] for same in pairs.values()])
    for first, *others in pairs.values():
        for other in others:
            for key in ("boot_p_holm", "t_p_holm", "sign_p_holm", "significant", "verdict"):
                setattr(other, key, getattr(first, key))
    return len(pairs)


def method_lines(dataset: str, family: int, n_boot: int = sig.DEFAULT_BOOTSTRAP, draws: int = 1) -> List[str]:
    """How the tables were computed: the header of significance.md and the leaderboard's section
    (`draws` > 1: a cold board pooled over that many draws of its held-out items)."""
    unit = resampling_unit(dataset)
    why = (
        "a cold board's test rows sit on a few held-out items"
        if unit == sig.UNIT_ITEMS
        else "a user's rows share that user's taste"
    )
    return [
        f"- Δ = mean over seeds of test AUC(model) − AUC(baseline). CI: {sig.DEFAULT_LEVEL:.0%} percentile interval "
        "of a "
        f"paired bootstrap ({n_boot:,} replicates) that resamples whole **{unit}** ({why}); each replicate draws "
        "once and "
        "every seed and both models weigh their rows by that draw, so the rows of several seeds never count as a "
        "larger "
        "test set. A row marked 'rows (...)' resampled single rows instead, for the reason given.",
        "- Beside it, over seeds: the paired t-test and the exact two-sided sign test (seeds better / worse).",
        *(_draw_lines(draws) if draws > 1 else []),
        f"- Holm correction over this board's {family} comparisons (every table of the board): each test's p-values "
        "are step-down "
        f"adjusted (shown as 'Holm'); **Significant** = Holm-adjusted bootstrap p < {sig.ALPHA:g}. The CI itself is "
        "not adjusted.",
    ]


def _draw_lines(draws: int) -> List[str]:
    return [
        f"- Pooled over {draws} cold draws (each its own held-out valid and test items, its own search and seeds): "
        "Δ is the mean over every draw x seed pair. A replicate resamples whole items **within each draw** (each "
        "draw's test items drawn from its own, so every draw keeps its size; an item two draws hold out counts "
        "twice), one draw per replicate shared by the seeds of that draw.",
        "- The tests over seeds run over the draw x seed pairs (seed s of draw d trains both models on the same "
        "split): 'seeds better/worse' counts those pairs. Pairs of one draw share its test items, which only the "
        "item bootstrap accounts for, so **Significant** follows the bootstrap.",
    ]


def _p(value: float) -> str:
    return (
        "n/a" if value is None or not math.isfinite(value) else (f"{value:.3f}" if value >= 0.001 else f"{value:.1e}")
    )


def significance_markdown(entries: Sequence[Entry]) -> str:
    if not entries:
        return "No DLRREC-family model with results to test.\n"
    headers = [
        "Model",
        "Baseline (valid AUC)",
        "Test AUC model",
        "Test AUC baseline",
        "Δ AUC",
        "95% bootstrap CI (unit)",
        "bootstrap p (Holm)",
        "paired t over seeds: t, p (Holm)",
        "sign test: seeds better/worse, p (Holm)",
        "Significant",
        "Verdict",
    ]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for e in entries:
        if not isinstance(e, sig.Comparison):
            lines.append(f"| {e['model']} | {e.get('baseline') or 'n/a'} | | | | | | | | no | {e['verdict']} |")
            continue
        unit = e.unit if e.unit == sig.UNIT_ROWS or e.unit.startswith("rows") else f"{e.unit}: {e.n_clusters:,}"
        t_text = f"t={e.t:.2f}, p={_p(e.p)} ({_p(e.t_p_holm)})" if math.isfinite(e.p) else f"n/a (n={e.seeds})"
        lines.append(
            f"| {e.model} | {e.baseline} ({e.baseline_valid_auc:.4f}) | {e.model_test_auc:.4f} | "
            f"{e.baseline_test_auc:.4f} | "
            f"{e.diff:+.4f} | [{e.ci_low:+.4f}, {e.ci_high:+.4f}] ({unit}) | {_p(e.boot_p)} ({_p(e.boot_p_holm)}) | "
            f"{t_text} | "
            f"{e.seeds_better}/{e.seeds_worse} of {e.seeds}, p={_p(e.sign_p)} ({_p(e.sign_p_holm)}) | "
            f"{'yes' if e.significant else 'no'} | {e.verdict} |"
        )
    return "\n".join(lines) + "\n"


CSV_KEYS = (
    "model",
    "baseline",
    "baseline_valid_auc",
    "model_test_auc",
    "baseline_test_auc",
    "diff",
    "ci_low",
    "ci_high",
    "level",
    "n_boot",
    "n_rows",
    "unit",
    "n_clusters",
    "boot_p",
    "boot_p_holm",
    "t",
    "p",
    "t_p_holm",
    "seeds",
    "seeds_better",
    "seeds_worse",
    "sign_p",
    "sign_p_holm",
    "significant",
    "verdict",
)


def significance_csv(entries: Sequence[Entry]) -> str:

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_KEYS)
    for entry in entries:
        e: Dict[str, object] = entry.as_dict() if isinstance(entry, sig.Comparison) else entry
        writer.writerow([int(v) if isinstance(v := e.get(k), bool) else csv_value(v) for k in CSV_KEYS])
    return buffer.getvalue()
