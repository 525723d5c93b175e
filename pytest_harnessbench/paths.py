"""Where the plugin keeps host state: one directory per owner, never shared.

::

    <TMPDIR>/harnessbench-<uid>/      state_root(): created here (0700, ours), never removed
        admission/                    the admission ledger (admission.py)
        work/                         the local backend's trial directories (sandbox/local.py)
        confine/                      the local backend's /etc trees for confined commands (sandbox/local.py)

Run directories (results) live under the project, ``.harnessbench/runs/``,
and belong to ``store.py``. No component's cleanup walks a directory another
component owns, and a reaper removes only names of its own pattern: an
earlier layout kept the ledger inside the work root, where the work-root
reaper took it for an empty run directory and removed it (issue 11).

The state root is private (mode 0700, owned by this user, checked on every
use): a root session's trial directories hold files its sandboxes made, which
no other user may reach (README, "Safety").

A leaf module: imports nothing of the package.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

MIN_FREE_BYTES = 1024**2  # less than this free and a trial cannot even write its output files


class StateDirError(OSError):
    """A state directory cannot be created or written; the message says which and what to do."""


def state_root() -> Path:
    """``<TMPDIR>/harnessbench-<uid>``, created private: per user, so one user's directory never blocks another's.

    Raises:
        StateDirError: TMPDIR is set but unusable (Python's ``tempfile`` would silently
            fall back to /tmp, and state would land where the user did not put it), no
            usable temporary directory at all, or the directory is not this user's (see
            :func:`private_dir`).
    """
    tmpdir = os.environ.get("TMPDIR")
    if tmpdir:
        try:
            with tempfile.TemporaryFile(dir=tmpdir):
                pass
        except OSError as exc:
            raise StateDirError(f"TMPDIR={tmpdir} cannot hold files ({exc.strerror or exc}); "
                                "set TMPDIR to a writable directory with free space") from None
    try:
        root = Path(tempfile.gettempdir()) / f"harnessbench-{os.getuid()}"
    except FileNotFoundError as exc:
        raise StateDirError(f"{exc}; set TMPDIR to a writable directory with free space") from None
    return private_dir(root)


def private_dir(path: Path) -> Path:
    """``path`` as a directory only this user can enter: created with mode 0700, or checked and made so.

    A directory of ours that others can enter (made by an earlier version, 0755)
    is set to 0700. One that is not ours (another user made it first in a shared
    /tmp), or a link, is refused: its owner could reach, or swap, what we put there.

    Raises:
        StateDirError: not a directory, a link, or owned by another user.
    """
    hint = "remove it or set TMPDIR to a directory of your own"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(path)
    except OSError as exc:
        raise StateDirError(f"cannot create {path} ({exc.strerror or exc}); "
                            "set TMPDIR to a writable directory with free space") from None
    if not stat.S_ISDIR(info.st_mode):
        raise StateDirError(f"{path} is not a directory (a link or a file); {hint}")
    if info.st_uid != os.geteuid():
        raise StateDirError(f"{path} belongs to uid {info.st_uid}, not to this user (uid {os.geteuid()}); {hint}")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path


def check_creatable(path: Path, what: str, hint: str) -> None:
    """Raise StateDirError unless ``path`` is, or could be made, a writable directory; creates nothing.

    Checks the nearest existing ancestor: a file in the way, no write permission,
    a read-only filesystem (``access(2)`` reports EROFS) or (almost) no free space.
    """
    probe = Path(path).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise StateDirError(f"cannot create the {what} at {path}: {probe} is not a directory; {hint}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise StateDirError(f"cannot create the {what} at {path}: {probe} is not writable; {hint}")
    stat = os.statvfs(probe)
    if stat.f_bavail * stat.f_frsize < MIN_FREE_BYTES:
        raise StateDirError(f"no free space for the {what} at {path}; {hint}")


def writable_dir(path: Path, what: str) -> Path:
    """Create ``path`` (and parents) and check that a file can be written there now.

    Raises:
        StateDirError: read-only, not a directory, no permission, or (almost) no free space.
    """
    hint = "set TMPDIR to a writable directory with free space"
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
        free = os.statvfs(path).f_bavail * os.statvfs(path).f_frsize
    except OSError as exc:
        raise StateDirError(f"cannot write the {what} at {path} ({exc.strerror or exc}); {hint}") from None
    if free < MIN_FREE_BYTES:
        raise StateDirError(f"no free space for the {what} at {path} ({free} bytes free); {hint}")
    return path
