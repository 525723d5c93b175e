"""How a session ends: SIGTERM as Ctrl-C, workers with their controller, Ctrl-C during the session's end.

Real signals to real pytest processes; the sandboxes are checked from the host side.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.polling import wait_for

from pytest_harnessbench.sandbox import cgroups
from pytest_harnessbench.sandbox.local import work_root

STEPS = '''
import pytest

@pytest.mark.parametrize("n", range(8))
@pytest.mark.task(memory="64Mi", solutions="sleep 0.5; echo ok > out.txt")
def test_step(trial, n):
    trial.run_agent("Write ok.")
    assert trial.sandbox.read_file("out.txt").strip() == "ok"
'''

SLEEPERS = '''
import os, pytest

@pytest.mark.parametrize("n", range(2))
@pytest.mark.task(memory="64Mi", solutions="true")
def test_sleeper(trial, n):
    pid = trial.sandbox.exec("sleep 300 > /dev/null 2>&1 & echo $!").stdout.strip()
    with open(os.path.join(os.environ["SLEEPER_PIDS"], pid), "w"):
        pass
    trial.sandbox.exec("sleep 300")
'''


def _start(pytester, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--models", "oracle",
                             "--hb-out", "run", *args], cwd=pytester.path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _finished(pytester) -> int:
    """Trials recorded so far: complete lines only (the session may be writing the next one)."""
    path = pytester.path / "run" / "results.jsonl"
    return path.read_text().count("\n") if path.exists() else 0


def _records(pytester) -> list[dict]:
    path = pytester.path / "run" / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] not in "ZX"
    except (FileNotFoundError, IndexError):
        return False


def _no_sandbox_left(run_id: str) -> bool:
    groups = [p for parent in cgroups.detect().parents.values() for p in parent.iterdir() if p.name.startswith(run_id)]
    return not groups and not any(work_root().glob("*/*"))


@pytest.mark.e2e  # signals to a session: it must be a process of its own
@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["session", "xdist"])
def test_sigterm_ends_the_run_like_ctrl_c(pytester, xdist):
    """Issue 21.2: SIGTERM (CI runners, `timeout`, Kubernetes) printed nothing and left finished_at null."""
    pytester.makepyfile(test_steps=STEPS)
    proc = _start(pytester, *xdist)
    # 8 trials, terminated after 3: some are surely still running.
    assert wait_for(lambda: _finished(pytester) >= 3, 120)
    proc.send_signal(signal.SIGTERM)  # to the controller alone, as `timeout` and Kubernetes send it
    out = proc.communicate(timeout=120)[0].decode()
    finished = _records(pytester)
    assert proc.returncode == 2, out
    assert 3 <= len(finished) < 8
    assert re.search(rf"^oracle +1x +{len(finished)} ", out, re.M)  # the summary of what finished
    assert f"PARTIAL RUN: terminated by SIGTERM; {len(finished)} trial(s) recorded" in out and "--hb-resume" in out
    assert json.loads((pytester.path / "run" / "harness.json").read_text())["finished_at"]
    assert wait_for(lambda: _no_sandbox_left(finished[0]["run_id"]), 5)


@pytest.mark.e2e  # signals to a session: it must be a process of its own
def test_sigkill_of_the_xdist_controller_leaves_no_sandbox_process_behind(pytester):
    """Issue 21: its workers, busy in trials, ran on for ~16 s (execnet's own shutdown); now they die with it."""
    pytester.makepyfile(test_sleepers=SLEEPERS)
    pids = pytester.path / "sleepers"
    pids.mkdir()
    pytester._monkeypatch.setenv("SLEEPER_PIDS", str(pids))
    proc = _start(pytester, "-n", "2")
    try:
        assert wait_for(lambda: len(list(pids.iterdir())) == 2, 120)
        sleepers = [int(p.name) for p in pids.iterdir()]
        assert all(map(_alive, sleepers))
        proc.send_signal(signal.SIGKILL)  # the controller only
        proc.wait()
        time.sleep(5)
        assert not [pid for pid in sleepers if _alive(pid)], "sandbox processes outlived the controller by 5 s"
    finally:
        if proc.poll() is None:
            proc.kill()


ENDS_SLOWLY = '''
import os, time

def pytest_sessionfinish(session):
    open(os.environ["ENDING"], "w").close()
    time.sleep(60)  # a slow session-end hook (an upload, a report) that Ctrl-C interrupts
'''


@pytest.mark.e2e  # signals to a session: it must be a process of its own
def test_ctrl_c_in_the_session_end_hooks_exits_as_interrupted(pytester):
    """Issue 21: a Ctrl-C landing in the session-end hooks exited 1 with a traceback."""
    pytester.makepyfile(test_steps=STEPS.replace("range(8)", "range(1)"))
    pytester.makeconftest(ENDS_SLOWLY)
    ending = pytester.path / "ending"
    pytester._monkeypatch.setenv("ENDING", str(ending))
    proc = _start(pytester)
    assert wait_for(ending.exists, 120)
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == 2, out
    assert "Traceback" not in out and "interrupted while the session was ending" in out
    assert json.loads((pytester.path / "run" / "harness.json").read_text())["finished_at"]


def test_sigterm_raises_terminated_in_the_main_thread():
    from pytest_harnessbench.lifetime import Terminated, Termination

    before = signal.getsignal(signal.SIGTERM)
    termination = Termination(has_workers=lambda: False)
    termination.install()
    try:
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        assert termination.received
    finally:
        termination.uninstall()
    assert signal.getsignal(signal.SIGTERM) == before


def test_the_last_cleanup_finishes_when_ctrl_c_or_sigterm_lands_in_it():
    from pytest_harnessbench.lifetime import deferred_interrupts

    with deferred_interrupts() as came:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)  # the handlers run here; neither ends the block
    assert sorted(came) == [signal.SIGINT, signal.SIGTERM]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
