"""Whether a sandbox's filesystem ran out of space: evidence from the filesystem itself.

A command that fills the disk often leaves no exception to see: ``dd`` prints
"No space left on device" into a captured stderr that sits on the same full
disk (so it is lost), and the verifier then finds a short or empty output. So
the evidence is read from the filesystem at the end of the trial, before the
sandbox is removed: the space still free, and whether one more MiB can be
allocated there at all.

The allocation probe, not the free-space figure, decides "full": ext4 keeps
blocks that root may use and others may not, and a reserve that nobody may use,
so no single ``statvfs`` field says whether the sandbox's writer hit ENOSPC
(a 64 MiB ext4 filled by root showed ``f_bavail`` 0 and ``f_bfree`` 1.7 MiB,
and a 1 MiB ``fallocate`` there failed with ENOSPC). The probe is written by
this process with its own privileges, the same as the sandbox's commands on
the local backend and root's, as in a container, on the docker backend. It
only runs when ``statvfs`` leaves doubt (less than :data:`PROBE_BELOW_BYTES`
free to unprivileged writers): a roomy disk costs one ``statvfs`` per trial,
not an allocation (about 3 ms on this project's ext4 under load).
"""

from __future__ import annotations

import errno
import os
import tempfile
from dataclasses import dataclass

from .base import Evidence

PROBE_BYTES = 1 << 20
PROBE_BELOW_BYTES = 64 << 20
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True)
class DiskReading:
    free_bytes: int  # what an unprivileged writer may still use (statvfs f_bavail)
    full: bool  # PROBE_BYTES could not be allocated there: no space left (or over a quota)


def read(directory: str | os.PathLike) -> DiskReading | None:
    """The filesystem holding ``directory``; None if it cannot be read (gone, not visible from here)."""
    try:
        stat = os.statvfs(directory)
    except OSError:
        return None
    free = stat.f_bavail * stat.f_frsize
    return DiskReading(free_bytes=free, full=free < PROBE_BELOW_BYTES and _cannot_allocate(directory))


def _cannot_allocate(directory: str | os.PathLike) -> bool:
    """Allocating :data:`PROBE_BYTES` in ``directory`` fails for lack of space (the file is removed again)."""
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".hb-disk-probe-") as probe:
            os.posix_fallocate(probe.fileno(), 0, PROBE_BYTES)
    except OSError as exc:
        return exc.errno in _NO_SPACE
    return False


def free_bytes(directory: str | os.PathLike) -> int | None:
    """What an unprivileged writer may still use on ``directory``'s filesystem (None: cannot be read)."""
    try:
        stat = os.statvfs(directory)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


def own_bytes(directory: str | os.PathLike) -> int:
    """The space the files below ``directory`` take (allocated blocks, links not followed)."""
    total = 0
    for where, dirs, files in os.walk(directory):
        for name in dirs + files:
            try:
                total += os.lstat(os.path.join(where, name)).st_blocks * 512
            except OSError:
                continue  # removed meanwhile
    return total


def record(evidence: Evidence, directory: str | os.PathLike, free_at_start: int | None = None) -> Evidence:
    """``evidence`` with the disk reading of ``directory`` (left unset when it cannot be read).

    ``free_at_start``: ``directory`` lies on a filesystem others write too (the
    local backend's TMPDIR), which had that much free when the trial started.
    Full then counts as this trial's only when its own files below ``directory``
    take at least half of that: another process filling the shared disk is not
    this trial's doing. (Walked only when the disk is full.)
    """
    reading = read(directory)
    if reading is not None:
        full = reading.full
        if full and free_at_start is not None:
            full = own_bytes(directory) >= free_at_start // 2
        evidence.disk_free_bytes, evidence.disk_full = reading.free_bytes, full
    return evidence
