"""What the SWING neighbours of a dataset look like: per-side counts and score quantiles
(:func:`summarize`), score histograms (:func:`plot_score_histogram`) and how often neighbour
pairs agree in category and text (:func:`neighbour_agreement`, to compare ``cl_similarity``s). Used by the audit CLI
(``recbole_dlrrec.cli.swing``) and the paper's SWING audit (``experiments/paper.py``)."""

from __future__ import annotations

from typing import Dict

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
            "score_quantiles": (
                {f"q{int(q * 100)}": float(v) for q, v in zip(_QUANTILES, np.quantile(scores, _QUANTILES))}
                if scores.size
                else {}
            ),
        }
    return summary


def neighbour_agreement(
    table: NeighbourTable, categories=None, vectors=None, has_vector=None, unknown: str = "(none)"
) -> dict:
    """Over the kept (node, neighbour) pairs of one side: how many, the share whose two ends
    have the same category, and their mean text cosine; each beside its chance level.

    categories: a label per id (``unknown`` labels, and id 0, are left out);
    vectors / has_vector: the side's text vectors per id (rows without a vector are left out).
    ``same_category_chance`` is the share for two random labelled ids (sum of squared label
    shares); ``text_cosine_random`` the exact mean cosine over all pairs of distinct ids with a
    vector (||sum of unit vectors||^2 - n) / (n (n - 1)).
    """
    valid = table.ids != NeighbourTable.PAD_ID
    anchors, neighbours = np.nonzero(valid)[0], table.ids[valid]
    result: Dict[str, float] = {"pairs": int(anchors.size)}
    if categories is not None:
        labels = np.asarray(categories, dtype=object)
        known = labels != unknown
        known[0] = False
        both = known[anchors] & known[neighbours]
        _, label_counts = np.unique(labels[known].astype(str), return_counts=True)
        share = label_counts / max(label_counts.sum(), 1)
        result["same_category"] = (
            float((labels[anchors[both]] == labels[neighbours[both]]).mean()) if both.any() else float("nan")
        )
        result["same_category_chance"] = float((share**2).sum())
    if vectors is not None:
        vectors = np.asarray(vectors, dtype=np.float64)
        has = np.ones(len(vectors), dtype=bool) if has_vector is None else np.asarray(has_vector, dtype=bool)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        has = has & (norms[:, 0] > 0)
        has[0] = False
        unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
        both = has[anchors] & has[neighbours]
        cosine = (unit[anchors[both]] * unit[neighbours[both]]).sum(1)
        n = int(has.sum())
        total = unit[has].sum(0)
        result["text_cosine"] = float(cosine.mean()) if cosine.size else float("nan")
        result["text_cosine_random"] = float((total @ total - n) / (n * (n - 1))) if n > 1 else float("nan")
    return result


def plot_score_histogram(neighbours: SwingNeighbours, path: str, *, similarity: str) -> str:
    """Save a PNG with the kept neighbour score histograms of users and items (log-log axes);
    `similarity` (the `cl_similarity` that scored them: swing, jaccard, ...) names the scores."""
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
            axes.hist(
                scores,
                bins=bins,  # type: ignore[arg-type]  # matplotlib stubs: no ndarray bins
                color="tab:blue" if side == "users" else "tab:orange",
            )
            axes.set_xscale("log")
            axes.set_yscale("log")
        axes.set_title(f"{side[:-1]}-{side[:-1]} {similarity}, top-{table.k} ({scores.size} scores)")
        axes.set_xlabel(f"{similarity} score")
        axes.set_ylabel("count")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path
