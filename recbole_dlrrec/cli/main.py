"""`recbole-dlrrec`: one console command, one subcommand per tool.

    recbole-dlrrec train --model=DLRREC --dataset=restaurants --epochs=20
    recbole-dlrrec leaderboard --dataset=ml-100k --seeds 3
    recbole-dlrrec tune --model=DLRREC --dataset=restaurants --num_samples=20
    recbole-dlrrec convert --reviews R.json.gz --meta M.json.gz --name NAME
    recbole-dlrrec swing --dataset=restaurants
    recbole-dlrrec ray-token
    recbole-dlrrec SUBCOMMAND --help

Each subcommand is the `main(argv) -> exit status` of a module in recbole_dlrrec/cli/; the
dispatcher only picks it (and imports nothing heavy before), so `--help` stays quick. This is the
one spelling of each command; run_recbole.py, run_tune.py and run_leaderboard.py are the same
`main`s as RecBole-style scripts.

RecBole is not among the wheel's requirements (RecBole 1.2.1 declares ray<=2.6.3, which the
ray[tune] in them excludes), so a plain `pip install` of the wheel leaves it out: every
subcommand then stops with one line that names the missing step, before importing anything.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import Dict, Optional, Sequence, Tuple

from recbole_dlrrec.errors import EXIT_INPUT_ERROR, InputError

PROG = "recbole-dlrrec"
# The RecBole release the plugin is written for; requirements-recbole.txt pins the same (tested).
RECBOLE_REQUIREMENT = "recbole==1.2.1"

# name -> (module whose main(argv) runs it, one-line summary)
COMMANDS: Dict[str, Tuple[str, str]] = {
    "train": ("recbole_dlrrec.cli.train", "train and evaluate one model on one dataset (results JSON)"),
    "leaderboard": ("recbole_dlrrec.cli.leaderboard", "train many models x seeds and write a leaderboard"),
    "tune": ("recbole_dlrrec.cli.tune", "tune a model's hyperparameters with Ray Tune (ASHA)"),
    "convert": (
        "recbole_dlrrec.cli.convert",
        "convert Google Local or Yelp reviews + business data into a RecBole dataset",
    ),
    "swing": (
        "recbole_dlrrec.cli.swing",
        "build (or load) a dataset's contrastive neighbours (cl_similarity) and audit them",
    ),
    "ray-token": ("recbole_dlrrec.cli.ray_token", "make the Ray auth token a Ray cluster in token mode needs (0600)"),
}


def prog(command: str) -> str:
    """The program name a subcommand's usage shows: the run_*.py script that started it (RecBole's
    own spelling), else `recbole-dlrrec COMMAND`."""
    script = os.path.basename(sys.argv[0]) if sys.argv else ""
    return script if script.startswith("run_") and script.endswith(".py") else f"{PROG} {command}"


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [
        f"usage: {PROG} {{{','.join(COMMANDS)}}} [options]",
        "",
        "DLRREC and DLRM as a RecBole 1.2.1 plugin.",
        "",
        "subcommands:",
    ]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", f"`{PROG} SUBCOMMAND --help` lists a subcommand's options."]
    return "\n".join(lines)


def check_recbole_installed() -> None:
    """Raise InputError naming the install step when RecBole cannot be imported."""
    if importlib.util.find_spec("recbole") is None:
        raise InputError(
            f"RecBole is not installed: install it without its own dependencies (recbole-dlrrec "
            f"brought the ones it uses): pip install --no-deps {RECBOLE_REQUIREMENT}"
        )


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    if args[0] == "--version":
        from recbole_dlrrec import __version__

        print(f"{PROG} {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"error: unknown subcommand {name!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        check_recbole_installed()
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    module = importlib.import_module(COMMANDS[name][0])
    status = module.main(rest)
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
