"""A network namespace of a sandbox's own, held by one thread that its commands are started from.

Namespaces belong to threads (the kernel's tasks), not to processes: a thread
that calls ``unshare(CLONE_NEWNET)`` moves into a new, empty network namespace
(a loopback device and nothing else) by itself, and every child it starts is
born there; the process's other threads stay where they were. So a sandbox
keeps one thread that did that and starts each of its commands from it,
instead of each command going through util-linux's ``unshare --net``: one exec
less per command (about 0.9 ms on this project's CI host) and one namespace
per sandbox, not per command, as a container has. The thread also brings the
loopback device up, as Docker's ``network_mode=none`` and bubblewrap do: a
server one command starts on 127.0.0.1 answers the next (``unshare --net``
left it down, so not even that worked). A leaf module.

Creating a network namespace needs ``CAP_SYS_ADMIN`` (root, in practice): for
other users :func:`available` is False and the backend records
``network_isolation: none``, as it did when ``unshare --net`` failed.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import subprocess
from concurrent.futures import Future, ThreadPoolExecutor, wait

CLONE_NEWNET = 0x40000000  # <linux/sched.h>; os.CLONE_NEWNET from Python 3.12


# <linux/sockios.h>, <net/if.h>: a struct ifreq is 40 bytes, the name's 16 and a union whose first short is the flags
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
_IFREQ = struct.Struct("16sh22x")


def _unshare_net() -> None:
    """Move the calling thread into a new network namespace with its loopback device up.

    Raises OSError (EPERM without CAP_SYS_ADMIN).
    """
    if hasattr(os, "unshare"):  # Python 3.12+
        os.unshare(os.CLONE_NEWNET)
    else:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:  # made in the new namespace: its lo
        _, flags = _IFREQ.unpack(fcntl.ioctl(sock, SIOCGIFFLAGS, _IFREQ.pack(b"lo", 0)))
        fcntl.ioctl(sock, SIOCSIFFLAGS, _IFREQ.pack(b"lo", flags | IFF_UP))


class NetworkNamespace:
    """A thread in a network namespace of its own; :meth:`popen` starts a process there.

    Raises (constructor):
        OSError: the namespace cannot be created here.
    """

    def __init__(self) -> None:
        # One worker, created at the first submit and kept: every job runs in the thread that unshared.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="harnessbench-netns")
        try:
            self._thread.submit(_unshare_net).result()
        except BaseException:
            self._thread.shutdown()
            raise

    def popen(self, argv: list[str], **kwargs) -> subprocess.Popen:
        """``subprocess.Popen(argv, **kwargs)``, called from the namespace's thread; its errors are raised here.

        An interrupt (Ctrl-C) while the thread starts the process leaves no process: the caller closes the
        descriptors it passed as the interrupt unwinds, and a start after that would give the process whatever
        file took their numbers (the local backend's limits pipe read as /dev/null: a command outside its cgroup).
        """
        start = self._thread.submit(subprocess.Popen, argv, **kwargs)
        try:
            return start.result()
        except BaseException:
            if not start.cancel():  # the thread is starting it: the descriptors stay open until it has
                _end(_started(start))
            raise

    def close(self) -> None:
        """End the thread; the namespace goes with the last process in it (the sandbox's close kills those)."""
        self._thread.shutdown()


def _started(start: Future) -> subprocess.Popen | None:
    """What a start the caller was interrupted in started, once it has: a few ms; further interrupts wait too."""
    while not start.done():
        try:
            wait([start])
        except BaseException:  # noqa: BLE001 - another Ctrl-C: the start must end first all the same
            pass
    return None if start.exception() is not None else start.result()


def _end(process: subprocess.Popen | None) -> None:
    if process is not None:
        process.kill()
        process.wait()


def available() -> bool:
    """Whether this process can give a sandbox a network namespace of its own."""
    try:
        NetworkNamespace().close()
    except OSError:
        return False
    return True
