"""Benchmark of text encoding: texts/s of each way the project can encode, against plain
``SentenceTransformer.encode``, on the same real review texts, in one run.

    python benchmarks/bench_encode.py [--texts 600] [--out results/bench/encode.txt]

Texts: every 97th non-empty review text of ``/work/shared/data/google-local-hi-ms/reviews.json.gz``
(read only), all distinct. Rows (all-MiniLM-L6-v2, no cache, batch size 64; model loading is not
timed, nor a worker pool's start, which is printed apart: the encoder keeps its pool):

* ``plain`` -- ``SentenceTransformer.encode(texts, batch_size=64)`` as a user would call it, torch
  on its default thread count (all cores), and on one thread;
* ``TextEncoder workers=1`` -- one process, one torch thread, batches of one token length
  (vectors a pure function of the text);
* ``TextEncoder workers=N`` -- one process per core, each on one thread (same vectors);
* ``TextEncoder backend=onnx`` -- when ``onnxruntime`` and ``onnx`` are installed: the model
  exported from its local torch weights and run by onnxruntime on one thread per process
  (encode_onnx.py), with the smallest cosine of its vectors against the torch vectors (the
  fidelity rule: every text >= 0.9999);
* on a GPU (when torch sees one) ``plain`` and ``TextEncoder`` on it.

Per core = texts/s divided by the cores the row keeps busy; ``x plain/core`` compares that with
the ``plain`` row on all cores. Prints a table (with the machine and its load average, which
matters on a shared machine) and one JSON line; ``--out FILE`` writes the table there too.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import json
import os
import platform
import sys
import tempfile
import time
from typing import Any, Callable

import numpy as np

# The checkout this file is in, before any installed copy: the code measured is the code here.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

REAL_REVIEWS = "/work/shared/data/google-local-hi-ms/reviews.json.gz"
BATCH = 64


def real_texts(n: int) -> list[str]:
    texts: dict[str, None] = {}
    with gzip.open(REAL_REVIEWS, "rt", encoding="utf-8") as handle:
        for i, line in enumerate(handle):
            if i % 97 == 0:
                text = json.loads(line).get("text")
                if text and text.strip():
                    texts[text] = None
                    if len(texts) >= n:
                        break
    return list(texts)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def encoder_run(texts: list[str], backend: str, workers: int) -> tuple[np.ndarray, float, float]:
    """(vectors, seconds, seconds to start the worker pool) of a TextEncoder without cache."""
    from recbole_dlrrec.data.encoder import TextEncoder

    with tempfile.TemporaryDirectory() as folder:
        enc = TextEncoder(
            workers=workers, backend=backend, use_cache=False, show_progress=False, cache_path=folder + "/c"
        )
        enc._get_model()  # loading (and for onnx exporting) the model is not timed
        started = time.perf_counter()
        enc.encode(texts[:1])  # starts the worker pool (kept for the next call), timed apart
        start_s = time.perf_counter() - started
        vectors, seconds = timed(functools.partial(enc.encode, texts))
        enc.close()
    return vectors, seconds, start_s


def measure(n_texts: int) -> dict:
    import torch
    from sentence_transformers import SentenceTransformer

    from recbole_dlrrec.data.encode_batches import usable_cores
    from recbole_dlrrec.data.encode_onnx import missing_packages
    from recbole_dlrrec.data.encoder import TextEncoder, default_model_path

    os.environ["HF_HUB_OFFLINE"] = "1"
    texts = real_texts(n_texts)
    cores = usable_cores()
    model = SentenceTransformer(default_model_path(), device="cpu", local_files_only=True)
    rows: list[dict] = []

    def row(name: str, busy: int, vectors: np.ndarray, seconds: float, **extra: Any) -> np.ndarray:
        rows.append({"mode": name, "cores": busy, "texts_per_s": len(texts) / seconds, **extra})
        return vectors

    def plain(m: Any) -> np.ndarray:
        return m.encode(texts, batch_size=BATCH, normalize_embeddings=True, show_progress_bar=False)

    threads = torch.get_num_threads()
    model.encode(texts[:16], batch_size=BATCH)  # warm-up, not timed
    reference = row(f"plain encode, {threads} torch threads", threads, *timed(lambda: plain(model)))
    torch.set_num_threads(1)
    row("plain encode, 1 torch thread", 1, *timed(lambda: plain(model)))
    torch.set_num_threads(threads)
    same = {}
    for backend in ("torch", "onnx"):
        if backend == "onnx" and missing_packages():
            break
        for workers in sorted({1, cores}):
            vectors, seconds, start_s = encoder_run(texts, backend, workers)
            if backend == "torch":
                same[workers] = row(f"TextEncoder workers={workers}", workers, vectors, seconds, start_s=start_s)
            else:
                cosine = (vectors.astype(np.float64) * reference).sum(1) / np.linalg.norm(reference, axis=1)
                row(f"TextEncoder backend=onnx workers={workers}", workers, vectors, seconds, start_s=start_s)
                rows[-1]["min_cosine"] = float(cosine.min())
    if torch.cuda.is_available():
        gpu = SentenceTransformer(default_model_path(), device="cuda", local_files_only=True)
        plain(gpu)
        row("plain encode on the GPU", 1, *timed(lambda: plain(gpu)))
        enc = TextEncoder(device="cuda", use_cache=False, show_progress=False)
        enc.encode(texts[:16])
        row("TextEncoder on the GPU", 1, *timed(lambda: enc.encode(texts)))
    base = rows[0]["texts_per_s"] / rows[0]["cores"]
    for r in rows:
        r["per_core"] = r["texts_per_s"] / r["cores"]
        r["x_plain_per_core"] = r["per_core"] / base
    identical = all(v.tobytes() == same[1].tobytes() for v in same.values())
    return {
        "texts": len(texts),
        "mean_chars": float(np.mean([len(t) for t in texts])),
        "cores": cores,
        "rows": rows,
        "workers_byte_identical": identical,
        "max_abs_diff_textencoder_vs_plain": float(np.abs(same[1] - reference).max()),
    }


def machine() -> str:
    cpu = "unknown cpu"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} (load average at the end: {load})"


def table(result: dict) -> str:
    lines = [
        f"bench_encode: {result['texts']} real review texts (mean {result['mean_chars']:.0f} chars), "
        f"all-MiniLM-L6-v2, batch {BATCH}",
        f"machine: {machine()}",
        "",
        f"{'mode':46s} {'cores':>5s} {'texts/s':>8s} {'per core':>8s} {'x plain/core':>12s}",
    ]
    for r in result["rows"]:
        extra = f"  min cosine vs torch {r['min_cosine']:.6f}" if "min_cosine" in r else ""
        if r.get("cores", 1) > 1 and "start_s" in r:
            extra += f"  (+{r['start_s']:.1f} s to start the workers, once per encoder)"
        lines.append(
            f"{r['mode']:46s} {r['cores']:5d} {r['texts_per_s']:8.1f} {r['per_core']:8.1f} "
            f"{r['x_plain_per_core']:12.2f}{extra}"
        )
    lines += [
        "",
        f"TextEncoder vectors byte-identical across worker counts: {result['workers_byte_identical']}; "
        f"largest difference from plain encode: {result['max_abs_diff_textencoder_vs_plain']:.2e}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=600, help="real review texts to encode (default 600)")
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args(argv)
    result = measure(args.texts)
    text = table(result)
    print(text)
    print(json.dumps(result))
    if args.out:
        from recbole_dlrrec.atomic import write_text

        write_text(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
