"""Sandboxes die with the process that made them, even when it is SIGKILLed.

A session (or an xdist worker) killed with SIGKILL runs no cleanup: its
sandboxes' processes would go on, orphaned, with their cgroups, directories
and containers, until a later session reaped them. So at its backend's first
check each process starts this watchdog: a small process in a session of its
own (a signal to the pytest process group does not reach it) reading a pipe
whose write end only the pytest process holds (non-inheritable, so no command
it runs keeps it open). The kernel closes that end when the process dies,
however it dies; the watchdog then waits for it to be gone and runs the
backend's own reaper, which removes the sandboxes of every dead owner: cgroup
processes killed, groups and work directories removed, containers removed. The
backend is rebuilt in the watchdog from its registered name, the run id and what
its ``reaper_args()`` returned (e.g. a namespace), by its ``for_reaping``.

On a normal exit the backend writes ``done`` first and the watchdog leaves
without reaping (the backend's ``close`` has already cleaned up).

Run as ``python -m pytest_harnessbench.sandbox.watchdog BACKEND RUN_ID OWNER REAPER_ARGS_JSON``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import TYPE_CHECKING

from ..procs import owner_token, token_alive

if TYPE_CHECKING:
    from .base import Backend

DONE = b"done\n"
OWNER_EXIT_WAIT_S = 10.0


def start(backend: Backend) -> subprocess.Popen:
    """The watchdog of this process's sandboxes of ``backend``; keep the returned object (it holds the pipe)."""
    args = json.dumps(backend.reaper_args())
    return subprocess.Popen([sys.executable, "-m", __name__, backend.name, backend.run_id, owner_token(), args],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def stop(watchdog: subprocess.Popen | None) -> None:
    """Tell the watchdog this process cleaned up after itself; it exits without reaping."""
    if watchdog is None or watchdog.stdin is None or watchdog.stdin.closed:
        return
    try:
        watchdog.stdin.write(DONE)
        watchdog.stdin.close()
    except OSError:
        pass  # it is gone already
    try:
        watchdog.wait(timeout=5)
    except subprocess.TimeoutExpired:
        watchdog.kill()


def main(argv: list[str]) -> int:
    backend, run_id, owner, args = argv
    if sys.stdin.buffer.read() == DONE:
        return 0
    deadline = time.monotonic() + OWNER_EXIT_WAIT_S
    while token_alive(owner) and time.monotonic() < deadline:  # EOF comes as it dies; the reaper wants it dead
        time.sleep(0.02)
    from .registry import load

    load(backend).for_reaping(run_id, json.loads(args)).reap()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
