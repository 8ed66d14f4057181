"""Controlled ablations on a tuned board: one switch at a time, at the configuration the board selected for DLRREC.

    python run_leaderboard.py --dataset=ml-100k --tune 20 --epochs 20 --seeds 5 --ablations

A component claim compares DLRREC with DLRREC minus that component; when each side comes from its
own search, the two rows differ in learning rate, width and more, and the gap says little about
the component. Here every variant takes DLRREC's saved search winner (tuning/DLRREC/tuning.json)
as it is and changes one thing:

- heads off: w1 = w2 = 0 (no InfoNCE losses);
- the other positives: SWING neighbours where the selection uses Jaccard (or the reverse);
- frozen PCA reduction (V0) where the selection co-trains it (or co-trained where it is PCA);
- V0 without heads: frozen PCA and w1 = w2 = 0;
- user text off: item text only.

Each variant runs over the board's seeds as cells of its own (``DLRREC.<switch>``; resumable like
every cell), and is tested against the board's own DLRREC cells with the board's significance
machinery (board_significance: the resampling unit of the board, tests over seeds, Holm over the
ablations). The table goes to ``ablations.md`` in the board folder.
"""

from __future__ import annotations

import json
import os
from typing import List, Mapping, Sequence, Tuple

from recbole_dlrrec import atomic
from recbole_dlrrec.errors import InputError
from recbole_dlrrec.experiments import board_significance, cell_metrics
from recbole_dlrrec.experiments.board_cells import FIRST_SEED, CellSpec, Leaderboard
from recbole_dlrrec.experiments.board_significance import Entry
from recbole_dlrrec.experiments.board_tables import Row, format_number, summarize

REFERENCE = "DLRREC"
ABLATIONS_FILE = "ablations.md"
NO_HEADS = {"w1": 0.0, "w2": 0.0}


class NoSelectionError(InputError, FileNotFoundError):
    """The board has no successful DLRREC search to ablate."""


def selected_config(board: Leaderboard) -> dict:
    """The values DLRREC's saved search chose on this board (NoSelectionError, one line, if none)."""
    from recbole_dlrrec.experiments.search_inputs import TUNING_RECORD, tuning_dir

    path = os.path.join(tuning_dir(board.out_dir, REFERENCE), TUNING_RECORD)
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, json.JSONDecodeError) as exc:
        raise NoSelectionError(f"{path}: no saved DLRREC search to ablate ({type(exc).__name__})") from None
    if record.get("status") != "ok":
        raise NoSelectionError(f"{path}: DLRREC's search did not succeed ({record.get('error')}); nothing to ablate")
    return dict(record.get("params") or {})


Switch = Tuple[str, str, Mapping[str, object]]  # (label, what changes, settings)


def switches(effective: dict) -> List[Switch]:
    """(label, what changes, settings) of each one-switch variant, from the selected config's
    effective values (`effective`: the plugin defaults under the selected values)."""
    pca = effective.get("reduction") == "pca"
    swing = effective.get("cl_similarity") == "swing"
    reduction = {"reduction": "mlp" if pca else "pca"}
    out: List[Switch] = [
        ("noCL", "heads off (w1 = w2 = 0)", dict(NO_HEADS)),
        (
            "jaccardPos" if swing else "swingPos",
            f"{'Jaccard' if swing else 'SWING'} positives instead of {'SWING' if swing else 'Jaccard'}",
            {"cl_similarity": "jaccard" if swing else "swing"},
        ),
        ("coTrained" if pca else "V0", "co-trained MLP reduction" if pca else "frozen PCA reduction (V0)", reduction),
        ("V0-noCL", "frozen PCA reduction, heads off", {"reduction": "pca", **NO_HEADS}),
    ]
    if effective.get("user_text") != "none":
        out.append(("noUserText", "user text off (item text only)", {"user_text": "none"}))
    return out


def ablation_cells(selected: dict, variants: Sequence[Switch], seeds: Sequence[int]) -> List[CellSpec]:
    """Seed-major cells of every variant: the selected values, the validation threshold, the switch."""
    base = {**selected, **cell_metrics.VALID_THRESHOLD}
    return [
        CellSpec(f"{REFERENCE}.{label}", REFERENCE, seed, {**base, **switch})
        for seed in seeds
        for label, _, switch in variants
    ]


def run_ablations(board: Leaderboard, seeds: Sequence[int], n_boot: int = 1000) -> str:
    """Run (or resume) the ablation cells of a tuned board and write ablations.md; returns its path.
    The reference is the board's own DLRREC cells (the selected config), run here if missing."""
    selected = selected_config(board)
    reference = CellSpec(REFERENCE, REFERENCE, FIRST_SEED, {**selected, **cell_metrics.VALID_THRESHOLD})
    variants = switches(board.expected_defaults(reference))
    board.log(f"ablations at DLRREC's selected config: {', '.join(label for label, _, _ in variants)}")
    board.run_cells(
        [CellSpec(REFERENCE, REFERENCE, seed, reference.settings) for seed in seeds]
        + ablation_cells(selected, variants, seeds)
    )
    labels = [f"{REFERENCE}.{label}" for label, _, _ in variants]
    rows = {
        name: summarize(name, [r for r in (board.load_cell(CellSpec(name, REFERENCE, s)) for s in seeds) if r])
        for name in [REFERENCE, *labels]
    }
    entries = board_significance.significance_rows(
        board, labels, seeds, list(rows.values()), n_boot=n_boot, baseline=REFERENCE
    )
    method = board_significance.method_lines(board.dataset, board_significance.holm_over_board(entries), n_boot)
    text = ablations_markdown(board.dataset, selected, variants, rows, seeds, method, entries)
    path = atomic.write_text(os.path.join(board.out_dir, ABLATIONS_FILE), text)
    board.log(f"ablations written: {path}")
    return path


def _auc(row: Row) -> str:
    if not row.has_numbers:
        return f"n/a ({row.status}: {row.error or 'no cells'})"
    mean, std = row.metrics["auc"]
    return f"{format_number(mean)} ± {format_number(std)}"


def ablations_markdown(
    dataset: str,
    selected: dict,
    variants: Sequence[Switch],
    rows: Mapping[str, Row],
    seeds: Sequence[int],
    method: List[str],
    entries: Sequence[Entry],
) -> str:
    values = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(selected.items())) or "(the config defaults)"
    lines = [
        f"# Controlled ablations: {dataset}",
        "",
        f"Every row is DLRREC at the configuration this board's search selected on validation ({values}), "
        f"with one switch changed; {len(seeds)} seed(s) ({', '.join(map(str, seeds))}); the reference is the "
        "board's own DLRREC row.",
        "",
        "| Row | Switch | Settings changed | Test AUC (mean ± std over seeds) |",
        "|---|---|---|---|",
        f"| {REFERENCE} | none (the selected configuration) | | {_auc(rows[REFERENCE])} |",
    ]
    for label, what, switch in variants:
        name = f"{REFERENCE}.{label}"
        changed = ", ".join(f"{k}={json.dumps(v)}" for k, v in switch.items())
        lines.append(f"| {name} | {what} | {changed} | {_auc(rows[name])} |")
    lines += ["", "## Against the selected DLRREC", "", *method, ""]
    lines.append(board_significance.significance_markdown(entries))
    return "\n".join(lines)
