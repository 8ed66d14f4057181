"""Shim: ``python -m recbole_dlrrec.data.google_local`` = ``python -m recbole_dlrrec.cli.convert``."""
import sys

from recbole_dlrrec.cli.convert import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m recbole_dlrrec.data.google_local"))
