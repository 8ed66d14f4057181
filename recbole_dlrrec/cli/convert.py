"""Convert Google Local reviews + meta (JSON lines, plain or .gz) into a RecBole dataset.

    recbole-dlrrec convert --reviews R --meta M --name NAME [--out dataset] [...]

What it does and what it promises:
recbole_dlrrec/data/google_local/__init__.py. Bad input (a file, a line with --strict, an option,
an output path) is one line on stderr and exit status 2; a written dataset is printed as its
report, and with ``--verify`` loaded with RecBole.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

from recbole_dlrrec.cli.main import prog
from recbole_dlrrec.cli.train import exit_on_interrupt
from recbole_dlrrec.data import google_local as gl
from recbole_dlrrec.data import text_build
from recbole_dlrrec.errors import EXIT_INPUT_ERROR, InputError


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog("convert"),
        description="Convert Google Local reviews + meta (JSON lines, plain or .gz) into a RecBole dataset.",
    )
    p.add_argument("--reviews", required=True, help="reviews JSON-lines file (.json or .json.gz)")
    p.add_argument("--meta", required=True, help="business metadata JSON-lines file (.json or .json.gz)")
    p.add_argument("--name", required=True, help="dataset name: output goes to OUT/NAME/NAME.*")
    p.add_argument("--out", default="dataset", help="output root folder (default: dataset)")
    p.add_argument("--split", choices=("time", "random"), default="time", help="time (default) or random")
    p.add_argument("--ratios", type=float, nargs=3, default=list(gl.DEFAULT_RATIOS), metavar=("TRAIN", "VALID", "TEST"))
    p.add_argument("--seed", type=int, default=2026, help="seed of the random split")
    p.add_argument("--label_threshold", type=float, default=gl.DEFAULT_LABEL_THRESHOLD,
                   help="label = rating >= this; in (1, 5]")
    p.add_argument("--category_filter", default=gl.DEFAULT_CATEGORY_FILTER,
                   help="keep businesses with a category containing this text (case-insensitive); '' keeps all")
    p.add_argument("--k_core", type=int, default=None,
                   help="keep users and businesses with at least K train reviews (iterated; default off)")
    p.add_argument("--strict", action="store_true", help="malformed or incomplete lines are fatal (file:line)")
    p.add_argument("--include_leaky_meta", action="store_true",
                   help="also write avg_rating/num_of_reviews (LEAKY: all-time values)")
    p.add_argument("--user_text_max_chars", type=int, default=text_build.DEFAULT_USER_TEXT_MAX_CHARS)
    p.add_argument("--no_user_history", dest="user_history", action="store_false",
                   help="skip NAME.userhist.npz (a text per train row from its user's earlier reviews: one encoder "
                        "pass per train row, the slowest part of a build); DLRREC then reads the full user vector, "
                        "which holds a train row's own review (leaky)")
    p.add_argument("--encoder_model", default=None, help="sentence-transformers model folder (default: bundled MiniLM)")
    p.add_argument("--encoder_cache", default=None, help="sqlite vector cache (default: OUT/.encoder_cache/vectors.sqlite)")
    p.add_argument("--encoder_batch_size", type=int, default=64)
    p.add_argument("--encoder_device", default="auto",
                   help="device of the text encoder: auto (default: the GPU when torch sees one), cpu, cuda, cuda:N")
    p.add_argument("--image_encoder", default="none", choices=sorted(gl.IMAGE_ENCODERS),
                   help="image encoder slot (default none: pictures only give pic_count)")
    p.add_argument("--max_line_bytes", type=int, default=gl.DEFAULT_MAX_LINE_BYTES,
                   help="skip (and count as line_too_long) input lines longer than this many bytes, unread "
                        f"(default {gl.DEFAULT_MAX_LINE_BYTES}: 1 MiB)")
    p.add_argument("--force", action="store_true",
                   help="rebuild OUT/NAME even when it holds files the converter did not write (they are deleted)")
    p.add_argument("--verify", action="store_true", help="load the result with RecBole (model FM) afterwards")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def options_from_args(args: argparse.Namespace) -> "gl.ConvertOptions":
    return gl.ConvertOptions(
        split=args.split,
        ratios=tuple(args.ratios),
        seed=args.seed,
        label_threshold=args.label_threshold,
        category_filter=args.category_filter or None,
        strict=args.strict,
        include_leaky_meta=args.include_leaky_meta,
        user_text_max_chars=args.user_text_max_chars,
        user_history=args.user_history,
        k_core=args.k_core,
        encoder_model=args.encoder_model,
        encoder_cache=args.encoder_cache,
        encoder_batch_size=args.encoder_batch_size,
        encoder_device=args.encoder_device,
        image_encoder=args.image_encoder,
        max_line_bytes=args.max_line_bytes,
        force=args.force,
        show_progress=not args.quiet,
    )


@exit_on_interrupt("interrupted; no dataset written (an earlier one under OUT/NAME is unchanged); "
                   "rerun the same command to convert again")
def main(argv: Optional[Sequence[str]] = None) -> int:
    from recbole_dlrrec import patches

    patches.apply()  # before torch is imported (patches.py); --verify loads the result with RecBole
    args = build_arg_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    try:
        report = gl.convert(args.reviews, args.meta, args.name, args.out, options_from_args(args))
        print(gl.write.report_markdown(report))
        if args.verify:
            counts = gl.check_loads_in_recbole(args.out, args.name)
            print(f"RecBole loads it: {counts}")
    except InputError as exc:  # EncoderInputError too: a missing or broken model folder
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        return EXIT_INPUT_ERROR
    return 0

