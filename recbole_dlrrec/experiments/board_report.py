"""A board's report: the header notes, the significance tests, and the files of one board.

    board, paths = run_leaderboard("ml-100k", models, seed_count=3)
    write_leaderboard(board, models, seeds)   # results/ml-100k/leaderboard.{md,csv}, leaderboard_auc.png,
                                              # significance.{md,csv}

The cells come from board_cells.py, the tables from board_tables.py, the significance tables from
board_significance.py, the per-user / calibration / segment section from cell_metrics.py, the
chart from plots.py.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence

from recbole_dlrrec import atomic
from recbole_dlrrec.experiments import board_significance, cell_metrics
from recbole_dlrrec.experiments.board_cells import (
    DEFAULT_MODELS,
    DEFAULT_RESULTS_DIR,
    DEFAULT_SEED_COUNT,
    Leaderboard,
    cells,
    default_log,
    seeds_for,
)
from recbole_dlrrec.experiments.board_significance import significance_csv, significance_markdown, significance_rows
from recbole_dlrrec.experiments.board_tables import Row, best_flags, sort_rows, summarize, table_csv, table_markdown
from recbole_dlrrec.experiments.search_spread import mark_search_ties


def machine_description() -> str:
    try:
        import torch

        threads = f", torch {torch.__version__} on {torch.get_num_threads()} thread(s)"
    except ImportError:  # pragma: no cover - torch is a dependency
        threads = ""
    python = platform.python_version()
    return f"{platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs{threads}, Python {python}"


def run_settings(records: Iterable[dict]) -> dict:
    """The budget and selection settings actually used, read from a finished cell's config."""
    for record in records:
        if record.get("status") == "ok":
            config = record["result"].get("config", {})
            return {
                key: config.get(key)
                for key in (
                    "epochs",
                    "stopping_step",
                    "valid_metric",
                    "eval_args",
                    "benchmark_filename",
                    "embedding_size",
                    "learning_rate",
                    "train_batch_size",
                    "min_steps",
                    "eval_step",
                )
            }
    return {}


DLRREC_KEYS = (
    "reduction",
    "reduction_dim",
    "reduction_hidden",
    "w1",
    "w2",
    "tau",
    "cl_repr",
    "cl_negatives",
    "cl_num_negatives",
    "pos_weight",
    "first_order",
    "top_mlp",
    "train_precision",
    "enable_amp",
    "fused_optimizer",
)


def dlrrec_settings(records: Iterable[dict]) -> str:
    """The full DLRREC model's settings as run, e.g. 'w1=0.1, w2=0.1, tau=0.2, ...' ('' if none;
    'differ between seeds: ...' if its cells disagree)."""
    seen = []
    for record in records:
        if record.get("status") == "ok" and record.get("name") == "DLRREC":
            config = record["result"].get("config", {})
            text = ", ".join(f"{k}={config.get(k)}" for k in DLRREC_KEYS if k in config)
            if text not in seen:
                seen.append(text)
    if len(seen) > 1:
        return "differ between seeds: " + " | ".join(seen)
    return seen[0] if seen else ""


def cap_note(records: Iterable[dict], cap, window: int = 10) -> str:
    """Which models trained to the epoch cap instead of stopping early, and how much validation
    they still gained over their last `window` epochs there ('' when none did): a row whose
    curve was still rising at the cap would have won more from a higher one."""
    if not cap:
        return ""
    hit: Dict[str, List[float]] = {}
    total: Dict[str, int] = {}
    for record in records:
        if record.get("status") != "ok":
            continue
        result = record["result"]
        total[record["name"]] = total.get(record["name"], 0) + 1
        curve = [e["valid_score"] for e in result.get("epochs") or ()]
        if len(curve) < int(cap) or len(curve) <= window:
            continue
        pick = max if result.get("config", {}).get("valid_metric_bigger", True) else min
        hit.setdefault(record["name"], []).append(abs(pick(curve) - pick(curve[:-window])))
    if not hit:
        return ""
    parts = [
        f"{name} ({len(gains)} of {total[name]} seeds; validation gained at most {max(gains):.4f} over the last "
        f"{window} epochs)"
        for name, gains in sorted(hit.items())
    ]
    return f"Trained to the {cap}-epoch cap without stopping early: " + ", ".join(parts) + "."


def _split_description(settings: dict) -> str:
    if settings.get("benchmark_filename"):
        return f"fixed benchmark files ({', '.join(settings['benchmark_filename'])})"
    split = (settings.get("eval_args") or {}).get("split")
    return f"RecBole split {split} (same split for every model of a seed)" if split else "as the dataset config defines"


def _min_steps(settings: dict) -> str:
    """', at the earliest after N optimizer steps' (runtime/stopping.py), or '' when unset."""
    steps = settings.get("min_steps")
    return f" (never before {steps} optimizer steps)" if steps else ""


def header_notes(
    dataset: str,
    seeds: Sequence[int],
    records: Sequence[dict],
    overrides: dict,
    models: Sequence[str],
    notes: Sequence[str] = (),
    per_model: Sequence[str] = (),
) -> List[str]:
    settings = run_settings(records)
    settings.update({key: "tuned per model" for key in per_model if key in settings})
    overrides = {k: v for k, v in overrides.items() if k not in per_model}
    lines = [
        f"- Dataset: `{dataset}`; split: {_split_description(settings)}.",
        f"- Seeds: {', '.join(str(s) for s in seeds)} (config `seed`); cells show mean ± sample std over seeds.",
        f"- Budget: at most {settings.get('epochs', 'n/a')} epochs, early stopping after "
        f"{settings.get('stopping_step', 'n/a')} "
        f"epochs without a better validation {settings.get('valid_metric', 'n/a')}{_min_steps(settings)}; "
        "embedding_size "
        f"{settings.get('embedding_size', 'n/a')}, "
        f"learning_rate {settings.get('learning_rate', 'n/a')}, batch {settings.get('train_batch_size', 'n/a')} for "
        "every model.",
        "- Selection on validation: each run's best epoch is chosen on validation "
        f"{settings.get('valid_metric', 'AUC')} and its "
        "checkpoint is tested; test numbers never choose anything.",
        f"- Shared overrides: {', '.join(f'{k}={v}' for k, v in sorted(overrides.items())) or 'none'}.",
        f"- Machine: {machine_description()}.",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M %Z')}.",
        "- Bold: best value of its column (highest AUC / Accuracy / F1, lowest LogLoss / FPR / s per epoch).",
    ]
    dlrrec = dlrrec_settings(records)
    if dlrrec:
        where = (
            "its tuned configuration (Tuned configurations below) over properties/model/DLRREC.yaml"
            if per_model
            else "properties/model/DLRREC.yaml when run"
        )
        lines.append(f"- DLRREC settings ({where}; variants change only their own keys): {dlrrec}.")
    bf16 = sorted(
        {r["name"] for r in records if r.get("status") == "ok" and r["result"].get("config", {}).get("enable_amp")}
    )
    if bf16:
        lines.append(
            f"- Training precision: bf16 autocast (train_precision, recbole_dlrrec/runtime/training.py) for "
            f"{', '.join(bf16)}; float32 for the others. Evaluation is float32 for all."
        )
    capped = cap_note(records, settings.get("epochs"))
    if capped:
        lines.append(f"- {capped}")
    left_out = [m for m in DEFAULT_MODELS if m not in models]
    if left_out:
        lines.append(f"- Cut: models left out of the default set: {', '.join(left_out)}.")
    lines += [f"- {note}" for note in notes]
    return lines


def build_rows(
    board: Leaderboard, models: Sequence[str], seeds: Sequence[int], settings: Optional[Dict[str, dict]] = None
) -> List[Row]:
    grouped = board.records_for(cells(models, seeds, settings))
    return [summarize(name, grouped.get(name, []), len(seeds)) for name in models]


def board_paths(out: str) -> Dict[str, str]:
    """The files a board writes into `out`, by role."""
    names = {
        "md": "leaderboard.md",
        "csv": "leaderboard.csv",
        "png": "leaderboard_auc.png",
        "significance_md": "significance.md",
        "significance_csv": "significance.csv",
    }
    return {role: os.path.join(out, name) for role, name in names.items()}


def significance_sections(sig_entries, vs_dlrm, method: List[str]) -> List[str]:
    """leaderboard.md's significance sections: against the best baseline, then against DLRM."""
    lines = [
        "## Significance (DLRREC family vs the best baseline)",
        "",
        "Best baseline = best mean VALID AUC among non-DLRREC models. The bootstrap CI covers test-set sampling with "
        "the trained models fixed; the tests over seeds cover training randomness, with little power at a handful of "
        "seeds.",
        "",
        *method,
        "",
        significance_markdown(sig_entries),
        "",
    ]
    if vs_dlrm:
        lines += [
            "## DLRREC family vs DLRM (the same backbone without text)",
            "",
            "The same tests against DLRM, whatever its validation rank: what the text path and the "
            "contrastive heads add to the backbone they share.",
            "",
            significance_markdown(vs_dlrm),
            "",
        ]
    return lines


def significance_tables(board, models: Sequence[str], seeds: Sequence[int], rows, n_boot: int):
    """(vs the best baseline, vs DLRM, method lines): the board's two tables, Holm-adjusted as one
    family. `board`: one board, or the list of a cold board's draws (pooled, cold_draws.py)."""
    boards = board if isinstance(board, (list, tuple)) else [board]
    sig_entries = significance_rows(board, models, seeds, rows, n_boot=n_boot)
    # The same backbone without text: what the text path and the heads add, whichever baseline wins.
    has_dlrm = any(r.name == "DLRM" and r.has_numbers for r in rows)
    vs_dlrm = significance_rows(board, models, seeds, rows, n_boot=n_boot, baseline="DLRM") if has_dlrm else []
    family = board_significance.holm_over_board(sig_entries, vs_dlrm)
    method = board_significance.method_lines(boards[0].dataset, family, n_boot, draws=len(boards))
    return sig_entries, vs_dlrm, method


def _search_ties(search_spread: Optional[Dict[str, float]], *tables) -> List[str]:
    """Call the gaps below the search spread ties (after Holm, which rewrites the verdicts);
    the method line that says so, or none without several searches."""
    if not search_spread:
        return []
    ties = sum(mark_search_ties(table, search_spread) for table in tables)
    return [
        f"- Search spread (section 'Search spread'): a Δ smaller than the larger search spread of its two rows is "
        f"called a tie, whatever the tests say ({ties} here): the choice of a search alone moves a row that far."
    ]


def write_significance_files(paths: Dict[str, str], dataset: str, method: List[str], sig_entries, vs_dlrm) -> None:
    """significance.md (both tables) and significance.csv (against the best baseline)."""
    atomic.write_text(
        paths["significance_md"],
        f"# Significance: {dataset}\n\n"
        + "\n".join(method)
        + "\n\n"
        + significance_markdown(sig_entries)
        + (f"\n## Against DLRM\n\n{significance_markdown(vs_dlrm)}" if vs_dlrm else ""),
    )
    atomic.write_text(paths["significance_csv"], significance_csv(sig_entries))


def write_leaderboard(
    board: Leaderboard,
    models: Sequence[str],
    seeds: Sequence[int],
    notes: Sequence[str] = (),
    title: Optional[str] = None,
    n_boot: int = 1000,
    sections: Sequence[str] = (),
    per_model: Sequence[str] = (),
    search_spread: Optional[Dict[str, float]] = None,
) -> Dict[str, str]:
    """Write leaderboard.{md,csv}, leaderboard_auc.png and significance.{md,csv}; returns paths.
    `sections`: markdown blocks appended to leaderboard.md (the tuned board's configurations);
    `per_model`: keys whose value differs per model (tuned), not stated as one value in the header;
    `search_spread`: model -> spread of its searches' winners (tuned board, several searches): a
    tested gap below it is called a tie."""
    from recbole_dlrrec.experiments import plots

    rows = build_rows(board, models, seeds)
    ordered = sort_rows(rows)
    flags = best_flags(ordered)
    all_records = [r for rs in board.records_for(cells(models, seeds)).values() for r in rs]
    sig_entries, vs_dlrm, method = significance_tables(board, models, seeds, rows, n_boot)
    method += _search_ties(search_spread, sig_entries, vs_dlrm)
    paths = board_paths(board.out_dir)
    lines = [f"# {title or 'Leaderboard'}: {board.dataset}", ""]
    lines += header_notes(
        board.dataset,
        seeds,
        all_records,
        {k: v for k, v in board.overrides.items() if k not in ("show_progress", "state")},
        models,
        notes,
        per_model=per_model,
    )
    lines += ["", table_markdown(ordered, flags), ""]
    lines += significance_sections(sig_entries, vs_dlrm, method)
    lines += [cell_metrics.metrics_section(board, models, seeds), ""]
    lines += [f"Chart: `{os.path.basename(paths['png'])}`; per-cell results: `cells/`."]
    for section in sections:
        lines += ["", section]
    atomic.write_text(paths["md"], "\n".join(lines) + "\n")
    atomic.write_text(paths["csv"], table_csv(ordered, flags))
    write_significance_files(paths, board.dataset, method, sig_entries, vs_dlrm)
    plots.auc_bar_chart(
        ordered,
        paths["png"],
        title=f"{title or 'Leaderboard'}: {board.dataset} (test AUC, mean ± std over {len(seeds)} seed(s))",
    )
    return paths


def run_leaderboard(
    dataset: str,
    models: Sequence[str] = DEFAULT_MODELS,
    seed_count: int = DEFAULT_SEED_COUNT,
    overrides: Optional[dict] = None,
    force: bool = False,
    results_dir: str = DEFAULT_RESULTS_DIR,
    out_name: Optional[str] = None,
    notes: Sequence[str] = (),
    log: Callable[[str], None] = default_log,
    title: Optional[str] = None,
    threads: Optional[int] = None,
) -> tuple:
    """Run (or resume) the cells and write the outputs. Returns (board, paths)."""
    seeds = seeds_for(seed_count)
    board = Leaderboard(
        dataset, results_dir=results_dir, out_name=out_name, overrides=overrides, force=force, log=log, threads=threads
    )
    board.run_cells(cells(models, seeds))
    paths = write_leaderboard(board, models, seeds, notes=notes, title=title)
    log(f"leaderboard written: {paths['md']}")
    return board, paths
