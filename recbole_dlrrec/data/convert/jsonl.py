"""JSON lines, any source: bytes -> numbered lines -> JSON objects, every bad line a counted :class:`Skip`.

:func:`parse_line` never raises, whatever the bytes; :func:`records` counts blank, malformed and
non-object lines in a :class:`FileTally` and raises :class:`ConversionError` naming the file for
what makes the whole file unusable (unreadable, truncated gzip, empty, UTF-16, a JSON array, not
one JSON object line). Plain and gzip files are told apart by their content, not their name. A
line over ``max_line_bytes`` is never held whole: it comes as a :class:`LongLine` and is counted
as ``line_too_long``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import zlib
from dataclasses import dataclass
from typing import Iterator, Union

from recbole_dlrrec.data.convert.records import MAX_LISTED_LINES, ConversionError, FileTally, Skip

#: Longest line read (bytes, its line break not counted): parsing a line holds it many times
#: over (bytes, str, the parsed object, cleaned text), so a longer one is skipped unread and
#: counted as ``line_too_long``. Real Google Local and Yelp lines stay under a few KB.
DEFAULT_MAX_LINE_BYTES = 1 << 20
#: Bytes of a too-long line that are kept (the file-level checks look at a line's start) and
#: read at a time while the rest of it is skipped.
_LONG_LINE_HEAD = 200
_SKIP_CHUNK = 1 << 20


def _open_binary(path: str) -> io.BufferedIOBase:
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise ConversionError(f"{path}: cannot open: {exc.strerror or exc}") from exc
    try:
        head = handle.read(2)
        handle.seek(0)
    except OSError as exc:
        handle.close()
        raise ConversionError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if head == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=handle, mode="rb")  # type: ignore[return-value]
    return handle  # type: ignore[return-value]


@dataclass(frozen=True)
class LongLine:
    """A line longer than the cap, never held whole: its first bytes and its length in bytes
    (line break not counted)."""

    head: bytes
    size: int


def _capped_lines(handle: io.BufferedIOBase, max_bytes: int) -> Iterator[Union[bytes, LongLine]]:
    """The lines of ``handle``; one longer than ``max_bytes`` is read in chunks and forgotten,
    so memory holds at most ``max_bytes`` of any line."""
    while True:
        raw = handle.readline(max_bytes + 1)
        if not raw:
            return
        if raw.endswith(b"\n") or len(raw) <= max_bytes:
            yield raw
            continue
        head, size = raw[:_LONG_LINE_HEAD], len(raw)
        while not raw.endswith(b"\n"):
            raw = handle.readline(_SKIP_CHUNK)
            if not raw:
                break
            size += len(raw)
        yield LongLine(head, size - (1 if raw.endswith(b"\n") else 0))


def iter_lines(path: str, max_line_bytes: int | None = None) -> Iterator[tuple[int, Union[bytes, LongLine]]]:
    """``(line_number, raw_bytes)`` for every line of a plain or gzip file (1-based numbers).
    With ``max_line_bytes``, a longer line comes as a :class:`LongLine` instead of its bytes.

    Raises ConversionError for an unreadable, truncated or corrupt file, naming it and the
    last line read.
    """
    lineno = 0
    handle = _open_binary(path)
    try:
        for raw in handle if max_line_bytes is None else _capped_lines(handle, max_line_bytes):
            lineno += 1
            yield lineno, raw
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ConversionError(f"{path}: truncated or corrupt gzip data after line {lineno} ({exc})") from exc
    except OSError as exc:
        raise ConversionError(f"{path}: read error after line {lineno}: {exc}") from exc
    finally:
        handle.close()


def looks_like_utf16(first_line: bytes) -> bool:
    """A UTF-16 (or UTF-32) byte order mark, or NUL bytes in every other position."""
    if first_line.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True
    head = first_line[:200]
    return len(head) >= 4 and head.count(b"\x00") * 3 >= len(head)


def parse_line(raw: bytes, lineno: int = 2) -> Union[dict, Skip]:
    """One line -> a JSON object, or a Skip (blank_line, malformed_json, not_an_object). Never raises."""
    if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):  # UTF-8 byte order mark
        raw = raw[3:]
    if not raw.strip():
        return Skip("blank_line", "blank line", strict_fatal=False)
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return Skip("malformed_json", f"malformed JSON ({exc})")
    except RecursionError:  # thousands of nested brackets: malformed like any other line
        return Skip("malformed_json", "malformed JSON (nested too deeply)")
    if not isinstance(obj, dict):
        return Skip("not_an_object", f"expected a JSON object, got {type(obj).__name__}")
    return obj


def long_line_skip(line: LongLine, max_line_bytes: int) -> Skip:
    """The Skip of a line over the cap (``line_too_long``)."""
    return Skip(
        "line_too_long",
        f"line of {line.size} bytes is longer than max_line_bytes={max_line_bytes} (raise --max_line_bytes to read it)",
    )


def records(
    path: str, tally: FileTally, strict: bool, show_progress: bool, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
) -> Iterator[tuple[int, dict]]:
    """Parsed JSON objects with line numbers; blank/malformed/non-object/too-long lines are counted."""
    from tqdm.auto import tqdm

    first_bad: tuple[int, str] | None = None
    bar = tqdm(desc=f"reading {os.path.basename(path)}", unit=" lines", disable=not show_progress)
    try:
        for lineno, raw in iter_lines(path, max_line_bytes):
            tally.lines_read += 1
            bar.update(1)
            head = raw.head if isinstance(raw, LongLine) else raw
            if lineno == 1 and looks_like_utf16(head):
                raise ConversionError(
                    f"{path}: looks like UTF-16 text (byte order mark or NUL bytes): re-encode it as UTF-8 "
                    "(e.g. iconv -f UTF-16 -t UTF-8)"
                )
            if tally.objects == 0 and first_bad is None and head.lstrip().startswith(b"["):
                raise ConversionError(
                    f"{path}: line {lineno} starts a JSON array; expected JSON lines (one object per line)"
                )
            parsed = long_line_skip(raw, max_line_bytes) if isinstance(raw, LongLine) else parse_line(raw, lineno)
            if isinstance(parsed, Skip):
                if strict and parsed.strict_fatal:
                    raise ConversionError(f"{path}:{lineno}: {parsed.detail}")
                tally.drop(parsed.reason)
                listed = tally.long_lines if isinstance(raw, LongLine) else tally.malformed_lines
                if parsed.reason != "blank_line":
                    if len(listed) < MAX_LISTED_LINES:  # the count is in `dropped`
                        listed.append(lineno)
                    if first_bad is None:
                        first_bad = (lineno, head[:60].decode("utf-8", "replace").strip())
                continue
            tally.objects += 1
            yield lineno, parsed
    finally:
        bar.close()
    if tally.lines_read == 0:
        raise ConversionError(f"{path}: the file is empty")
    if tally.objects == 0:
        where = f" (line {first_bad[0]} starts {first_bad[1]!r})" if first_bad else ""
        raise ConversionError(
            f"{path}: no line is a JSON object; expected JSON lines (one object per line), "
            f"not a JSON array or CSV{where}"
        )


def content_digest(obj: dict) -> bytes:
    return hashlib.blake2b(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode("utf-8"), digest_size=16).digest()
