"""A trial's phases and their budgets: the clock, the watchdog (real SIGALRM, a real thread), bounded commands."""

import os
import threading
import time

import pytest

from support import inprocess

from pytest_harnessbench import deadline
from pytest_harnessbench.deadline import BoundedSandbox, TrialClock
from pytest_harnessbench.outcomes import TrialTimeout
from pytest_harnessbench.resources import Allocation, Multiplier, Spec
from pytest_harnessbench.sandbox.local import LocalBackend


class Ticks:
    """A clock the test advances by hand (the phases' arithmetic, not the watchdog, is under test here)."""

    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_the_verify_budget_counts_the_body_outside_the_agent_only():
    ticks = Ticks()
    clock = TrialClock(10, now=ticks)
    with clock.watching():
        ticks.t += 3
        assert clock.remaining() == 7
        with clock.agent_phase(60):
            ticks.t += 50
            assert (clock.phase, clock.remaining()) == ("agent", 10)
        assert (clock.phase, clock.remaining()) == ("verify", 7)
        with clock.agent_phase(None):
            assert clock.remaining() is None  # an agent without a timeout
        ticks.t += 9
        assert clock.remaining() == 0
        assert clock.expired().phase == "verify" and "verify_timeout = 10 s" in str(clock.expired())


def test_time_scaled_uncapped_has_no_verify_limit():
    """``--hb-scale ...,time`` with ``uncapped``: the verify phase has no budget (it raised TypeError)."""
    allocation = Allocation.of(Spec.from_marker(timeout=30), Multiplier.parse("uncapped"),
                               frozenset({"cpu", "memory", "time"}))
    assert allocation.verify_timeout_s is None
    ticks = Ticks()
    clock = TrialClock(allocation.verify_timeout_s, now=ticks)
    with clock.watching():
        ticks.t += 10_000
        assert clock.remaining() is None
        with clock.agent_phase(allocation.timeout_s):
            assert clock.remaining() is None
        assert clock.remaining() is None


@pytest.fixture
def short_grace(monkeypatch):
    monkeypatch.setattr(deadline, "WATCHDOG_GRACE_S", 0.1)


def test_a_pause_is_no_phase_s_time():
    """Waiting on a provider's rate limit (ratelimit.py) is charged to neither phase."""
    ticks = Ticks()
    clock = TrialClock(10, now=ticks)
    with clock.watching():
        with clock.agent_phase(60):
            ticks.t += 20
            with clock.paused():
                ticks.t += 100
            assert clock.remaining() == 40
        ticks.t += 2
        with clock.paused():
            ticks.t += 30
        assert clock.remaining() == 8


def test_the_watchdog_ends_a_body_stuck_in_python(short_grace):
    clock = TrialClock(0.5)
    with pytest.raises(TrialTimeout, match="verify_timeout = 0.5 s") as info:
        with clock.watching():
            time.sleep(600)
    assert info.value.phase == "verify"


def test_the_watchdog_follows_the_phase_and_is_gone_after_the_body(short_grace):
    clock = TrialClock(60)
    with pytest.raises(TrialTimeout) as info:
        with clock.watching():
            with clock.agent_phase(0.3):
                time.sleep(600)
    assert info.value.phase == "agent"
    time.sleep(0.5)  # nothing fires once the body is over


def test_outside_the_main_thread_a_timer_thread_ends_python_code(short_grace):
    caught = []

    def body():
        clock = TrialClock(0.3)
        try:
            with clock.watching():
                while True:
                    sum(range(100))
        except TrialTimeout as exc:
            caught.append(exc)

    worker = threading.Thread(target=body)
    worker.start()
    worker.join(30)
    assert not worker.is_alive() and caught[0].phase == "verify"


@pytest.fixture
def box():
    backend = LocalBackend(f"test-{os.getpid()}")
    backend.check()
    sandbox = backend.provision(Allocation.of(Spec.from_marker(memory="64Mi"), Multiplier.parse("1")), "t")
    yield sandbox
    sandbox.close()
    backend.close()


@pytest.mark.trials
def test_a_command_is_cut_at_the_phase_deadline(box):
    clock = TrialClock(1)
    bounded = BoundedSandbox(box, clock)
    with clock.watching():
        assert bounded.exec("echo hi").stdout == "hi\n"
        own = bounded.exec("sleep 5", timeout=0.2)  # its own, shorter timeout: a result, not the phase's end
        assert own.timed_out
        with pytest.raises(TrialTimeout, match="verify_timeout = 1 s"):
            bounded.exec("sleep 600")
        with pytest.raises(TrialTimeout):  # nothing left: no command starts
            bounded.exec("echo late")


STUCK = '''
import time
import pytest

@pytest.mark.task(memory="64Mi", timeout=3, solutions="echo ok > out.txt")
def test_stuck_in_python(trial):
    trial.run_agent("Write ok.")
    time.sleep(600)

@pytest.mark.task(memory="64Mi", timeout=5, verify_timeout=2, solutions="echo ok > out.txt")
def test_stuck_in_a_command(trial):
    trial.run_agent("Write ok.")
    trial.sandbox.exec("sleep 600")

@pytest.mark.task(memory="64Mi", timeout=5, solutions="echo ok > out.txt")
def test_next(trial):
    trial.run_agent("Write ok.")
    assert trial.sandbox.read_file("out.txt").strip() == "ok"
'''


def test_a_stuck_verifier_is_a_timeout_and_the_session_goes_on(pytester, monkeypatch):
    """Issue 21.1: a verifier stuck in Python hung the session; one stuck in a command was recorded passed."""
    import json

    monkeypatch.setattr(deadline, "WATCHDOG_GRACE_S", 0.5)  # the watchdog's 5 s grace is not under test: 4.5 s less
    pytester.makepyfile(test_stuck=STUCK)
    result = inprocess.run(pytester, "-p", "no:cacheprovider", "--hb-out", "run", "--models", "oracle")
    result.assert_outcomes(passed=1, failed=2)
    records = {json.loads(line)["task_id"].rsplit("::", 1)[1]: json.loads(line)
               for line in (pytester.path / "run" / "results.jsonl").read_text().splitlines()}
    for name, budget in (("test_stuck_in_python", 3), ("test_stuck_in_a_command", 2)):
        record = records[name]
        assert (record["outcome"], record["cause"]) == ("failed", "timeout")
        assert record["timing"]["timeout_phase"] == "verify"
        assert f"verify_timeout = {budget} s" in record["message"]
        assert record["allocation"]["verify_timeout_s"] == budget
    assert records["test_next"]["outcome"] == "passed"
