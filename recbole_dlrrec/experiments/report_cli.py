"""The tail every report command shares: build the text, print it, write it to --out, and turn an
InputError into one line on stderr and exit 2 (errors.py).

    return print_report(lambda: report(read_scores(...)), args.out)
"""

from __future__ import annotations

import sys
from typing import Callable

from recbole_dlrrec import atomic
from recbole_dlrrec.errors import EXIT_INPUT_ERROR, InputError


def print_report(build: Callable[[], str], out: str = "") -> int:
    """Print `build()`'s text (and write it atomically to `out` when given); 0, or 2 on bad input."""
    try:
        text = build()
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    print(text, end="")
    if out:
        atomic.write_text(out, text)
    return 0
