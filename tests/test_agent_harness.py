"""The agent harness (agents/harness.py) and its tools (agents/tools.py), in process, on a real local sandbox.

The model is the harness's own scripted chat model (agents/builtin.py, what ``oracle`` and ``nop`` are):
it goes through LangChain's real agent loop, so the loop, the limits and the recording are the real ones.
"""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from pytest_harnessbench.agents import harness
from pytest_harnessbench.agents.builtin import ScriptedToolModel, scripted
from pytest_harnessbench.agents.defaults import SYSTEM_PROMPT, TOOL_DESCRIPTIONS, TOOL_OUTPUT_LIMIT, sha256
from pytest_harnessbench.agents.tools import TOOLS, acting_on
from pytest_harnessbench.agents.trajectory import COMPLETED, ERROR, GAVE_UP, STEP_LIMIT, TIMEOUT, Trajectory
from pytest_harnessbench.resources import Allocation, Multiplier, Spec
from pytest_harnessbench.sandbox.base import SandboxLostError
from pytest_harnessbench.sandbox.local import LocalBackend

pytestmark = pytest.mark.trials  # the harness drives a real local sandbox


@pytest.fixture(scope="module")
def backend():
    """One backend (and its watchdog process) for the module; each test gets its own sandbox."""
    b = LocalBackend(f"harness-{os.getpid()}", enforcement="rlimit")
    yield b
    b.close()


@pytest.fixture
def box(backend):
    sandbox = backend.provision(Allocation.of(Spec.from_marker(memory="256Mi"), Multiplier.parse("1")), "harness")
    yield sandbox
    sandbox.close()


def drive(model, box, *, timeout_s=30.0, max_steps=10, **kwargs) -> Trajectory:
    trajectory = Trajectory(model="scripted", instruction="Write 42 to answer.txt.")
    return harness.run_agent(model, trajectory, box, timeout_s=timeout_s, max_steps=max_steps, **kwargs)


def bash(command: str) -> tuple[str, dict]:
    return ("bash", {"command": command})


# --- the agent loop -------------------------------------------------------------------------------------------


def test_a_scripted_model_acts_in_the_sandbox_and_every_step_is_recorded(box):
    traj = drive(scripted([bash("echo 42 > answer.txt"), ("read_file", {"path": "answer.txt"})], "Done.", "t"), box)
    assert box.read_file("answer.txt") == "42\n"
    assert traj.stop_reason == COMPLETED and traj.error is None
    assert [(c.name, c.exit_code) for c in traj.tool_calls] == [("bash", 0), ("read_file", None)]
    assert traj.tool_calls[1].output == "42\n"
    assert (traj.usage.model_calls, traj.usage.tool_calls, traj.usage.provider_errors) == (3, 2, 0)
    assert [m["type"] for m in traj.messages] == ["human", "ai", "tool", "ai", "tool", "ai"]
    assert traj.messages[-1]["data"]["content"] == "Done."
    assert 0 < traj.duration_s < 30


def test_the_card_hashes_what_the_model_was_shown_and_names_the_factory(box):
    traj = drive(scripted([], "Done.", "t"), box)
    assert traj.harness["system_prompt_sha256"] == sha256(SYSTEM_PROMPT)
    assert traj.harness["factory"] == "pytest_harnessbench.agents.harness.default_agent_factory"
    other = drive(scripted([], "Done.", "t"), box)
    assert other.harness == traj.harness  # the same harness gives the same card


def test_a_suites_own_agent_factory_gets_the_sandbox_tools_and_the_limits(box):
    seen = {}

    def my_agent(model, tools, middleware):
        from langchain.agents import create_agent

        seen["tools"] = [t.name for t in tools]
        return create_agent(model, tools, system_prompt="Our own prompt.", middleware=middleware)

    traj = drive(scripted([bash("echo hi")], "Done.", "t"), box, factory=my_agent)
    assert seen["tools"] == ["bash", "read_file", "write_file"]
    assert traj.harness["factory"].endswith("my_agent") and traj.harness["system_prompt_sha256"] == sha256("Our own prompt.")
    assert traj.tool_calls[0].output.startswith("exit code: 0")


def test_the_step_limit_runs_the_last_allowed_calls_tools_then_stops(box):
    model = scripted([bash(f"echo {i} >> steps.txt") for i in range(6)], "Done.", "t")
    traj = drive(model, box, max_steps=3)
    assert traj.stop_reason == STEP_LIMIT
    assert traj.usage.model_calls == 3 and box.read_file("steps.txt") == "0\n1\n2\n"
    assert sum(m["type"] == "ai" for m in traj.messages) == 3  # the partial trajectory is kept


def test_the_time_budget_kills_a_long_command_and_ends_the_loop_as_timeout(box):
    start = time.monotonic()
    traj = drive(scripted([bash("sleep 20"), bash("echo never > late.txt")], "Done.", "t"), box, timeout_s=1.0)
    assert time.monotonic() - start < 10
    assert traj.stop_reason == TIMEOUT
    assert traj.tool_calls[0].timed_out and "[command killed: time budget exhausted]" in traj.tool_calls[0].output
    with pytest.raises(FileNotFoundError):
        box.read_file("late.txt")


class _Meeting(ScriptedToolModel):
    """The scripted model that waits at its second call until the other trial's model reaches its own."""

    barrier: object = None

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        if sum(1 for m in messages if m.type == "ai") == 1:
            self.barrier.wait()
        return super()._generate(messages, stop, run_manager, **kwargs)


def test_two_trials_of_two_models_share_one_compiled_agent_and_never_each_others_sandbox(backend, monkeypatch):
    """Both trials run at once in two threads, through the one agent compiled for the process; each trial's
    commands, files, recorded calls, replies and step limit stay its own."""
    allocation = Allocation.of(Spec.from_marker(memory="256Mi"), Multiplier.parse("1"))
    boxes = {name: backend.provision(allocation, f"share-{name}") for name in "ab"}
    barrier = threading.Barrier(2, timeout=30)
    models = {name: _Meeting(calls=[bash(f"echo {name} > who.txt"), bash("cat who.txt; pwd")], final=f"{name} done.",
                             label=f"model-{name}", barrier=barrier) for name in "ab"}
    steps = {"a": 2, "b": 10}
    trajectories, errors = {}, []
    real_create_agent, compiled = harness.create_agent, []

    def counted_create_agent(*args, **kwargs):
        compiled.append(args)
        return real_create_agent(*args, **kwargs)

    monkeypatch.setattr(harness, "_agents", {})  # compiled anew for this test, and counted
    monkeypatch.setattr(harness, "create_agent", counted_create_agent)

    def trial(name):
        try:
            trajectory = Trajectory(model=f"model-{name}", instruction="Say who you are.")
            trajectories[name] = harness.run_agent(models[name], trajectory, boxes[name], timeout_s=60,
                                                   max_steps=steps[name])
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=trial, args=(name,)) for name in "ab"]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        assert len(compiled) == 1  # compiled once, used by both trials
        for name, other in ("a", "b"), ("b", "a"):
            box, trajectory = boxes[name], trajectories[name]
            assert box.read_file("who.txt") == f"{name}\n"
            assert [c.args["command"] for c in trajectory.tool_calls] == [f"echo {name} > who.txt", "cat who.txt; pwd"]
            assert trajectory.tool_calls[1].output.startswith(f"exit code: 0\n--- stdout ---\n{name}\n{box.workdir}")
            assert str(boxes[other].workdir) not in json.dumps(trajectory.messages)
        assert trajectories["a"].stop_reason == STEP_LIMIT and trajectories["a"].usage.model_calls == 2
        assert trajectories["b"].stop_reason == COMPLETED and trajectories["b"].messages[-1]["data"]["content"] == "b done."
    finally:
        for box in boxes.values():
            box.close()


def test_the_shared_agent_calls_no_model_outside_a_trial():
    with pytest.raises(RuntimeError):
        harness.shared_agent(0, 1.0, False).invoke({"messages": [("human", "hi")]})


class _Failing(ScriptedToolModel):
    """The scripted model whose model call number ``fail_at`` (0-based) raises ``error``."""

    fail_at: int = 0
    error: Exception = RuntimeError("boom")
    calls_made: int = 0

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        turn = sum(1 for m in messages if m.type == "ai")
        self.calls_made += 1
        if turn == self.fail_at:
            raise self.error
        return super()._generate(messages, stop, run_manager, **kwargs)


def test_a_model_error_propagates_and_the_trajectory_keeps_what_happened_before(box):
    model = _Failing(calls=[bash("echo 1 > one.txt"), bash("echo 2")], fail_at=1, error=RuntimeError("model broke"))
    traj = Trajectory(model="scripted", instruction="x")
    with pytest.raises(RuntimeError, match="model broke"):
        harness.run_agent(model, traj, box, timeout_s=30, max_steps=10, retries=0)
    assert traj.stop_reason == ERROR and traj.error == "RuntimeError: model broke"
    assert [c.args["command"] for c in traj.tool_calls] == ["echo 1 > one.txt"]
    assert [m["type"] for m in traj.messages] == ["human", "ai", "tool"]
    assert traj.usage.provider_errors == 1 and traj.usage.provider_retries == 0


class _Retryable(Exception):
    is_retryable = True  # what langchain's provider errors (ModelRateLimitError, ...) say about themselves


class _Permanent(Exception):
    is_retryable = False


def test_retryable_faults_are_retried_by_the_harness_and_counted():
    model = _Failing(calls=[], fail_at=0, error=_Retryable("429"))
    with pytest.raises(_Retryable):
        drive(model, None, retries=2, backoff_s=0.001)
    assert model.calls_made == 3  # the first try and two retries


def test_faults_that_are_not_retryable_and_faults_past_the_deadline_are_not_retried():
    permanent = _Failing(calls=[], fail_at=0, error=_Permanent("401"))
    with pytest.raises(_Permanent):
        drive(permanent, None, retries=2, backoff_s=0.001)
    assert permanent.calls_made == 1
    (late,) = harness.retry_middleware(2, 0.001)
    with harness.serving(permanent, Trajectory(model="scripted", instruction="x"), harness.Deadline(-1)):
        assert late.retry_on(_Retryable("429")) is False  # the served trial's deadline has passed
    assert late.retry_on(_Retryable("429")) is True
    assert harness.retry_middleware(0, 1.0) == []


def test_a_refusal_is_the_model_giving_up(box):
    class Refuses(ScriptedToolModel):
        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            message = AIMessage(content="", additional_kwargs={"refusal": "I can't help with that."})
            return ChatResult(generations=[ChatGeneration(message=message)])

    traj = drive(Refuses(), box)
    assert traj.stop_reason == GAVE_UP and traj.tool_calls == []


# --- the tools ------------------------------------------------------------------------------------------------


@pytest.fixture
def tools(box):
    calls = []
    with acting_on(box, calls.append, lambda: 10.0):
        yield {t.name: t for t in TOOLS}, calls


def test_bash_shows_exit_code_stdout_and_stderr_and_records_the_call(tools):
    by_name, calls = tools
    output = by_name["bash"].invoke({"command": "echo out; echo err >&2; exit 3"})
    assert output == "exit code: 3\n--- stdout ---\nout\n\n--- stderr ---\nerr\n"
    (call,) = calls
    assert (call.name, call.args, call.exit_code, call.timed_out, call.output) == (
        "bash", {"command": "echo out; echo err >&2; exit 3"}, 3, False, output)
    assert call.duration_s >= 0


def test_write_then_read_round_trips_and_each_is_recorded(tools):
    by_name, calls = tools
    assert by_name["write_file"].invoke({"path": "sub/notes.txt", "content": "héllo"}) == "wrote 6 bytes to sub/notes.txt"
    assert by_name["read_file"].invoke({"path": "sub/notes.txt"}) == "héllo"
    assert [(c.name, c.exit_code) for c in calls] == [("write_file", None), ("read_file", None)]


@pytest.mark.parametrize("tool, args, shown", [
    ("read_file", {"path": "missing.txt"}, "error: "),
    ("read_file", {"path": "../../../etc/hostname"}, "error: "),
    ("write_file", {"path": "/etc/hb-harness-test", "content": "x"}, "error: "),
    ("write_file", {"path": ".", "content": "x"}, "error: "),
])
def test_the_models_bad_file_operations_are_shown_to_it_as_errors(tools, tool, args, shown):
    by_name, calls = tools
    output = by_name[tool].invoke(args)
    assert output.startswith(shown) and calls[0].output == output
    assert not os.path.exists("/etc/hb-harness-test")


def test_a_binary_file_reads_with_replacement_characters_not_an_error(tools, box):
    """Bytes that are not UTF-8 are data the model wrote (sandbox/base.decode_text), never a harness error."""
    by_name, _ = tools
    box.write_file("blob.bin", b"\xff\xfe\x00\x80")
    assert by_name["read_file"].invoke({"path": "blob.bin"}) == "\ufffd\ufffd\x00\ufffd"


def test_long_output_is_cut_in_the_middle_and_says_how_much(tools):
    by_name, _ = tools
    output = by_name["bash"].invoke({"command": f"head -c {3 * TOOL_OUTPUT_LIMIT} /dev/zero | tr '\\0' a"})
    assert len(output) < TOOL_OUTPUT_LIMIT + 100
    assert output.startswith("exit code: 0") and output.endswith("\n--- stderr ---\n")
    assert "characters cut] ..." in output


def test_the_remaining_budget_bounds_each_command(box):
    calls = []
    start = time.monotonic()
    with acting_on(box, calls.append, lambda: 0.5):
        output = TOOLS[0].invoke({"command": "sleep 20"})
    assert time.monotonic() - start < 10
    assert calls[0].timed_out and "\n[command killed: time budget exhausted]\n" in output


class _VanishedSandbox:
    """Test double of a sandbox whose container is gone: a lost sandbox is not the model's mistake."""

    def read_file(self, path, text=True, limit=None):
        raise SandboxLostError("the container is gone")

    def write_file(self, path, content):
        raise SandboxLostError("the container is gone")


@pytest.mark.parametrize("tool, args", [("read_file", {"path": "a"}), ("write_file", {"path": "a", "content": "x"})])
def test_a_lost_sandbox_propagates_instead_of_being_shown_to_the_model(tool, args):
    by_name = {t.name: t for t in TOOLS}
    with acting_on(_VanishedSandbox(), lambda call: None, lambda: None), pytest.raises(SandboxLostError):
        by_name[tool].invoke(args)


def test_tools_carry_the_harness_descriptions_and_act_only_inside_a_trial():
    assert {t.name: t.description for t in TOOLS} == TOOL_DESCRIPTIONS
    with pytest.raises(RuntimeError, match="outside a trial"):
        TOOLS[0].invoke({"command": "true"})
