"""PNG charts of the leaderboards, the paper's experiments and the searches (matplotlib, Agg; no display).

Every function takes already-computed numbers and a path, writes the PNG atomically (temp file,
then os.replace) and returns the path.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Union

import numpy as np

from recbole_dlrrec import atomic
from recbole_dlrrec.experiments.search_records import TrialRecord, is_number, metric_column

if TYPE_CHECKING:
    from recbole_dlrrec.experiments.tune_space import SearchSpace

DLRREC_COLOUR = "tab:red"
BASELINE_COLOUR = "tab:blue"
FAILED_COLOUR = "lightgrey"


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: str, dpi: int = 110) -> str:
    figure.tight_layout()
    with atomic.atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=dpi, format="png")
    return path


def _zoomed_limits(low: np.ndarray, high: np.ndarray) -> tuple:
    """A y range around [min(low), max(high)] with a margin (AUC differences are small)."""
    finite_low, finite_high = low[np.isfinite(low)], high[np.isfinite(high)]
    if finite_low.size == 0:
        return (0.0, 1.0)
    lo, hi = float(finite_low.min()), float(finite_high.max())
    margin = max((hi - lo) * 0.15, 0.005)
    return (max(0.0, lo - margin), min(1.0, hi + margin))


def auc_bar_chart(
    rows: Sequence, path: str, title: str = "Test AUC", metric: str = "auc", label: str = "Test AUC"
) -> str:
    """Bars of mean `metric` with std error bars, one per leaderboard Row (failed rows shown empty)."""
    figure = _figure(max(6.0, 0.55 * len(rows) + 2), 4.5)
    axes = figure.add_subplot(1, 1, 1)
    names = [r.name for r in rows]
    means = np.array(
        [r.metrics.get(metric, (np.nan, np.nan))[0] if r.has_numbers else np.nan for r in rows], dtype=float
    )
    stds = np.array(
        [r.metrics.get(metric, (np.nan, np.nan))[1] if r.has_numbers else np.nan for r in rows], dtype=float
    )
    errors = np.nan_to_num(stds, nan=0.0)
    low, high = _zoomed_limits(means - errors, means + errors)
    colours = [
        FAILED_COLOUR
        if not r.has_numbers
        else DLRREC_COLOUR
        if r.name.upper().startswith("DLRREC")
        else BASELINE_COLOUR
        for r in rows
    ]
    x = np.arange(len(rows))
    heights = np.where(np.isfinite(means), means - low, 0.0)
    axes.bar(
        x,
        heights,
        bottom=low,
        yerr=np.where(np.isfinite(means), errors, 0.0),
        color=colours,
        capsize=3,
        edgecolor="black",
        linewidth=0.5,
    )
    for position, row in enumerate(rows):
        if not row.has_numbers:
            axes.text(
                position,
                low + (high - low) * 0.02,
                "failed" if row.status == "failed" else "n/a",
                rotation=90,
                ha="center",
                va="bottom",
                fontsize=8,
            )
    axes.set_xticks(x)
    axes.set_xticklabels(names, rotation=45, ha="right", fontsize=9)
    axes.set_ylim(low, high)
    axes.set_ylabel(f"{label} (error bars: std over seeds)")
    axes.set_title(title, fontsize=10)
    axes.grid(axis="y", alpha=0.3)
    return _save(figure, path)


def reduction_size_chart(
    sizes: Union[Sequence[int], np.ndarray],
    auc_mean: Sequence[float],
    auc_std: Sequence[float],
    seconds_mean: Sequence[float],
    seconds_std: Sequence[float],
    path: str,
    title: str = "Reduction size",
) -> str:
    """Two panels against reduction_dim: test AUC and training seconds per epoch (mean ± std)."""
    figure = _figure(10, 4)
    sizes = np.asarray(sizes, dtype=float)
    for position, (values, errors, ylabel, colour) in enumerate(
        (
            (auc_mean, auc_std, "test AUC", DLRREC_COLOUR),
            (seconds_mean, seconds_std, "training seconds per epoch", "tab:green"),
        )
    ):
        axes = figure.add_subplot(1, 2, position + 1)
        axes.errorbar(
            sizes,
            np.asarray(values, dtype=float),
            yerr=np.nan_to_num(np.asarray(errors, dtype=float)),
            marker="o",
            capsize=3,
            color=colour,
        )
        axes.set_xscale("log", base=2)
        axes.set_xticks(sizes)
        axes.set_xticklabels([str(int(s)) for s in sizes])
        axes.set_xlabel("reduction_dim R (text vector -> R)")
        axes.set_ylabel(ylabel)
        axes.grid(alpha=0.3)
    figure.suptitle(title, fontsize=10)
    return _save(figure, path)


def params_vs_auc_chart(
    names: Sequence[str],
    params: Sequence[int],
    auc_mean: Sequence[float],
    auc_std: Sequence[float],
    path: str,
    title: str = "Test AUC against trainable parameters",
) -> str:
    """Scatter of test AUC (± std) against parameter count, one labelled point per model."""
    figure = _figure(7, 4.5)
    axes = figure.add_subplot(1, 1, 1)
    for name, p, m, s in zip(names, params, auc_mean, auc_std):
        colour = DLRREC_COLOUR if name == "DLRREC" else BASELINE_COLOUR
        axes.errorbar([p], [m], yerr=[0.0 if not np.isfinite(s) else s], marker="o", capsize=3, color=colour)
        axes.annotate(f"{name}\n{p:,} params", (p, m), textcoords="offset points", xytext=(6, 6), fontsize=8)
    axes.set_xlabel("trainable parameters")
    axes.set_ylabel("test AUC (mean ± std over seeds)")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.margins(x=0.3, y=0.3)
    return _save(figure, path)


def tsne_chart(
    panels: Dict[str, np.ndarray],
    categories: Union[Sequence[str], np.ndarray],
    path: str,
    title: str = "t-SNE of item representations",
    max_legend: int = 10,
) -> str:
    """Side-by-side 2-d scatters (name -> N x 2), points coloured by category (the `max_legend`
    most frequent ones; the rest grey, as 'other')."""
    from matplotlib import colormaps

    categories = np.asarray(categories, dtype=object)
    labels, counts = np.unique(categories, return_counts=True)
    top = [labels[i] for i in np.argsort(-counts, kind="stable")[:max_legend]]
    palette = colormaps["tab10"]
    figure = _figure(6 * len(panels), 5.5)
    for position, (name, points) in enumerate(panels.items()):
        axes = figure.add_subplot(1, len(panels), position + 1)
        other = ~np.isin(categories, top)
        axes.scatter(points[other, 0], points[other, 1], s=6, color="lightgrey", label="other", alpha=0.6)
        for index, category in enumerate(top):
            mask = categories == category
            axes.scatter(
                points[mask, 0], points[mask, 1], s=8, color=palette(index % 10), label=str(category), alpha=0.8
            )
        axes.set_title(name, fontsize=10)
        axes.set_xticks([])
        axes.set_yticks([])
        if position == len(panels) - 1:
            axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=2)
    figure.suptitle(title, fontsize=11)
    return _save(figure, path)


def cosine_gap_chart(rows: Sequence[dict], path: str, title: str = "Cosine: SWING pairs vs random pairs") -> str:
    """Grouped bars: mean cosine of SWING-neighbour pairs and of random pairs, per (model, side)."""
    figure = _figure(max(6.0, 1.3 * len(rows) + 2), 4)
    axes = figure.add_subplot(1, 1, 1)
    x = np.arange(len(rows))
    swing = [r["cos_swing"] for r in rows]
    rand = [r["cos_random"] for r in rows]
    axes.bar(x - 0.2, swing, width=0.4, label="SWING neighbour pairs", color=DLRREC_COLOUR)
    axes.bar(x + 0.2, rand, width=0.4, label="random pairs", color=BASELINE_COLOUR)
    axes.set_xticks(x)
    axes.set_xticklabels([f"{r['model']}\n{r['side']}" for r in rows], fontsize=8)
    axes.set_ylabel("mean cosine similarity")
    axes.axhline(0, color="black", linewidth=0.5)
    axes.legend(fontsize=8)
    axes.set_title(title, fontsize=10)
    axes.grid(axis="y", alpha=0.3)
    return _save(figure, path)


def save_bars(
    names: Sequence[str],
    values: Union[Sequence[float], np.ndarray],
    errors: Optional[Sequence[float]],
    path: str,
    ylabel: str,
    title: str,
) -> str:
    """Plain bars with optional error bars (used by small experiment tables)."""
    figure = _figure(max(5.0, 0.9 * len(names) + 2), 4)
    axes = figure.add_subplot(1, 1, 1)
    values = np.asarray(values, dtype=float)
    errs = np.nan_to_num(np.asarray(errors, dtype=float)) if errors is not None else np.zeros_like(values)
    low, high = _zoomed_limits(values - errs, values + errs)
    axes.bar(
        np.arange(len(names)),
        np.where(np.isfinite(values), values - low, 0),
        bottom=low,
        yerr=errs,
        color=DLRREC_COLOUR,
        capsize=3,
        edgecolor="black",
        linewidth=0.5,
    )
    axes.set_xticks(np.arange(len(names)))
    axes.set_xticklabels(names, rotation=20, ha="right", fontsize=9)
    axes.set_ylim(low, high)
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=10)
    axes.grid(axis="y", alpha=0.3)
    return _save(figure, path)


# How plot_params draws the trials of each status.
TRIAL_STYLES: Dict[str, Dict[str, Any]] = {
    "completed": dict(color="C0", marker="o"),
    "pruned": dict(color="0.55", marker="v"),
    "interrupted": dict(color="C1", marker="s"),
}


def _searched_range_axis(ax, param) -> None:
    """The x axis over the key's whole searched range (log for loguniform keys)."""
    if param.log_scale:
        ax.set_xscale("log")
        ax.set_xlim(param.args[0] / 1.25, param.args[1] * 1.25)
    elif param.dist != "choice":
        margin = 0.04 * (param.args[1] - param.args[0])
        ax.set_xlim(param.args[0] - margin, param.args[1] + margin)


def plot_params(
    out_dir: str,
    records: Sequence[TrialRecord],
    space: SearchSpace,
    metric: str,
    title: str,
    best: Optional[TrialRecord],
) -> List[str]:
    """One scatter per tuned numeric key: best validation metric of each trial against the
    key's value (log x axis for loguniform keys). Failed trials have no score: counted in the
    title. Returns the PNG paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    scored = [r for r in records if r.best_score is not None and math.isfinite(r.best_score)]
    failed = sum(r.status == "failed" for r in records)
    for param in space.params.values():
        if not param.numeric:
            continue
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for status, style in TRIAL_STYLES.items():
            points = [
                (float(r.params[param.key]), r.best_score)
                for r in scored
                if r.status == status and is_number(r.params.get(param.key))
            ]
            if points:
                xs, ys = zip(*points)
                ax.scatter(xs, ys, label=f"{status} ({len(points)})", alpha=0.8, **style)
        if best is not None and best.best_score is not None and is_number(best.params.get(param.key)):
            ax.scatter(
                [float(best.params[param.key])],
                [best.best_score],
                marker="*",
                s=220,
                color="C3",
                zorder=3,
                label=f"best ({best.trial_id})",
            )
        _searched_range_axis(ax, param)
        ax.set_xlabel(f"{param.key} ({param.describe()})")
        ax.set_ylabel(f"best validation {metric}")
        ax.set_title(title + (f"\n{failed} failed trial(s) not shown" if failed else ""), fontsize=9)
        ax.grid(True, alpha=0.3)
        if scored:
            ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(out_dir, f"{metric_column(metric)}_vs_{param.key}.png")
        with atomic.atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)
        paths.append(path)
    return paths
