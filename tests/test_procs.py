"""procs.wait_exit: Popen.wait(timeout) without its polling, and the same answers as Popen.wait."""

import errno
import os
import signal
import subprocess
import sys

import pytest

from pytest_harnessbench import procs


def _spawn(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code])


@pytest.fixture(params=["pidfd", "popen_fallback"])
def mechanism(request, monkeypatch):
    """Both ways: the kernel's pidfd, and Popen's own wait where a kernel has no pidfd_open (before Linux 5.3)."""
    if request.param == "popen_fallback":
        def no_pidfd(pid, flags=0):
            raise OSError(errno.ENOSYS, "Function not implemented")

        monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    return request.param


def test_the_exit_code_is_returned_and_kept_on_the_popen(mechanism):
    proc = _spawn("import sys; sys.exit(7)")
    assert procs.wait_exit(proc, timeout=30) == 7
    assert proc.returncode == 7
    assert proc.wait() == 7  # reaped once: Popen knows it is done


def test_a_process_still_running_at_the_timeout_raises_and_is_left_running(mechanism):
    proc = _spawn("import time; time.sleep(60)")
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            procs.wait_exit(proc, timeout=0.2)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_process_gives_the_negative_signal_as_popen_does(mechanism):
    proc = _spawn("import time; time.sleep(60)")
    proc.send_signal(signal.SIGKILL)
    assert procs.wait_exit(proc, timeout=30) == -signal.SIGKILL


def test_no_timeout_and_an_already_reaped_process_need_no_pidfd(monkeypatch):
    def fail(pid, flags=0):
        raise AssertionError("pidfd_open called")

    proc = _spawn("pass")
    monkeypatch.setattr(os, "pidfd_open", fail)
    assert procs.wait_exit(proc, timeout=None) == 0
    assert procs.wait_exit(proc, timeout=5) == 0
