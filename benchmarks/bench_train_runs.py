"""The runs bench_train.py times and how their speeds are compared: RUNS (model + config),
the step variants (--variants), and the paired ratios of samples/s (median over rounds).
"""

from __future__ import annotations

import statistics
from typing import Dict, List, Optional

# name -> (model, config overrides). The first four are the headline runs.
RUNS: Dict[str, tuple] = {
    "DeepFM standard": ("DeepFM", {"fast_dataloader": False}),
    "DLRREC standard": ("DLRREC", {"fast_dataloader": False}),
    "DLRREC fast": ("DLRREC", {"fast_dataloader": True}),
    "DeepFM fast": ("DeepFM", {"fast_dataloader": True}),
    "DLRREC fast fp32": ("DLRREC", {"fast_dataloader": True, "train_precision": "fp32"}),
    "DLRREC fast random/512": ("DLRREC", {"fast_dataloader": True, "cl_negatives": "random", "cl_max_anchors": 512}),
    "DLRREC fast shared/512": ("DLRREC", {"fast_dataloader": True, "cl_negatives": "shared", "cl_max_anchors": 512}),
    "DLRREC fast random/all": ("DLRREC", {"fast_dataloader": True, "cl_negatives": "random", "cl_max_anchors": None}),
    "DLRREC fast shared/all": ("DLRREC", {"fast_dataloader": True, "cl_negatives": "shared", "cl_max_anchors": None}),
    "DLRREC fast no heads": ("DLRREC", {"fast_dataloader": True, "w1": 0.0, "w2": 0.0}),
}
MAIN_RUNS = list(RUNS)[:5]
# (label, numerator run, denominator run, target or None)
RATIOS = [
    ("DeepFM fast / DeepFM standard", "DeepFM fast", "DeepFM standard", 3.0),
    ("DLRREC fast / DLRREC standard", "DLRREC fast", "DLRREC standard", 2.0),
    ("DLRREC fast / DeepFM standard", "DLRREC fast", "DeepFM standard", 1.0),
    ("DLRREC fast fp32 / DeepFM standard", "DLRREC fast fp32", "DeepFM standard", None),
    ("DLRREC fast / DLRREC fast fp32", "DLRREC fast", "DLRREC fast fp32", None),
    ("DLRREC fast shared/512 / random/512", "DLRREC fast shared/512", "DLRREC fast random/512", None),
    ("DLRREC fast random/all / random/512", "DLRREC fast random/all", "DLRREC fast random/512", None),
    ("DLRREC fast shared/all / shared/512", "DLRREC fast shared/all", "DLRREC fast shared/512", None),
    ("DLRREC fast no heads / random/512", "DLRREC fast no heads", "DLRREC fast random/512", None),
    ("DLRREC fast no heads / shared/512", "DLRREC fast no heads", "DLRREC fast shared/512", None),
    ("DLRREC fast no heads / DeepFM standard", "DLRREC fast no heads", "DeepFM standard", None),
]
SCALING_RUNS = ["DeepFM standard", "DLRREC fast"]
# The headline target measured again with every run in a fresh process (what a user's
# run_recbole.py is): a long-lived session process carries allocator state from run to run, which
# moved same-config runs by up to ~25% on the 2M-row data.
FRESH_RUNS = ["DeepFM standard", "DLRREC fast"]
FRESH_WARMUP_BATCHES = 5
VARIANT_OPTIONS = {
    "plain": {},
    "fused": {"fused_adam": True},
    "compile": {"compile": "default"},
    "cudagraphs": {"compile": "reduce-overhead"},  # torch.compile with CUDA graphs
    "max-autotune": {"compile": "max-autotune"},
    "amp": {"amp": True},  # train_precision: bf16
}


def variant_options(variant: str) -> dict:
    """'fused+cudagraphs' -> {'fused_adam': True, 'compile': 'reduce-overhead'}."""
    options = {}
    for part in variant.split("+"):
        if part not in VARIANT_OPTIONS:
            raise SystemExit(f"unknown variant part {part!r}; known: {sorted(VARIANT_OPTIONS)}")
        options.update(VARIANT_OPTIONS[part])
    return options


def expand_runs(runs: List[str], variants: List[str]) -> List[tuple]:
    """(label, base run, step options): every run plain, plus each variant of the fast headline runs."""
    out = [(run, run, {}) for run in runs]
    for variant in variants:
        if variant == "plain":
            continue
        for run in ("DLRREC fast", "DeepFM fast"):
            if run in runs:
                out.append((f"{run} [{variant}]", run, variant_options(variant)))
    return out


def summarise(rec: dict) -> None:
    """A run's medians over rounds: s/epoch, samples/s, eval samples/s, AUC mean and sd over seeds."""
    if not rec["epoch_s"]:
        return
    rec["median_epoch_s"] = rec["epoch_s_full"] = statistics.median(rec["rounds"].values())
    rec["samples_per_s"] = rec["rows_per_epoch"] / rec["median_epoch_s"]
    rec["extrapolated"] = rec["rows_timed"] < rec["rows_per_epoch"]
    if rec.get("eval_times"):
        rec["eval_s"] = statistics.median(rec["eval_times"])
        rec["eval_samples_per_s"] = rec["eval_rows"] / rec["eval_s"]
    for key in ("valid_auc", "valid_auc_best", "test_auc"):
        values = [v for v in rec.get(f"{key}_rounds", []) if v is not None]
        if values:
            rec[key] = sum(values) / len(values)
        if len(values) > 1:
            rec[f"{key}_sd"] = statistics.stdev(values)


def eval_ratios(records: dict) -> dict:
    """Evaluation (valid split) samples/s, fast over standard, from the evaluated rounds."""
    out = {}
    for model in ("DeepFM", "DLRREC"):
        fast, std = records.get(f"{model} fast", {}), records.get(f"{model} standard", {})
        if fast.get("eval_samples_per_s") and std.get("eval_samples_per_s"):
            out[f"{model} fast / {model} standard (eval)"] = fast["eval_samples_per_s"] / std["eval_samples_per_s"]
    return out


def paired_ratios(records: dict) -> dict:
    """Speed ratio numerator/denominator (samples/s) per round, then the median over rounds."""
    out = {}
    for label, num, den, target in RATIOS:
        if num not in records or den not in records:
            continue
        a, b = records[num]["rounds"], records[den]["rounds"]
        rows_a, rows_b = records[num].get("rows_per_epoch"), records[den].get("rows_per_epoch")
        per_round = [(rows_a / a[r]) / (rows_b / b[r]) for r in sorted(set(a) & set(b))]
        if per_round:
            out[label] = {
                "median": statistics.median(per_round),
                "min": min(per_round),
                "max": max(per_round),
                "rounds": len(per_round),
                "target": target,
                "met": None if target is None else statistics.median(per_round) >= target,
            }
    return out


def fresh_ratio(points: List[dict], num: str, den: str) -> Optional[dict]:
    """samples/s of `num` over `den`, per round (both in fresh processes), then the median."""
    rates = {(p["round"], p["run"]): p["samples_per_s"] for p in points if p.get("samples_per_s")}
    per_round = [
        rates[(r, num)] / rates[(r, den)]
        for r in sorted({r for r, _ in rates})
        if (r, num) in rates and (r, den) in rates
    ]
    if not per_round:
        return None
    return {
        "label": f"{num} / {den}",
        "median": statistics.median(per_round),
        "min": min(per_round),
        "max": max(per_round),
        "rounds": len(per_round),
        "rates": {
            run: statistics.median(
                [p["samples_per_s"] for p in points if p["run"] == run and p.get("samples_per_s")] or [0.0]
            )
            for run in (num, den)
        },
    }
