"""Converter time with ``user_vector: concat`` against ``mean`` on the real google-local-hi-ms reviews.

Both builds read the same input (the reviews of one user in ``--one_in``, whole histories, or
all of them), each with its own cold encoder cache in a temporary folder (the shared cache is never
touched), one after the other in this process with the real sentence encoder. Prints and writes
(``--out``) wall time, texts encoded and the machine with its load before and after each build.

    python benchmarks/bench_user_vector.py --one_in 4 --out results/bench/user_vector.txt
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import resource
import sys
import tempfile
import time

import bench_common

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data")
DEFAULT_DATA = os.path.join(DATA, "google-local-hi-ms")


def slice_reviews(src: str, dst: str, one_in: int) -> tuple[int, int]:
    """The reviews of one user in ``one_in`` (by a hash of the user id, so every kept user keeps
    all their reviews and their history stays whole) from ``src`` into ``dst`` (both gzip);
    ``one_in`` 1 keeps all. Returns (lines kept, lines read)."""
    kept = read = 0
    with gzip.open(src, "rt", encoding="utf-8") as inp, gzip.open(dst, "wt", encoding="utf-8") as out:
        for line in inp:
            read += 1
            user = str(json.loads(line).get("user_id"))
            if int(hashlib.sha256(user.encode("utf-8")).hexdigest(), 16) % one_in == 0:
                out.write(line)
                kept += 1
    return kept, read


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process (all its threads): the work done, which the
    machine's other load changes far less than the wall time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def build(reviews: str, meta: str, workdir: str, mode: str) -> dict:
    """One cold-cache build; its wall time, load before/after and the report's encoder counts."""
    from recbole_dlrrec.data import google_local

    load_before = os.getloadavg()
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    report = google_local.convert(
        reviews,
        meta,
        f"bench-{mode}",
        os.path.join(workdir, mode),
        user_vector=mode,
        encoder_cache=os.path.join(workdir, f"cache-{mode}.sqlite"),
        show_progress=False,
    )
    seconds = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu_before
    history = report.get("user_history") or {}
    reviews_info = report.get("review_vectors") or {}
    encoded = report["vectors"]["encoded"] + history.get("encoded", 0)
    return {
        "mode": mode,
        "seconds": seconds,
        "cpu": cpu,
        "encoded": encoded,
        "history_texts": history.get("texts", 0),
        "review_texts": reviews_info.get("texts", 0),
        "train_rows": report["splits"]["train"]["interactions"],
        "load": (load_before, os.getloadavg()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="folder with reviews.json.gz and meta.json.gz")
    parser.add_argument("--one_in", type=int, default=1, help="keep the reviews of one user in N (1: all)")
    parser.add_argument("--out", help="also write the figures to this text file")
    args = parser.parse_args(argv)
    src = os.path.join(args.data, "reviews.json.gz")
    if not os.path.isfile(src):
        print(f"{src}: not found (the real data lives in ../shared/data)", file=sys.stderr)
        return 2
    lines = [
        f"machine: {bench_common.machine_info('cpu')}",
        f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
    ]
    with tempfile.TemporaryDirectory(prefix="bench-user-vector-") as workdir:
        reviews = os.path.join(workdir, "reviews.json.gz")
        kept, read = slice_reviews(src, reviews, args.one_in)
        lines.append(
            f"input: {kept} of {read} review lines of {src}: the users with sha256(user_id) % {args.one_in} == 0"
        )
        for mode in ("concat", "mean"):
            r = build(reviews, os.path.join(args.data, "meta.json.gz"), workdir, mode)
            lines.append(
                f"user_vector {mode}: {r['seconds']:.1f} s wall, {r['cpu']:.1f} s CPU, {r['encoded']} texts encoded "
                f"({r['history_texts']} history texts, {r['review_texts']} review texts; "
                f"{r['train_rows']} train rows), "
                f"{r['encoded'] / r['seconds']:.1f} texts/s; load avg before {r['load'][0]}, after {r['load'][1]}"
            )
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.out:
        from recbole_dlrrec import atomic

        atomic.write_text(args.out, text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
