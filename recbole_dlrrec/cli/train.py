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
import functools
import sys

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
    args, rest = parser.parse_known_args(argv)
    overrides = parse_overrides(parser, rest)
    files = args.config_files.replace(",", " ").split() if args.config_files else []
    return args, files, overrides


@exit_on_interrupt("interrupted; no results written; rerun the same command to start the run again")
def main(argv=None) -> int:
    args, files, overrides = parse_args(sys.argv[1:] if argv is None else argv)
    from recbole_dlrrec.errors import InputError
    from recbole_dlrrec.runtime.quick_start import run

    try:
        results = run(args.model, args.dataset, files, overrides, result_file=args.result_file)
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
    print(f"valid: {results['valid_result']}")
    print(f"test: {results['test_result']}")
    print(results["result_file"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
