"""The agent harness (agents/harness.py) and its tools (agents/tools.py), in process, on a real local sandbox.

The model is the harness's own scripted chat model (agents/builtin.py, what ``oracle`` and ``nop`` are):
it goes through LangChain's real agent loop, so the loop, the limits and the recording are the real ones.
"""

from __future__ import annotations

import os
import time

import pytest
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from pytest_harnessbench.agents import harness
from pytest_harnessbench.agents.builtin import ScriptedToolModel, scripted
from pytest_harnessbench.agents.defaults import SYSTEM_PROMPT, TOOL_DESCRIPTIONS, TOOL_OUTPUT_LIMIT, sha256
from pytest_harnessbench.agents.tools import make_tools
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
    late = harness.retry_middleware(2, 0.001, deadline=harness.Deadline(-1))
    assert late[0].retry_on(_Retryable("429")) is False
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
    by_name = {t.name: t for t in make_tools(box, calls.append, lambda: 10.0)}
    return by_name, calls


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
    bash_tool = make_tools(box, calls.append, lambda: 0.5)[0]
    start = time.monotonic()
    output = bash_tool.invoke({"command": "sleep 20"})
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
    by_name = {t.name: t for t in make_tools(_VanishedSandbox(), lambda call: None, lambda: None)}
    with pytest.raises(SandboxLostError):
        by_name[tool].invoke(args)


def test_tools_carry_the_harness_descriptions_and_share_their_argument_schemas_between_trials(box):
    first, second = make_tools(box, lambda c: None, lambda: None), make_tools(box, lambda c: None, lambda: None)
    assert {t.name: t.description for t in first} == TOOL_DESCRIPTIONS
    assert [t.args_schema for t in first] == [t.args_schema for t in second]  # built once, not per trial
    assert first[0].args_schema is second[0].args_schema
