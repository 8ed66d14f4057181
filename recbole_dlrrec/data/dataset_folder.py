"""The one atomic writer of a dataset folder ``OUT/NAME/`` (the converter and the cold-item split).

A dataset is built in ``OUT/.NAME.tmp-<pid>-XXXXXXXX`` and swapped into place at the end, so an
interrupted run never leaves half a dataset under the final name::

    with DatasetFolder(out_dir, name) as folder:   # checks the target, cleans stale temp folders
        ...                                         # minutes of work; nothing under OUT/NAME yet
        write files into folder.path
        folder.commit(report)                       # REPORT.json (the marker), then the swap

Rules:

- **Only what this tool wrote is replaced.** ``OUT/NAME`` is replaced only when it is a folder
  (not a symlink) whose ``REPORT.json`` names the dataset (``"name": NAME``), or, for cold-item
  datasets written before that marker existed, whose ``NAME.cold_split.json`` does
  (``"dataset": NAME``). Anything else there (a folder of your own notes, a file, a link) is
  refused with one line before any input is read; nothing is moved or deleted.
- **Nothing else inside it is deleted.** ``REPORT.json`` lists the files the tool wrote
  (``"files"``: the names in the folder at the swap). Anything else in ``OUT/NAME`` (your notes,
  a file you copied in) makes the rebuild refuse with one line naming it, before any input is
  read, unless ``force=True`` (the converter's ``--force``), which deletes it with the old
  dataset. A folder written before that list existed is judged by the names this tool writes
  (``NAME.*.inter``, ``NAME.item``, ``NAME.user``, ``NAME.yaml``, ``NAME.*.npz``,
  ``NAME.cold_split.json``, ``REPORT.*``). The caches the project derives from a dataset inside
  its folder (``DERIVED_CACHES``: the SWING neighbours) are the tool's too: stale once the
  dataset is rebuilt, they go with it.
- **Checked before the work starts**: the name (a plain folder name that fits the file system's
  ``PC_NAME_MAX`` with the temp-folder affixes), ``OUT`` (not a file, not below a file, no symlink
  loop, writable: the temp folder is created at once, which is the real test).
- **Stale temp folders** ``OUT/.NAME.tmp-<pid>-*`` and ``OUT/.NAME.old-<pid>-*`` (and the
  ``.NAME.tmp-XXXXXXXX`` of earlier versions) are removed when their process is gone (a kill -9).
  Nothing else in ``OUT`` is touched.
- An ``OSError`` while writing (disk full, permissions changed) becomes one line
  (:class:`DatasetFolderError`); the temp folder is removed and ``OUT/NAME`` is left as it was.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from typing import Any, Iterator, Optional

from recbole_dlrrec import atomic
from recbole_dlrrec.errors import InputError

#: The file whose ``"name"`` marks a folder as written by this tool (and holds its report).
MARKER = "REPORT.json"
#: The key of MARKER that lists the names the tool wrote into the folder.
FILES_KEY = "files"
#: Folders the project writes inside a dataset folder after it is built (swing/cache.py's
#: ``swing_cache_dir``): caches of that dataset, replaced with it, never someone else's files.
DERIVED_CACHES = ("swing_cache",)
#: What the converter and the cold-item split write, for folders whose MARKER lists no files
#: (written before the list existed); "{name}" is the escaped dataset name.
_LEGACY_OUTPUT = (
    r"^(?:REPORT\.(?:json|md)|{name}\.(?:(?:train|valid|test)\.)?inter"
    r"|{name}\.(?:item|user|yaml|cold_split\.json)|{name}\.[A-Za-z0-9_]+\.npz)$"
)
#: How many foreign names the refusal lists (the count is always full).
_LISTED = 10
#: Longest suffix added to NAME for a file or temp folder: ``.NAME.tmp-<pid>-XXXXXXXX`` and
#: ``.NAME.itemimgvec.npz.tmp-XXXXXXXX.npz`` (atomic.py's temp file inside the folder).
_AFFIX = len("..itemimgvec.npz.tmp-XXXXXXXX.npz")
_WHITESPACE = re.compile(r"\s")


class DatasetFolderError(InputError):
    """The dataset folder cannot be written where asked (one line naming the path)."""


def _read_json(path: str) -> Optional[dict]:
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def read_report(folder: str, name: str) -> Optional[dict]:
    """The report of the dataset ``name`` in ``folder`` (its REPORT.json, or the legacy
    ``NAME.cold_split.json``) when the folder is this tool's output for that name, else None."""
    if os.path.islink(folder) or not os.path.isdir(folder):
        return None
    report = _read_json(os.path.join(folder, MARKER))
    if report is not None and report.get("name") == name:
        return report
    legacy = _read_json(os.path.join(folder, f"{name}.cold_split.json"))
    if legacy is not None and legacy.get("dataset") == name:
        return legacy
    return None


def validate_name(name: str) -> None:
    """A plain folder name: not empty, no separator, no leading dot, no whitespace."""
    if (
        not isinstance(name, str)
        or not name
        or name.startswith(".")
        or os.sep in name
        or (os.altsep and os.altsep in name)
        or _WHITESPACE.search(name)
        or "\x00" in name
    ):
        raise DatasetFolderError(f"dataset name must be a plain folder name without spaces, got {name!r}")


def _existing_ancestor(path: str) -> str:
    """The nearest folder on the way up from ``path`` that exists (raises for a file, a loop)."""
    current = os.path.abspath(path)
    while True:
        try:
            os.stat(current)
        except (FileNotFoundError, NotADirectoryError):  # go up; a file on the way is named below
            parent = os.path.dirname(current)
            if parent == current:
                raise DatasetFolderError(f"{path}: no existing folder above it") from None
            current = parent
            continue
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise DatasetFolderError(f"{path}: symlink loop at {current}") from None
            raise DatasetFolderError(f"{path}: {exc.strerror or exc}") from None
        if not os.path.isdir(current):
            if current == os.path.abspath(path):
                raise DatasetFolderError(f"{path} is a file, not a folder")
            raise DatasetFolderError(f"{path} is below {current}, which is a file, not a folder")
        return current


def foreign_entries(folder: str, name: str, report: dict) -> list[str]:
    """Names in ``folder`` (this tool's dataset ``name``, whose MARKER holds ``report``) that the
    tool did not write, sorted; a folder's name ends in "/". See the module docstring."""
    listed = report.get(FILES_KEY)
    legacy = re.compile(_LEGACY_OUTPUT.format(name=re.escape(name)))
    found = []
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry)
        is_dir = os.path.isdir(path) and not os.path.islink(path)
        if is_dir and entry in DERIVED_CACHES:
            continue
        ours = entry in listed if isinstance(listed, list) else bool(legacy.match(entry))
        if is_dir or not ours:
            found.append(entry + ("/" if is_dir else ""))
    return found


def check_target(out_dir: str, name: str, force: bool = False) -> None:
    """Everything about ``OUT/NAME`` that can be checked without writing (see the module doc);
    ``force`` lets files the tool did not write inside its own dataset folder be deleted."""
    validate_name(name)
    ancestor = _existing_ancestor(out_dir)
    try:
        name_max = os.pathconf(ancestor, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        name_max = 255
    if len(name.encode("utf-8")) + _AFFIX > name_max:
        raise DatasetFolderError(
            f"dataset name is {len(name.encode('utf-8'))} bytes long; at most {name_max - _AFFIX} fit "
            f"the file system's {name_max}-byte name limit with the converter's file suffixes"
        )
    final = os.path.join(out_dir, name)
    if os.path.lexists(final) and read_report(final, name) is None:
        kind = "a symlink" if os.path.islink(final) else "a folder" if os.path.isdir(final) else "a file"
        raise DatasetFolderError(
            f"{final} is {kind} this tool did not write (no {MARKER} naming {name!r}); "
            "move it away or choose another --name/--out: it is never overwritten"
        )
    if os.path.lexists(final) and not force:
        try:
            foreign = foreign_entries(final, name, read_report(final, name) or {})
        except OSError as exc:
            raise DatasetFolderError(f"{final}: cannot list its files: {exc.strerror or exc}") from None
        if foreign:
            shown = ", ".join(foreign[:_LISTED]) + (f", ... ({len(foreign)} in all)" if len(foreign) > _LISTED else "")
            raise DatasetFolderError(
                f"{final} holds {len(foreign)} file(s) this tool did not write: {shown}; rebuilding would "
                "delete them: move them out of the folder first (the converter's --force deletes them instead)"
            )


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but not ours (EPERM)
        return True
    return True


def clean_stale(out_dir: str, name: str) -> list[str]:
    """Remove this tool's temp folders for ``name`` whose process is gone; returns their paths."""
    tagged = re.compile(r"^\." + re.escape(name) + r"\.(?:tmp|old)-(\d+)-[a-z0-9_]{8}$")
    legacy = re.compile(r"^\." + re.escape(name) + r"\.tmp-[a-z0-9_]{8}$")
    removed: list[str] = []
    try:
        entries = os.listdir(out_dir)
    except OSError:
        return removed
    for entry in entries:
        path = os.path.join(out_dir, entry)
        if os.path.islink(path) or not os.path.isdir(path):
            continue
        match = tagged.match(entry)
        if (match and not _pid_alive(int(match.group(1)))) or legacy.match(entry):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _one_line(final: str, exc: OSError) -> DatasetFolderError:
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    return DatasetFolderError(
        f"{final}: cannot write the dataset: {exc.strerror or exc}{where}; the previous content (if any) is unchanged"
    )


class DatasetFolder:
    """Build ``OUT/NAME`` in a temp folder and swap it into place (see the module docstring).

    Args:
        out_dir: the folder that holds datasets (``data_path``).
        name: the dataset name (the folder's name).
        force: delete files the tool did not write inside an existing ``OUT/NAME`` of its own
            (refused by default, naming them).
    """

    def __init__(self, out_dir: str, name: str, force: bool = False) -> None:
        self.out_dir = out_dir
        self.name = name
        self.force = force
        self.final = os.path.join(out_dir, name)
        self.path: Optional[str] = None  # the temp folder, once entered
        self.committed = False
        self.stale_removed: list[str] = []
        self._made_out_dir = False

    def __enter__(self) -> "DatasetFolder":
        check_target(self.out_dir, self.name, self.force)
        try:
            self._made_out_dir = not os.path.isdir(self.out_dir)
            os.makedirs(self.out_dir, exist_ok=True)
            self.stale_removed = clean_stale(self.out_dir, self.name)
            self.path = tempfile.mkdtemp(prefix=f".{self.name}.tmp-{os.getpid()}-", dir=self.out_dir)
            os.chmod(self.path, 0o777 & ~atomic.current_umask())  # mkdtemp makes it private
        except OSError as exc:
            raise _one_line(self.final, exc) from None
        return self

    def file(self, filename: str) -> str:
        """Path of ``filename`` inside the temp folder."""
        if self.path is None:
            raise RuntimeError("DatasetFolder used outside its with block")
        return os.path.join(self.path, filename)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Around the writes into the temp folder: an OSError (disk full) becomes one line."""
        try:
            yield
        except OSError as exc:
            raise _one_line(self.final, exc) from None

    def commit(self, report: dict) -> dict:
        """Write ``report`` as REPORT.json (with ``"name"``: the marker, and ``"files"``: the names
        written, MARKER included), then swap into place; returns what REPORT.json holds."""
        report = {"name": self.name, **{k: v for k, v in report.items() if k not in ("name", FILES_KEY)}}
        try:
            report[FILES_KEY] = sorted({*os.listdir(self.path), MARKER})
            atomic.write_json(self.file(MARKER), report, indent=2, ensure_ascii=False)
            # Checked again: something may have appeared at OUT/NAME during the work.
            check_target(self.out_dir, self.name, self.force)
            self._swap()
        except OSError as exc:
            raise _one_line(self.final, exc) from None
        self.committed = True
        return report

    def _swap(self) -> None:
        assert self.path is not None, "commit runs inside the with block"
        old = None
        if os.path.lexists(self.final):
            old = tempfile.mkdtemp(prefix=f".{self.name}.old-{os.getpid()}-", dir=self.out_dir)
            os.rmdir(old)
            os.replace(self.final, old)
        try:
            os.replace(self.path, self.final)
        except BaseException:
            if old is not None:
                os.replace(old, self.final)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self.path is not None and not self.committed:
            shutil.rmtree(self.path, ignore_errors=True)
            if self._made_out_dir:  # a failed first run leaves no empty OUT behind
                with contextlib.suppress(OSError):
                    os.rmdir(self.out_dir)
