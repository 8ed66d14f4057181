"""Train and evaluate one model, RecBole-style, with the plugin's models and metrics.

    python run_recbole.py --model=DLRREC --dataset=restaurants --epochs=20 --learning_rate=0.002
    python run_recbole.py --model=DLRREC-V0 --config_files=my.yaml --show-config

Plugin models (DLRM, DLRREC) are looked up first, then RecBole's built-ins, so every RecBole
context-aware model runs as a baseline. The final valid/test results, the config and the timings
are written to a JSON file (--result_file, default results/runs/...), whose path is the last line
printed. --show-config prints every final config key, its value and the layer that set it (a
file, a --key=value flag, a variant, or RecBole's defaults; config/stack.py) and exits.
"""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Dict, List

from recbole_dlrrec.cli.main import prog

EXIT_INTERRUPTED = 130  # 128 + SIGINT: what a shell reports for a command stopped by Ctrl-C


def exit_on_interrupt(message: str):
    """Decorate a CLI's main(): Ctrl-C (KeyboardInterrupt) prints `message`, one line on
    stderr, and returns EXIT_INTERRUPTED instead of a traceback."""

    def decorate(main):
        @functools.wraps(main)
        def wrapper(*args, **kwargs) -> int:
            try:
                return main(*args, **kwargs)
            except KeyboardInterrupt:
                print(message, file=sys.stderr)
                return EXIT_INTERRUPTED

        return wrapper

    return decorate


def split_overrides(parser, items: List[str]) -> Dict[str, str]:
    """The `--key=value` arguments argparse left over, as key -> the value's text."""
    raw: Dict[str, str] = {}
    for item in items:
        key, sep, value = item[2:].partition("=") if item.startswith("--") else ("", "", "")
        if not key or not sep:
            parser.error(f"expected --key=value, got {item!r}")
        raw[key] = value
    return raw


def parse_overrides(parser, items: List[str]) -> dict:
    """The `--key=value` arguments argparse left over, each value parsed for its key's type
    (config/stack.parse_flags: `--reduction=none` is the string 'none', `--epochs=5` the int 5)."""
    from recbole_dlrrec.config.stack import parse_flags

    return parse_flags(split_overrides(parser, items))


def parse_args(argv):
    parser = argparse.ArgumentParser(prog=prog("train"), description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", "-m", default="DLRREC", help="model name (default DLRREC)")
    parser.add_argument("--dataset", "-d", default=None, help="dataset name (default restaurants)")
    parser.add_argument("--config_files", default=None, help="space- or comma-separated YAML files")
    parser.add_argument("--result_file", default=None, help="where to write the results JSON")
    parser.add_argument(
        "--show-config",
        "--show_config",
        dest="show_config",
        action="store_true",
        help="print each final config key, its value and where it was set, then exit",
    )
    # Distributed training (runtime/launcher.py), RecBole's run_recbole.py arguments.
    parser.add_argument("--nproc", type=int, default=1, help="processes on this machine (default 1)")
    parser.add_argument("--world_size", type=int, default=-1, help="processes over all machines (default: nproc)")
    parser.add_argument("--ip", default="localhost", help="address of the machine that runs rank 0")
    parser.add_argument("--port", type=int, default=5678, help="rendezvous port on that machine")
    parser.add_argument("--offset", type=int, default=0, help="global rank of this machine's first process")
    args, rest = parser.parse_known_args(argv)
    overrides = parse_overrides(parser, rest)
    files = args.config_files.replace(",", " ").split() if args.config_files else []
    return args, files, overrides


def show_config(model: str, dataset, files, overrides) -> None:
    """Print `key: value  # source` per final key; loads and builds no data."""
    from recbole_dlrrec.config.stack import ConfigStack, config_lines
    from recbole_dlrrec.runtime.quick_start import build_config, check_dataset

    stack = ConfigStack(model, dataset, files, overrides)
    check_dataset(stack.dataset, stack.data_path)
    config = build_config(model, dataset, files, overrides, prepare=False)
    print("\n".join(config_lines(config)))


@exit_on_interrupt("interrupted; no results written; rerun the same command to start the run again")
def main(argv=None) -> int:
    args, files, overrides = parse_args(sys.argv[1:] if argv is None else argv)
    from recbole_dlrrec import patches

    patches.apply()  # before torch is imported (patches.py, fix 4)
    from recbole_dlrrec.errors import EXIT_INPUT_ERROR, InputError
    from recbole_dlrrec.runtime.launcher import Launch, launch_run

    launch = Launch(args.nproc, args.world_size, args.ip, args.port, args.offset)
    try:
        if args.show_config:
            show_config(args.model, args.dataset, files, overrides)
            return 0
        results = launch_run(launch, args.model, args.dataset, files, overrides, result_file=args.result_file)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    if results is None:  # a machine without global rank 0
        print(f"ranks {args.offset}..{args.offset + args.nproc - 1} done; rank 0 on {args.ip} wrote the results")
        return 0
    print(f"valid: {results['valid_result']}")
    print(f"test: {results['test_result']}")
    print(results["result_file"])
    return 0
