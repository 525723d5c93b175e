"""Real provider path: langchain-openai over real HTTP to the scripted server on 127.0.0.1.

The server (tests/support/scripted_openai.py) is the only test double: it stands in for
a remote provider we cannot reach from here.
"""

import hashlib
import json
from pathlib import Path

import pytest

from support import inprocess
from support.scripted_openai import ScriptedOpenAI
from support.rundir import last_trajectory, results

from pytest_harnessbench import session as session_module
from pytest_harnessbench.config import ConfigError, build

TASK = '''
import pytest

@pytest.mark.task(memory="64Mi", timeout={timeout}, solutions="echo 42 > answer.txt")
def test_answer(trial):
    trial.run_agent("Write 42 to answer.txt.")
    assert trial.sandbox.read_file("answer.txt").strip() == "42"
'''
SOLVE = {"solve_with": "bash", "commands": ["echo 42 > answer.txt"]}


@pytest.fixture
def bake(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    def run(server, *args, timeout=20, key="test-key", tasks=TASK):
        pytester.makepyfile(test_task=tasks.format(timeout=timeout))
        params = [f"openai:scripted:base_url={server.base_url}"] + ([f"openai:scripted:api_key={key}"] if key else [])
        flags = [arg for p in params for arg in ("--hb-model-param", p)]
        return inprocess.run(pytester, "-p", "no:cacheprovider", "--models", "openai:scripted", "--hb-out", "run",
                             "--hb-provider-backoff", "0.01", *flags, *args)

    return run


def records(pytester):
    return results(pytester.path / "run")


def trajectory(pytester, record):
    return last_trajectory(pytester.path / "run", record)


def test_a_provider_model_solves_a_task_through_the_real_client(pytester, bake):
    with ScriptedOpenAI([SOLVE]) as server:
        result = bake(server)
    result.assert_outcomes(passed=1)
    (record,) = records(pytester)
    assert record["usage"]["model_calls"] == 2 and record["usage"]["input_tokens"] > 0
    result.stdout.fnmatch_lines(["usage:", "model*input tokens/trial*", "openai:scripted*1*2.0*1.0*"])
    traj = trajectory(pytester, record)
    assert [c["args"]["command"] for c in traj["tool_calls"]] == ["echo 42 > answer.txt"]
    assert traj["harness"]["system_prompt_sha256"] and traj["harness"]["toolset_sha256"]
    sent = server.chat_requests[0].body
    assert sent["messages"][0]["role"] == "system" and {t["function"]["name"] for t in sent["tools"]} == {
        "bash", "read_file", "write_file"}
    card = json.loads((pytester.path / "run" / "harness.json").read_text())
    assert card["settings"]["model_params"]["openai:scripted"]["base_url"] == server.base_url
    assert "test-key" not in json.dumps(card) and "[REDACTED:openai:scripted:api_key]" in json.dumps(card)


@pytest.mark.parametrize("fault", [429, 500, "drop"])
def test_provider_faults_after_retries_are_infra_never_failed(pytester, bake, fault):
    with ScriptedOpenAI([{"fault": fault, "times": "always"}, SOLVE]) as server:
        result = bake(server, "--hb-provider-retries", "2")
        attempts = len(server.chat_requests)
    result.stdout.fnmatch_lines(["*1 infra*"])
    (record,) = records(pytester)
    assert (record["outcome"], record["cause"]) == ("infra", "provider")
    assert attempts == 3 and record["usage"]["provider_retries"] == 2


def test_a_fault_within_the_retry_budget_is_retried_and_counted(pytester, bake):
    with ScriptedOpenAI([{"fault": 429, "times": 2, "retry_after": 0}, SOLVE]) as server:
        result = bake(server, "--hb-provider-retries", "2")
    result.assert_outcomes(passed=1)
    assert records(pytester)[0]["usage"]["provider_retries"] == 2


def test_auth_failure_at_preflight_is_a_usage_error(pytester, bake):
    with ScriptedOpenAI([SOLVE]) as server:
        result = bake(server, "--hb-preflight-call", key="wrong-key")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*model openai:scripted: the preflight request failed*401*"])


def test_a_missing_key_is_named_before_the_run(pytester, bake):
    with ScriptedOpenAI([SOLVE]) as server:
        result = bake(server, key=None)
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*model openai:scripted: no credential: set OPENAI_API_KEY*"])


def test_auth_failure_mid_run_stops_the_session_and_keeps_what_finished(pytester, bake):
    tasks = TASK + '''
@pytest.mark.task(memory="64Mi", solutions="true")
def test_second(trial):
    trial.run_agent("Anything.")
'''
    with ScriptedOpenAI([{"fault": 401, "times": "always"}, SOLVE]) as server:
        result = bake(server, tasks=tasks)
    assert result.ret == 2  # interrupted
    result.stdout.fnmatch_lines(["*stopping the session*"])
    (record,) = records(pytester)  # the second trial never started
    assert (record["outcome"], record["cause"]) == ("infra", "provider") and "401" in record["message"]


def test_step_limit_keeps_the_partial_trajectory(pytester, bake):
    loop = [{"tool_calls": [{"name": "bash", "arguments": {"command": f"echo {i}"}}]} for i in range(10)]
    with ScriptedOpenAI(loop) as server:
        bake(server, "--hb-max-steps", "3")
    (record,) = records(pytester)
    assert (record["outcome"], record["cause"]) == ("failed", "step_limit")
    traj = trajectory(pytester, record)
    assert traj["stop_reason"] == "step_limit" and traj["usage"]["model_calls"] == 3
    # Issue 17: the last allowed model call's tool calls run too (they were dropped before)
    assert [c["args"]["command"] for c in traj["tool_calls"]] == ["echo 0", "echo 1", "echo 2"]
    assert sum(m["type"] == "ai" for m in traj["messages"]) == 3


def test_timeout_ends_a_slow_model_gracefully_as_failed_timeout(pytester, bake):
    with ScriptedOpenAI([{"tool_calls": [{"name": "bash", "arguments": {"command": "echo 1"}}]},
                         {"fault": "slow", "seconds": 10, "times": "always"}, SOLVE]) as server:
        bake(server, timeout=3)
    (record,) = records(pytester)
    assert (record["outcome"], record["cause"]) == ("failed", "timeout")
    traj = trajectory(pytester, record)
    assert traj["stop_reason"] == "timeout" and len(traj["tool_calls"]) == 1
    assert record["timing"]["agent_s"] < 6


def test_context_overflow_and_refusal_are_the_models_failures(pytester, bake):
    with ScriptedOpenAI([{"fault": "context_overflow", "times": "always"}, SOLVE]) as server:
        bake(server)
    assert (records(pytester)[0]["outcome"], records(pytester)[0]["cause"]) == ("failed", "context_overflow")
    with ScriptedOpenAI([{"refusal": "I can't help with that."}]) as server:
        (pytester.path / "run" / "results.jsonl").unlink()
        bake(server)
    assert (records(pytester)[0]["outcome"], records(pytester)[0]["cause"]) == ("failed", "gave_up")


def test_bring_your_own_agent_factory(pytester, bake):
    pytester.makeconftest('''
import pytest
from langchain.agents import create_agent

@pytest.fixture
def hb_agent_factory():
    def production_agent(model, tools, middleware):
        return create_agent(model, tools, system_prompt="You are our production agent.", middleware=middleware)
    return production_agent
''')
    with ScriptedOpenAI([SOLVE]) as server:
        result = bake(server)
        system = server.chat_requests[0].body["messages"][0]["content"]
    result.assert_outcomes(passed=1)
    assert system == "You are our production agent."
    harness = trajectory(pytester, records(pytester)[0])["harness"]
    assert harness["system_prompt_sha256"] == hashlib.sha256(system.encode()).hexdigest()
    assert harness["factory"].endswith("production_agent")


def test_provider_commands_are_confined_on_the_local_backend(pytester, bake, monkeypatch):
    """The model's own command probes the host; the full escape suite is tests/test_escape.py."""
    canary = f"sk-canary-{pytester.path.name}"
    monkeypatch.setenv("HB_CANARY_API_KEY", canary)  # in the controller's environment, as a provider key is
    private = Path("/tmp") / f"hb-private-{pytester.path.name}"
    escape = {"solve_with": "bash", "commands": [
        f"echo 42 > answer.txt; touch /usr/hb-escape 2>&1; echo hi > {private} && cat {private}; "
        "cat /proc/*/environ; grep CapEff /proc/self/status; id -u"]}
    with ScriptedOpenAI([escape]) as server:
        result = bake(server)
    result.assert_outcomes(passed=1)
    output = trajectory(pytester, records(pytester)[0])["tool_calls"][0]["output"]
    assert "Read-only file system" in output and not Path("/usr/hb-escape").exists()
    assert "hi" in output and not private.exists()  # /tmp inside is private to the command
    assert canary not in output
    assert "CapEff:\t0000000000000000" in output and "\n1000\n" in output
    card = json.loads((pytester.path / "run" / "harness.json").read_text())
    assert card["backend"]["filesystem"].startswith("bubblewrap")


@pytest.mark.trials
@pytest.mark.parametrize("model", ["openai:gpt-5.1", "replay:{prior}"])
def test_without_confinement_a_model_writing_commands_on_the_local_backend_needs_explicit_consent(
        monkeypatch, tmp_path, model):
    (tmp_path / "prior").mkdir()
    (tmp_path / "prior" / "results.jsonl").write_text(json.dumps({"model": "openai:gpt-5.1", "trial_id": "t", "task_id": "t.py::t", "multiplier": "1x", "sample": 1, "outcome": "passed", "cause": ""}) + "\n")
    model = model.format(prior=tmp_path / "prior")
    monkeypatch.setattr("pytest_harnessbench.sandbox.confine.unavailable_reason", lambda: "bubblewrap is not installed")
    values = {"models": model}
    settings = build(lambda opt: values.get(opt.name, opt.default))
    with pytest.raises(ConfigError, match="cannot be confined on this host \\(bubblewrap is not installed\\).*"
                                          "--hb-allow-host-exec"):
        session_module.Bench(settings, "r", tmp_path)
    consented = build(lambda opt: {**values, "allow_host_exec": "true"}.get(opt.name, opt.default))
    backend = session_module.Bench(consented, "r", tmp_path).backend
    assert backend.confined is False and "--hb-allow-host-exec" in backend.describe()["filesystem"]
    assert "UNCONFINED" in backend.warnings()[0]


def test_replay_reproduces_at_the_original_multiplier_and_flips_at_another(pytester, tmp_path, monkeypatch):
    pytester.makepyfile(test_task='''
import pytest

HOG = "python3 -c 'x = bytearray(150 << 20); x[::4096] = b\\"1\\" * len(x[::4096])'"

@pytest.mark.task(memory="64Mi", solutions={"heavy": HOG + " && echo 42 > answer.txt"})
def test_answer(trial):
    trial.run_agent("Write 42 to answer.txt.")
    assert trial.sandbox.read_file("answer.txt").strip() == "42"
''')
    inprocess.run(pytester, "-p", "no:cacheprovider", "--models", "oracle:heavy", "--multipliers", "uncapped",
                  "--hb-out", "recorded")
    result = inprocess.run(pytester, "-p", "no:cacheprovider", "--models", "replay:recorded",
                           "--multipliers", "1,uncapped", "--hb-out", "run")
    result.stdout.fnmatch_lines(["*1 passed, 1 infra*"])
    outcomes = {r["multiplier"]: (r["outcome"], r["cause"]) for r in records(pytester)}
    assert outcomes == {"uncapped": ("passed", None), "1x": ("infra", "oom")}


def test_an_example_suite_task_is_solved_through_the_provider_path(pytester, tmp_path, monkeypatch,
                                                                   sort_numbers_task):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    task = sort_numbers_task  # the task's own lean solution, served by the "provider"
    with ScriptedOpenAI([{"solve_with": "bash", "commands": [task.LEAN]}]) as server:
        result = inprocess.run(
            pytester, "-p", "no:cacheprovider", "test_sort_numbers.py",
            "--models", "openai:scripted", "--multipliers", "1,uncapped", "--hb-out", "run",
            "--hb-model-param", f"openai:scripted:base_url={server.base_url}",
            "--hb-model-param", "openai:scripted:api_key=test-key")
        requests = len(server.chat_requests)
    result.assert_outcomes(passed=2)
    assert requests == 4  # two trials × (tool call, final answer), over HTTP


def test_a_models_bad_file_operations_are_errors_shown_to_it_not_task_bugs(pytester, bake):
    calls = [{"tool_calls": [{"name": "write_file", "arguments": {"path": "/etc/hb-escape", "content": "x"}}]},
             {"tool_calls": [{"name": "read_file", "arguments": {"path": "../../../etc/hostname"}}]},
             {"tool_calls": [{"name": "write_file", "arguments": {"path": ".", "content": "x"}}]},
             {"tool_calls": [{"name": "bash", "arguments": {"command": "echo 42 > answer.txt"}}]},
             {"content": "Done."}]
    with ScriptedOpenAI(calls) as server:
        result = bake(server)
    result.assert_outcomes(passed=1)
    outputs = [c["output"] for c in trajectory(pytester, records(pytester)[0])["tool_calls"][:3]]
    assert all(o.startswith("error: ") for o in outputs)
    assert "outside the sandbox" in outputs[0] and "outside the sandbox" in outputs[1]
    assert not Path("/etc/hb-escape").exists()


def test_a_provider_outage_at_the_deadline_is_still_infra_provider(pytester, bake):
    with ScriptedOpenAI([{"fault": 503, "times": "always"}, SOLVE]) as server:
        bake(server, "--hb-provider-retries", "2", "--hb-provider-backoff", "1.5", timeout=2)
    (record,) = records(pytester)
    assert (record["outcome"], record["cause"]) == ("infra", "provider")
    assert record["usage"]["provider_retries"] <= 2


def test_a_short_secret_parameter_leaves_ids_intact(pytester, bake):
    with ScriptedOpenAI([SOLVE], api_key="t") as server:
        bake(server, key="t")
    (record,) = records(pytester)
    assert record["trial_id"].startswith("test_answer") and "REDACTED" not in json.dumps(record)
    assert (pytester.path / "run" / "trials" / f"{record['trial_id']}.json").exists()


def test_replay_sources_are_checked_before_the_run(pytester, tmp_path, monkeypatch):
    pytester.makepyfile(test_task=TASK.format(timeout=20))
    inprocess.run(pytester, "-p", "no:cacheprovider", "--models", "oracle,nop", "--multipliers", "1,3",
                  "--hb-out", "recorded")
    for model, message in [("replay:recorded", "*holds several models (nop, oracle); name one*"),
                           ("replay:recorded::typo", "*has no records of 'typo'*"),
                           ("replay:recorded::oracle", "*recorded it at several multipliers (1x, 3x)*"),
                           ("replay:nowhere", "*replay needs an earlier run directory*")]:
        result = inprocess.run(pytester, "-p", "no:cacheprovider", "--models", model)
        assert result.ret == 4, model
        result.stderr.fnmatch_lines([message])


def test_compare_needs_the_baseline_in_that_run(pytester, tmp_path, monkeypatch):
    pytester.makepyfile(test_task=TASK.format(timeout=20))
    inprocess.run(pytester, "-p", "no:cacheprovider", "--models", "nop", "--hb-out", "earlier")
    result = inprocess.run(pytester, "-p", "no:cacheprovider", "--models", "oracle", "--hb-gate", "oracle",
                           "--hb-compare", "earlier")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--hb-compare earlier: holds no records of --hb-gate 'oracle' (it has: nop)*"])


def test_preflight_lists_every_problem_of_every_model_at_once(monkeypatch, tmp_path):
    """Issue 21: anthropic:... took three runs to learn that bubblewrap, the key and langchain-anthropic were missing."""
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("pytest_harnessbench.sandbox.confine.unavailable_reason", lambda: "bubblewrap is not installed")
    settings = build(lambda opt: {"models": "openai:gpt-5.1,anthropic:claude-x"}.get(opt.name, opt.default))
    with pytest.raises(ConfigError) as refused:
        session_module.open_bench(settings, tmp_path)
    lines = str(refused.value).splitlines()
    assert len(lines) == 4
    assert "cannot be confined on this host (bubblewrap is not installed)" in lines[0]
    assert lines[1:3] == [
        "model openai:gpt-5.1: no credential: set OPENAI_API_KEY (or --hb-model-param openai:gpt-5.1:api_key=...)",
        "model anthropic:claude-x: no credential: set ANTHROPIC_API_KEY "
        "(or --hb-model-param anthropic:claude-x:api_key=...)"]
    assert lines[3].startswith("model anthropic:claude-x: its LangChain integration is not installed (")
    assert lines[3].endswith("; pip install langchain-anthropic")
