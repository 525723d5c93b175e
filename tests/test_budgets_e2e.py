"""Budgets, the spend cap, the shared rate limit and the confounder block, end to end.

The real langchain-openai client over real HTTP to the scripted server (tests/support/scripted_openai.py),
the only test double: it stands in for a remote provider, including its own rate limit.
"""

import json
import subprocess

import pytest

from support.scripted_openai import ScriptedOpenAI
from support.rundir import last_trajectory, results

pytestmark = pytest.mark.e2e  # bake-offs in pytest subprocesses (the spend cap's stop, -n 2, resume commands)

TASK = '''
import pytest

@pytest.mark.task(memory="64Mi", timeout={timeout})
def test_answer(trial):
    trial.run_agent("Write 42 to answer.txt.")
    assert trial.sandbox.read_file("answer.txt").strip() == "42"
'''
SOLVE = {"solve_with": "bash", "commands": ["echo 42 > answer.txt"]}
LOOP = [{"tool_calls": [{"name": "bash", "arguments": {"command": f"echo {i}"}}]} for i in range(10)]


@pytest.fixture
def bake(pytester, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    def run(server, *args, timeout=20, out=("--hb-out", "run")):
        pytester.makepyfile(test_task=TASK.format(timeout=timeout))
        flags = ["--hb-model-param", f"openai:scripted:base_url={server.base_url}",
                 "--hb-model-param", "openai:scripted:api_key=test-key"]
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--models", "openai:scripted", *out,
                                             "--hb-provider-backoff", "0.01", *flags, *args)

    return run


def records(pytester):
    return results(pytester.path / "run")


def trajectory(pytester, record):
    return last_trajectory(pytester.path / "run", record)


def test_a_token_cap_ends_the_trial_as_failed_budget_after_verification(pytester, bake):
    with ScriptedOpenAI(LOOP) as server:
        result = bake(server, "--hb-max-tokens", "2000")
    (record,) = records(pytester)
    assert (record["outcome"], record["cause"]) == ("failed", "budget")
    assert "AssertionError" in record["message"] or "answer.txt" in record["message"]  # the verification ran
    usage = record["usage"]
    assert usage["input_tokens"] + usage["output_tokens"] >= 2000 and usage["model_calls"] < 10
    assert record["budget"] == {"tokens": 2000, "cost_usd": None, "reached": "tokens"}
    traj = trajectory(pytester, record)
    assert traj["stop_reason"] == "budget" and len(traj["tool_calls"]) == usage["model_calls"]
    card = json.loads((pytester.path / "run" / "harness.json").read_text())
    assert card["settings"]["budget"]["tokens"] == 2000
    result.stdout.fnmatch_lines(["*failed/budget*"])


def test_the_spend_cap_stops_the_run_and_resuming_completes_it(pytester, bake):
    """Any trial here costs more than the cap: the first one crosses it, the second does not start; the resumed
    session (the same cap, its own spend) runs the second, and nothing is left to refuse."""
    prices = pytester.path / "prices.json"
    prices.write_text(json.dumps({"openai:scripted": {"input_per_1m": 1000.0, "output_per_1m": 1000.0}}))
    with ScriptedOpenAI([SOLVE]) as server:
        result = bake(server, "--hb-prices", str(prices), "--hb-max-spend", "0.01", "--samples", "2")
        assert result.ret == 2 and [r["sample"] for r in records(pytester)] == [1]
        assert records(pytester)[0]["usage"]["cost_usd"] > 0.01
        result.stdout.fnmatch_lines(["spend: $* of the $0.01 cap this session (openai:scripted $*)",
                                     "PARTIAL RUN: *--hb-max-spend $0.01 reached*; 1 trial(s) recorded. "
                                     "To finish it, run: *"])
        command = next(line for line in result.outlines if line.startswith("PARTIAL RUN")).split(" run: ", 1)[1]
        resumed = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    assert "PARTIAL RUN" not in resumed.stdout
    assert sorted(r["sample"] for r in records(pytester)) == [1, 2]
    assert all(r["outcome"] == "passed" for r in records(pytester))


def _busiest_window(times: list[float], window: float) -> int:
    return max(sum(1 for s in times if t - window < s <= t) for t in times)


def test_a_shared_rate_limit_is_never_exceeded_at_the_provider_under_two_workers(pytester, bake):
    """The provider allows 2 requests per 3 s and answers 429 beyond: without the limit even one worker meets
    429s (infra/provider); with it, two workers meet none, and the waits (longer than the 3 s timeout) are not
    the agent's."""
    with ScriptedOpenAI([SOLVE], rate_limit=(2, 3.0)) as server:
        bake(server, "--samples", "3", "--hb-provider-retries", "0", out=("--hb-out", "unlimited"))
        unlimited = results(pytester.path / "unlimited")
        assert any((r["outcome"], r["cause"]) == ("infra", "provider") and "429" in r["message"] for r in unlimited)
        server.reset()
        server._answered.clear()
        result = bake(server, "-n", "2", "--samples", "4", "--hb-rate-limit", "openai=2/3s", timeout=3)
        chat = server.chat_requests
    assert [r.status for r in chat] == [200] * 8
    assert _busiest_window([r.time for r in chat], 3.0) == 2  # measured where the provider counts
    trials = records(pytester)
    assert [r["outcome"] for r in trials] == ["passed"] * 4, result.stdout.str()[-3000:]
    waits = [r["timing"]["rate_wait_s"] for r in trials]
    assert max(waits) > 3  # more than the whole timeout, and the trial still passed


def test_provider_latency_that_drives_failures_is_flagged_as_a_confounder(pytester, bake):
    """Every other conversation the provider takes 5 s to answer its first call: past the 3 s timeout, so those
    trials fail; the same model, multiplier and task otherwise. The confounder block names provider latency."""
    with ScriptedOpenAI([{"fault": "slow", "seconds": 5, "times": "always", "every": 2}, SOLVE]) as server:
        result = bake(server, "-n", "2", "--samples", "14", timeout=3)
    trials = records(pytester)
    slow = [r for r in trials if r["confounders"]["model_call_latency_s"]["max"] >= 2.5]
    assert len(slow) == 7 and all(r["outcome"] == "failed" for r in slow)
    assert all(r["confounders"]["host"] and r["confounders"]["concurrency"] in (1, 2) for r in trials)
    result.stdout.fnmatch_lines(["confounder: provider latency (median per trial): pass rate 0% (0/7) in the upper*"])
