"""A small JSON document shared by processes on one host, read and written under an flock.

The admission ledger (admission.py) does the same with its own queue logic; the
spend ledger (budget.py) and the rate limiter (ratelimit.py) need only this:
hold the lock, read, change, write back atomically. A leaf module.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path


def load(path: Path, empty: Callable[[], dict]) -> dict:
    """The document at ``path``; a missing or unreadable one counts as ``empty()``."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return empty()
    return data if isinstance(data, dict) else empty()


@contextlib.contextmanager
def locked(path: Path, empty: Callable[[], dict]) -> Iterator[dict]:
    """Hold ``path``'s lock (``PATH.lock``), yield its document, write it back if the body changed it.

    A fresh descriptor per call, so the flock also serialises threads of one
    process. Written back on normal exit only (through a temporary file and
    ``os.replace``: a lock-free reader never sees half a document).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        document = load(path, empty)
        before = json.dumps(document, sort_keys=True)
        yield document
        if json.dumps(document, sort_keys=True) != before:
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(document))
            os.replace(tmp, path)
    finally:
        os.close(fd)
