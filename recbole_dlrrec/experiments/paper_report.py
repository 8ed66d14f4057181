"""The paper experiments' report pieces: the header, the result rows and the table files every
experiment of experiments/paper.py writes."""

from __future__ import annotations

import os
import time
from typing import Dict, List, Optional, Sequence

from recbole_dlrrec import atomic
from recbole_dlrrec.experiments.board_cells import CellSpec, Leaderboard
from recbole_dlrrec.experiments.board_tables import Column, Row, best_flags, summarize, table_csv, table_markdown


def overrides_text(overrides: dict) -> str:
    """The board's shared overrides as key=value, less the display-only keys."""
    shown = [f"{k}={v}" for k, v in sorted(overrides.items()) if k not in ("show_progress", "state")]
    return ", ".join(shown) or "none"


def experiment_header(
    board: Leaderboard, title: str, seeds: Sequence[int], notes: Sequence[str], intro: Sequence[str]
) -> List[str]:
    return [
        f"# {title}: {board.dataset}",
        "",
        f"- Seeds: {', '.join(map(str, seeds))}; mean ± sample std over seeds; every run selects its epoch on "
        "validation.",
        f"- Shared overrides: {overrides_text(board.overrides)}.",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M %Z')}.",
        *[f"- {n}" for n in notes],
        "",
        *intro,
        "",
    ]


def result_rows(
    board: Leaderboard, specs: Sequence[CellSpec], seeds: Sequence[int], labels: Optional[Dict[str, str]] = None
) -> List[Row]:
    grouped = board.records_for(specs)
    rows = []
    for name, records in grouped.items():
        row = summarize((labels or {}).get(name, name), records, len(seeds))
        row.extra["cell"] = name
        rows.append(row)
    return rows


def write_table(
    board: Leaderboard,
    stem: str,
    header: List[str],
    rows: Sequence[Row],
    extra: Sequence[Column] = (),
    after: Sequence[str] = (),
) -> Dict[str, str]:
    flags = best_flags(rows)
    paths = {"md": os.path.join(board.out_dir, f"{stem}.md"), "csv": os.path.join(board.out_dir, f"{stem}.csv")}
    atomic.write_text(
        paths["md"], "\n".join(header) + "\n" + table_markdown(rows, flags, extra) + "\n" + "\n".join(after) + "\n"
    )
    atomic.write_text(paths["csv"], table_csv(rows, flags, extra))
    return paths
