"""DLRREC against DLRM at their defaults on a small real file: do the defaults hold on small data?

A user's first run is often on a small file of their own, where an epoch is one or two batches.
This benchmark takes the first ``--rows`` review lines (default 5,000; with ``--every N``, every
N-th line, so a small file with many businesses) of the real Google Local data
(``../shared/data/google-local-hi-ms`` beside the checkout, read only; the script stops with a message when it
is absent), converts them with the project's converter (time split 0.8 / 0.1 / 0.1,
text vectors from the bundled encoder) into ``--workdir`` (default /tmp/bench_small_data, never
the repository), and trains, for each of ``--seeds`` (default 2020-2022):

    DLRM                 at its defaults
    DLRM / DLRREC (old)  at the defaults before min_steps (OLD_DEFAULTS)
    DLRREC               DLRREC at its defaults

Validation AUC is what a choice would rest on; test AUC is reported only. Steps = epochs run x
batches per epoch. Prints a table (and writes it to ``--out``, atomically) with the machine and
its load: the runs share the CPU with whatever else runs, so the seconds are only indicative.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import statistics
import sys
import time
from typing import Dict, List, Tuple

from bench_common import machine_info

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL_DATA = os.path.join(ROOT, "..", "shared", "data", "google-local-hi-ms")

# The run defaults before min_steps (properties/overall.yaml): the "(old)" rows restore them.
OLD_DEFAULTS: Dict[str, object] = {"min_steps": None}

ROWS: Dict[str, Tuple[str, Dict[str, object]]] = {
    "DLRM (old)": ("DLRM", OLD_DEFAULTS),
    "DLRM": ("DLRM", {}),
    "DLRREC (old)": ("DLRREC", OLD_DEFAULTS),
    "DLRREC": ("DLRREC", {}),
}


def build_slice(rows: int, every: int, workdir: str) -> Tuple[str, str, dict]:
    """(data_path, dataset name, the converter's report) for the first `rows` review lines, or,
    with `every` > 1, every `every`-th line of the first `rows` x `every`."""
    from recbole_dlrrec.cli.convert import main as convert

    name = f"gl-first{rows}" if every == 1 else f"gl-every{every}-{rows}"
    data_path = os.path.join(workdir, "data")
    report_path = os.path.join(data_path, name, "REPORT.json")
    if not os.path.isfile(report_path):
        raw = os.path.join(workdir, "raw")
        os.makedirs(raw, exist_ok=True)
        reviews = os.path.join(raw, f"{name}.json")
        with gzip.open(os.path.join(REAL_DATA, "reviews.json.gz"), "rt", encoding="utf-8") as src:
            lines = [line for number, line in zip(range(rows * every), src) if (number + 1) % every == 0]
        with open(reviews, "w", encoding="utf-8") as dst:
            dst.writelines(lines)
        argv = ["--reviews", reviews, "--meta", os.path.join(REAL_DATA, "meta.json.gz")]
        argv += ["--name", name, "--out", data_path, "--quiet", "--force"]
        if convert(argv) != 0:
            raise SystemExit(f"converting the first {rows} lines failed")
    with open(report_path, encoding="utf-8") as handle:
        return data_path, name, json.load(handle)


def run_cell(model: str, overrides: dict, dataset: str, data_path: str, seed: int, workdir: str, n_train: int) -> dict:
    """One run's validation and test AUC, epochs, best epoch, optimizer steps and seconds."""
    from recbole_dlrrec.runtime.quick_start import run

    settings = {"data_path": data_path, "seed": seed, "state": "WARNING", "show_progress": False}
    settings["checkpoint_dir"] = os.path.join(workdir, "saved")
    started = time.time()
    tag = "-".join(f"{key}={value}" for key, value in sorted(overrides.items())) or "defaults"
    out = os.path.join(workdir, "runs", dataset, f"{model}-{tag}-{seed}.json")
    result = run(model, dataset, config_dict={**settings, **overrides}, result_file=out)
    per_epoch = math.ceil(n_train / int(result["config"]["train_batch_size"]))
    return {
        "valid": result["valid_result"]["auc"],
        "test": result["test_result"]["auc"],
        "epochs": len(result["epochs"]),
        "best_epoch": result["best_epoch"],
        "steps": len(result["epochs"]) * per_epoch,
        "seconds": time.time() - started,
    }


def mean_sd(values: List[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f}"


def table(cells: Dict[str, List[dict]], seeds: List[int]) -> List[str]:
    lines = ["| model | valid AUC | test AUC | steps | epochs | per seed: valid / test (best epoch / epochs) |"]
    lines.append("|---|---|---|---|---|---|")
    for name, runs in cells.items():
        per_seed = "; ".join(
            f"{seed}: {r['valid']:.4f} / {r['test']:.4f} ({r['best_epoch']}/{r['epochs']})"
            for seed, r in zip(seeds, runs)
        )
        steps = "/".join(str(r["steps"]) for r in runs)
        epochs = "/".join(str(r["epochs"]) for r in runs)
        valid, test = mean_sd([r["valid"] for r in runs]), mean_sd([r["test"] for r in runs])
        lines.append(f"| {name} | {valid} | {test} | {steps} | {epochs} | {per_seed} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000, help="review lines kept")
    parser.add_argument("--every", type=int, default=1, help="keep every N-th line (default 1: the first --rows)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2020, 2021, 2022])
    parser.add_argument("--workdir", default="/tmp/bench_small_data")
    parser.add_argument("--out", default=None, help="also write the table here")
    parser.add_argument("--only", nargs="*", choices=sorted(ROWS), default=sorted(ROWS, key=list(ROWS).index))
    parser.add_argument("--variants", nargs="*", default=[], help="more rows: models or DLRREC variants at defaults")
    args = parser.parse_args(argv)
    if not os.path.isfile(os.path.join(REAL_DATA, "reviews.json.gz")):
        print(f"real Google Local data not found at {REAL_DATA}: nothing to measure", file=sys.stderr)
        return 2
    started = time.time()
    data_path, dataset, report = build_slice(args.rows, args.every, args.workdir)
    n_train = int(report["splits"]["train"]["interactions"])
    cells = {
        name: [run_cell(*ROWS[name], dataset, data_path, seed, args.workdir, n_train) for seed in args.seeds]
        for name in args.only
    }
    for name in args.variants:
        cells[name] = [run_cell(name, {}, dataset, data_path, seed, args.workdir, n_train) for seed in args.seeds]
    info = machine_info("cpu")
    what = f"the first {args.rows} review lines" if args.every == 1 else f"{args.rows} lines, every {args.every}-th"
    splits = ", ".join(f"{name} {split['interactions']}" for name, split in report["splits"].items())
    lines = [
        "# Small real data: DLRREC vs DLRM at defaults "
        f"(python benchmarks/bench_small_data.py --rows {args.rows} --every {args.every})",
        "",
        f"Data: {what} of google-local-hi-ms, converted by the project's converter "
        f"({splits} rows; {math.ceil(n_train / 2048)} batches of 2048 per epoch). "
        f"Seeds {', '.join(map(str, args.seeds))}. "
        "Validation AUC decides; test AUC is reported only.",
        f"(old): the model with {OLD_DEFAULTS} (the run defaults before min_steps).",
        "",
        *table(cells, args.seeds),
        "",
        f"Machine: {info['cpu']}, {info['cpu_count']} cores, torch {info['torch']} ({info['torch_threads']} threads), "
        f"load average {info.get('load_avg')}, niceness {info['niceness']}; wall {time.time() - started:.0f} s.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        from recbole_dlrrec import atomic

        atomic.write_text(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
