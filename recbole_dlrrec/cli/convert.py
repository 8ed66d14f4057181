"""Convert a review source's JSON lines (plain or .gz) into a RecBole dataset.

    recbole-dlrrec convert [--source google|yelp] --reviews R --meta M --name NAME [--out dataset] [...]

``--source google`` (the default) reads Google
Local reviews + meta, ``--source yelp`` the Yelp Open Dataset's review.json + business.json (as
``--meta``). What it does and what it promises: recbole_dlrrec/data/google_local/__init__.py and
recbole_dlrrec/data/yelp/__init__.py. The conversion flags are built from
``recbole_dlrrec.data.convert.options.ConvertOptions`` (each declared there once). Bad input (a
file, a line with --strict, an option, an output path) is one line on stderr and exit status 2;
a written dataset is printed as its report, and with ``--verify`` loaded with RecBole.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

from recbole_dlrrec.cli.main import prog
from recbole_dlrrec.cli.train import exit_on_interrupt
from recbole_dlrrec.data.convert import options as convert_options
from recbole_dlrrec.data.convert.verify import check_loads_in_recbole
from recbole_dlrrec.data.convert.write import report_markdown
from recbole_dlrrec.data.sources import DEFAULT_SOURCE, SOURCES
from recbole_dlrrec.errors import EXIT_INPUT_ERROR, InputError


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog("convert"),
        description="Convert reviews + business metadata (JSON lines, plain or .gz) into a RecBole dataset.",
    )
    filters = ", ".join(f"{name} {module.SOURCE.default_category_filter!r}" for name, module in SOURCES.items())
    p.add_argument(
        "--source",
        choices=list(SOURCES),
        default=DEFAULT_SOURCE,
        help=f"input format: google (Google Local 2021) or yelp (Yelp Open Dataset) (default: "
        f"{DEFAULT_SOURCE}); each has its default --category_filter: {filters}",
    )
    p.add_argument("--reviews", required=True, help="reviews JSON-lines file, plain or gzip (yelp: review.json)")
    p.add_argument(
        "--meta", required=True, help="business metadata JSON-lines file, plain or gzip (yelp: business.json)"
    )
    p.add_argument("--name", required=True, help="dataset name: output goes to OUT/NAME/NAME.*")
    p.add_argument("--out", default="dataset", help="output root folder (default: dataset)")
    convert_options.add_arguments(p)
    p.add_argument("--verify", action="store_true", help="load the result with RecBole (model FM) afterwards")
    return p


def options_from_args(args: argparse.Namespace) -> convert_options.ConvertOptions:
    return convert_options.from_args(args)


@exit_on_interrupt(
    "interrupted; no dataset written (an earlier one under OUT/NAME is unchanged); "
    "rerun the same command to convert again"
)
def main(argv: Optional[Sequence[str]] = None) -> int:
    from recbole_dlrrec import patches

    patches.apply()  # before torch is imported (patches.py); --verify loads the result with RecBole
    args = build_arg_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    converter = SOURCES[args.source]
    try:
        report = converter.convert(args.reviews, args.meta, args.name, args.out, options_from_args(args))
        print(report_markdown(report, converter.SOURCE))
        if args.verify:
            counts = check_loads_in_recbole(args.out, args.name)
            print(f"RecBole loads it: {counts}")
    except InputError as exc:  # EncoderInputError too: a missing or broken model folder
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        return EXIT_INPUT_ERROR
    return 0
