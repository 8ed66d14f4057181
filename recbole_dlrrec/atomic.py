"""Atomic file writes: write a temporary file beside the target, then ``os.replace`` it.

Readers never see half a file, and a writer that fails leaves the old file (or none) in place.

- :func:`atomic_path` is the one place the pattern lives. It yields a temporary path in the
  target's folder (same filesystem, so the rename is atomic), named ``.<basename>.tmp-XXXX<suffix>``
  where ``suffix`` is the target's own extension unless given, so writers that add an extension
  to a name that lacks it (``np.save`` -> ``.npy``, ``np.savez`` -> ``.npz``) write exactly the
  temporary file. On success the file gets the permissions a plain ``open()`` would give
  (``0o666 & ~umask``; ``mkstemp`` alone gives 0600) and replaces the target; on any exception
  it is removed and the exception re-raised. ``mode`` gives the file other permissions (0600
  for a secret: the temporary file is 0600 from the start, so the secret is never readable by
  others, not even for a moment); ``replace=False`` publishes with a hard link instead of a
  rename, which fails with ``FileExistsError`` when the target exists, even one another process
  created a moment ago.
- :func:`write_bytes`, :func:`write_text` and :func:`write_json` are the common cases on top.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import Any, Iterator, Optional

# Longest part of the target's basename kept in the temporary name (NAME_MAX is usually 255).
_MAX_STEM = 120


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (no window where
    another thread would create files with umask 0)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would create a file with."""
    return 0o666 & ~current_umask()


@contextlib.contextmanager
def atomic_path(
    path: str, suffix: Optional[str] = None, mode: Optional[int] = None, replace: bool = True
) -> Iterator[str]:
    """Yield a temporary path beside ``path``; on success move it onto ``path``.

    ``suffix`` ends the temporary name (default: the target's extension, e.g. ``.npy``; ``""``
    for none). The parent folder is created. The temporary file already exists (empty) when
    the path is yielded; writers open it by name and overwrite it. ``mode``: the file's
    permissions (default: those of a plain ``open()``). ``replace=False``: raise
    ``FileExistsError`` instead of replacing an existing ``path`` (the temporary file is removed).
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    if suffix is None:
        suffix = os.path.splitext(path)[1]
    prefix = "." + os.path.basename(path)[:_MAX_STEM] + ".tmp-"
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, default_file_mode() if mode is None else mode)
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # atomic, and refuses an existing target (os.replace would not)
            os.remove(tmp)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_bytes(path: str, data: bytes, mode: Optional[int] = None, replace: bool = True) -> str:
    """Write ``data`` to ``path`` atomically (``mode`` and ``replace`` as in :func:`atomic_path`);
    returns ``path``."""
    with atomic_path(path, mode=mode, replace=replace) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
    return path


def write_text(path: str, text: str) -> str:
    """Write ``text`` as UTF-8 atomically, without newline translation; returns ``path``."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str, obj: Any, **json_kwargs: Any) -> str:
    """``json.dumps(obj, **json_kwargs)`` plus a final newline, written atomically; returns ``path``."""
    return write_text(path, json.dumps(obj, **json_kwargs) + "\n")
