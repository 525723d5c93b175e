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


def test_the_table_fits_100_columns_and_keeps_every_figure_verbose_prints_one_line_per_row():
    records = [record(m, x, "infra" if (m, x) == ("oracle:heavy", "1x") else "passed",
                      "oom" if (m, x) == ("oracle:heavy", "1x") else None, task=f"t{t}", sample=k)
               for m in ("oracle:lean", "oracle:heavy") for x in ("1x", "3x", "uncapped") for t in range(6)
               for k in (1, 2, 3)]
    lines = render(records, models=["oracle:lean", "oracle:heavy"], multipliers=["1x", "3x", "uncapped"])
    table = lines[:lines.index(next(line for line in lines if line.startswith("enforcement:")))]
    assert max(map(len, lines)) <= 100
    assert len(table) == 2 + 2 * 6
    heavy = table.index(next(line for line in table if line.startswith("oracle:heavy  1x")))
    assert table[heavy].split() == ["oracle:heavy", "1x", "18", "0", "0", "18", "0", "0.0%", "±0.0", "-",
                                    "100.0%", "±0.0"]
    assert table[heavy + 1].split() == ["oom:18", "0.0–17.6", "82.4–100.0"]
    assert table[heavy + 3].split() == ["82.4–100.0", "82.4–100.0", "n=18", "0.0–17.6"]
    wide = render(records, models=["oracle:lean", "oracle:heavy"], multipliers=["1x", "3x", "uncapped"], verbose=True)
    assert any(line.startswith("oracle:heavy") and "18 (oom:18)" in line and "100.0% [82.4–100.0] (18/18) ±0.0" in line
               for line in wide)
