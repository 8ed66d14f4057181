"""Benchmark of the Google Local converter (recbole_dlrrec.data.google_local.convert).

1. Read/write path: a generated reviews file of ``--lines`` lines (default 5,000,000) in the
   Google Local format, gzip-compressed like the real files, with a meta file of one business
   per 100 lines, is converted with a stand-in text encoder (``HashEncoder``, dim 16: no model
   time, tiny vectors) so that what is measured is reading, cleaning, splitting, the second pass
   for the user texts and writing. Reported: lines/s (review lines / wall time of ``convert``),
   seconds of pass 1 and of pass 2, peak RSS of the converting process (VmHWM), and the peak above
   the RSS at the start per million review lines. The conversion runs in a child process so the generator's memory is
   not counted.
2. Text encoder: ``--texts`` (default 300) real review texts from
   ``/work/shared/data/google-local-hi-ms/reviews.json.gz`` (read only), encoded by the bundled
   all-MiniLM-L6-v2 without cache: texts/s batched by length (what TextEncoder does) and in
   input order (batches of the same size, each padded to its longest text); then a dynamically
   int8-quantised copy of the model (torch Linear layers), with its texts/s and the cosine of
   each of its vectors with the reference vector (the converter would only use it if every
   cosine were >= 0.99).

Generated data (``generate``): users and businesses drawn with a power law (a few very active
users and very popular places); 70% of businesses are restaurants (the rest are dropped by the
default category filter, as most of a real state file is); 1% of lines review a business not in
meta; 0.5% are exact repeats and 0.3% have a null rating; 65% of reviews have a text of about 40
to 600 characters (real review length spread), 3% have pictures, 5% an owner response. Files
go to ``--workdir`` (default /tmp/bench_convert), never into the repository, and are reused
when already there for the same size.

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

REAL_REVIEWS = "/work/shared/data/google-local-hi-ms/reviews.json.gz"
_WORDS = (
    "the food was great good amazing service friendly staff and place very nice we had a lovely time "
    "dinner lunch breakfast pizza sushi tacos burger coffee fresh hot cold slow fast price prices "
    "cheap expensive worth it will come back again recommend highly best ever in town not bad okay "
    "parking busy quiet clean dirty wait long short table menu dessert drinks beer wine cocktails "
    "portion portions big small delicious tasty bland salty sweet spicy owner manager rude kind"
).split()
_CATEGORIES = (
    "Pizza restaurant",
    "Sushi restaurant",
    "Mexican restaurant",
    "Cafe",
    "Italian restaurant",
    "Restaurant",
    "Thai restaurant",
    "Seafood restaurant",
    "Bar & grill",
    "Breakfast restaurant",
)
_OTHER = ("Gas station", "Hair salon", "Pharmacy", "Grocery store", "Bank", "Dentist", "Gym", "Car wash")


def _text(rng: np.random.Generator) -> str:
    n = int(np.clip(rng.lognormal(3.0, 0.8), 6, 110))  # words; ~5.5 characters each
    return " ".join(_WORDS[i] for i in rng.integers(0, len(_WORDS), n)).capitalize() + "."


def generate(workdir: str, n_lines: int, seed: int = 0) -> tuple[str, str]:
    """Write reviews.json.gz (``n_lines`` lines) and meta.json.gz into ``workdir``; reuse them when
    a marker says they were made with the same size and seed."""
    os.makedirs(workdir, exist_ok=True)
    reviews, meta = os.path.join(workdir, "reviews.json.gz"), os.path.join(workdir, "meta.json.gz")
    marker = os.path.join(workdir, "generated.json")
    spec = {"lines": n_lines, "seed": seed, "version": 1}
    if os.path.exists(marker) and os.path.exists(reviews) and os.path.exists(meta):
        with open(marker, encoding="utf-8") as handle:
            if json.load(handle) == spec:
                return reviews, meta
    rng = np.random.default_rng(seed)
    n_items, n_users = max(20, n_lines // 100), max(50, n_lines // 6)
    gmap = [f"0x{rng.integers(1 << 60):x}:0x{rng.integers(1 << 60):x}" for _ in range(n_items)]
    with gzip.open(meta, "wt", encoding="utf-8", compresslevel=1) as out:
        for i, gid in enumerate(gmap):
            restaurant = rng.random() < 0.7
            pool = _CATEGORIES if restaurant else _OTHER
            cats = [pool[j] for j in rng.choice(len(pool), size=int(rng.integers(1, 3)), replace=False)]
            out.write(
                json.dumps(
                    {
                        "name": f"Place {i}",
                        "address": f"{i} Main St, Town, ST 00000",
                        "gmap_id": gid,
                        "description": _text(rng) if rng.random() < 0.4 else None,
                        "latitude": float(20 + rng.random()),
                        "longitude": float(-156 + rng.random()),
                        "category": cats,
                        "avg_rating": 4.2,
                        "num_of_reviews": 10,
                        "price": "$" * int(rng.integers(1, 5)) if rng.random() < 0.6 else None,
                        "hours": None,
                        "MISC": {"Service options": ["Dine-in", "Takeout"]} if rng.random() < 0.7 else None,
                        "state": "Open",
                        "relative_results": None,
                        "url": "https://example.com/place",
                    }
                )
                + "\n"
            )
    user_ids = [str(10**20 + int(rng.integers(1 << 62)) * 7) for _ in range(n_users)]  # 21 digits, as in the files
    chunk = 100_000
    with gzip.open(reviews, "wt", encoding="utf-8", compresslevel=1) as out:
        previous = ""
        for start in range(0, n_lines, chunk):
            m = min(chunk, n_lines - start)
            users = (n_users * rng.random(m) ** 2.5).astype(np.int64)  # power law: a few very active users
            items = (n_items * rng.random(m) ** 2.0).astype(np.int64)
            times = rng.integers(1_300_000_000_000, 1_630_000_000_000, m)
            ratings = rng.choice(5, m, p=(0.05, 0.04, 0.09, 0.2, 0.62)) + 1
            draws = rng.random((m, 5))
            lines = []
            for k in range(m):
                if draws[k, 0] < 0.005 and previous:
                    lines.append(previous)  # an exact repeat
                    continue
                item = gmap[items[k]] if draws[k, 1] >= 0.01 else f"0xgone:0x{k + start:x}"
                record = {
                    "user_id": user_ids[users[k]],
                    "name": "Some Person",
                    "time": int(times[k]),
                    "rating": None if draws[k, 2] < 0.003 else int(ratings[k]),
                    "text": _text(rng) if draws[k, 3] < 0.65 else None,
                    "pics": [{"url": [f"https://example.com/p/{k}.jpg"]}] if draws[k, 4] < 0.03 else None,
                    "resp": {"time": int(times[k]) + 86_400_000, "text": "Thank you for your review!"}
                    if draws[k, 4] > 0.95
                    else None,
                    "gmap_id": item,
                }
                previous = json.dumps(record)
                lines.append(previous)
            out.write("\n".join(lines) + "\n")
    with open(marker, "w", encoding="utf-8") as handle:
        json.dump(spec, handle)
    return reviews, meta


def _rss_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process in MiB. Not getrusage's ru_maxrss: on Linux
    that is carried over from the parent through fork and exec, so a child would start with
    its parent's peak."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # pragma: no cover - not Linux


def _convert_child(reviews: str, meta: str, out_dir: str) -> dict:
    """Runs in a fresh process: convert with HashEncoder, time the two passes, peak RSS."""
    from recbole_dlrrec.data import google_local as gl
    from recbole_dlrrec.data.convert import pipeline
    from recbole_dlrrec.data.encoder import HashEncoder

    assert os.path.dirname(os.path.dirname(os.path.abspath(__file__))) in gl.__file__, gl.__file__

    timings: dict[str, float] = {}

    def timed(name, fn):
        def run(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                timings[name] = time.perf_counter() - started

        return run

    pipeline.read_reviews = timed("pass1", pipeline.read_reviews)
    if hasattr(pipeline, "fetch_texts"):  # absent before the converter streamed (to measure that one too)
        pipeline.fetch_texts = timed("pass2", pipeline.fetch_texts)
    rss_before = _rss_mib("VmRSS")
    started = time.perf_counter()
    report = gl.convert(reviews, meta, "bench", out_dir, encoder=HashEncoder(16), show_progress=False)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        **timings,
        "lines": report["reviews"]["lines_read"],
        "kept": report["reviews"]["kept"],
        "users": report["totals"]["users"],
        "items": report["totals"]["items"],
        "user_texts": report["vectors"]["users"],
        "rss_before_mib": rss_before,
        "peak_rss_mib": _rss_mib("VmHWM"),
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=5_000_000)
    parser.add_argument("--texts", type=int, default=300)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="200,000 lines and 64 texts")
    parser.add_argument("--workdir", default="/tmp/bench_convert")
    parser.add_argument("--skip_encoder", action="store_true")
    parser.add_argument("--out", default=None, help="also write the table to this file")
    parser.add_argument("--_child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._child:
        print(json.dumps(_convert_child(*args._child)))
        return 0
    if args.quick:
        args.lines, args.texts = 200_000, 64
    workdir = os.path.join(args.workdir, f"{args.lines}")
    header = f"machine: {machine()}\ndate: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    started = time.perf_counter()
    reviews, meta = generate(workdir, args.lines)
    generated_s = time.perf_counter() - started
    out_dir = os.path.join(workdir, "out")
    child = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--_child", reviews, meta, out_dir], capture_output=True, text=True
    )
    if child.returncode:
        sys.stderr.write(child.stderr)
        raise SystemExit(f"the conversion failed (exit {child.returncode})")
    conv = json.loads(child.stdout.strip().splitlines()[-1])
    million = conv["lines"] / 1e6
    rows = [
        header,
        f"input: {conv['lines']:,} review lines ({os.path.getsize(reviews) / 2**20:,.0f} MiB gzip), "
        f"meta {os.path.getsize(meta) / 2**20:,.1f} MiB gzip (generated in {generated_s:.0f} s, reused when present)",
        f"kept {conv['kept']:,} interactions, {conv['users']:,} users, {conv['items']:,} items, "
        f"{conv['user_texts']:,} user texts",
        f"convert (HashEncoder dim 16): {conv['seconds']:.1f} s = {conv['lines'] / conv['seconds']:,.0f} lines/s; "
        f"pass 1 {conv.get('pass1', float('nan')):.1f} s, pass 2 (user texts) {conv.get('pass2', float('nan')):.1f} s",
        f"peak RSS {conv['peak_rss_mib']:,.0f} MiB (process at start {conv['rss_before_mib']:,.0f} MiB) = "
        f"{(conv['peak_rss_mib'] - conv['rss_before_mib']) / million:,.0f} MiB per million lines above the start",
    ]
    print("\n".join(rows), flush=True)  # the conversion's figures, before the (long) encoder part
    result = {"convert": conv}
    if not args.skip_encoder:
        enc = encoder_figures(args.texts, args.batch_size)
        result["encoder"] = enc
        rows.append(
            f"text encoder all-MiniLM-L6-v2 on {enc['device']} ({enc['torch_threads']} torch threads), "
            f"{enc['texts']} real "
            f"review texts (mean {enc['mean_chars']:.0f} chars), batch {enc['batch_size']}: "
            f"{enc['texts_per_s_by_length']:.1f} texts/s batched by length, {enc['texts_per_s_input_order']:.1f} "
            f"texts/s in input order (same vectors, max |diff| {enc['max_abs_diff_orders']:.1e})"
        )
        if "int8_cosine_min" in enc:
            verdict = "used" if enc["int8_cosine_min"] >= 0.99 else "NOT used (needs every cosine >= 0.99)"
            rows.append(
                f"int8 dynamic quantisation (Linear layers): {enc['int8_texts_per_s']:.1f} texts/s, cosine with the "
                f"reference min {enc['int8_cosine_min']:.3f}, mean {enc['int8_cosine_mean']:.3f}, "
                f"{enc['int8_share_below_0.99']:.0%} below 0.99: {verdict}"
            )
    table = "\n".join(rows)
    if len(rows) > 5:
        print("\n".join(rows[5:]))
    print(json.dumps(result))
    if args.out:
        from recbole_dlrrec import atomic

        atomic.write_text(args.out, table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
