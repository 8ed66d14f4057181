"""Ray's token authentication and the network a local Ray listens on; no Ray import here.

With ``RAY_AUTH_MODE=token`` every Ray connection carries a shared secret, and Ray (2.52 and
later) reads it from the first of:

1. the ``RAY_AUTH_TOKEN`` environment variable, when not empty;
2. the file named by ``RAY_AUTH_TOKEN_PATH`` (Ray aborts when that file is missing or empty);
3. ``~/.ray/auth_token``.

``ray start --head`` in token mode refuses to start without one, so a cluster begins with
``recbole-dlrrec ray-token`` (:func:`make_token`): a new token of Ray's own form (256 random bits
as 64 hex digits) at the path of 2 or 3, mode 0600 from the first byte, written atomically, and
never over a token that exists unless asked (``--force``). That file is copied to every machine
of the cluster and to the driver's.

A search that joins a cluster checks, before any data is prepared, that a token is there
(:func:`check_driver_token`). A search on a local Ray listens on the loopback interface only
(:data:`LOCAL_RAY_ENV`, :data:`LOCAL_HOST`) and, when the user has no token, gets one of its own in
the process environment (:func:`give_local_ray_a_token`) instead of Ray writing one into ``~/.ray``.
"""

from __future__ import annotations

import os
import secrets
import stat
from typing import Optional

from recbole_dlrrec import atomic
from recbole_dlrrec.errors import InputError

MODE_ENV = "RAY_AUTH_MODE"
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
TOKEN_FILE_MODE = 0o600
TOKEN_BYTES = 32  # as `ray get-auth-token --generate`: 256 bits, written as 64 hex digits

# A local Ray: its node address, and the switch Ray reads when it is imported. Ray turns a
# loopback node address into the machine's network address unless its "no cluster" mode is on
# (the mode it uses on macOS and Windows): then every Ray process listens on 127.0.0.1 only.
LOCAL_HOST = "127.0.0.1"
LOCAL_RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


class RayTokenError(InputError):
    """No usable Ray auth token where one is needed, or a token file that cannot be written."""


def auth_mode() -> str:
    """RAY_AUTH_MODE as Ray reads it ("" when unset)."""
    return os.environ.get(MODE_ENV, "").strip().lower()


def default_token_file() -> str:
    """~/.ray/auth_token of this user (HOME, as Ray's Path.home())."""
    return os.path.join(os.path.expanduser("~"), ".ray", "auth_token")


def token_file() -> str:
    """The file Ray reads the token from when RAY_AUTH_TOKEN is not set."""
    return os.environ.get(TOKEN_PATH_ENV) or default_token_file()


def _read_token(path: str) -> Optional[str]:
    """The token in `path` (surrounding whitespace dropped), or None when there is no file."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise RayTokenError(f"{path}: cannot read the Ray auth token ({reason})") from None


def token_source() -> Optional[str]:
    """Where Ray will take the token from ("RAY_AUTH_TOKEN" or a file path), or None when there
    is none. Raises RayTokenError where Ray would abort: RAY_AUTH_TOKEN_PATH names a file that is
    missing, unreadable or empty."""
    if os.environ.get(TOKEN_ENV, "").strip():
        return TOKEN_ENV
    named = os.environ.get(TOKEN_PATH_ENV)
    token = _read_token(token_file())
    if named and not token:
        raise RayTokenError(
            f"{TOKEN_PATH_ENV}={named}: the file is missing or empty; "
            f"make a token there with `recbole-dlrrec ray-token`, or unset {TOKEN_PATH_ENV}"
        )
    return token_file() if token else None


def make_token(path: Optional[str] = None, force: bool = False) -> bool:
    """Write a new token to `path` (default :func:`token_file`), mode 0600, atomically.

    An existing file is kept (returns False) unless `force`, in which case it is replaced;
    an empty or non-regular file there is refused (RayTokenError), as it is not a token this
    command made. Returns True when a token was written."""
    path = path or token_file()
    if os.path.lexists(path) and not force:
        if not os.path.isfile(path) or not _read_token(path):
            raise RayTokenError(f"{path}: exists but holds no Ray auth token; remove it or pass --force")
        return False
    token = secrets.token_hex(TOKEN_BYTES).encode("ascii")
    try:
        atomic.write_bytes(path, token, mode=TOKEN_FILE_MODE, replace=force)
    except FileExistsError:  # another process made one between the check and the write: keep it
        return False
    except OSError as exc:
        raise RayTokenError(f"{path}: cannot write the Ray auth token ({exc.strerror or exc})") from None
    return True


def readable_by_others(path: str) -> bool:
    """True when group or other users may read or change `path`."""
    return bool(stat.S_IMODE(os.stat(path).st_mode) & 0o077)


def check_driver_token(address: str) -> None:
    """Before a driver joins the cluster at `address`: in token mode, a token must be there.
    Raises RayTokenError (one line) otherwise, so a missing token costs no data preparation."""
    if auth_mode() != "token":
        return
    if token_source() is None:
        raise RayTokenError(
            f"--address={address}: RAY_AUTH_MODE=token but no Ray auth token here ({TOKEN_ENV}, "
            f"{TOKEN_PATH_ENV} or {default_token_file()}); copy the head's token file to {default_token_file()}"
        )


def give_local_ray_a_token() -> None:
    """A local Ray in token mode (Ray's default when RAY_AUTH_MODE is unset) that finds no
    token writes a new one to ~/.ray/auth_token, with the permissions of the user's umask. Give
    it one in this process's environment instead, which its workers inherit. The token stays for
    the life of the process: Ray keeps the token it read first."""
    if auth_mode() in ("", "token") and token_source() is None:
        os.environ[TOKEN_ENV] = secrets.token_hex(TOKEN_BYTES)
