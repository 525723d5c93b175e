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


def record(evidence: Evidence, directory: str | os.PathLike) -> Evidence:
    """``evidence`` with the disk reading of ``directory`` (left unset when it cannot be read)."""
    reading = read(directory)
    if reading is not None:
        evidence.disk_free_bytes, evidence.disk_full = reading.free_bytes, reading.full
    return evidence
