"""The SWING audit of the paper's experiments (experiment 4 of experiments/paper.py): the
contrastive neighbour tables against the trained models' representations."""

from __future__ import annotations

import os
from typing import Dict, List, Sequence

import numpy as np

from recbole_dlrrec import atomic
from recbole_dlrrec.experiments import plots
from recbole_dlrrec.experiments.board_cells import CellSpec, Leaderboard
from recbole_dlrrec.experiments.paper_report import experiment_header

CATEGORY_FIELDS = ("categories", "class", "genre", "cuisine", "tags")  # first present = main category
TSNE_MAX_POINTS = 2000
RANDOM_PAIRS_SEED = 0


# -- 4. SWING audit ------------------------------------------------------------------------
def _checkpoint_model(board: Leaderboard, name: str, seed: int, train_data):
    """The trained model of a finished cell, from its best checkpoint (the cell is rerun when
    its checkpoint is gone)."""
    import torch

    from recbole_dlrrec.runtime.quick_start import build_config, build_model

    spec = CellSpec(name, name, seed)
    board.run_cells([spec])
    record = board.records.get(spec.key)
    if record is None or record.get("status") != "ok":
        raise RuntimeError(f"{spec.key} has no finished run: {record.get('error') if record else 'not run'}")
    path = record["result"].get("saved_model_file")
    if not path or not os.path.isfile(path):
        board.log(f"{spec.key}: checkpoint {path} is gone; training the cell again")
        record = board._run_one(spec)
        board.records[spec.key] = record
        path = record.get("result", {}).get("saved_model_file")
        if record.get("status") != "ok" or not path or not os.path.isfile(path):
            raise RuntimeError(f"{spec.key}: no checkpoint after rerunning ({record.get('error')})")
    config = build_config(name, board.dataset, config_dict=board.cell_config(spec))
    model = build_model(config, train_data)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["state_dict"])
    model.eval()
    return model


def main_categories(dataset) -> tuple:
    """(field, category label per internal item id) from the first CATEGORY_FIELDS field the
    dataset's item features have: the first token of a token_seq, or the token itself."""
    feat = dataset.item_feat
    for field in CATEGORY_FIELDS:
        if feat is not None and field in feat.columns:
            values = feat[field]
            first = values[:, 0] if values.dim() == 2 else values
            first = first.cpu().numpy()
            tokens = dataset.id2token(field, first)
            labels = np.array(["(none)" if int(i) == 0 else str(t) for i, t in zip(first, tokens)], dtype=object)
            return field, labels
    return None, np.array(["(all)"] * dataset.item_num, dtype=object)


def _normalised(model, side: str, ids: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        reps = model.representation(side, torch.as_tensor(ids, dtype=torch.long)).float()
        return torch.nn.functional.normalize(reps, dim=-1).cpu().numpy()


def pair_cosines(model, side: str, table, n_nodes: int, seed: int = RANDOM_PAIRS_SEED) -> dict:
    """Mean cosine of the representations of SWING neighbour pairs (all kept top-k, and top-1)
    against as many random pairs from the same anchors."""
    pad = -1
    anchors = np.flatnonzero(table.counts > 0)
    anchors = anchors[anchors > 0]
    if anchors.size == 0:
        return {"pairs": 0, "cos_swing": np.nan, "cos_top1": np.nan, "cos_random": np.nan, "gap": np.nan}
    reps = _normalised(model, side, np.arange(n_nodes))
    ids = table.ids[anchors]
    rows, cols = np.nonzero(ids != pad)
    left, right = anchors[rows], ids[rows, cols]
    rng = np.random.default_rng(seed)
    random_right = rng.integers(1, n_nodes, size=left.size)
    clash = random_right == left
    random_right[clash] = (random_right[clash] % (n_nodes - 1)) + 1
    swing = (reps[left] * reps[right]).sum(1)
    top1 = (reps[anchors] * reps[table.ids[anchors, 0]]).sum(1)
    rand = (reps[left] * reps[random_right]).sum(1)
    return {
        "pairs": int(left.size),
        "cos_swing": float(swing.mean()),
        "cos_top1": float(top1.mean()),
        "cos_random": float(rand.mean()),
        "gap": float(swing.mean() - rand.mean()),
    }


SWING_QUANTILE_KEYS = ("q0", "q5", "q25", "q50", "q75", "q95", "q100")


def _tsne_panels(models: Dict[str, object], item_ids: np.ndarray, seed: int) -> Dict[str, np.ndarray]:
    """Panel title -> n_items x 2 t-SNE of each model's item representations."""
    import torch
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    panels = {}
    for name, model in models.items():
        reps = _normalised(model, "item", item_ids)
        perplexity = float(min(30.0, max(2.0, (item_ids.size - 1) / 3.0)))
        with threadpool_limits(limits=torch.get_num_threads()):  # t-SNE's OpenMP follows the run's thread budget
            panels[f"{name} ({'with' if name == 'DLRREC' else 'without'} L_ii/L_uu)"] = TSNE(
                n_components=2, init="pca", perplexity=perplexity, random_state=seed
            ).fit_transform(reps)
    return panels


def _swing_audit_intro(config, seed: int, summary: dict, cl_repr: str, n_items: int, field) -> List[str]:
    """swing_audit.md's text above the cosine table: SWING's settings and its neighbour counts."""
    quantile_keys = SWING_QUANTILE_KEYS
    intro = [
        f"SWING on the TRAIN split of seed {seed} (swing_topk={config['swing_topk']}, "
        f"swing_alpha={config['swing_alpha']}, "
        f"swing_edges={config['swing_edges']}). Histogram: `swing_hist.png`.",
        "",
        "| Side | Nodes | With neighbours | Mean neighbours | " + " | ".join(quantile_keys) + " |",
        "|---|---|---|---|" + "---|" * len(quantile_keys),
    ]
    for side, info in summary.items():
        quantiles = info.get("score_quantiles") or {}
        intro.append(
            f"| {side} | {info['nodes']} | {info['with_neighbours']} | {info['mean_neighbours']:.1f} | "
            + " | ".join(f"{quantiles[k]:.4g}" if k in quantiles else "n/a" for k in quantile_keys)
            + " |"
        )
    intro += [
        "",
        f"Cosine of the contrasted representation (cl_repr = {cl_repr}) from each model's best checkpoint: all kept "
        "SWING neighbour pairs (and top-1 only) against as many random pairs from the same anchors. A contrastive "
        "effect shows as a larger gap with L_ii/L_uu than without. t-SNE: `tsne_items.png` "
        f"({n_items} items, coloured by the first token of `{field}`).",
    ]
    return intro


def _write_swing_audit_tables(
    board: Leaderboard, seed: int, notes: Sequence[str], intro: List[str], cosine_rows: List[dict], summary: dict
) -> Dict[str, str]:
    """swing_audit.md / .csv (the cosine table) and swing_summary.csv (neighbour counts)."""
    quantile_keys = SWING_QUANTILE_KEYS
    paths = {}
    lines = [
        "| Model | Contrastive | Side | Pairs | cos SWING pairs | cos top-1 | cos random pairs | Gap |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in cosine_rows:
        lines.append(
            f"| {r['model']} | {r['contrastive']} | {r['side']} | {r['pairs']} | {r['cos_swing']:.4f} | "
            f"{r['cos_top1']:.4f} | {r['cos_random']:.4f} | {r['gap']:+.4f} |"
        )
    header = experiment_header(board, "SWING audit", [seed], notes, intro)
    paths["md"] = atomic.write_text(os.path.join(board.out_dir, "swing_audit.md"), "\n".join(header + lines) + "\n")
    keys = ["model", "contrastive", "side", "pairs", "cos_swing", "cos_top1", "cos_random", "gap"]
    csv_lines = [",".join(keys)] + [
        ",".join(str(round(r[k], 6)) if isinstance(r[k], float) else str(r[k]) for k in keys) for r in cosine_rows
    ]
    paths["csv"] = atomic.write_text(os.path.join(board.out_dir, "swing_audit.csv"), "\n".join(csv_lines) + "\n")
    summary_lines = ["side,nodes,with_neighbours,mean_neighbours," + ",".join(quantile_keys)]
    for side, info in summary.items():
        quantiles = info.get("score_quantiles") or {}
        summary_lines.append(
            f"{side},{info['nodes']},{info['with_neighbours']},{info['mean_neighbours']:.4f},"
            + ",".join(f"{quantiles[k]:.6g}" if k in quantiles else "" for k in quantile_keys)
        )
    paths["summary_csv"] = atomic.write_text(
        os.path.join(board.out_dir, "swing_summary.csv"), "\n".join(summary_lines) + "\n"
    )
    return paths


def swing_audit(board: Leaderboard, seeds: Sequence[int], notes: Sequence[str] = ()) -> Dict[str, str]:
    from recbole_dlrrec.runtime.quick_start import build_config, load_splits
    from recbole_dlrrec.swing.audit import plot_score_histogram
    from recbole_dlrrec.swing.audit import summarize as swing_summary
    from recbole_dlrrec.swing.cache import swing_for_dataset

    seed = seeds[0]
    spec = CellSpec("DLRREC", "DLRREC", seed)
    config = build_config("DLRREC", board.dataset, config_dict=board.cell_config(spec))
    dataset, train_data, _, _ = load_splits(config)
    train = train_data._dataset
    neighbours = swing_for_dataset(config, train, progress=False)
    paths = {
        "hist": plot_score_histogram(
            neighbours, os.path.join(board.out_dir, "swing_hist.png"), similarity=config["cl_similarity"]
        )
    }
    summary = swing_summary(neighbours)

    models = {name: _checkpoint_model(board, name, seed, train_data) for name in ("DLRREC", "DLRREC-noCL")}
    cosine_rows = []
    for name, model in models.items():
        for side, table, n_nodes in (
            ("item", neighbours.items, train.item_num),
            ("user", neighbours.users, train.user_num),
        ):
            cosine_rows.append(
                {
                    "model": name,
                    "contrastive": "yes" if name == "DLRREC" else "no",
                    "side": side,
                    **pair_cosines(model, side, table, n_nodes),
                }
            )

    field, categories = main_categories(dataset)
    item_ids = np.arange(1, train.item_num)
    if item_ids.size > TSNE_MAX_POINTS:
        item_ids = np.sort(np.random.default_rng(seed).choice(item_ids, TSNE_MAX_POINTS, replace=False))
    panels = _tsne_panels(models, item_ids, seed)
    cl_repr = models["DLRREC"].cl_repr
    paths["tsne"] = plots.tsne_chart(
        panels,
        categories[item_ids],
        os.path.join(board.out_dir, "tsne_items.png"),
        title=f"t-SNE of item representations ({cl_repr}), {board.dataset}, seed {seed}; "
        f"colour: main {field or 'category'}",
    )
    paths["cosine_png"] = plots.cosine_gap_chart(
        cosine_rows,
        os.path.join(board.out_dir, "swing_cosine.png"),
        title=f"Mean cosine of {cl_repr} representations: SWING pairs vs random pairs",
    )
    intro = _swing_audit_intro(config, seed, summary, cl_repr, item_ids.size, field)
    paths.update(_write_swing_audit_tables(board, seed, notes, intro, cosine_rows, summary))
    return paths
