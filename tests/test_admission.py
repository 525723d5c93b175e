"""Admission control across real processes: guarantees held at once never exceed the capacity."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pytest_harnessbench import statefile
from pytest_harnessbench.admission import (
    Admission, Capacity, check_fits, host_cpus, host_memory_bytes, owner_alive, parse_capacity,
)

GI, MI = 1024**3, 1024**2
ROOT = Path(__file__).resolve().parents[1]

# One trial in its own process: wait for "go", acquire, hold, log (start, end, queued_s), release.
# A negative hold means: acquire, say so, then sleep until killed.
WORKER = r"""
import json, os, sys, time
from pathlib import Path
from pytest_harnessbench.admission import Admission, parse_capacity
state, capacity, trial_id, cpus, memory, hold, out, go = sys.argv[1:9]
adm = Admission(parse_capacity(capacity), Path(state))
Path(out + ".ready").touch()
while not os.path.exists(go):
    time.sleep(0.005)
queued = adm.acquire(trial_id, float(cpus), int(memory), poll_s=0.02)
start = time.time()
in_use = adm.in_use()
if float(hold) < 0:
    Path(out + ".held").touch()
    time.sleep(3600)
time.sleep(float(hold))
end = time.time()
Path(out).write_text(json.dumps({"trial_id": trial_id, "start": start, "end": end, "queued_s": queued,
                                 "cpus": float(cpus), "memory_bytes": int(memory), "in_use": in_use}))
adm.release(trial_id)
"""


def spawn(tmp_path, capacity, trial_id, cpus, memory, hold, go):
    out = tmp_path / f"{trial_id}.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path / "state"), capacity, trial_id,
                             str(cpus), str(memory), str(hold), str(out), str(go)], env=env)
    return proc, out


def wait_for(path_or_pred, timeout=10.0):
    pred = path_or_pred if callable(path_or_pred) else path_or_pred.exists
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {path_or_pred}"
        time.sleep(0.01)


def run_trials(tmp_path, capacity, trials, hold=0.3):
    """Start one process per (trial_id, cpus, memory), release them together, return their logs."""
    go = tmp_path / "go"
    procs = [spawn(tmp_path, capacity, tid, cpus, mem, hold, go) for tid, cpus, mem in trials]
    try:
        for _, out in procs:
            wait_for(Path(str(out) + ".ready"))
        go.touch()
        for proc, _ in procs:
            assert proc.wait(timeout=20) == 0
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return [json.loads(out.read_text()) for _, out in procs]


def peak_overlap(logs):
    """Largest (cpus, memory, count) held at one instant, from recorded start/end times."""
    peak = (0.0, 0, 0)
    for log in logs:  # the peak of a union of intervals is reached at some interval's start
        active = [o for o in logs if o["start"] <= log["start"] < o["end"]]
        load = (sum(o["cpus"] for o in active), sum(o["memory_bytes"] for o in active), len(active))
        peak = max(peak, load)
    return peak


# ---------------------------------------------------------------- capacity

@pytest.mark.parametrize("text, cpus, memory", [
    ("cpus=2,memory=20Gi", 2.0, 20 * GI),
    (" CPUS = 0.5 , mem=1G ", 0.5, 1000**3),
    ("cpu=3,memory=512Mi,", 3.0, 512 * MI),
])
def test_parse_capacity(text, cpus, memory):
    assert parse_capacity(text) == Capacity(cpus=cpus, memory_bytes=memory)


def test_missing_keys_take_the_hosts_value():
    assert parse_capacity("memory=1Gi") == Capacity(cpus=host_cpus(), memory_bytes=GI)
    assert parse_capacity("cpus=1") == Capacity(cpus=1.0, memory_bytes=host_memory_bytes())
    assert parse_capacity("") == Capacity.of_host()


@pytest.mark.parametrize("text, piece", [
    ("cpus=two", "cpus=two"), ("cpus=0", "cpus=0"), ("cpus=-1,memory=1Gi", "cpus=-1"), ("cpus=inf", "cpus=inf"),
    ("cpus=2,memory=lots", "memory=lots"), ("gpus=1", "gpus=1"), ("cpus", "cpus"), ("memory=", "memory="),
    ("cpus=1,cpus=2", "cpus"),
])
def test_bad_capacity_names_the_piece_and_the_form(text, piece):
    with pytest.raises(ValueError) as info:
        parse_capacity(text)
    message = str(info.value)
    assert piece in message and "cpus=N,memory=SIZE" in message and "\n" not in message


def test_host_capacity_is_plausible():
    cap = Capacity.of_host()
    assert 0 < cap.cpus <= (os.cpu_count() or 1)
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < cap.memory_bytes <= physical
    assert str(Capacity(2, 20 * GI)) == "cpus=2,memory=20Gi"


def test_a_trial_bigger_than_capacity_is_rejected_up_front(tmp_path):
    cap = Capacity(cpus=2, memory_bytes=GI)
    check_fits(2, GI, cap)  # exactly the capacity fits
    with pytest.raises(ValueError, match=r"cpus=4 > 2") as info:
        check_fits(4, 256 * MI, cap)
    assert "\n" not in str(info.value) and "--hb-capacity" in str(info.value)
    with pytest.raises(ValueError, match=r"memory=2Gi > 1Gi"):
        check_fits(1, 2 * GI, cap)
    start = time.monotonic()
    with pytest.raises(ValueError, match="can never fit"):  # acquire refuses instead of hanging
        Admission(cap, tmp_path).acquire("huge", 3, MI)
    assert time.monotonic() - start < 1


# ---------------------------------------------------------------- across processes

def test_cpu_guarantees_never_exceed_capacity_and_waits_are_recorded(tmp_path):
    logs = run_trials(tmp_path, "cpus=2,memory=64Gi", [(f"t{i}", 1, MI) for i in range(4)])
    cpus, _, count = peak_overlap(logs)
    assert cpus <= 2 and count == 2  # full use of the capacity, never more
    assert all(log["in_use"][0] <= 2 for log in logs)  # what the ledger said while each one held
    queued = sorted(log["queued_s"] for log in logs)
    assert queued[-1] > 0.2 and queued[-2] > 0.2  # two of the four had to wait for a slot


def test_memory_capacity_is_respected(tmp_path):
    logs = run_trials(tmp_path, "cpus=64,memory=1Gi", [(f"m{i}", 0.1, 512 * MI) for i in range(3)])
    _, memory, count = peak_overlap(logs)
    assert memory <= GI and count == 2
    assert max(log["queued_s"] for log in logs) > 0.2


def test_a_killed_holder_does_not_block_the_next_acquirer(tmp_path):
    go = tmp_path / "go"
    go.touch()
    proc, out = spawn(tmp_path, "cpus=1,memory=1Gi", "victim", 1, MI, -1, go)
    try:
        wait_for(Path(str(out) + ".held"))
        adm = Admission(Capacity(cpus=1, memory_bytes=GI), tmp_path / "state")
        with pytest.raises(TimeoutError):  # alive, it really holds the only CPU
            adm.acquire("next", 1, MI, timeout_s=0.3)
        assert adm.waiting() == []  # the timed-out waiter gave up its place
        os.kill(proc.pid, signal.SIGKILL)
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # dead, but left a zombie (not reaped)
        stale = statefile.load(tmp_path / "state" / "ledger.jsonl", dict)["admitted"]
        assert [e["trial_id"] for e in stale] == ["victim"] and not owner_alive(stale[0])
        queued = adm.acquire("next", 1, MI, timeout_s=5)  # reaps the stale entry on the way in
        assert queued < 1
        assert [e["trial_id"] for e in adm.admitted()] == ["next"]
        assert adm.release("next")
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_waiter_does_not_hold_up_the_queue(tmp_path):
    adm = Admission(Capacity(cpus=2, memory_bytes=GI), tmp_path / "state")
    go = tmp_path / "go"
    go.touch()
    with adm.admit("mine", 1, MI):
        proc, _ = spawn(tmp_path, "cpus=2,memory=1Gi", "big", 2, MI, 0, go)
        try:
            wait_for(lambda: [w["trial_id"] for w in adm.waiting()] == ["big"])
            # While the big one waits, a small one behind it may not overtake it...
            with pytest.raises(TimeoutError):
                adm.acquire("small", 1, MI, timeout_s=0.2)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            # ...but once its owner is dead, the big one's place is gone.
            assert adm.acquire("small", 1, MI, timeout_s=5) < 1
            assert adm.waiting() == []
            assert sorted(e["trial_id"] for e in adm.admitted()) == ["mine", "small"]
        finally:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- within one process

def test_waiters_are_served_in_order(tmp_path):
    adm = Admission(Capacity(cpus=2, memory_bytes=GI), tmp_path)
    order = []

    def trial(trial_id, cpus, hold):
        adm.acquire(trial_id, cpus, MI, poll_s=0.01, timeout_s=10)
        order.append(trial_id)
        time.sleep(hold)
        adm.release(trial_id)

    adm.acquire("first", 1, MI)
    big = threading.Thread(target=trial, args=("big", 2, 0.1))
    big.start()
    wait_for(lambda: [w["trial_id"] for w in adm.waiting()] == ["big"])
    small = threading.Thread(target=trial, args=("small", 1, 0))
    small.start()
    wait_for(lambda: len(adm.waiting()) == 2)
    time.sleep(0.1)
    assert order == []  # "small" would fit beside "first", but "big" came earlier
    adm.release("first")
    big.join(5)
    small.join(5)
    assert order == ["big", "small"]
    assert adm.admitted() == [] and adm.waiting() == []


def test_release_of_an_unknown_id_is_harmless(tmp_path):
    adm = Admission(Capacity(cpus=1, memory_bytes=GI), tmp_path)
    assert adm.release("never-acquired") is False
    adm.acquire("held", 1, MI)
    assert adm.release("never-acquired") is False
    assert [e["trial_id"] for e in adm.admitted()] == ["held"]
    assert adm.release("held") is True
    assert adm.release("held") is False
    assert adm.acquire("again", 1, MI, timeout_s=5) < 1  # nothing leaked


def test_each_trial_knows_how_many_held_a_guarantee_when_it_was_admitted(tmp_path):
    """What the confounder block records as concurrency at start, read under the admitting lock."""
    adm, other = Admission(Capacity(cpus=4, memory_bytes=GI), tmp_path), Admission(Capacity(cpus=4, memory_bytes=GI), tmp_path)
    adm.acquire("first", 1, MI)
    other.acquire("elsewhere", 1, MI)  # a trial of another session on this host (its own Admission) counts too
    adm.acquire("third", 1, MI)
    assert (adm.admitted_with("first"), other.admitted_with("elsewhere"), adm.admitted_with("third")) == (1, 2, 3)
    assert adm.admitted_with("elsewhere") is None  # not this process's trial
    adm.release("first")
    assert adm.admitted_with("first") is None and adm.admitted_with("third") == 3


def test_context_manager_releases_even_on_error(tmp_path):
    adm = Admission(Capacity(cpus=1, memory_bytes=GI), tmp_path)
    with pytest.raises(RuntimeError, match="boom"):
        with adm.admit("t", 1, MI) as queued_s:
            assert 0 <= queued_s < 1
            assert adm.in_use() == (1.0, MI)
            with pytest.raises(ValueError, match="already admitted"):
                adm.acquire("t", 0.5, MI)
            raise RuntimeError("boom")
    assert adm.in_use() == (0.0, 0)


def test_stale_entries_are_dropped_when_read(tmp_path):
    adm = Admission(Capacity(cpus=4, memory_bytes=GI), tmp_path)
    adm.acquire("live", 1, MI)
    ledger = statefile.load(tmp_path / "ledger.jsonl", dict)
    live = ledger["admitted"][0]
    assert {"trial_id", "cpus", "memory_bytes", "pid", "start", "boot", "host", "ticket", "since"} <= set(live)
    assert live["pid"] == os.getpid()
    ledger["admitted"] += [
        {**live, "trial_id": "reused-pid", "start": live["start"] + 1},   # same pid, another process
        {**live, "trial_id": "before-reboot", "boot": "another-boot"},
        {**live, "trial_id": "other-host", "host": "elsewhere.example"},  # cannot be checked: kept
    ]
    with (tmp_path / "ledger.jsonl").open("a") as log:  # a later whole ledger, as statefile appends one
        log.write(json.dumps(ledger) + "\n")
    assert sorted(e["trial_id"] for e in adm.admitted()) == ["live", "other-host"]
    assert adm.in_use() == (2.0, 2 * MI)
