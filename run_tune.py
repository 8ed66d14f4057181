"""Shim: see recbole_dlrrec/cli/tune.py (also installed as `recbole-dlrrec tune`)."""

import sys

from recbole_dlrrec.cli.tune import main

if __name__ == "__main__":
    sys.exit(main())
