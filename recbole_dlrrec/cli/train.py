"""Train and evaluate one model, RecBole-style, with the plugin's models and metrics.

    python run_recbole.py --model=DLRREC --dataset=restaurants --epochs=20 --learning_rate=0.002

Plugin models (DLRM, DLRREC) are looked up first, then RecBole's built-ins, so every RecBole
context-aware model runs as a baseline. The final valid/test results, the config and the timings
are written to a JSON file (--result_file, default results/runs/...), whose path is the last line
printed.
"""
from __future__ import annotations

import argparse
import ast
import sys


def parse_value(text: str):
    """A --key=value value the way RecBole reads it: a Python literal when it is one, the
    YAML words true/false/null, else the string itself."""
    lowered = text.strip().lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    if lowered in {"null", "none", "~"}:
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_overrides(parser, items):
    """The `--key=value` arguments argparse left over, as a dict of parsed values."""
    overrides = {}
    for item in items:
        key, sep, value = item[2:].partition("=") if item.startswith("--") else ("", "", "")
        if not key or not sep:
            parser.error(f"expected --key=value, got {item!r}")
        overrides[key] = parse_value(value)
    return overrides


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", "-m", default="DLRREC", help="model name (default DLRREC)")
    parser.add_argument("--dataset", "-d", default=None, help="dataset name (default restaurants)")
    parser.add_argument("--config_files", default=None, help="space- or comma-separated YAML files")
    parser.add_argument("--result_file", default=None, help="where to write the results JSON")
    # Distributed training (runtime/distributed.py), RecBole's run_recbole.py arguments.
    parser.add_argument("--nproc", type=int, default=1, help="processes on this machine (default 1)")
    parser.add_argument("--world_size", type=int, default=-1, help="processes over all machines (default: nproc)")
    parser.add_argument("--ip", default="localhost", help="address of the machine that runs rank 0")
    parser.add_argument("--port", type=int, default=5678, help="rendezvous port on that machine")
    parser.add_argument("--offset", type=int, default=0, help="global rank of this machine's first process")
    args, rest = parser.parse_known_args(argv)
    overrides = parse_overrides(parser, rest)
    files = args.config_files.replace(",", " ").split() if args.config_files else []
    return args, files, overrides


def main(argv=None) -> int:
    args, files, overrides = parse_args(sys.argv[1:] if argv is None else argv)
    from recbole_dlrrec.errors import InputError
    from recbole_dlrrec.runtime.distributed import Launch, launch_run

    launch = Launch(args.nproc, args.world_size, args.ip, args.port, args.offset)
    try:
        results = launch_run(launch, args.model, args.dataset, files, overrides, result_file=args.result_file)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        # Our input errors (unknown model / dataset / key, missing file) are ValueErrors with a
        # one-line message; anything else is a bug and keeps its traceback.
        if type(exc).__module__.startswith("recbole_dlrrec"):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise
    if results is None:  # a machine without global rank 0
        print(f"ranks {args.offset}..{args.offset + args.nproc - 1} done; rank 0 on {args.ip} wrote the results")
        return 0
    print(f"valid: {results['valid_result']}")
    print(f"test: {results['test_result']}")
    print(results["result_file"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
