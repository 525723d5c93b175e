"""The LLM-as-judge (--hb-judge, openevals) through the real langchain-openai client and the scripted server."""

import json

import pytest

from support import inprocess

from support.scripted_openai import ScriptedOpenAI

TASK = '''
import pytest

HOG = "python3 -c 'x = bytearray(150 << 20); x[::4096] = b\\"1\\" * len(x[::4096])'"

@pytest.mark.task(timeout=20, memory="64Mi", solutions={"lean": "echo 42 > answer.txt", "heavy": HOG})
def test_answer(trial):
    trial.run_agent("Write 42 to answer.txt.")
    assert trial.sandbox.read_file("answer.txt").strip() == "42"
'''


def verdict(score: bool) -> dict:
    return {"content": json.dumps({"reasoning": "The one request was done.", "score": score})}


@pytest.fixture
def judged(pytester, monkeypatch):
    """Run the task with the oracle, judged by ``openai:judge`` on ``server``."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    pytester.makepyfile(test_task=TASK)

    def run(server, *args, key="test-key", models="oracle"):
        params = [f"openai:judge:base_url={server.base_url}"] + ([f"openai:judge:api_key={key}"] if key else [])
        flags = [arg for p in params for arg in ("--hb-model-param", p)]
        result = inprocess.run(pytester, "-p", "no:cacheprovider", "--models", models, "--hb-out", "run",
                               "--hb-judge", "openai:judge", *flags, *args)
        lines = (pytester.path / "run" / "results.jsonl").read_text().splitlines() if result.ret != 4 else []
        return result, [json.loads(line) for line in lines]

    return run


@pytest.mark.parametrize("score, metric", [(True, 1.0), (False, 0.0)])
def test_the_judge_scores_each_trial_and_never_changes_its_outcome(judged, score, metric):
    with ScriptedOpenAI({"judge": [verdict(score)]}) as server:
        result, (record,) = judged(server)
        requests = [r for r in server.chat_requests if r.model == "judge"]
    result.assert_outcomes(passed=1)
    assert record["outcome"] == "passed" and record["metrics"]["judge"] == metric
    (request,) = requests
    shown = json.dumps(request.body["messages"])
    assert "Write 42 to answer.txt." in shown and "echo 42 > answer.txt" in shown
    result.stdout.fnmatch_lines(["metrics (*", "model*mult*judge", f"oracle*1x*{metric:.2f}"])


def test_a_failing_judge_leaves_the_metric_missing_with_its_cause_never_zero(judged):
    with ScriptedOpenAI({"judge": [{"fault": 503, "times": "always"}, verdict(True)]}) as server:
        result, (record,) = judged(server)
    result.assert_outcomes(passed=1)
    assert "judge" not in record["metrics"]
    assert record["metrics_missing"]["judge"].startswith("judge openai:judge failed: ")
    assert "503" in record["metrics_missing"]["judge"]


def test_infra_trials_are_not_judged(judged):
    with ScriptedOpenAI({"judge": [verdict(True)]}) as server:
        result, (record,) = judged(server, models="oracle:heavy")
        asked = [r for r in server.chat_requests if r.model == "judge"]
    assert (record["outcome"], record["cause"]) == ("infra", "oom")
    assert asked == [] and "judge" not in record["metrics"] and record["metrics"]["steps"] == 2


def test_the_judge_is_preflighted_like_the_models(judged):
    with ScriptedOpenAI({"judge": [verdict(True)]}) as server:
        result, _ = judged(server, key=None)
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*model openai:judge: no credential: set OPENAI_API_KEY*"])


def test_a_built_in_judge_is_a_usage_error(pytester):
    pytester.makepyfile(test_task=TASK)
    result = inprocess.run(pytester, "-p", "no:cacheprovider", "--hb-judge", "oracle")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--hb-judge 'oracle': a judge is a provider model*"])
