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
import time
import traceback
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from recbole_dlrrec import atomic
from recbole_dlrrec.experiments import plots
from recbole_dlrrec.experiments.board_cells import CellSpec, Leaderboard, cells
from recbole_dlrrec.experiments.board_tables import (
    Column,
    Row,
    best_flags,
    format_number,
    summarize,
    table_csv,
    table_markdown,
)

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
CATEGORY_FIELDS = ("categories", "class", "genre", "cuisine", "tags")  # first present = main category
TSNE_MAX_POINTS = 2000
RANDOM_PAIRS_SEED = 0


def _experiment_header(board: Leaderboard, title: str, seeds: Sequence[int], notes: Sequence[str], intro: Sequence[str]) -> List[str]:
    return [f"# {title}: {board.dataset}", "",
            f"- Seeds: {', '.join(map(str, seeds))}; mean ± sample std over seeds; every run selects its epoch on validation.",
            f"- Shared overrides: {', '.join(f'{k}={v}' for k, v in sorted(board.overrides.items()) if k not in ('show_progress', 'state')) or 'none'}.",
            f"- Date: {time.strftime('%Y-%m-%d %H:%M %Z')}.", *[f"- {n}" for n in notes], "", *intro, ""]


def _rows(board: Leaderboard, specs: Sequence[CellSpec], seeds: Sequence[int], labels: Optional[Dict[str, str]] = None) -> List[Row]:
    grouped = board.records_for(specs)
    rows = []
    for name, records in grouped.items():
        row = summarize((labels or {}).get(name, name), records, len(seeds))
        row.extra["cell"] = name
        rows.append(row)
    return rows


def _write_table(board: Leaderboard, stem: str, header: List[str], rows: Sequence[Row], extra: Sequence[Column] = (),
                 after: Sequence[str] = ()) -> Dict[str, str]:
    flags = best_flags(rows)
    paths = {"md": os.path.join(board.out_dir, f"{stem}.md"), "csv": os.path.join(board.out_dir, f"{stem}.csv")}
    atomic.write_text(paths["md"], "\n".join(header) + "\n" + table_markdown(rows, flags, extra) + "\n" + "\n".join(after) + "\n")
    atomic.write_text(paths["csv"], table_csv(rows, flags, extra))
    return paths


# -- 1. ablation ---------------------------------------------------------------------------
def ablation(board: Leaderboard, seeds: Sequence[int], notes: Sequence[str] = ()) -> Dict[str, str]:
    models = [model for _, model in ABLATION]
    specs = cells(models, seeds)
    board.run_cells(specs)
    losses = {model: label for label, model in ABLATION}
    rows = _rows(board, specs, seeds)
    extra = [Column("Losses", "losses", lambda r: losses[r.name])]
    header = _experiment_header(board, "Ablation of the contrastive losses", seeds, notes, [
        "Same DLRREC (co-trained reduction, same inputs) with the InfoNCE heads switched on one by one: "
        "w1 weights L_ii (item-item), w2 weights L_uu (user-user); 0 switches a head off."])
    paths = _write_table(board, "ablation", header, rows, extra)
    paths["png"] = plots.auc_bar_chart(rows, os.path.join(board.out_dir, "ablation.png"),
                                       title=f"Ablation: {board.dataset} (test AUC, mean ± std over {len(seeds)} seed(s))")
    return paths


# -- 2. reduction size ---------------------------------------------------------------------
def reduction_size(board: Leaderboard, seeds: Sequence[int], sizes: Sequence[int] = REDUCTION_SIZES,
                   notes: Sequence[str] = ()) -> Dict[str, str]:
    board.run_cells(cells(["DLRREC"], seeds))
    base = board.records_for(cells(["DLRREC"], seeds[:1]))["DLRREC"]
    base_dim = None
    if base and base[0].get("status") == "ok":
        base_dim = base[0]["result"]["config"].get("reduction_dim")
    specs, labels = [], {}
    for size in sizes:
        if base_dim is not None and int(base_dim) == int(size):
            name, settings = "DLRREC", {}
        else:
            name, settings = f"DLRREC-r{size}", {"reduction_dim": int(size)}
        labels[name] = f"R={size}"
        specs += [CellSpec(name, "DLRREC", seed, settings) for seed in seeds]
    specs.sort(key=lambda s: s.seed)
    board.run_cells(specs)
    rows = _rows(board, specs, seeds, labels)
    by_label = {r.name: r for r in rows}
    ordered = [by_label[f"R={size}"] for size in sizes]
    train_seconds, embedding = {}, {}
    for row in ordered:
        records = [r for r in board.records_for([s for s in specs if labels[s.name] == row.name])[row.extra["cell"]]
                   if r.get("status") == "ok"]
        train_seconds[row.name] = float(np.mean([r["result"]["timings"]["train_s"] for r in records])) if records else float("nan")
        if records:
            embedding[row.name] = int(records[0]["result"]["config"]["embedding_size"])
    extra = [Column("reduction_dim", "reduction_dim", lambda r: int(r.name[2:])),
             Column("bottleneck min(R, D)", "bottleneck", lambda r: min(int(r.name[2:]), embedding[r.name]) if r.name in embedding else None,
                    lambda v: "-" if v is None else str(v)),
             Column("Train s (total)", "train_seconds_mean", lambda r: train_seconds[r.name], lambda v: format_number(v, 1))]
    header = _experiment_header(board, "Reduction size", seeds, notes, [
        "DLRREC with the text reduction (text vector -> R) for R in " + ", ".join(map(str, sizes)) +
        " (everything else as the leaderboard's DLRREC"
        + (f", whose own R = {base_dim} is reused" if base_dim is not None else "") + "). "
        "The text reaches the interaction through min(R, D) numbers, D = embedding_size: the R -> D adapter "
        "cannot widen it, so only R below D narrows the text's path; R above D adds tower width only. "
        "Training time: mean seconds per epoch, and total training seconds (early stopping makes the epoch count differ)."])
    paths = _write_table(board, "reduction_size", header, ordered, extra)
    auc = [r.metrics.get("auc", (np.nan, np.nan)) for r in ordered]
    seconds = []
    for row in ordered:
        records = [r for r in board.records_for([s for s in specs if labels[s.name] == row.name])[row.extra["cell"]]
                   if r.get("status") == "ok"]
        values = [r["result"]["timings"]["seconds_per_epoch"] for r in records]
        seconds.append((np.mean(values) if values else np.nan, np.std(values, ddof=1) if len(values) > 1 else np.nan))
    paths["png"] = plots.reduction_size_chart(
        list(sizes), [a[0] for a in auc], [a[1] for a in auc], [s[0] for s in seconds], [s[1] for s in seconds],
        os.path.join(board.out_dir, "reduction_size.png"), title=f"Reduction size: {board.dataset} (mean ± std over {len(seeds)} seed(s))")
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
        f"to R = {config.get('reduction_dim')}, with {config.get('reduction_norm')} norm), all trainable; V0 reduces with a PCA "
        "projection fitted on the train split and frozen, stored as a buffer, so it adds no trainable parameters. "
        f"Both keep the same contrastive heads (w1 = {config.get('w1')}, w2 = {config.get('w2')}) and the same inputs."]
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
            f"({(count - target) / target:+.1%} against DLRREC): the extra capacity sits where V0 can train it.")
    else:
        explanation.append(f"The counts are within {PARAM_TOLERANCE:.0%}; no adjustment was needed.")
    specs.sort(key=lambda s: (s.seed, names.index(s.name)))
    rows = _rows(board, specs, seeds)
    rows.sort(key=lambda r: names.index(r.name))
    extra = [Column("Reduction", "reduction", lambda r: "co-trained MLP" if r.name == "DLRREC" else "frozen PCA (two-step)"),
             Column("top_mlp", "top_mlp", lambda r: str(top_mlp.get(r.name)))]
    header = _experiment_header(board, "Unified DLRREC against the two-step V0", seeds, notes, explanation)
    paths = _write_table(board, "v0_vs_unified", header, rows, extra)
    numbered = [r for r in rows if r.has_numbers]
    paths["png"] = plots.params_vs_auc_chart([r.name for r in numbered], [r.num_parameters or 0 for r in numbered],
                                             [r.metrics["auc"][0] for r in numbered], [r.metrics["auc"][1] for r in numbered],
                                             os.path.join(board.out_dir, "v0_vs_unified.png"),
                                             title=f"Unified vs two-step V0: {board.dataset}")
    return paths


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
    return {"pairs": int(left.size), "cos_swing": float(swing.mean()), "cos_top1": float(top1.mean()),
            "cos_random": float(rand.mean()), "gap": float(swing.mean() - rand.mean())}


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
                n_components=2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(reps)
    return panels


def _swing_audit_intro(config, seed: int, summary: dict, cl_repr: str, n_items: int, field) -> List[str]:
    """swing_audit.md's text above the cosine table: SWING's settings and its neighbour counts."""
    quantile_keys = SWING_QUANTILE_KEYS
    intro = [
        f"SWING on the TRAIN split of seed {seed} (swing_topk={config['swing_topk']}, swing_alpha={config['swing_alpha']}, "
        f"swing_edges={config['swing_edges']}). Histogram: `swing_hist.png`.", "",
        "| Side | Nodes | With neighbours | Mean neighbours | " + " | ".join(quantile_keys) + " |",
        "|---|---|---|---|" + "---|" * len(quantile_keys),
    ]
    for side, info in summary.items():
        quantiles = info.get("score_quantiles") or {}
        intro.append(f"| {side} | {info['nodes']} | {info['with_neighbours']} | {info['mean_neighbours']:.1f} | "
                     + " | ".join(f"{quantiles[k]:.4g}" if k in quantiles else "n/a" for k in quantile_keys) + " |")
    intro += ["",
              f"Cosine of the contrasted representation (cl_repr = {cl_repr}) from each model's best checkpoint: all kept "
              "SWING neighbour pairs (and top-1 only) against as many random pairs from the same anchors. A contrastive "
              "effect shows as a larger gap with L_ii/L_uu than without. t-SNE: `tsne_items.png` "
              f"({n_items} items, coloured by the first token of `{field}`)."]
    return intro


def _write_swing_audit_tables(board: Leaderboard, seed: int, notes: Sequence[str], intro: List[str],
                              cosine_rows: List[dict], summary: dict) -> Dict[str, str]:
    """swing_audit.md / .csv (the cosine table) and swing_summary.csv (neighbour counts)."""
    quantile_keys = SWING_QUANTILE_KEYS
    paths = {}
    lines = ["| Model | Contrastive | Side | Pairs | cos SWING pairs | cos top-1 | cos random pairs | Gap |",
             "|---|---|---|---|---|---|---|---|"]
    for r in cosine_rows:
        lines.append(f"| {r['model']} | {r['contrastive']} | {r['side']} | {r['pairs']} | {r['cos_swing']:.4f} | "
                     f"{r['cos_top1']:.4f} | {r['cos_random']:.4f} | {r['gap']:+.4f} |")
    header = _experiment_header(board, "SWING audit", [seed], notes, intro)
    paths["md"] = atomic.write_text(os.path.join(board.out_dir, "swing_audit.md"), "\n".join(header + lines) + "\n")
    keys = ["model", "contrastive", "side", "pairs", "cos_swing", "cos_top1", "cos_random", "gap"]
    csv_lines = [",".join(keys)] + [",".join(str(round(r[k], 6)) if isinstance(r[k], float) else str(r[k]) for k in keys)
                                    for r in cosine_rows]
    paths["csv"] = atomic.write_text(os.path.join(board.out_dir, "swing_audit.csv"), "\n".join(csv_lines) + "\n")
    summary_lines = ["side,nodes,with_neighbours,mean_neighbours," + ",".join(quantile_keys)]
    for side, info in summary.items():
        quantiles = info.get("score_quantiles") or {}
        summary_lines.append(f"{side},{info['nodes']},{info['with_neighbours']},{info['mean_neighbours']:.4f},"
                             + ",".join(f"{quantiles[k]:.6g}" if k in quantiles else "" for k in quantile_keys))
    paths["summary_csv"] = atomic.write_text(os.path.join(board.out_dir, "swing_summary.csv"),
                                             "\n".join(summary_lines) + "\n")
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
    paths = {"hist": plot_score_histogram(neighbours, os.path.join(board.out_dir, "swing_hist.png"),
                                          similarity=config["cl_similarity"])}
    summary = swing_summary(neighbours)

    models = {name: _checkpoint_model(board, name, seed, train_data) for name in ("DLRREC", "DLRREC-noCL")}
    cosine_rows = []
    for name, model in models.items():
        for side, table, n_nodes in (("item", neighbours.items, train.item_num), ("user", neighbours.users, train.user_num)):
            cosine_rows.append({"model": name, "contrastive": "yes" if name == "DLRREC" else "no", "side": side,
                                **pair_cosines(model, side, table, n_nodes)})

    field, categories = main_categories(dataset)
    item_ids = np.arange(1, train.item_num)
    if item_ids.size > TSNE_MAX_POINTS:
        item_ids = np.sort(np.random.default_rng(seed).choice(item_ids, TSNE_MAX_POINTS, replace=False))
    panels = _tsne_panels(models, item_ids, seed)
    cl_repr = models["DLRREC"].cl_repr
    paths["tsne"] = plots.tsne_chart(panels, categories[item_ids], os.path.join(board.out_dir, "tsne_items.png"),
                                     title=f"t-SNE of item representations ({cl_repr}), {board.dataset}, seed {seed}; "
                                           f"colour: main {field or 'category'}")
    paths["cosine_png"] = plots.cosine_gap_chart(cosine_rows, os.path.join(board.out_dir, "swing_cosine.png"),
                                                 title=f"Mean cosine of {cl_repr} representations: SWING pairs vs random pairs")
    intro = _swing_audit_intro(config, seed, summary, cl_repr, item_ids.size, field)
    paths.update(_write_swing_audit_tables(board, seed, notes, intro, cosine_rows, summary))
    return paths


EXPERIMENTS: Dict[str, Callable] = {
    "ablation": ablation,
    "reduction_size": reduction_size,
    "v0_vs_unified": unified_vs_v0,
    "swing_audit": swing_audit,
}


# Experiments that train cells of their own (the others reuse the leaderboard's cells).
TRAINS_NEW_CELLS = ("reduction_size", "v0_vs_unified")


def run_all(board: Leaderboard, seeds: Sequence[int], notes: Sequence[str] = (),
            which: Sequence[str] = tuple(EXPERIMENTS), new_cell_seeds: Optional[Sequence[int]] = None) -> Dict[str, dict]:
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
            atomic.write_text(os.path.join(board.out_dir, f"{name}.md"),
                              f"# {name}: {board.dataset}\n\nFailed: {type(exc).__name__}: {message}\n\n```\n"
                              f"{traceback.format_exc()[-3000:]}```\n")
            out[name] = {"error": f"{type(exc).__name__}: {message}"}
    return out
