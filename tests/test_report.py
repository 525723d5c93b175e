"""The terminal summary, built from plain records: no pytest run needed."""

from pytest_harnessbench.report import render


def record(model, mult, outcome, cause=None, task="t1", sample=1, message="", enforcement="cgroup-v1"):
    return {"model": model, "multiplier": mult, "outcome": outcome, "cause": cause, "task_id": task,
            "sample": sample, "message": message, "backend": "local", "enforcement": enforcement,
            "trial_id": f"{task}-{model}-{mult}-{sample}", "usage": {}}


def test_a_run_where_every_trial_errored_says_it_measured_nothing_and_compares_nothing():
    """Issue 17.5: a 0% table, an empty enforcement and 'within noise' comparisons, with no warning."""
    boom = "FileNotFoundError: .../admission/lock"
    records = [record(m, x, "error", "harness", task=t, message=boom, enforcement="")
               for m in ("a", "b") for x in ("1x", "3x", "uncapped") for t in ("t1", "t2")]
    lines = render(records, models=["a", "b"], multipliers=["1x", "3x", "uncapped"])
    assert any(line.startswith("WARNING: this run measured nothing: all 12 trials ended in error") and boom in line
               for line in lines)
    assert not any("comparisons" in line or "within noise" in line for line in lines)
    assert any(line.startswith("enforcement: none (no sandbox started)") for line in lines)


def test_cells_without_a_measured_trial_are_not_compared_but_the_others_are():
    records = [record("a", "1x", "passed"), record("a", "3x", "passed"),
               record("b", "1x", "error", "harness"), record("b", "3x", "failed", "assertion")]
    text = "\n".join(render(records, models=["a", "b"], multipliers=["1x", "3x"]))
    assert "a: score 3x vs 1x" in text and "b: score 3x vs 1x" not in text
    assert "@3x: score b − a" in text and "@1x: score b − a" not in text
    assert "measured nothing" not in text
