"""Training at converter scale: DLRREC and DLRM, one epoch on a converted dataset, 1 and 2 processes.

    python benchmarks/bench_scale_train.py --data_path /tmp/bench_convert/1000000/out --dataset bench
        [--models DLRREC,DLRM] [--nprocs 1,2] [--out results/bench/scale_train.txt]

Made for the dataset bench_convert.py converts from its generated 1M-review file (HashEncoder
vectors, dim 16), but any converted dataset folder works. Each (model, processes) pair is one
fresh ``run_recbole.py --epochs=1 --nproc=N`` run with the fast loader (DLRM.yaml / DLRREC.yaml
switch it on; ``--fast_dataloader=True`` makes sure), validated once after the epoch and tested.
Reported per run, from RecBole's own log lines: the seconds of the training epoch (rank 0) and
training samples/s = train rows / those seconds; the validation seconds; the data loading seconds
(``timings.data_s``: RecBole's dataset build and the fast loader's join); the wall time of the
command; the peak RSS of the run's processes (each rank's VmHWM, summed over ranks); valid and
test AUC.

With 2 processes on a 2-core machine, gloo DDP measures the cost of the distributed path (the
ranks share the cores one process already used), not a speed-up: the output says so.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_common import machine_info  # noqa: E402
from bench_ddp import free_port  # noqa: E402

from recbole_dlrrec import atomic  # noqa: E402

# RecBole's trainer logs "epoch 0 training [time: 12.34s, train loss: ...]" and
# "epoch 0 evaluating [time: 1.23s, valid_score: ...]" (with colour codes when it may).
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")
_TRAINING = re.compile(r"epoch \d+ training \[time: ([0-9.]+)s")
_EVALUATING = re.compile(r"epoch \d+ evaluating \[time: ([0-9.]+)s")


def train_rows(data_path: str, dataset: str) -> int:
    """Rows of the dataset's train.inter (less its header)."""
    with open(os.path.join(data_path, dataset, f"{dataset}.train.inter"), "rb") as handle:
        return sum(1 for _ in handle) - 1


def log_seconds(log: str) -> tuple[float, float]:
    """(training seconds, validation seconds) of the first epoch in a RecBole log."""
    text = _COLOUR.sub("", log)
    training, evaluating = _TRAINING.search(text), _EVALUATING.search(text)
    if training is None:
        raise ValueError("no 'epoch N training [time: ...]' line in the log")
    return float(training.group(1)), float(evaluating.group(1)) if evaluating else float("nan")


def _peak_rss_mib(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status", encoding="ascii") as handle:
                total += next(int(line.split()[1]) for line in handle if line.startswith("VmHWM:")) / 1024
        except (OSError, StopIteration):
            pass
    return total


def _watch(proc: subprocess.Popen) -> float:
    """Wait for ``proc``; the largest sum of its process tree's peak RSS seen (polled each second)."""
    peak = 0.0
    while proc.poll() is None:
        tree = [proc.pid]
        children = f"/proc/{proc.pid}/task/{proc.pid}/children"
        if os.path.exists(children):
            with open(children, encoding="ascii") as handle:
                tree += [int(p) for p in handle.read().split()]
        peak = max(peak, _peak_rss_mib(tree))
        time.sleep(1.0)
    return peak


def one_run(model: str, nproc: int, args: argparse.Namespace, workdir: str) -> dict:
    """One fresh run_recbole.py process group on the converted dataset; its figures."""
    result = os.path.join(workdir, f"{model}-{nproc}.json")
    cmd = [
        sys.executable,
        os.path.join(ROOT, "run_recbole.py"),
        f"--model={model}",
        f"--dataset={args.dataset}",
        f"--data_path={args.data_path}",
        f"--nproc={nproc}",
        f"--port={free_port()}",
        f"--result_file={result}",
        "--epochs=1",
        "--eval_step=1",
        "--fast_dataloader=True",
        "--use_gpu=False",
        "--show_progress=False",
        f"--checkpoint_dir={os.path.join(workdir, 'saved')}",
    ]
    log_path = os.path.join(workdir, f"{model}-{nproc}.log")
    started = time.time()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, text=True)
        peak = _watch(proc)
    wall = time.time() - started
    with open(log_path, encoding="utf-8") as handle:
        text = handle.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{model} x{nproc} failed (exit {proc.returncode}):\n{text[-3000:]}")
    with open(result, encoding="utf-8") as handle:
        results = json.load(handle)
    train_s, valid_s = log_seconds(text)
    rows = train_rows(args.data_path, args.dataset)
    return {
        "model": model,
        "nproc": nproc,
        "train_rows": rows,
        "train_s": train_s,
        "samples_per_s": rows / train_s,
        "valid_s": valid_s,
        "data_s": results["timings"]["data_s"],
        "wall_s": round(wall, 1),
        "peak_rss_mib": round(peak),
        "valid_auc": results["valid_result"].get("auc"),
        "test_auc": (results["test_result"] or {}).get("auc"),
    }


def render(rows: list[dict], machine: dict, dataset: str) -> str:
    lines = [
        f"One training epoch on the converted dataset '{dataset}' ({rows[0]['train_rows']:,} train rows), "
        "fast loader, gloo DDP for 2 processes",
        f"machine: {machine['cpu']}, {machine['cpu_count']} cores, torch {machine['torch']}, "
        f"load avg at start {tuple(round(x, 1) for x in machine.get('load_avg') or ())}",
    ]
    if (machine["cpu_count"] or 1) <= max(r["nproc"] for r in rows):
        lines.append(
            f"NOTE: {machine['cpu_count']} cores for {max(r['nproc'] for r in rows)} processes: 2 processes "
            "measure the cost of the distributed path here, not a speed-up."
        )
    lines.append(
        "train s = rank 0's epoch (RecBole's log line); samples/s = train rows / train s; data s = dataset "
        "build + loader join; peak RSS summed over the ranks"
    )
    lines.append("")
    lines.append(
        f"{'model':<7} {'procs':>5} {'train s':>8} {'samples/s':>10} {'valid s':>8} {'data s':>7} "
        f"{'wall s':>7} {'peak MiB':>9} {'valid AUC':>9} {'test AUC':>8}"
    )
    for r in rows:
        lines.append(
            f"{r['model']:<7} {r['nproc']:>5} {r['train_s']:>8.1f} {r['samples_per_s']:>10,.0f} "
            f"{r['valid_s']:>8.1f} {r['data_s']:>7.1f} {r['wall_s']:>7.1f} {r['peak_rss_mib']:>9,} "
            f"{r['valid_auc'] or float('nan'):>9.4f} {r['test_auc'] or float('nan'):>8.4f}"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_path", default=os.path.join("/tmp", "bench_convert", "1000000", "out"))
    parser.add_argument("--dataset", default="bench")
    parser.add_argument("--models", default="DLRREC,DLRM")
    parser.add_argument("--nprocs", default="1,2")
    parser.add_argument("--out", default=None, help="also write the table to this file")
    args = parser.parse_args(argv)
    args.data_path = os.path.abspath(args.data_path)
    machine = machine_info("cpu")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as workdir:
        for model in args.models.split(","):
            for nproc in (int(n) for n in args.nprocs.split(",")):
                rows.append(one_run(model, nproc, args, workdir))
                print(json.dumps(rows[-1]), flush=True)
    text = render(rows, machine, args.dataset)
    print(text)
    if args.out:
        atomic.write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
