"""Facts about processes and the host, from /proc: a leaf module that imports nothing of the package.

Who made a thing: a token names a process by pid and start time, so a later
session can tell whether the process that created a cgroup, directory,
container or ledger entry still runs. Also where the cgroup hierarchies are
mounted and how much memory the host has, and a wait for a child's exit that the kernel
wakes (:func:`wait_exit`).
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
from pathlib import Path


def read_file(path: Path | str) -> str:
    """A /proc, /sys or cgroup file's text, with os-level calls: a third of what pathlib's open and text
    layer cost (2.6 against 8 us a file here), which adds up on a trial's twenty cgroup files.

    Raises:
        OSError: it cannot be read.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks).decode()
    finally:
        os.close(fd)


def read_text(path: Path | str) -> str | None:
    """A small /proc or /sys file, stripped; None if it cannot be read."""
    try:
        return read_file(path).strip()
    except OSError:
        return None


_BOOT_ID = read_text("/proc/sys/kernel/random/boot_id")
_HOST = socket.gethostname()
_HAVE_PROC = os.path.exists("/proc/self/stat")


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of ``pid`` from /proc, or None if it has none."""
    text = read_text(f"/proc/{pid}/stat")
    if not text:
        return None
    fields = text[text.rfind(")") + 2:].split()  # the command name may contain spaces and ')'
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def identity(pid: int | None = None) -> dict:
    """pid, start time, boot id and host of a process (default: this one)."""
    pid = os.getpid() if pid is None else pid
    stat = _proc_stat(pid)
    return {"pid": pid, "start": stat[1] if stat else None, "boot": _BOOT_ID, "host": _HOST}


def owner_alive(entry: dict) -> bool:
    """Whether the process that wrote ``entry`` still runs (True when it cannot be told)."""
    if entry.get("host") != _HOST:
        return True  # another machine's process: nothing here can tell
    if entry.get("boot") and _BOOT_ID and entry["boot"] != _BOOT_ID:
        return False  # written before a reboot
    pid = entry.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, belongs to another user
    if not _HAVE_PROC:
        return True
    stat = _proc_stat(pid)
    if stat is None:
        return False  # exited between the two checks
    state, start = stat
    if state in ("Z", "X", "x"):
        return False  # killed, not yet reaped by its parent
    return entry.get("start") is None or entry["start"] == start


def owner_token() -> str:
    """``PID-START`` of this process: names things it creates so a reaper can tell if it died."""
    me = identity()
    return f"{me['pid']}-{me['start'] or 0}"


def token_alive(token: str) -> bool:
    """Whether the process named by :func:`owner_token` still runs (True if the token is unreadable)."""
    try:
        pid, start = (int(part) for part in token.split("-"))
    except ValueError:
        return True
    return owner_alive({"pid": pid, "start": start or None, "host": _HOST})


def children(pid: int) -> list[int]:
    """The pids of ``pid``'s child processes (from each thread's ``/proc/PID/task/TID/children``)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        found += [int(child) for child in (read_text(task / "children") or "").split()]
    return found


def cgroup_mounts() -> dict[str, Path]:
    """Where cgroups are mounted: each v1 controller (and mount option) by name, the v2 hierarchy under ``""``."""
    mounts: dict[str, Path] = {}
    for line in (read_text("/proc/self/mountinfo") or "").splitlines():
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) < 5 or len(rest) < 3:
            continue
        if rest[0] == "cgroup2":
            mounts.setdefault("", Path(fields[4]))
        elif rest[0] == "cgroup":
            for option in rest[2].split(","):
                mounts.setdefault(option, Path(fields[4]))
    return mounts


def cgroup_paths(pid: int | str = "self") -> dict[str, str]:
    """A process's cgroup per hierarchy, from ``/proc/PID/cgroup``: each v1 controller by name, v2 under ``""``.

    The one reader of that file. Empty when it cannot be read (the process is gone, no /proc).
    """
    paths: dict[str, str] = {}
    for line in (read_text(f"/proc/{pid}/cgroup") or "").splitlines():
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def physical_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def wait_exit(proc: subprocess.Popen, timeout: float | None) -> int:
    """``proc.wait(timeout)``, woken by the kernel the moment the process exits.

    With a timeout, ``Popen.wait`` polls, sleeping 0.5, 1, 2, 4 ms... between
    looks (CPython through 3.13): a sandbox command of 4 ms returned after
    5.5-8 ms. A pidfd (Linux 5.3) becomes readable when the process exits;
    where there is none, this is ``Popen.wait``.

    Raises:
        subprocess.TimeoutExpired: still running after ``timeout`` seconds (it is left running).
    """
    if timeout is None or proc.returncode is not None:
        return proc.wait(timeout)
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # no pidfd_open here (or the process is already reaped: wait() knows)
        return proc.wait(timeout)
    try:
        poller = select.poll()  # not select(): a busy process's descriptor numbers pass FD_SETSIZE
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(max(0.0, timeout) * 1000):
            raise subprocess.TimeoutExpired(proc.args, timeout)
    finally:
        os.close(pidfd)
    return proc.wait()
