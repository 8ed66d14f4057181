"""Distributed-training benchmark: training samples/s with 1 and 2 processes (RecBole's DDP path).

    python benchmarks/bench_ddp.py [--device cpu|cuda] [--models DLRM,DeepFM] [--nprocs 1,2]
        [--epochs 4] [--repeats 3] [--out results/bench/ddp.txt]

Each (model, processes) pair is one fresh `run_recbole.py --nproc=N` run on ml-100k (80,000
training rows, RecBole's 80/10/10 split), with validation only after the last epoch
(eval_step = epochs). Training samples/s = epochs x training rows / rank 0's `trainer.fit`
seconds (which hold that one validation: ~0.1 s). "wall" is the whole command, start-up, data
loading in every rank and process-group set-up included. Test AUC is printed beside each run:
the 2-process run takes the same number of steps of the same global batch (train_batch_size
rows over all ranks) and should land within seed noise of the 1-process one.

--device cpu: gloo, each rank gets cores / nproc torch threads. On a machine with 2 cores this
measures the overhead of the distributed path (two processes share the two cores one process
already used; gradient all-reduce over gloo each step), not a speed-up: the output says so.
--device cuda: NCCL, one GPU per rank (gpu_id 0..N-1); needs N GPUs.

The machine may be shared: every (model, processes) pair runs --repeats times, the pairs taking
turns (odd rounds in reverse order), and the table shows the median round (by samples/s) of each.

Prints a table and writes it to --out with the machine description (atomic write).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_common import machine_info  # noqa: E402

from recbole_dlrrec import atomic  # noqa: E402

TRAIN_ROWS = 80_000  # ml-100k: RecBole splits its 100,000 rows RS [0.8, 0.1, 0.1]


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def one_run(model: str, nproc: int, device: str, epochs: int, workdir: str) -> dict:
    """One fresh run_recbole.py process group; rank 0's results plus the command's wall time."""
    result = os.path.join(workdir, f"{model}-{nproc}.json")
    gpu = ",".join(str(i) for i in range(nproc)) if device == "cuda" else ""
    cmd = [
        sys.executable,
        os.path.join(ROOT, "run_recbole.py"),
        f"--model={model}",
        "--dataset=ml-100k",
        f"--nproc={nproc}",
        f"--port={free_port()}",
        f"--result_file={result}",
        f"--epochs={epochs}",
        f"--eval_step={epochs}",
        f"--gpu_id='{gpu}'",
        f"--use_gpu={device == 'cuda'}",
        f"--side_data_path={os.path.join(ROOT, 'dataset', 'ml-100k')}",
        f"--checkpoint_dir={os.path.join(workdir, 'saved')}",
    ]
    started = time.time()
    done = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    wall = time.time() - started
    if done.returncode != 0:
        raise RuntimeError(f"{model} x{nproc} failed:\n{done.stderr[-3000:]}")
    with open(result, encoding="utf-8") as handle:
        results = json.load(handle)
    train_s = results["timings"]["train_s"]
    return {
        "model": model,
        "nproc": nproc,
        "epochs": epochs,
        "train_s": train_s,
        "wall_s": round(wall, 1),
        "samples_per_s": epochs * TRAIN_ROWS / train_s,
        "test_auc": results["test_result"]["auc"],
        "device": results["environment"]["device"],
        "world_size": results["config"].get("world_size"),
    }


def render(rows, machine: dict, device: str) -> str:
    lines = [
        f"Distributed training on ml-100k ({TRAIN_ROWS:,} training rows), RecBole's DDP path, "
        f"{'NCCL' if device == 'cuda' else 'gloo'} on {device}",
        f"machine: {machine.get('gpu') or machine['cpu']}, {machine['cpu_count']} cores, torch {machine['torch']}, "
        f"load avg {machine.get('load_avg')}",
    ]
    if device == "cpu" and (machine["cpu_count"] or 1) <= max(r["nproc"] for r in rows):
        lines.append(
            f"NOTE: {machine['cpu_count']} cores for {max(r['nproc'] for r in rows)} processes: this measures "
            "the overhead of the distributed path (the ranks share the cores one process already used), "
            "not a speed-up."
        )
    lines.append(
        f"median of {machine.get('repeats', 1)} rounds per row; samples/s = epochs x rows / rank 0's "
        "trainer.fit seconds; wall = the whole command (start-up, data loading, group set-up)"
    )
    lines.append("")
    lines.append(
        f"{'model':<8} {'procs':>5} {'epochs':>6} {'train s':>8} {'samples/s':>10} {'vs 1 proc':>9} "
        f"{'wall s':>7} {'test AUC':>8}"
    )
    base = {r["model"]: r["samples_per_s"] for r in rows if r["nproc"] == 1}
    for r in rows:
        ratio = r["samples_per_s"] / base[r["model"]] if r["model"] in base else None
        lines.append(
            f"{r['model']:<8} {r['nproc']:>5} {r['epochs']:>6} {r['train_s']:>8.2f} {r['samples_per_s']:>10,.0f} "
            f"{'-' if ratio is None else f'{ratio:.2f}x':>9} {r['wall_s']:>7.1f} {r['test_auc']:>8.4f}"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--models", default="DLRM,DeepFM")
    parser.add_argument("--nprocs", default="1,2")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(ROOT, "results", "bench", "ddp.txt"))
    args = parser.parse_args(argv)
    pairs = [(model, int(n)) for model in args.models.split(",") for n in args.nprocs.split(",")]
    runs = {pair: [] for pair in pairs}
    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as workdir:
        for round_index in range(args.repeats):
            for model, nproc in pairs if round_index % 2 == 0 else pairs[::-1]:
                runs[(model, nproc)].append(one_run(model, nproc, args.device, args.epochs, workdir))
                print(json.dumps(runs[(model, nproc)][-1]), flush=True)
    rows = [sorted(runs[pair], key=lambda r: r["samples_per_s"])[(len(runs[pair]) - 1) // 2] for pair in pairs]
    text = render(rows, {**machine_info(args.device), "repeats": args.repeats}, args.device)
    print(text)
    atomic.write_text(args.out, text)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
