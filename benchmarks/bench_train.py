"""Training-speed benchmark: RecBole's standard loaders against recbole_dlrrec.runtime.fast_loader.

    python benchmarks/bench_train.py [--device cpu|cuda] [--rows N] [--batch B] [--quick]
        [--repeats R] [--epochs E] [--max-batches K] [--fused-adam] [--compile [MODE]]
        [--check] [--save PREFIX] [--plot PNG]

What runs (all through RecBole's own Trainer and Evaluator; only the loaders differ):

    DeepFM standard   RecBole's DeepFM, RecBole's TrainDataLoader / NegSampleEvalDataLoader
    DLRREC standard   DLRREC with its defaults (properties/model/DLRREC.yaml: towers + contrastive
                      heads) on RecBole's loaders
    DLRREC fast       the same DLRREC on the fast loaders (join once, slice on the device)
    DeepFM fast       the same DeepFM on the fast loaders
    DLRREC fast fp32  DLRREC fast with train_precision: fp32 (DLRREC's default 'auto' trains under
                      bf16 autocast on CPUs with AVX512-BF16/AMX: recbole_dlrrec/precision.py;
                      RecBole's DeepFM keeps RecBole's float32)
  contrastive-head cost, all DLRREC on the fast loaders (cl_negatives / cl_max_anchors):
    DLRREC fast random/512    cl_num_negatives fresh corpus ids per anchor, at most 512 anchors
    DLRREC fast shared/512    one pool of cl_num_negatives ids per batch, at most 512 anchors
    DLRREC fast random/all    every distinct id of the batch is an anchor (cl_max_anchors: null)
    DLRREC fast shared/all    both
    DLRREC fast no heads      w1 = w2 = 0 (towers only)

on two datasets: the bundled `restaurants` and a generated one of --rows interactions in the same
layout (user/item token features, a token_seq, float features, 384-d user and item text vectors;
written once under --data-dir, default build/bench-data/, which git ignores). Every dataset is
loaded once in its own process; the runs then take turns (round r starts at run r), each time
with a fresh model from the same seed, and the table shows medians over the --repeats rounds.
The speed-up ratios are medians of the per-round ratios, so a noisy neighbour on a shared CPU
slows both sides of a ratio alike. On the generated data an "epoch" is the first --max-batches
batches (say so in the table: s/epoch is then rows / (samples/s), marked "~").

Measured per run: training samples/s and seconds per epoch (Trainer._train_epoch only), eval
seconds (valid split), peak RSS of the process during the run (the loaded dataset included;
CUDA: max allocated too), valid and test AUC after the timed epochs (with the same seed, the CPU
fast path trains on the very batches of the standard path, so their AUCs agree).
Scaling: one process per size (0.1M .. --rows) and per run (DeepFM standard, DLRREC fast) loads,
joins and trains; its peak RSS and its time go into --plot (results/bench/scaling.png), and the
slope of peak RSS against rows is reported in MiB per million rows.
Text encoder: sentences/s of recbole_dlrrec.data.encoder.TextEncoder (all-MiniLM-L6-v2) with its
cache in a temporary directory, so every sentence is encoded.
--check: exactness checks on the chosen device (join == RecBole's join for every row, one epoch
holds every row once, same seed -> same order) before any timing.

Prints a table and, last, one JSON line. --save PREFIX also writes PREFIX.txt and PREFIX.json.
--quick: tiny sizes for the CI smoke test (generated data only, one round, no timing targets).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Optional

from bench_common import linear_fit, machine_info
from bench_train_data import DEFAULT_DATA_DIR, TEXT_DIM, write_generated_dataset
from bench_train_report import plot_scaling, render
from bench_train_runs import (
    FRESH_RUNS,
    FRESH_WARMUP_BATCHES,
    MAIN_RUNS,
    RUNS,
    SCALING_RUNS,
    fresh_ratio,
    variant_options,
)
from bench_train_workers import WORKERS

from recbole_dlrrec import atomic


def launch(kind: str, spec: dict, timeout: Optional[float] = None) -> dict:
    """Run one worker in a fresh Python process (its own peak RSS); returns its JSON or an error
    (with whatever the worker had finished, when it wrote partial results)."""
    if timeout is not None and timeout <= 0:
        return {"error": f"{kind} worker skipped: time budget spent"}
    fd, out_path = tempfile.mkstemp(prefix="bench-train-", suffix=".json")
    os.close(fd)
    os.remove(out_path)
    spec = {**spec, "partial_out": out_path}
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        kind,
        "--spec",
        json.dumps(spec),
        "--worker-out",
        out_path,
    ]
    env = dict(os.environ)
    # libgomp's default active spin-wait makes OpenMP threads stall each other on shared cores
    # (5-10x slower steps measured here), and numba's SWING kernels resize torch's OpenMP team.
    env.setdefault("OMP_WAIT_POLICY", "passive")
    error = None
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout, env=env)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            error = f"{kind} worker exited {proc.returncode}: {' | '.join(tail)[:400]}"
    except subprocess.TimeoutExpired:
        error = f"{kind} worker timed out after {timeout:.0f} s"
    try:
        with open(out_path, encoding="utf-8") as handle:
            result = json.load(handle)
    except (OSError, ValueError):
        result = {}
    finally:
        with contextlib.suppress(OSError):
            os.remove(out_path)
    if error:
        result["error"] = error
    return result


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--rows", type=int, default=None, help="rows of the generated dataset (default 2,000,000)")
    parser.add_argument("--batch", type=str, default=None, help="train batch size(s), comma list (default 4096)")
    parser.add_argument(
        "--variants",
        default="plain",
        help="comma list of step variants also timed for DLRREC fast and DeepFM fast: plain, fused, amp, "
        "compile, cudagraphs, max-autotune, or '+' combinations (e.g. fused+cudagraphs)",
    )
    parser.add_argument("--eval-batch", type=int, default=None, help="eval batch size (default 16384)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes for the CI smoke test")
    parser.add_argument("--repeats", type=int, default=None, help="rounds per dataset (default 3)")
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs per run and round")
    parser.add_argument(
        "--max-batches",
        type=int,
        default=None,
        help="batches per epoch on the generated dataset (default 20; 0 = full epochs)",
    )
    parser.add_argument("--warmup-batches", type=int, default=None, help="untimed batches before each run (default 2)")
    parser.add_argument("--datasets", default=None, help="comma list of restaurants, generated, or dataset names")
    parser.add_argument("--runs", default=None, help="comma list of run names (default: all)")
    parser.add_argument(
        "--scaling", default=None, help="comma list of row counts, '' = none (default 0.1M,0.5M,1M,rows)"
    )
    parser.add_argument("--scaling-max-batches", type=int, default=None, help="batches per scaling epoch (default 10)")
    parser.add_argument(
        "--fresh-rounds",
        type=int,
        default=None,
        help="rounds of the fresh-process headline check per dataset (default 3; --quick 1; 0 = skip)",
    )
    parser.add_argument(
        "--encoder-sentences", type=int, default=None, help="sentences for the encoder (default 512; 0 = skip)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads in the workers (default: 1 on cpu, where the cores are shared "
        "and torch's OpenMP threads stall each other; torch's default on cuda)",
    )
    parser.add_argument(
        "--seed-per-round",
        action="store_true",
        help="round r uses seed + r and every round is evaluated (AUC mean and sd over seeds)",
    )
    parser.add_argument("--fused-adam", action="store_true", help="Adam(fused=True) in place of RecBole's Adam")
    parser.add_argument(
        "--compile",
        nargs="?",
        const="default",
        default=None,
        help="torch.compile the model's forward (mode: default | reduce-overhead | max-autotune)",
    )
    parser.add_argument("--check", action="store_true", help="exactness checks on the device first")
    parser.add_argument(
        "--time-budget",
        type=float,
        default=None,
        help="seconds for the whole benchmark: later runs and steps are skipped (and said so) "
        "once it is spent; what finished is reported and saved",
    )
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="where generated datasets live")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--save", default=None, help="also write PREFIX.txt and PREFIX.json")
    parser.add_argument("--plot", default=None, help="scaling PNG (default results/bench/scaling.png; --quick: none)")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def settings_from(args) -> dict:
    """Every size and count of the run: --quick picks tiny ones, else the full benchmark's."""
    quick = args.quick
    rows = args.rows or (2000 if quick else 2_000_000)
    variants = [v for v in args.variants.split(",") if v]
    for variant in variants:
        variant_options(variant)  # fail early on a typo
    runs = args.runs.split(",") if args.runs else (MAIN_RUNS + ["DLRREC fast no heads"] if quick else list(RUNS))
    unknown = [r for r in runs if r not in RUNS]
    if unknown:
        raise SystemExit(f"unknown run(s) {unknown}; known: {list(RUNS)}")
    if args.scaling is None:
        scaling = [rows // 2, rows] if quick else sorted({100_000, 500_000, 1_000_000, rows})
    else:
        scaling = [int(float(x)) for x in args.scaling.split(",") if x.strip()]
    return {
        "quick": quick,
        "rows": rows,
        "batches": [int(b) for b in (args.batch or ("256" if quick else "4096")).split(",")],
        "variants": variants,
        "eval_batch": args.eval_batch or (1024 if quick else 16384),
        "repeats": args.repeats or (1 if quick else 3),
        "max_batches": args.max_batches if args.max_batches is not None else (0 if quick else 20),
        "warmup": args.warmup_batches if args.warmup_batches is not None else (1 if quick else 2),
        "datasets": (args.datasets or ("generated" if quick else "restaurants,generated")).split(","),
        "runs": runs,
        "scaling": scaling,
        "scaling_batches": args.scaling_max_batches if args.scaling_max_batches is not None else (0 if quick else 10),
        "sentences": args.encoder_sentences if args.encoder_sentences is not None else (8 if quick else 512),
        "plot_path": args.plot or (None if quick else os.path.join("results", "bench", "scaling.png")),
        "threads": args.threads if args.threads is not None else (1 if args.device == "cpu" else None),
        "fresh_rounds": args.fresh_rounds if args.fresh_rounds is not None else (1 if quick else 3),
    }


class Benchmark:
    """One benchmark run: launches the workers step by step and keeps the report, saved after
    every step (--save) so that a killed run keeps what it finished."""

    def __init__(self, args, settings: dict, tmp: str):
        self.args, self.s = args, settings
        self.common = {
            "device": args.device,
            "batch": settings["batches"][0],
            "eval_batch": settings["eval_batch"],
            "epochs": args.epochs,
            "seed": args.seed,
            "tmp": tmp,
            "threads": settings["threads"],
            "fused_adam": args.fused_adam,
            "seed_per_round": args.seed_per_round,
            "compile": args.compile,
            "warmup_batches": settings["warmup"],
        }
        self.report = {
            "machine": machine_info(args.device),
            "params": {
                "rows": settings["rows"],
                "batch": settings["batches"][0],
                "batches": settings["batches"],
                "variants": settings["variants"],
                "eval_batch": settings["eval_batch"],
                "repeats": settings["repeats"],
                "epochs": args.epochs,
                "max_batches_generated": settings["max_batches"],
                "warmup_batches": settings["warmup"],
                "seed": args.seed,
                "fused_adam": args.fused_adam,
                "compile": args.compile,
                "quick": settings["quick"],
                "threads": settings["threads"],
                "seed_per_round": args.seed_per_round,
            },
            "sessions": [],
            "scaling": [],
        }
        self.started = time.perf_counter()
        self.deadline = time.time() + args.time_budget if args.time_budget else None

    def remaining(self) -> Optional[float]:
        return None if self.deadline is None else self.deadline - time.time()

    def finish(self, final: bool) -> dict:
        report = self.report
        report["total_s"] = time.perf_counter() - self.started
        report["complete"] = final
        report["targets"] = {
            f"{s['dataset']} batch {b}: {label}": {"ratio": r["median"], "target": r["target"], "met": r["met"]}
            for s in report["sessions"]
            for b, block in s.get("batches", {}).items()
            for label, r in block["ratios"].items()
            if r["target"] is not None
        }
        for fresh in report.get("fresh", []):
            if fresh.get("ratio"):
                report["targets"][f"{fresh['dataset']} fresh processes: {fresh['ratio']['label']}"] = {
                    "ratio": fresh["ratio"]["median"],
                    "target": 1.0,
                    "met": fresh["ratio"]["median"] >= 1.0,
                }
        text = render(report)
        line = json.dumps(report, default=str, sort_keys=True)
        if self.args.save:  # also after every step, so a killed run keeps what it finished
            atomic.write_text(self.args.save + ".txt", text + line + "\n")
            atomic.write_text(
                self.args.save + ".json", json.dumps(report, default=str, sort_keys=True, indent=2) + "\n"
            )
        if final:
            print(text, end="")
            print(line)
        return report

    def progress(self, what: str) -> None:
        print(f"[{time.perf_counter() - self.started:6.0f} s] {what}", file=sys.stderr, flush=True)
        self.finish(False)

    def sessions(self, names: list) -> None:
        """Per dataset: its SWING cache outside the timing, then one session worker."""
        runs = self.s["runs"]
        for name, path, limit in names:
            if not self.s["quick"] and any(RUNS[r][0] == "DLRREC" for r in runs):  # --quick: timings are not the point
                prepared = launch("prepare", {**self.common, "dataset": name, "data_path": path}, self.remaining())
                if "error" in prepared:
                    print(f"prepare {name}: {prepared['error']}", file=sys.stderr)
            spec = {
                **self.common,
                "dataset": name,
                "data_path": path,
                "runs": runs,
                "repeats": self.s["repeats"],
                "max_batches": limit or None,
                "batches": self.s["batches"],
                "variants": self.s["variants"],
                "deadline": self.deadline,
            }
            session = launch("session", spec, None if self.deadline is None else self.remaining() + 60)
            session.setdefault("dataset", name)
            session["max_batches"] = limit or None
            self.report["sessions"].append(session)
            self.progress(f"{name} done")

    def fresh(self, names: list) -> None:
        """The headline pair again, every run in a fresh process, alternating."""
        for name, path, limit in names if self.s["fresh_rounds"] else ():
            points = []
            for round_idx in range(self.s["fresh_rounds"]):
                order = FRESH_RUNS if round_idx % 2 == 0 else FRESH_RUNS[::-1]
                for run in order:
                    point = launch(
                        "scaling",
                        {
                            **self.common,
                            "dataset": name,
                            "data_path": path,
                            "rows": None,
                            "run": run,
                            "max_batches": limit or None,
                            "fresh_warmup": FRESH_WARMUP_BATCHES,
                        },
                        self.remaining(),
                    )
                    points.append({**point, "run": run, "round": round_idx})
            self.report.setdefault("fresh", []).append(
                {"dataset": name, "points": points, "ratio": fresh_ratio(points, *FRESH_RUNS[::-1])}
            )
            self.progress(f"{name} fresh-process check done")

    def scaling(self, generated: dict) -> None:
        """One fresh process per size and run; the peak RSS per million rows; the plot."""
        runs, data_dir = self.s["runs"], self.args.data_dir
        scaling_runs = ["DeepFM standard"] if self.s["quick"] else ([r for r in SCALING_RUNS if r in runs] or runs[:1])
        for n in self.s["scaling"]:
            name = generated[n]
            marker = os.path.join(data_dir, name, "SWING_READY")
            if any(RUNS[r][0] == "DLRREC" for r in scaling_runs) and not os.path.isfile(marker):
                launch(
                    "prepare", {**self.common, "dataset": name, "data_path": data_dir, "marker": True}, self.remaining()
                )
            for run in scaling_runs:
                point = launch(
                    "scaling",
                    {
                        **self.common,
                        "dataset": name,
                        "data_path": data_dir,
                        "rows": n,
                        "run": run,
                        "max_batches": self.s["scaling_batches"] or None,
                    },
                    self.remaining(),
                )
                point.setdefault("run", run)
                point.setdefault("rows", n)
                self.report["scaling"].append(point)
        fits = {}
        for run in scaling_runs:
            pts = [p for p in self.report["scaling"] if p.get("run") == run and "error" not in p]
            fit = linear_fit([p["rows"] / 1e6 for p in pts], [p["peak_rss_mib"] for p in pts])
            if fit:
                fits[run] = fit
        self.report["memory_per_million_rows"] = fits
        if self.s["plot_path"] and self.report["scaling"]:
            self.report["plot"] = plot_scaling(self.report["scaling"], self.s["plot_path"])
        if self.s["scaling"]:
            self.progress("scaling done")

    def run(self) -> dict:
        s, args = self.s, self.args
        generated = {}
        for n in sorted(set([s["rows"]] * ("generated" in s["datasets"]) + s["scaling"])):
            generated[n] = write_generated_dataset(args.data_dir, n, dim=48 if s["quick"] else TEXT_DIM)
        names = [
            (generated[s["rows"]], args.data_dir, s["max_batches"]) if d == "generated" else (d, "dataset/", 0)
            for d in s["datasets"]
        ]
        if args.check:
            self.report["check"] = [
                launch("check", {**self.common, "dataset": n, "data_path": p}, self.remaining()) for n, p, _ in names
            ]
            self.progress("exactness checks done")
        self.sessions(names)
        self.fresh(names)
        self.scaling(generated)
        if s["sentences"]:
            self.report["encoder"] = launch(
                "encoder", {**self.common, "sentences": s["sentences"] + 8}, self.remaining()
            )
        return self.report


def main(argv=None) -> dict:
    from recbole_dlrrec import patches

    patches.apply()  # RecBole fixes, OMP_WAIT_POLICY and malloc settings, as every CLI (patches.py)
    args = parse_args(argv)
    if args.worker:
        result = WORKERS[args.worker](json.loads(args.spec))
        atomic.write_text(args.worker_out, json.dumps(result, default=str))
        return result
    settings = settings_from(args)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device is visible to torch")
    os.makedirs(args.data_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="bench-train-")
    bench = Benchmark(args, settings, tmp)
    try:
        bench.run()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return bench.finish(True)


if __name__ == "__main__":
    main()
