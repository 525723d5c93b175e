"""Trajectory metrics end to end: recorded per trial, scored with agentevals, gating only when asked."""

import pytest

from support import inprocess

from pytest_harnessbench import metrics
from pytest_harnessbench.store import RunDir

TASKS = '''
import pytest

ANSWER = "echo 42 > answer.txt"
SOLUTIONS = {"lean": ANSWER, "heavy": ["ls /nonexistent-dir", ANSWER]}

@pytest.mark.task(timeout=20, solutions=SOLUTIONS, reference_tools=[("bash", {"command": ANSWER})])
def test_scored(trial):
    trial.run_agent("Write 42 to answer.txt.")
    trial.evaluate(["bash"], mode="superset")
    assert trial.sandbox.read_file("answer.txt").strip() == "42"

@pytest.mark.task(timeout=20, solutions=SOLUTIONS, reference_tools=[("bash", {"command": ANSWER})],
                  gate_on={"trajectory_match": 1})
def test_gated(trial):
    trial.run_agent("Write 42 to answer.txt.")
    assert trial.sandbox.read_file("answer.txt").strip() == "42"
'''


def run(pytester, *args):
    return inprocess.run(pytester, "-p", "no:cacheprovider", "--hb-out", "run", *args)


def by_trial(pytester) -> dict:
    return {(r.task_id.rsplit("::", 1)[1], r.model): r.to_dict() for r in RunDir(pytester.path / "run").latest()}


def test_example_suite_lean_and_heavy_take_different_paths(pytester, sort_numbers_task):
    task = sort_numbers_task
    result = run(pytester, "test_sort_numbers.py", "--models", "oracle:lean,oracle:heavy", "--multipliers", "uncapped")
    result.assert_outcomes(passed=2)
    run_dir = RunDir(pytester.path / "run")
    reference = metrics.reference_document([("bash", {"command": task.LEAN})])
    scores = {}
    for typed in run_dir.latest():
        record = typed.to_dict()
        assert {k: record["metrics"][k] for k in ("steps", "tool_calls", "failed_tool_calls", "tokens")} == {
            "steps": 2, "tool_calls": 1, "failed_tool_calls": 0, "tokens": 0}
        assert 0 < record["metrics"]["wall_s"] <= record["timing"]["agent_s"] + 0.0005  # wall_s is rounded to ms
        document = run_dir.trajectory(typed)
        scores[record["model"]] = {mode: metrics.trajectory_match(document, reference, mode)
                                   for mode in metrics.MATCH_MODES}
        assert metrics.trajectory_match(document, reference, "strict", args="ignore") == 1.0  # one bash call each
    assert scores["oracle:lean"] == dict.fromkeys(metrics.MATCH_MODES, 1.0)
    assert scores["oracle:heavy"] == dict.fromkeys(metrics.MATCH_MODES, 0.0)


def test_marker_reference_is_scored_and_gates_only_where_asked(pytester):
    pytester.makepyfile(test_tasks=TASKS)
    result = run(pytester, "--models", "oracle:lean,oracle:heavy", "--multipliers", "uncapped")
    result.assert_outcomes(passed=3, failed=1)
    trials = by_trial(pytester)
    lean, heavy = trials[("test_scored", "oracle:lean")], trials[("test_scored", "oracle:heavy")]
    assert lean["metrics"]["trajectory_match"] == 1.0 and lean["metrics"]["trajectory_superset"] == 1.0
    # heavy took a detour (a failing ls first): its path misses, its trial still passes
    assert heavy["outcome"] == "passed" and heavy["metrics"]["trajectory_match"] == 0.0
    assert heavy["metrics"]["trajectory_superset"] == 1.0
    assert heavy["metrics"]["failed_tool_calls"] == 1 and heavy["metrics"]["steps"] == 3
    assert (trials[("test_gated", "oracle:lean")]["outcome"], trials[("test_gated", "oracle:lean")]["cause"]) == (
        "passed", None)
    gated = trials[("test_gated", "oracle:heavy")]
    assert (gated["outcome"], gated["cause"]) == ("failed", "trajectory")
    assert gated["message"] == "trajectory_match 0 < 1 (gate_on)"
    result.stdout.fnmatch_lines(["FAILED test_gated?oracle:heavy@*? - failed/trajectory: trajectory_ma*"])


@pytest.mark.parametrize("marker, message", [
    ('reference_tools="bash"', "reference_tools='bash' must be a list"),
    ('reference_tools=["bash"], match_mode="sideways"', "match_mode='sideways' must be one of strict"),
    ('gate_on={"trajectory_match": 1}', "gate_on trajectory_match needs reference_tools"),
    ('gate_on=["steps"]', "gate_on=?'steps'? must map metric names to numbers"),
])
def test_bad_metric_markers_are_usage_errors(pytester, marker, message):
    pytester.makepyfile(test_x=f'''
import pytest

@pytest.mark.task(solutions="true", {marker})
def test_x(trial):
    trial.run_agent("go")
''')
    result = run(pytester, "--models", "oracle")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_the_gate_decides_on_a_metric_in_its_own_units(pytester):
    pytester.makepyfile(test_tasks=TASKS.replace(',\n                  gate_on={"trajectory_match": 1}', ""))
    args = ["--models", "oracle:lean,oracle:heavy", "--multipliers", "uncapped", "--hb-gate", "oracle:lean"]
    lenient = run(pytester, *args, "--hb-gate-margin", "steps:+1")
    lenient.stdout.fnmatch_lines(["gate vs oracle:lean: PASS*",
                                  "*steps pass: oracle:heavy vs oracle:lean: 3.00 vs 2.00, +1.00 "
                                  "(95% CI +1.00 to +1.00, 2 tasks), margin +1"])
    assert lenient.ret == 0
    strict = run(pytester, *args, "--hb-gate-margin", "steps:+0.5,trajectory_match:-0", "--hb-out", "run2")
    strict.stdout.fnmatch_lines(["gate vs oracle:lean: FAIL*", "*steps fail:*", "*trajectory_match fail:*"])
    assert strict.ret == 1


def test_a_recorded_path_becomes_a_reference_for_the_marker(pytester, capsys):
    from pytest_harnessbench.__main__ import main

    pytester.makepyfile(test_tasks=TASKS)
    run(pytester, "--models", "oracle:lean,oracle:heavy", "--multipliers", "uncapped")
    with pytest.raises(SystemExit) as several:
        main(["reference", str(pytester.path / "run")])
    assert several.value.code == 2 and "name one" in capsys.readouterr().err
    assert main(["reference", f"{pytester.path / 'run'}::oracle:heavy"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# test_tasks.py::test_scored (oracle:heavy, ")
    assert lines[1] == ("reference_tools=[('bash', {'command': 'ls /nonexistent-dir'}), "
                        "('bash', {'command': 'echo 42 > answer.txt'})]")
    assert len(lines) == 2  # the gated task failed for oracle:heavy: no passed trial, no path
