"""What several tests need from the host: waiting for a condition, a small filesystem of a given size."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path


def wait_for(predicate, timeout_s: float) -> bool:
    """Poll ``predicate`` every 50 ms until it holds or ``timeout_s`` passes; its last answer."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@contextlib.contextmanager
def small_disk(path: Path, size: str):
    """A tmpfs of ``size`` (e.g. ``4m``) mounted at ``path`` for the block (root only)."""
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)
