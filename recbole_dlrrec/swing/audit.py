"""What the SWING neighbours of a dataset look like: per-side counts and score quantiles
(:func:`summarize`) and score histograms (:func:`plot_score_histogram`). Used by the audit CLI
(``recbole_dlrrec.cli.swing``) and the paper's SWING audit (``experiments/paper.py``)."""

from __future__ import annotations

import numpy as np

from recbole_dlrrec.swing.graph import NeighbourTable, SwingNeighbours

_QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


def summarize(neighbours: SwingNeighbours) -> dict:
    """Per side: nodes, nodes with neighbours, mean neighbours, score quantiles."""
    summary = {}
    for side in ("users", "items"):
        table: NeighbourTable = getattr(neighbours, side)
        scores = table.scores[table.ids != NeighbourTable.PAD_ID]
        with_any = int((table.counts > 0).sum())
        summary[side] = {
            "nodes": table.n_nodes,
            "with_neighbours": with_any,
            "mean_neighbours": float(table.counts[table.counts > 0].mean()) if with_any else 0.0,
            "score_quantiles": ({f"q{int(q * 100)}": float(v) for q, v in
                                 zip(_QUANTILES, np.quantile(scores, _QUANTILES))}
                                if scores.size else {}),
        }
    return summary


def plot_score_histogram(neighbours: SwingNeighbours, path: str) -> str:
    """Save a PNG with the kept SWING score histograms of users and items (log-log axes)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4))
    FigureCanvasAgg(figure)
    for position, side in enumerate(("users", "items")):
        table: NeighbourTable = getattr(neighbours, side)
        scores = table.scores[table.ids != NeighbourTable.PAD_ID]
        axes = figure.add_subplot(1, 2, position + 1)
        if scores.size:  # scores are heavy-tailed: log-spaced bins on a log x axis
            low, high = float(scores.min()), float(scores.max())
            bins = np.geomspace(low, high * (1 + 1e-9), 50) if high > low else 1
            axes.hist(scores, bins=bins, color="tab:blue" if side == "users" else "tab:orange")
            axes.set_xscale("log")
            axes.set_yscale("log")
        axes.set_title(f"{side[:-1]}-{side[:-1]} SWING, top-{table.k} ({scores.size} scores)")
        axes.set_xlabel("SWING score")
        axes.set_ylabel("count")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path
