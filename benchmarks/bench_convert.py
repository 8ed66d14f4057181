"""Benchmark of the Google Local converter (recbole_dlrrec.data.google_local.convert).

1. Read/write path: a generated reviews file of ``--lines`` lines (default 1,000,000) in the
   Google Local format, gzip-compressed like the real files, with a meta file of one business
   per 100 lines, is converted with a stand-in text encoder (``HashEncoder``, ``--dim`` 384 as
   all-MiniLM-L6-v2's vectors, so the vector files and their memory are real size: no model
   time) so that what is measured is everything but the encoding. Reported:
   lines/s (review lines / wall time of ``convert``), seconds and peak RSS of each stage
   (``STAGES``; VmHWM reset before each one), peak RSS of the converting process, and the
   peak above the RSS at the start per million review lines. The conversion runs in a child
   process so the generator's memory is not counted.
2. Text encoder: ``--texts`` (default 300) real review texts from
   ``/work/shared/data/google-local-hi-ms/reviews.json.gz`` (read only), encoded by the bundled
   all-MiniLM-L6-v2 without cache: texts/s batched by length (what TextEncoder does) and in
   input order (batches of the same size, each padded to its longest text), and from it an
   estimate of the encoding time of the conversion above (the texts and characters it would
   have encoded); then a dynamically int8-quantised copy of the model (torch Linear layers),
   with its texts/s and the cosine of each of its vectors with the reference vector (the
   converter would only use it if every cosine were >= 0.99).

Generated data (``bench_convert_data.generate``): texts as long as real ones (lengths drawn from
``--real``), users and businesses drawn with power laws fitted to the real file's skew (both
printed); 70% of businesses are restaurants (the rest are dropped by the default category
filter, as most of a real state file is); 1% of lines review a business not in meta; 0.5% are
exact repeats and 0.3% have a null rating; 65% of reviews have a text, 3% have pictures, 5% an
owner response. Files go to ``--workdir`` (default /tmp/bench_convert), never into the
repository, and are reused when already there for the same size.

``--quick`` converts 200,000 lines and encodes 64 texts (a smoke test). Prints a table, then one
JSON line; ``--out FILE`` also writes the table there.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np

# The checkout this file is in, before any installed copy: the code measured is the code here.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_convert_data as data  # noqa: E402

REAL_REVIEWS = "/work/shared/data/google-local-hi-ms/reviews.json.gz"


def _rss_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process in MiB. Not getrusage's ru_maxrss: on Linux
    that is carried over from the parent through fork and exec, so a child would start with
    its parent's peak."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # pragma: no cover - not Linux


#: The converter's stages, each a function the pipeline calls through its module (so a wrapper
#: put on the module attribute sees every call): (stage, module path, function name).
STAGES = (
    ("read meta", "recbole_dlrrec.data.convert.pipeline", "read_meta"),
    ("pass 1 (reviews)", "recbole_dlrrec.data.convert.pipeline", "read_reviews"),
    ("split", "recbole_dlrrec.data.convert.split", "split_reviews"),
    ("k-core", "recbole_dlrrec.data.convert.split", "k_core"),
    ("rows for user texts", "recbole_dlrrec.data.convert.history", "user_text_rows"),
    ("rows for history texts", "recbole_dlrrec.data.convert.history", "history_text_rows"),
    ("pass 2 (texts)", "recbole_dlrrec.data.convert.pipeline", "fetch_texts"),
    ("train features", "recbole_dlrrec.data.convert.features", "train_features"),
    ("history texts", "recbole_dlrrec.data.convert.history", "user_history"),
    ("encode (HashEncoder)", "recbole_dlrrec.data.convert.pipeline", "_encode_all"),
    ("write dataset", "recbole_dlrrec.data.convert.write", "write_dataset"),
    ("write history", "recbole_dlrrec.data.convert.write", "write_user_history"),
)


def _reset_peak() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux clear_refs "5"), so each stage's
    peak is its own; False where that is not allowed (the peaks are then running maxima)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _time_stages(stages: dict) -> None:
    """Wrap each of STAGES so that its seconds, RSS after and peak RSS land in ``stages``."""
    import importlib

    for stage, module_name, attr in STAGES:
        module = importlib.import_module(module_name)
        setattr(module, attr, _timed(stages, stage, getattr(module, attr)))


def _timed(stages: dict, stage: str, fn):
    """``fn`` recording its seconds, RSS after and peak RSS into ``stages[stage]``."""

    def timed(*args, **kwargs):
        _reset_peak()
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            entry = stages.setdefault(stage, {"seconds": 0.0, "peak_rss_mib": 0.0})
            entry["seconds"] += time.perf_counter() - started
            entry["peak_rss_mib"] = max(entry["peak_rss_mib"], _rss_mib("VmHWM"))
            entry["rss_after_mib"] = _rss_mib("VmRSS")

    return timed


class CountingHashEncoder:
    """HashEncoder that also counts the texts and characters it was given (the encoding estimate)."""

    def __init__(self, dim: int):
        from recbole_dlrrec.data.encoder import HashEncoder

        self.inner = HashEncoder(dim)
        self.model_id = self.inner.model_id
        self.texts = 0
        self.chars = 0

    def encode(self, texts):
        self.texts += len(texts)
        self.chars += sum(len(t) for t in texts)
        return self.inner.encode(texts)


def _convert_child(reviews: str, meta: str, out_dir: str, dim: str = "384") -> dict:
    """Runs in a fresh process: convert with HashEncoder, time each stage, peak RSS."""
    from recbole_dlrrec.data import google_local as gl

    assert os.path.dirname(os.path.dirname(os.path.abspath(__file__))) in gl.__file__, gl.__file__
    stages: dict[str, dict] = {}
    _time_stages(stages)
    encoder = CountingHashEncoder(int(dim))
    rss_before = _rss_mib("VmRSS")
    per_stage_peaks = _reset_peak()
    started = time.perf_counter()
    report = gl.convert(reviews, meta, "bench", out_dir, encoder=encoder, show_progress=False, force=True)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "dim": int(dim),
        "stages": stages,
        "per_stage_peaks": per_stage_peaks,
        "lines": report["reviews"]["lines_read"],
        "kept": report["reviews"]["kept"],
        "users": report["totals"]["users"],
        "items": report["totals"]["items"],
        "user_texts": report["vectors"]["users"],
        "texts_encoded": encoder.texts,
        "chars_encoded": encoder.chars,
        "rss_before_mib": rss_before,
        "peak_rss_mib": max([rss_before] + [s["peak_rss_mib"] for s in stages.values()]),
    }


def _real_texts(n: int) -> list[str]:
    texts = []
    with gzip.open(REAL_REVIEWS, "rt", encoding="utf-8") as handle:
        for i, line in enumerate(handle):
            if i % 97 == 0:
                text = json.loads(line).get("text")
                if text and text.strip():
                    texts.append(text)
                    if len(texts) >= n:
                        break
    return texts


def encoder_figures(n_texts: int, batch_size: int) -> dict:
    import torch

    from recbole_dlrrec.data.encoder import TextEncoder

    texts = _real_texts(n_texts)
    encoder = TextEncoder(batch_size=batch_size, use_cache=False, show_progress=False)
    encoder.encode(texts[:8])  # load the model; not timed
    model = encoder._get_model()
    started = time.perf_counter()
    reference = encoder.encode(texts)
    sorted_rate = len(texts) / (time.perf_counter() - started)

    def in_order(m):
        return np.concatenate(
            [
                m.encode(
                    texts[i : i + batch_size],
                    batch_size=batch_size,
                    normalize_embeddings=True,
                    show_progress_bar=False,
                    convert_to_numpy=True,
                )
                for i in range(0, len(texts), batch_size)
            ]
        )

    started = time.perf_counter()
    plain = in_order(model)
    order_rate = len(texts) / (time.perf_counter() - started)
    out = {
        "texts": len(texts),
        "mean_chars": float(np.mean([len(t) for t in texts])),
        "device": encoder.device,
        "torch_threads": torch.get_num_threads(),
        "batch_size": batch_size,
        "texts_per_s_by_length": sorted_rate,
        "texts_per_s_input_order": order_rate,
        "max_abs_diff_orders": float(np.abs(plain - reference).max()),
    }
    if encoder.device == "cpu":
        import copy

        quantised = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)
        started = time.perf_counter()
        qv = np.concatenate(
            [
                quantised.encode(
                    texts,
                    batch_size=batch_size,
                    normalize_embeddings=True,
                    show_progress_bar=False,
                    convert_to_numpy=True,
                )
            ]
        )
        out["int8_texts_per_s"] = len(texts) / (time.perf_counter() - started)
        cosine = (qv * reference).sum(1) / np.linalg.norm(qv, axis=1) / np.linalg.norm(reference, axis=1)
        out["int8_cosine_min"] = float(cosine.min())
        out["int8_cosine_mean"] = float(cosine.mean())
        out["int8_share_below_0.99"] = float((cosine < 0.99).mean())
    encoder.close()
    return out


def machine() -> str:
    import torch

    cpu = "unknown cpu"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    import pandas

    return (
        f"{cpu} ({os.cpu_count()} CPUs), {gpu}, {platform.platform()}, python {platform.python_version()}, "
        f"torch {torch.__version__}, numpy {np.__version__}, pandas {pandas.__version__}, "
        f"load avg at start {tuple(round(x, 1) for x in os.getloadavg())}"
    )


def _input_rows(conv: dict, reviews: str, meta: str, generated_s: float, real: dict | None, made: dict) -> list[str]:
    rows = [
        f"input: {conv['lines']:,} review lines ({os.path.getsize(reviews) / 2**20:,.0f} MiB gzip), "
        f"meta {os.path.getsize(meta) / 2**20:,.1f} MiB gzip (generated in {generated_s:.0f} s, reused when present)"
    ]
    for what in ("users", "items"):
        line = f"skew of {what}: generated (first {made['lines']:,} lines) {_skew_text(made[what])}"
        if real is not None:
            line += f"; real google-local-hi-ms {_skew_text(real[what])}"
        rows.append(line)
    lengths = made["lengths"]
    rows.append(
        f"text lengths: {made['text_share']:.0%} of generated reviews have a text, chars p5/p50/p95/p99 "
        + "/".join(f"{q:.0f}" for q in np.percentile(lengths, [5, 50, 95, 99]))
        + (
            " drawn from the real texts' lengths (p5/p50/p95/p99 "
            + "/".join(f"{q:.0f}" for q in np.percentile(real["lengths"], [5, 50, 95, 99]))
            + ")"
            if real is not None
            else " (lognormal stand-in: no real file here)"
        )
    )
    return rows


def _skew_text(s: dict) -> str:
    return (
        f"{s['n']:,} with reviews, {s['per']:.1f} each, median {s['median']:.0f}, "
        f"top 1% {s['top1']:.0%}, top 10% {s['top10']:.0%}"
    )


def _convert_rows(conv: dict) -> list[str]:
    million = conv["lines"] / 1e6
    rows = [
        f"kept {conv['kept']:,} interactions, {conv['users']:,} users, {conv['items']:,} items, "
        f"{conv['user_texts']:,} user texts; {conv['texts_encoded']:,} texts encoded ({conv['chars_encoded']:,} chars)",
        f"convert (HashEncoder dim {conv['dim']}): {conv['seconds']:.1f} s = "
        f"{conv['lines'] / conv['seconds']:,.0f} lines/s; "
        f"peak RSS {conv['peak_rss_mib']:,.0f} MiB (process at start {conv['rss_before_mib']:,.0f} MiB) = "
        f"{(conv['peak_rss_mib'] - conv['rss_before_mib']) / million:,.0f} MiB per million lines above the start",
        "per stage"
        + (
            " (peak RSS of the stage itself, VmHWM reset before it):" if conv["per_stage_peaks"] else " (running peak):"
        ),
    ]
    for stage, figures in conv["stages"].items():
        rows.append(
            f"  {stage:<24} {figures['seconds']:8.1f} s   peak {figures['peak_rss_mib']:7,.0f} MiB"
            f"   after {figures['rss_after_mib']:7,.0f} MiB"
        )
    return rows


def _encoder_rows(enc: dict, conv: dict) -> list[str]:
    rows = [
        f"text encoder all-MiniLM-L6-v2 on {enc['device']} ({enc['torch_threads']} torch threads), "
        f"{enc['texts']} real review texts (mean {enc['mean_chars']:.0f} chars), batch {enc['batch_size']}: "
        f"{enc['texts_per_s_by_length']:.1f} texts/s batched by length, {enc['texts_per_s_input_order']:.1f} "
        f"texts/s in input order (same vectors, max |diff| {enc['max_abs_diff_orders']:.1e})"
    ]
    chars_per_s = enc["texts_per_s_by_length"] * enc["mean_chars"]
    by_texts = conv["texts_encoded"] / enc["texts_per_s_by_length"]
    rows.append(
        f"encoding estimate for this conversion: {conv['texts_encoded']:,} texts / "
        f"{enc['texts_per_s_by_length']:.1f} texts/s = {by_texts / 3600:.1f} h; "
        f"by characters ({conv['chars_encoded']:,} / {chars_per_s:,.0f} chars/s; user and history texts are "
        f"longer than one review) = {conv['chars_encoded'] / chars_per_s / 3600:.1f} h"
    )
    if "int8_cosine_min" in enc:
        verdict = "used" if enc["int8_cosine_min"] >= 0.99 else "NOT used (needs every cosine >= 0.99)"
        rows.append(
            f"int8 dynamic quantisation (Linear layers): {enc['int8_texts_per_s']:.1f} texts/s, cosine with the "
            f"reference min {enc['int8_cosine_min']:.3f}, mean {enc['int8_cosine_mean']:.3f}, "
            f"{enc['int8_share_below_0.99']:.0%} below 0.99: {verdict}"
        )
    return rows


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--texts", type=int, default=300)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="200,000 lines and 64 texts")
    parser.add_argument("--workdir", default="/tmp/bench_convert")
    parser.add_argument("--real", default=REAL_REVIEWS, help="real reviews file the text lengths are drawn from")
    parser.add_argument("--skip_encoder", action="store_true")
    parser.add_argument("--out", default=None, help="also write the table to this file")
    parser.add_argument("--dim", type=int, default=384, help="HashEncoder's vector width")
    parser.add_argument("--_child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.lines, args.texts = 200_000, 64
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args._child:
        print(json.dumps(_convert_child(*args._child)))
        return 0
    workdir = os.path.join(args.workdir, f"{args.lines}")
    header = f"machine: {machine()}\ndate: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    real = data.profile(args.real) if os.path.exists(args.real) else None
    started = time.perf_counter()
    reviews, meta = data.generate(workdir, args.lines, lengths=None if real is None else real["lengths"])
    generated_s = time.perf_counter() - started
    made = data.profile(reviews, max_lines=200_000)
    child_args = ["--_child", reviews, meta, os.path.join(workdir, "out"), str(args.dim)]
    child = subprocess.run([sys.executable, os.path.abspath(__file__), *child_args], capture_output=True, text=True)
    if child.returncode:
        sys.stderr.write(child.stderr)
        raise SystemExit(f"the conversion failed (exit {child.returncode})")
    conv = json.loads(child.stdout.strip().splitlines()[-1])
    rows = [header, *_input_rows(conv, reviews, meta, generated_s, real, made), *_convert_rows(conv)]
    print("\n".join(rows), flush=True)  # the conversion's figures, before the (long) encoder part
    result = {"convert": conv}
    if not args.skip_encoder:
        enc = encoder_figures(args.texts, args.batch_size)
        result["encoder"] = enc
        more = _encoder_rows(enc, conv)
        print("\n".join(more))
        rows += more
    print(json.dumps(result))
    if args.out:
        from recbole_dlrrec import atomic

        atomic.write_text(args.out, "\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
