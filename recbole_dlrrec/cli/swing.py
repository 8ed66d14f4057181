"""`recbole-dlrrec swing`: build (or load) a dataset's SWING neighbour cache and print its audit
(recbole_dlrrec.swing.similarity)."""
from __future__ import annotations

import sys
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    from recbole_dlrrec import patches

    patches.apply()  # before torch is imported (patches.py, fix 4)
    from recbole_dlrrec.errors import InputError
    from recbole_dlrrec.swing.similarity import main as swing_main

    try:
        swing_main(sys.argv[1:] if argv is None else list(argv))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        # As in cli/train.py: the plugin's input errors (unknown model / dataset / key) are
        # one-line ValueErrors; anything else is a bug and keeps its traceback.
        if type(exc).__module__.startswith("recbole_dlrrec"):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
