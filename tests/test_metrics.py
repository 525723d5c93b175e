"""Trajectory metrics as pure functions over recorded trial documents (trials/*.json)."""

import pytest

from pytest_harnessbench.metrics import (
    MetricError,
    builtin_metrics,
    conversation,
    gate_verdict,
    higher_is_better,
    openai_messages,
    reference_document,
    trajectory_match,
)
from pytest_harnessbench.outcomes import Verdict


def call(name, args, exit_code=None):
    return {"name": name, "args": args, "output": "", "duration_s": 0.1, "exit_code": exit_code, "timed_out": False}


def document(*runs):
    """A trial document as trial.trajectory_document writes it: one trajectory per run_agent call."""
    return {"trajectories": [
        {"tool_calls": list(calls), "duration_s": 1.5,
         "usage": {"model_calls": len(calls) + 1, "tool_calls": len(calls), "input_tokens": 100, "output_tokens": 20}}
        for calls in runs]}


LEAN = document([call("bash", {"command": "sort -n data.txt -o sorted.txt"}, 0)])
HEAVY = document([call("bash", {"command": "python3 sort.py"}, 1),
                  call("read_file", {"path": "sorted.txt"}),
                  call("bash", {"command": "python3 sort.py"}, 0)])


def test_builtin_metrics_count_steps_calls_failures_tokens_and_time():
    assert builtin_metrics(HEAVY) == {"steps": 4, "tool_calls": 3, "failed_tool_calls": 1, "tokens": 120,
                                      "wall_s": 1.5}
    assert builtin_metrics(document([], [call("bash", {"command": "false"}, 2)])) == {
        "steps": 3, "tool_calls": 1, "failed_tool_calls": 1, "tokens": 240, "wall_s": 3.0}


def test_a_trial_without_an_agent_run_has_no_builtin_metrics():
    assert builtin_metrics({"trajectories": []}) == {}


def test_openai_messages_give_each_tool_call_its_assistant_turn_and_result():
    messages = openai_messages(HEAVY)
    assert [m["role"] for m in messages] == ["assistant", "tool"] * 3
    first = messages[0]["tool_calls"][0]
    assert first["type"] == "function" and first["function"]["name"] == "bash"
    assert first["function"]["arguments"] == '{"command": "python3 sort.py"}'
    assert messages[1]["tool_call_id"] == first["id"]


def test_reference_tools_are_names_or_name_and_arguments():
    reference = reference_document(["bash", ("read_file", {"path": "sorted.txt"})])
    assert [(c["name"], c["args"]) for c in reference["trajectories"][0]["tool_calls"]] == [
        ("bash", {}), ("read_file", {"path": "sorted.txt"})]
    for bad in ([3], [("bash", "ls")], "bash", [("bash",)]):
        with pytest.raises(ValueError, match="reference_tools"):
            reference_document(bad)


@pytest.mark.parametrize("mode, lean, heavy", [
    ("strict", 1.0, 0.0),      # exactly one bash call
    ("unordered", 1.0, 0.0),
    ("subset", 1.0, 0.0),      # heavy called tools the reference does not have
    ("superset", 1.0, 1.0),    # both called bash at least once
])
def test_trajectory_match_modes_through_agentevals(mode, lean, heavy):
    reference = reference_document(["bash"])
    assert trajectory_match(LEAN, reference, mode) == lean
    assert trajectory_match(HEAVY, reference, mode) == heavy


def test_reference_arguments_must_match_those_given():
    reference = reference_document([("bash", {"command": "sort -n data.txt -o sorted.txt"})])
    assert trajectory_match(LEAN, reference, "strict") == 1.0
    assert trajectory_match(HEAVY, reference, "superset") == 0.0
    assert trajectory_match(HEAVY, reference, "superset", args="ignore") == 1.0


def test_a_bad_match_mode_is_a_metric_error_naming_the_accepted_ones():
    with pytest.raises(MetricError, match="strict, unordered, subset, superset"):
        trajectory_match(LEAN, reference_document(["bash"]), "sideways")


def test_direction_lower_for_costs_higher_for_scores():
    assert not higher_is_better("steps") and not higher_is_better("wall_s")
    assert higher_is_better("trajectory_match") and higher_is_better("judge")


def test_gate_on_fails_a_passed_trial_whose_metric_misses_the_threshold():
    passed = Verdict("passed", None)
    assert gate_verdict(passed, {"trajectory_match": 1.0}, {"trajectory_match": 1}) == passed
    failed = gate_verdict(passed, {"trajectory_match": 0.0}, {"trajectory_match": 1})
    assert (failed.outcome, failed.cause) == ("failed", "trajectory")
    assert "trajectory_match 0 < 1" in failed.message
    steps = gate_verdict(passed, {"steps": 12}, {"steps": 10})
    assert (steps.outcome, steps.message) == ("failed", "steps 12 > 10 (gate_on)")


def test_gate_on_with_a_missing_metric_fails_and_says_why():
    failed = gate_verdict(Verdict("passed", None), {}, {"trajectory_match": 1}, {"trajectory_match": "judge down"})
    assert failed.cause == "trajectory" and "trajectory_match missing (judge down)" in failed.message


def test_gate_on_never_touches_a_trial_that_did_not_pass():
    for verdict in (Verdict("failed", "assertion", "x"), Verdict("infra", "oom", "y"), Verdict("error", "harness")):
        assert gate_verdict(verdict, {"trajectory_match": 0.0}, {"trajectory_match": 1}) == verdict


def test_the_judge_reads_the_whole_conversation_in_openai_messages():
    doc = document([call("bash", {"command": "ls"}, 0)])
    run = doc["trajectories"][0]
    run["instruction"] = "List the files."
    run["messages"] = [{"type": "human", "data": {"content": "List the files."}},
                       {"type": "ai", "data": {"content": ""}}, {"type": "tool", "data": {"content": "a b"}},
                       {"type": "ai", "data": {"content": "Listed them."}}]
    messages = conversation(doc)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[0]["content"] == "List the files." and messages[-1]["content"] == "Listed them."
