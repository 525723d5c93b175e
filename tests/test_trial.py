"""One trial in process (trial.py): provision, run the agent, finish into a record, close; on the real kernel.

What the plugin does around a test body, done by hand: a task from its marker's arguments, a case, a
local backend with cgroups, then ``provision`` / ``run_agent`` / ``finish`` / ``close``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_harnessbench.admission import Admission, Capacity
from pytest_harnessbench.models import parse_model
from pytest_harnessbench.resources import Multiplier
from pytest_harnessbench.sandbox.local import LocalBackend, work_root
from pytest_harnessbench.trial import AgentSettings, Case, SuiteRoot, Task, Trial, TrialKey

pytestmark = pytest.mark.trials  # one trial in process on the real kernel

HOG = "python3 -c 'x = bytearray(150 << 20); x[::4096] = b\"1\" * len(x[::4096])'"
SOLUTIONS = {"lean": "echo 42 > answer.txt", "heavy": HOG + " && echo 42 > answer.txt", "slow": "sleep 30"}


@pytest.fixture(scope="module")
def backend():
    b = LocalBackend(f"trial-{os.getpid()}")
    if os.environ.get("CI") is None:
        try:
            b.check()
        except Exception as exc:  # a developer machine without cgroup access
            pytest.skip(f"no cgroup access here: {exc}")
    yield b
    b.close()


def make_trial(backend, model="oracle:lean", mult="1", *, agent=AgentSettings(), admission=None, **marker):
    marker = {"memory": "64Mi", "timeout": 20, "solutions": SOLUTIONS, **marker}
    task = Task.from_marker("test_t.py::test_answer", "test_answer", marker)
    case = Case(parse_model(model), Multiplier.parse(mult), 1)
    key = TrialKey.of(f"test_t.py::test_answer[{case.id}]", case, SuiteRoot(Path.cwd()))
    return Trial(task=task, key=key, scale=frozenset({"cpu", "memory"}), run_id="trialtest", backend=backend,
                 agent=agent, admission=admission)


def body(trial) -> BaseException | None:
    """The example task's body: run the agent, check the answer; the exception it ends with, if any."""
    try:
        trial.run_agent("Write 42 to answer.txt.")
        assert trial.sandbox.read_file("answer.txt").strip() == "42"
    except Exception as exc:
        return exc
    return None


def play(trial, oom_as="infra"):
    trial.provision()
    try:
        exc = body(trial)
        return trial.finish(exc, body_s=1.0, oom_as=oom_as)
    finally:
        trial.close()


def test_a_passing_trial_records_its_case_allocation_usage_and_trajectory(backend):
    trial = make_trial(backend, "oracle:lean", "3")
    record = play(trial)
    assert (record.outcome, record.cause) == ("passed", None)
    assert (record.model, record.multiplier, record.multiplier_factor, record.sample) == ("oracle:lean", "3x", 3.0, 1)
    assert record.trial_id == trial.trial_id and record.task_id == "test_t.py::test_answer"
    assert record.allocation["limit"]["memory_bytes"] == 3 * 64 * 1024**2
    assert record.enforcement.startswith("cgroup-") and record.backend == "local"
    assert (record.usage["model_calls"], record.usage["tool_calls"]) == (2, 1)
    (trajectory,) = trial.trajectories
    assert [c.args["command"] for c in trajectory.tool_calls] == ["echo 42 > answer.txt"]
    assert record.metrics["steps"] == 2 and record.metrics_missing == {}
    assert record.timing.agent_s > 0 and record.timing.total_s >= record.timing.agent_s


def test_the_kernels_oom_kill_at_1x_is_infra_and_the_same_solution_uncapped_passes(backend):
    capped = play(make_trial(backend, "oracle:heavy", "1")).to_dict()
    assert (capped["outcome"], capped["cause"]) == ("infra", "oom")
    assert capped["resources"]["oom_kills"] >= 1
    uncapped = play(make_trial(backend, "oracle:heavy", "uncapped"))
    assert (uncapped.outcome, uncapped.cause) == ("passed", None)


def test_oom_as_failed_counts_the_kill_against_the_model(backend):
    record = play(make_trial(backend, "oracle:heavy", "1"), oom_as="failed")
    assert (record.outcome, record.cause) == ("failed", "oom")


def test_the_tasks_time_budget_ends_the_agent_as_failed_timeout(backend):
    trial = make_trial(backend, "oracle:slow", timeout=1)
    record = play(trial)
    assert (record.outcome, record.cause) == ("failed", "timeout")
    assert trial.stop_reason == "timeout" and record.timing.agent_s < 5


def test_nop_fails_on_the_assertion_and_its_message_is_kept(backend):
    record = play(make_trial(backend, "nop"))
    assert (record.outcome, record.cause) == ("failed", "assertion")
    assert record.message  # what the body said, for the one-line summary


def test_evaluate_scores_the_tool_path_and_a_task_can_gate_on_it(backend):
    trial = make_trial(backend, "oracle:lean")
    trial.provision()
    try:
        trial.run_agent("Write 42 to answer.txt.")
        assert trial.evaluate(["bash"]) == 1.0
        assert trial.evaluate(["read_file"], name="reads") == 0.0
        record = trial.finish(None, body_s=1.0, oom_as="infra")
    finally:
        trial.close()
    assert record.metrics["trajectory_strict"] == 1.0 and record.metrics["reads"] == 0.0

    gated = make_trial(backend, "oracle:lean", reference_tools=["read_file"], gate_on={"trajectory_match": 1})
    record = play(gated)
    assert record.outcome == "failed" and record.metrics["trajectory_match"] == 0.0


def test_prices_give_a_cost_and_no_price_gives_none(backend):
    priced = make_trial(backend, agent=AgentSettings(prices={"oracle:lean": {"input_per_1m": 1.0, "output_per_1m": 2.0}}))
    assert play(priced).usage["cost_usd"] == 0.0  # the scripted model reports no tokens: zero, not unknown
    assert play(make_trial(backend)).usage["cost_usd"] is None


def test_the_sandbox_exists_only_between_provision_and_close(backend):
    trial = make_trial(backend)
    with pytest.raises(RuntimeError, match="not provisioned"):
        trial.sandbox
    trial.provision()
    workdirs = set(work_root().glob("*/*"))
    assert workdirs
    trial.close()
    assert not set(work_root().glob("*/*")) & workdirs


def test_admission_holds_the_trials_guarantee_from_provision_to_close(backend, tmp_path):
    admission = Admission(Capacity(cpus=1, memory_bytes=1 << 30), tmp_path / "ledger")
    trial = make_trial(backend, cpus=1, admission=admission)
    trial.provision()
    try:
        assert trial.timing.queued_s < 1
        with pytest.raises(TimeoutError):  # the host's one CPU is the trial's until it closes
            admission.acquire("another", 1, 1 << 20, timeout_s=0.3)
    finally:
        trial.close()
    assert admission.acquire("another", 1, 1 << 20, timeout_s=5) < 5
    admission.release("another")
