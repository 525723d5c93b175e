"""The cgroup v2 guests of tests/test_cgroup_v2_guest.py, booted in the background as soon as they are needed.

A guest runs this checkout's cgroup tests in a User-Mode Linux kernel (uml/guest.sh) for about two
minutes, but uses well under a CPU: UML spends its time waiting on its own system calls. Holding an
xdist worker for all that time made it the longest test of the suite, so the guests now run beside
the other tests. Each phase (root; uid 1000 in a delegated subtree) boots a guest of its own, and
the two run at once:

- when a process of the session (an xdist worker, or the one process of a plain run) has collected the
  guest's test, :func:`start` boots the guests, once per session: the first process to lock the
  session's directory (``<tmp>/hb-guest-<id>``, the id xdist gives all workers of a run) does it;
- the test, collected last (tests/conftest.py), waits for the guests to end (:func:`wait`) and reads
  their results; it may run in another worker than the one that booted them;
- the booting process waits for its guests when it ends (bounded by :data:`GUEST_TIMEOUT_S`) and
  stops them on Ctrl-C, so no guest outlives its session; a process killed outright leaves them to
  power off by themselves when their script ends.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
UML = shutil.which("linux.uml")
GUEST_TIMEOUT_S = 480
PHASES = ("root", "user")
TESTS = "tests/test_local_sandbox.py tests/test_escape.py"
# The tests of TESTS that create cgroups (the others are filesystem and rlimit tests), and the escape suite's
# local cases: confinement as a normal user (bubblewrap without privileges) on cgroup v2.
CGROUP_TESTS = ("hog or cpu_limit or pids_limit or timeout_kills or leaves_running or (close and not rlimit) or interrupt "
                "or cannot_enter or reap_removes or v2 or four_trials or (escape and (local or file_tools)) "
                "or network_namespace or limits_pipe or posix_mode or did_not_read or exported_functions")
# The bake-off once per phase: serial as root; under xdist as the user (workers born in the session leaf).
BAKE_OFF = "test_four_trials_classify_the_same_on_every_cgroup_version"
BAKE_OFF_ID = {"root": "0", "user": "2"}  # the parameter (xdist workers) of each phase's bake-off
DESELECT = {phase: f"tests/test_local_sandbox.py::{BAKE_OFF}[{BAKE_OFF_ID[other]}]"
            for phase, other in (("root", "user"), ("user", "root"))}

_DIR = pytest.StashKey[Path]()
_BOOTED = pytest.StashKey["Booted"]()


def can_boot() -> str | None:
    """Why no guest can boot here, or None."""
    if UML is None:
        return "user-mode-linux is not installed (scripts/setup-tests.sh installs it)"
    if os.geteuid() != 0:
        return "the guest writes to the host's / with this user's rights: root"
    return None


def session_dir(config: pytest.Config) -> Path:
    """The directory every process of this session finds: named by xdist's run id, or this process's pid."""
    if _DIR not in config.stash:
        run = getattr(config, "workerinput", {}).get("testrunuid") or f"pid{os.getpid()}"
        config.stash[_DIR] = Path(tempfile.gettempdir()) / f"hb-guest-{run}"
    return config.stash[_DIR]


class Booted:
    """This process's guests: one per phase, each with a thread that records its end in ``PHASE/exit``."""

    def __init__(self, lock_fd: int):
        self.lock_fd = lock_fd  # held for the session: another worker that collects the test boots nothing
        self.procs: list[subprocess.Popen] = []
        self.threads: list[threading.Thread] = []

    def boot(self, phase: str, out: Path) -> None:
        out.mkdir()
        _write_env(out / "env", phase)
        argv = [UML, "mem=2G", "rootfstype=hostfs", "rootflags=/", "rw", f"init={REPO}/tests/support/uml/init.sh",
                f"hb_script={REPO}/tests/support/uml/guest.sh", f"hb_out={out}", "con=null", "con0=fd:0,fd:1"]
        assert not any(" " in arg for arg in argv), "the guest's command line splits on spaces"
        with open(out / "console.txt", "wb") as console:  # UML calls setsid(): signals go to its pid
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        thread = threading.Thread(target=_watch, args=(proc, out, time.monotonic()), daemon=True)
        thread.start()
        self.threads.append(thread)

    def stop(self, wait: bool) -> None:
        """Wait for the guests (bounded by their own timeout), or stop them now."""
        try:
            for thread in self.threads:
                if wait:
                    thread.join()
        finally:
            for proc in self.procs:
                _end(proc)
            os.close(self.lock_fd)


def _watch(proc: subprocess.Popen, out: Path, start: float) -> None:
    """Record the guest's end in ``out/exit``: ``done SECONDS`` or ``timeout SECONDS`` (then it is stopped)."""
    try:
        proc.wait(timeout=GUEST_TIMEOUT_S)
        how = "done"
    except subprocess.TimeoutExpired:
        _end(proc)
        how = "timeout"
    (out / "exit").write_text(f"{how} {time.monotonic() - start:.1f}\n")


def _end(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _exposed(paths: list[Path]) -> list[str]:
    """PARENT/CHILD for each path below a PARENT others cannot enter (pyenv's /root/.pyenv): uid 1000 needs it."""
    found = set()
    for path in paths:
        for parent in reversed(path.parents):  # from / down
            if not parent.stat().st_mode & stat.S_IXOTH:
                found.add(str(parent / path.relative_to(parent).parts[0]))
                break
    return sorted(found)


def _write_env(path: Path, phase: str) -> None:
    python = Path(sys.executable)
    expose = _exposed([python, Path(sys.prefix), Path(sys.base_prefix), REPO])
    path.write_text(f"PHASE='{phase}'\nPYTHON='{python}'\nREPO='{REPO}'\nTESTS='{TESTS}'\n"
                    f"EXPOSE='{' '.join(expose)}'\nSELECTION='{CGROUP_TESTS}'\nDESELECT='{DESELECT[phase]}'\n")


def start(session: pytest.Session) -> None:
    """Boot the guests if this session collected a guest test and no other process of it booted them."""
    directory = session_dir(session.config)  # now, while TMPDIR is the session's (tests get their own)
    if session.config.option.collectonly or can_boot() is not None \
            or not any(item.get_closest_marker("guest") for item in session.items):
        return
    directory.mkdir(exist_ok=True)
    fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return  # another worker of this session booted them
    if (directory / "booted").exists():  # the booting worker already ended (and released the lock)
        os.close(fd)
        return
    (directory / "booted").write_text(f"pid {os.getpid()}\n")
    booted = session.config.stash[_BOOTED] = Booted(fd)
    for phase in PHASES:
        booted.boot(phase, directory / phase)


def finish(config: pytest.Config, interrupted: bool) -> None:
    """At this process's end: wait for the guests it booted (or stop them at once after an interrupt)."""
    booted = config.stash.get(_BOOTED, None)
    if booted is not None:
        del config.stash[_BOOTED]
        booted.stop(wait=not interrupted)


def _booter_alive(directory: Path) -> bool:
    pid = int((directory / "booted").read_text().split()[1])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait(config: pytest.Config) -> dict[str, Path]:
    """Each phase's output directory, once its guest has ended; fails the test if it did not in time."""
    directory = session_dir(config)
    deadline = time.monotonic() + GUEST_TIMEOUT_S + 60
    outs = {phase: directory / phase for phase in PHASES}
    while not all((out / "exit").exists() for out in outs.values()):
        if not (directory / "booted").exists():
            pytest.fail(f"no process of this session booted the guests ({directory}): see tests/support/guest.py")
        if not _booter_alive(directory):  # its threads record the guests' end: nothing will, so say so now
            pytest.fail(f"the process that booted the guests ended before them ({directory / 'booted'})")
        if time.monotonic() > deadline:
            pytest.fail(f"the guests did not end within {GUEST_TIMEOUT_S + 60} s: {directory}")
        time.sleep(0.5)
    for phase, out in outs.items():
        how, _, seconds = (out / "exit").read_text().partition(" ")
        if how != "done":
            pytest.fail(f"the {phase} guest ran over {GUEST_TIMEOUT_S} s; its log: {out / 'guest.log'}")
    return outs
