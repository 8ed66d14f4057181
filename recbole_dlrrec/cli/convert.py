"""`recbole-dlrrec convert`: the Google Local converter (recbole_dlrrec.data.google_local)."""
from __future__ import annotations

import sys
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    from recbole_dlrrec import patches

    patches.apply()  # --verify loads the result with RecBole
    from recbole_dlrrec.data.google_local import main as convert_main

    return convert_main(sys.argv[1:] if argv is None else list(argv))


if __name__ == "__main__":
    sys.exit(main())
