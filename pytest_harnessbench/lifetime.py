"""How a session's processes end: SIGTERM as Ctrl-C, workers with their controller, cleanup not cut short.

- SIGTERM is what CI runners, ``timeout`` and Kubernetes send. By default it
  kills Python on the spot: no summary, no resume hint, ``finished_at`` never
  written, sandboxes left to the watchdog. :class:`Termination` turns it into
  a :class:`Terminated` (a KeyboardInterrupt), so pytest ends the session as
  it does on Ctrl-C, with the summary of what finished. A SIGTERM may reach
  the xdist controller alone (``timeout`` and Kubernetes signal one process),
  so the controller passes it on to its workers. A worker keeps SIGTERM's
  default, to die at once: its trial in flight would not be recorded anyway
  (as on Ctrl-C), and its sandbox watchdog (sandbox/watchdog.py) removes its
  sandboxes within a second, where an interrupted worker would spend seconds
  rendering its traceback and execnet waits 5 s before it interrupts a busy one.
- An xdist worker whose controller is SIGKILLed learns of it only through its
  execnet channel, and execnet gives a busy worker 15 s before ``os._exit``.
  :func:`die_with_parent` has the kernel kill the worker the moment its
  controller dies; the worker's sandbox watchdog (sandbox/watchdog.py) then
  removes its sandboxes.
- :func:`deferred_interrupts` lets the session's last cleanup (sandboxes,
  the run directory's card) finish when Ctrl-C or SIGTERM lands in it.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .procs import children

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class Terminated(KeyboardInterrupt):
    """The session received SIGTERM: it ends as on Ctrl-C."""


class Termination:
    """In the process that records: SIGTERM raises :class:`Terminated` in the main thread, and is
    passed on to xdist workers."""

    def __init__(self, has_workers: Callable[[], bool]):
        self.has_workers = has_workers  # asked when the signal comes: xdist starts its workers after configure
        self.received = False
        self._previous = None

    def install(self) -> None:
        if _in_main_thread():  # only there can Python handle signals (pytest.main() may run in a thread)
            self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)

    def uninstall(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None

    def _on_sigterm(self, signum, frame) -> None:
        self.received = True
        if self.has_workers():
            pass_on_to_workers(signal.SIGTERM)
        raise Terminated("SIGTERM")


def pass_on_to_workers(signum: int) -> None:
    """Signal this process's children in its own process group: xdist's workers (a sandbox watchdog has its own)."""
    group = os.getpgrp()
    for pid in children(os.getpid()):
        try:
            if os.getpgid(pid) == group:
                os.kill(pid, signum)
        except ProcessLookupError:
            pass  # it has just ended


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGKILL this process as soon as ``parent_pid``, its parent, dies (Linux).

    If the parent is gone already (this process was re-parented before it
    asked), it dies now.
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return  # not Linux, or refused: execnet's own, slower shutdown still ends the worker
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGKILL)


@contextmanager
def deferred_interrupts() -> Iterator[list[int]]:
    """Hold SIGINT and SIGTERM until the block is done; yields the list of signals that came meanwhile."""
    came: list[int] = []
    signums = (signal.SIGINT, signal.SIGTERM) if _in_main_thread() else ()
    previous = {signum: signal.signal(signum, lambda signum, frame: came.append(signum)) for signum in signums}
    try:
        yield came
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
