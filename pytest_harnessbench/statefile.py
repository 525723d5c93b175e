"""A small JSON document shared by processes on one host, read and written under an flock.

The admission ledger (admission.py), the spend ledger (budget.py) and the rate
limiter (ratelimit.py) all keep their state this way: hold the lock, read,
change, write back. A leaf module.

The file is a log of whole documents, one JSON line each; the last complete
line is the document. A change is appended (one ``write``), not written to a
temporary file and renamed over the old one: on ext4 a rename over an existing
file forces the new file's blocks to be allocated (``auto_da_alloc``), which
cost 0.19 ms against 0.01 ms for an append, twice per trial for the admission
ledger alone. Crash consistency stays: a writer killed in the middle of its
append leaves a line without its newline, which readers skip (the document
before it stands) and the next writer ends before appending its own. When the
log passes :data:`COMPACT_BYTES` the next writer replaces it with its one line
(temporary file and ``os.replace``, so a lock-free reader sees the old log or
the new one, never half of either).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

COMPACT_BYTES = 64 * 1024


def _last_document(data: bytes, empty: Callable[[], dict]) -> dict:
    """The last newline-terminated line of ``data`` that holds a JSON object (a torn last line is skipped);
    ``empty()`` if none does."""
    end = data.rfind(b"\n")  # what follows the last newline is empty, or an append cut short
    while end >= 0:
        start = data.rfind(b"\n", 0, end) + 1
        try:
            document = json.loads(data[start:end])
        except ValueError:
            document = None
        if isinstance(document, dict):
            return document
        end = start - 1
    return empty()


def load(path: Path, empty: Callable[[], dict]) -> dict:
    """The document at ``path``; a missing or unreadable one counts as ``empty()``."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return empty()
    return _last_document(data, empty)


@contextlib.contextmanager
def locked(path: Path, empty: Callable[[], dict], lock: Path | None = None) -> Iterator[dict]:
    """Hold the lock (``lock``, default ``PATH.lock``), yield the document, write it back if the body changed it.

    A fresh descriptor per call, so the flock also serialises threads of one
    process. Written back on normal exit only: an exception leaves the file as it was.
    The directory is the caller's (it decides what a directory that vanished means).
    """
    path = Path(path)
    fd = os.open(lock or path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # PEP 475: retried on EINTR
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = b""
        document = _last_document(data, empty)
        before = json.dumps(document, sort_keys=True)
        yield document
        if json.dumps(document, sort_keys=True) != before:
            _write(path, data, json.dumps(document).encode() + b"\n")
    finally:
        os.close(fd)  # closing the descriptor drops the flock


def _write(path: Path, old: bytes, line: bytes) -> None:
    if len(old) + len(line) > COMPACT_BYTES:
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_bytes(line)
            os.replace(tmp, path)
        except BaseException:  # a full disk must not leave half a temp file behind
            tmp.unlink(missing_ok=True)
            raise
        return
    if old and not old.endswith(b"\n"):  # a writer died mid-append: end its torn line, or ours would join it
        line = b"\n" + line
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        view = memoryview(line)
        while view:  # a short write (a full disk) raises on the next call; its part stays a torn line
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
