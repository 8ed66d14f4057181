"""Shim: see recbole_dlrrec/cli/leaderboard.py (also installed as `recbole-dlrrec leaderboard`)."""

import sys

from recbole_dlrrec.cli.leaderboard import main

if __name__ == "__main__":
    sys.exit(main())
