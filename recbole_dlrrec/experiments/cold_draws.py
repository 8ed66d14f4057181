"""A cold board over several draws of its held-out items, and the report that pools them.

    paths = run_cold_draws("ml-100k", 3, run_board, models, seeds, "results/ml-100k-cold-tuned")

One draw of held-out items is one split, so a cold board on one draw says how the models rank on
those few items. Draw seed s (2020, 2021, ...) builds the dataset `<dataset>-cold-d<s>`
(cold_start.py: valid and test each on items of their own that train never sees) and `run_board`
runs an ordinary board on it: results/<dataset>-cold-d<s>[-tuned]/, resumable like any board
(a tuned board searches each draw on that draw's cold validation rows). The pooled report goes to
`out_dir` (results/<dataset>-cold[-tuned]/): leaderboard.md/.csv with every model's mean over the
draw x seed cells, test AUC per draw, and significance.md/.csv whose bootstrap resamples whole
items within each draw (board_significance.significance_rows over the draws' boards).
"""

from __future__ import annotations

import os
import time
from typing import Callable, Dict, List, Optional, Sequence

from recbole_dlrrec import atomic
from recbole_dlrrec.errors import InputError
from recbole_dlrrec.experiments.board_cells import Leaderboard, cells, default_log
from recbole_dlrrec.experiments.board_report import (
    board_paths,
    machine_description,
    significance_sections,
    significance_tables,
    write_significance_files,
)
from recbole_dlrrec.experiments.board_tables import (
    Row,
    best_flags,
    format_number,
    sort_rows,
    summarize,
    table_csv,
    table_markdown,
)
from recbole_dlrrec.experiments.cold_start import DEFAULT_FRACTION, DEFAULT_SEED, make_cold_items_dataset

DEFAULT_DRAWS = 1


class ColdDrawsError(InputError, ValueError):
    """A draw count that cannot be run."""


def draw_seeds(count: int) -> List[int]:
    """The draw seeds of `count` draws: DEFAULT_SEED, DEFAULT_SEED + 1, ..."""
    if int(count) < 1:
        raise ColdDrawsError(f"--cold_draws must be >= 1, got {count}")
    return [DEFAULT_SEED + i for i in range(int(count))]


def pooled_rows(boards: Sequence[Leaderboard], models: Sequence[str], seeds: Sequence[int]) -> List[Row]:
    """Each model's row over every draw x seed cell (mean and std over those cells)."""
    grouped: Dict[str, List[dict]] = {name: [] for name in models}
    for board in boards:
        for name, records in board.records_for(cells(models, seeds)).items():
            grouped[name] += records
    return [summarize(name, grouped[name], len(seeds) * len(boards)) for name in models]


def per_draw_markdown(boards: Sequence[Leaderboard], models: Sequence[str], seeds: Sequence[int]) -> str:
    """Test AUC (mean ± std over seeds) of every model on each draw: whether a ranking holds on
    every draw or rests on one."""
    per_board = [{row.name: row for row in pooled_rows([board], models, seeds)} for board in boards]
    lines = ["| Model | " + " | ".join(f"{board.dataset}" for board in boards) + " |", "|---|" + "---|" * len(boards)]
    for name in models:
        cells_text = []
        for rows in per_board:
            mean, std = rows[name].metrics.get("auc", (float("nan"), float("nan")))
            cells_text.append("n/a" if not rows[name].has_numbers else f"{format_number(mean)} ± {format_number(std)}")
        lines.append(f"| {name} | " + " | ".join(cells_text) + " |")
    return "\n".join(lines) + "\n"


def _header(boards: Sequence[Leaderboard], seeds: Sequence[int], notes: Sequence[str]) -> List[str]:
    # Plain folder names, not links: the docs site rebuilds these pages where such links would break.
    links = ", ".join(f"`{os.path.basename(board.out_dir)}/`" for board in boards)
    return [
        f"- Draws: {len(boards)} (boards beside this one: {links}); each draw holds out its own valid items and "
        "test items (rows of the valid items are the validation split, so early stopping and any search choose on "
        "cold rows; test items are seen in neither train nor valid). Each draw's board has its settings, budget, "
        "tuned configurations and per-user metrics.",
        f"- Seeds on every draw: {', '.join(str(s) for s in seeds)}; cells show mean ± sample std over the "
        f"{len(boards) * len(seeds)} draw x seed runs; 'Seeds' counts those runs.",
        f"- Machine: {machine_description()}.",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M %Z')}.",
        *[f"- {note}" for note in notes],
    ]


def write_pooled_report(
    boards: Sequence[Leaderboard],
    models: Sequence[str],
    seeds: Sequence[int],
    out_dir: str,
    title: str = "Cold-item leaderboard over draws",
    notes: Sequence[str] = (),
    n_boot: int = 1000,
) -> Dict[str, str]:
    """Write leaderboard.{md,csv}, leaderboard_auc.png and significance.{md,csv} of the draws,
    pooled, into `out_dir`; returns the paths."""
    from recbole_dlrrec.experiments import plots

    name = os.path.basename(os.path.normpath(out_dir))
    ordered = sort_rows(pooled_rows(boards, models, seeds))
    flags = best_flags(ordered)
    sig_entries, vs_dlrm, method = significance_tables(list(boards), models, seeds, ordered, n_boot)
    os.makedirs(out_dir, exist_ok=True)
    paths = board_paths(out_dir)
    lines = [f"# {title}: {name}", "", *_header(boards, seeds, notes), "", table_markdown(ordered, flags), ""]
    lines += ["## Test AUC per draw", "", per_draw_markdown(boards, models, seeds), ""]
    lines += significance_sections(sig_entries, vs_dlrm, method)
    atomic.write_text(paths["md"], "\n".join(lines) + "\n")
    atomic.write_text(paths["csv"], table_csv(ordered, flags))
    write_significance_files(paths, name, method, sig_entries, vs_dlrm)
    plots.auc_bar_chart(
        ordered,
        paths["png"],
        title=f"{title}: {name} (test AUC, mean ± std over {len(boards)} draws x {len(seeds)} seeds)",
    )
    return paths


def run_cold_draws(
    dataset: str,
    draws: int,
    run_board: Callable[[str, int], Leaderboard],
    models: Sequence[str],
    seeds: Sequence[int],
    out_dir: str,
    data_path: Optional[str] = None,
    fraction: float = DEFAULT_FRACTION,
    title: str = "Cold-item leaderboard over draws",
    notes: Sequence[str] = (),
    log: Callable[[str], None] = default_log,
) -> Dict[str, str]:
    """Build (or reuse) each draw's dataset, run `run_board(name, draw_seed)` on it (its cells
    resume), then write the pooled report into `out_dir`; returns its paths."""
    boards = []
    for seed in draw_seeds(draws):
        name = make_cold_items_dataset(
            dataset, data_path=data_path, out_data_path=data_path, fraction=fraction, seed=seed, log=log
        )
        boards.append(run_board(name, seed))
    paths = write_pooled_report(boards, models, seeds, out_dir, title=title, notes=notes)
    log(f"cold board over {draws} draw(s) written: {paths['md']}")
    return paths
