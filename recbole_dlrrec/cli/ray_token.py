"""Make the Ray auth token a cluster in token mode needs (`RAY_AUTH_MODE=token ray start ...`).

    recbole-dlrrec ray-token            # a new token, unless one is there already
    recbole-dlrrec ray-token --force    # a new token in place of the old one

The file is the one Ray reads: $RAY_AUTH_TOKEN_PATH when set, else ~/.ray/auth_token. It is
written atomically with mode 0600; an existing token is kept unless --force. Copy the file to
the same place on every machine of the cluster and on the driver's (experiments/ray_auth.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from recbole_dlrrec.cli.main import prog


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog("ray-token"), description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing token (the cluster must be restarted with the new one)",
    )
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from recbole_dlrrec.errors import EXIT_INPUT_ERROR, InputError
    from recbole_dlrrec.experiments import ray_auth

    path = ray_auth.token_file()
    try:
        written = ray_auth.make_token(path, force=args.force)
        shared = ray_auth.readable_by_others(path)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    if written:
        print(
            f"wrote a new Ray auth token to {path} (mode 0600); copy it to the same path on every "
            "machine of the cluster and on the driver's"
        )
    else:
        print(f"{path} holds a Ray auth token already: kept (--force writes a new one)")
    if shared:
        print(f"warning: other users may read {path}; chmod 600 {path}", file=sys.stderr)
    if ray_auth.auth_mode() != "token":
        print(
            f"note: Ray uses the token when {ray_auth.MODE_ENV}=token is set for every `ray start` and driver",
            file=sys.stderr,
        )
    if os.environ.get(ray_auth.TOKEN_ENV):
        print(f"note: {ray_auth.TOKEN_ENV} is set in this shell, and Ray uses it before {path}", file=sys.stderr)
    return 0
