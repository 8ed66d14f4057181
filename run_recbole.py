"""Shim: see recbole_dlrrec/cli/train.py (also installed as `recbole-dlrrec train`)."""

import sys

from recbole_dlrrec.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
