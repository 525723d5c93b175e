"""The terminal summary, built from plain records: no pytest run needed."""

import dataclasses
import json
from pathlib import Path

import pytest

from pytest_harnessbench import report
from pytest_harnessbench.records import TrialRecord
from pytest_harnessbench.summary import summarize


def typed(records):
    return [TrialRecord.from_dict(r) for r in records]


def render(records, *, models, multipliers, **options):
    return report.render(summarize(typed(records), models=models, multipliers=multipliers), **options)


def metric_tables(records, models, multipliers):
    return report.metric_tables(summarize(typed(records), models=models, multipliers=multipliers))


def trial_lines(final, width, *outcomes):
    return report.trial_lines({nodeid: TrialRecord.from_dict(r) for nodeid, r in final.items()}, width, *outcomes)


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
    text = "\n".join(render(records, models=["a", "b"], multipliers=["1x", "3x"], verbose=True))
    assert "a: score 3x vs 1x" in text and "b: score 3x vs 1x" not in text
    assert "@3x: score b − a" in text and "@1x: score b − a" not in text
    assert "measured nothing" not in text


def test_the_table_fits_100_columns_and_keeps_every_figure_verbose_prints_one_line_per_row():
    records = [record(m, x, "infra" if (m, x) == ("oracle:heavy", "1x") else "passed",
                      "oom" if (m, x) == ("oracle:heavy", "1x") else None, task=f"t{t}", sample=k)
               for m in ("oracle:lean", "oracle:heavy") for x in ("1x", "3x", "uncapped") for t in range(6)
               for k in (1, 2, 3)]
    lines = render(records, models=["oracle:lean", "oracle:heavy"], multipliers=["1x", "3x", "uncapped"])
    start = lines.index(next(line for line in lines if line.startswith("model ")))
    table = lines[start:lines.index(next(line for line in lines if line.startswith("enforcement:")))]
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


def test_metrics_are_summarised_per_model_and_multiplier_and_compared_paired_by_task():
    records = []
    for t, (lean, heavy) in enumerate([(2, 3), (2, 4), (3, 5)]):
        for model, steps in (("oracle:lean", lean), ("oracle:heavy", heavy)):
            r = record(model, "1x", "passed", task=f"t{t}")
            r["metrics"] = {"steps": steps, "trajectory_match": float(model == "oracle:lean")}
            records.append(r)
    records.append(record("oracle:heavy", "3x", "infra", "oom"))  # no metrics: no row
    lines = render(records, models=["oracle:lean", "oracle:heavy"], multipliers=["1x", "3x"], verbose=True)
    start = lines.index(next(line for line in lines if line.startswith("metrics (")))
    assert lines[start + 1].split() == ["metric", "model", "mult", "mean", "95%", "CI", "tasks", "trials"]
    assert lines[start + 3].split() == ["steps", "oracle:lean", "1x", "2.33", "0.90–3.77", "3", "3"]
    assert lines[start + 4].split() == ["oracle:heavy", "1x", "4.00", "1.52–6.48", "3", "3"]
    assert lines[start + 5].split() == ["trajectory_match", "oracle:lean", "1x", "1.00", "1.00–1.00", "3", "3"]
    start = lines.index(next(line for line in lines if line.startswith("metric comparisons (")))
    assert lines[start + 3].split() == ["@1x", "steps", "oracle:heavy", "−", "oracle:lean", "3", "+1.67",
                                        "[+0.23,", "+3.10]", "differs", "(p=0.038)"]
    assert lines[start + 4].split()[1] == "trajectory_match" and lines[start + 4].endswith("differs (p<0.0001)")


def test_records_without_metrics_print_no_metric_block():
    lines = render([record("a", "1x", "passed"), record("b", "1x", "passed")], models=["a", "b"], multipliers=["1x"])
    assert not any(line.startswith("metrics") for line in lines)


def test_metric_comparisons_within_noise_are_counted_and_shown_with_verbose():
    records = []
    for t, (a, b) in enumerate([(2, 3), (3, 2), (4, 4)]):
        for model, steps in (("a", a), ("b", b)):
            r = record(model, "1x", "passed", task=f"t{t}")
            r["metrics"] = {"steps": steps}
            records.append(r)
    lines = render(records, models=["a", "b"], multipliers=["1x"])
    assert "metric comparisons paired by task: 0 of 1 differ (-v lists them)" in lines
    assert not any(line.startswith("metric comparisons (") for line in lines)
    wide = render(records, models=["a", "b"], multipliers=["1x"], verbose=True)
    assert any(line.startswith("@1x") and line.endswith("within noise (p=1.0)") for line in wide)


def test_metric_intervals_stay_within_the_metric_range():
    """Issue 21: ``wall_s 5.41 [-5.57, 16.39]``; a mean of seconds is never negative, a score never above 1."""
    records = []
    for t, (wall_s, match) in enumerate([(0.2, 1.0), (0.3, 1.0), (15.0, 0.0)]):
        r = record("a", "1x", "passed", task=f"t{t}")
        r["metrics"] = {"wall_s": wall_s, "trajectory_match": match}
        records.append(r)
    rows, _ = metric_tables(records, ["a"], ["1x"])
    intervals = {row[0]: row[4] for row in rows}
    assert intervals == {"wall_s": "0.00–26.32", "trajectory_match": "0.00–1.00"}


def test_by_default_the_summary_fits_80_columns_and_ends_with_the_table():
    """Issue 21: the result was buried. Comparisons that differ, metric means in columns, then the table; only the
    table's rows need 100 columns."""
    records = []
    for m in ("oracle:lean", "oracle:heavy", "nop"):
        for x in ("1x", "3x", "uncapped"):
            for t in range(6):
                outcome, cause = {"nop": ("failed", "assertion")}.get(m, ("passed", None))
                if (m, x) == ("oracle:heavy", "1x"):
                    outcome, cause = "infra", "oom"
                r = record(m, x, outcome, cause, task=f"t{t}")
                r["metrics"] = {"steps": 1.0 + (m != "nop"), "wall_s": 0.5 * t, "trajectory_match": 1.0}
                records.append(r)
    lines = render(records, models=["oracle:lean", "oracle:heavy", "nop"], multipliers=["1x", "3x", "uncapped"],
                   run_dir="RUN")
    table = lines.index(next(line for line in lines if line.startswith("model ") and " trials " in line))
    assert [line for line in lines[:table] if len(line) > 80] == []
    assert lines[table + 20:] == ["enforcement: local/cgroup-v1; ± clustered SE; 2nd line: infra causes, Wilson 95%",
                                  "run directory: RUN"]
    comparisons = lines.index(next(line for line in lines if line.startswith("comparisons")))
    assert lines[comparisons].startswith("comparisons, p adjusted by Benjamini–Hochberg (") and \
        "within noise: -v lists them):" in lines[comparisons]
    assert all("differs" in line for line in lines[comparisons + 1:lines.index(next(
        line for line in lines if line.startswith("detectable")))])
    metrics = lines.index(next(line for line in lines if line.startswith("metrics (")))
    assert lines[metrics + 1].split() == ["model", "mult", "steps", "wall_s", "trajectory_match"]
    assert lines[metrics + 3].split() == ["oracle:lean", "1x", "2.00", "1.25", "1.00"]
    assert len(render(records, models=[], multipliers=[], width=40)[metrics + 1]) <= 40  # columns split to fit


def test_one_line_per_trial_that_did_not_pass_cut_to_the_terminal():
    final = {"t.py::test_x[nop@1x#1]": record("nop", "1x", "failed", "assertion", message="AssertionError: no\nfile"),
             "t.py::test_x[oracle:heavy@1x#1]": record("oracle:heavy", "1x", "infra", "oom", message="killed " * 30),
             "t.py::test_x[oracle:lean@1x#1]": record("oracle:lean", "1x", "passed"),
             "t.py::test_a[nop@1x#1]": record("nop", "1x", "error", "harness", message="NameError: x")}
    assert trial_lines(final, 80) == [
        "FAILED test_x[nop@1x#1] - failed/assertion: AssertionError: no file",
        "ERROR test_a[nop@1x#1] - error/harness: NameError: x",
        "INFRA test_x[oracle:heavy@1x#1] - infra/oom: killed killed killed killed kill..."]
    assert trial_lines(final, 80, ("infra",)) == trial_lines(final, 80)[2:]


def test_sequential_and_reliability_lines():
    from pytest_harnessbench.report import reliability_lines, sequential_lines

    block = {"stopped": True, "reason": "decided after 31/89 tasks", "seed": "RUN", "looked": 31, "tasks": 89,
             "skipped_trials": 348, "saved_usd": 12.5}
    assert sequential_lines(block) == ["  sequential: decided after 31/89 tasks (seeded order RUN); saved 348 trials, "
                                       "about $12.50 at --hb-prices"]
    assert sequential_lines({**block, "stopped": False, "looked": 89, "skipped_trials": 0}) == [
        "  sequential: not decided early; looked after 89/89 tasks (seeded order RUN)"]
    assert sequential_lines(None) == []
    summary = {"cells": [{"model": "m", "multiplier": "1x", "samples": 2,
                          "pass_k": [{"metric": "pass@1", "k": 1, "value": 0.5, "low": 0.2, "high": 0.8, "tasks": 4, "left_out": 0},
                                     {"metric": "pass^1", "k": 1, "value": 0.5, "low": 0.2, "high": 0.8, "tasks": 4, "left_out": 0},
                                     {"metric": "pass@2", "k": 2, "value": 0.75, "low": 0.4, "high": 1.0, "tasks": 3, "left_out": 1},
                                     {"metric": "pass^2", "k": 2, "value": 0.25, "low": 0.0, "high": 0.6, "tasks": 3, "left_out": 1}],
                          "flakiness": {"flaky": ["t2"], "tasks": 3, "share_within": 0.5, "rerun_sd": 0.1}}],
               "retries": [{"model": "m", "trials": 8, "retried": 2, "retry_passes": 1, "first_score": 0.25,
                            "final_score": 0.375, "flagged": True}]}
    summary = dataclasses.replace(summarize([]), reliability=summary)  # the renderer only formats the model's block
    lines = reliability_lines(summary, width=400)
    assert "tasks with fewer than k samples left out (up to 1 per cell)" in lines[0]
    assert lines[1].split() == ["model", "mult", "pass^1", "pass^2", "pass@2", "flaky"]
    assert lines[3].split() == ["m", "1x", "50.0%", "25.0%", "75.0%", "1/3"]
    assert lines[-1] == ("retry dependence m: 1 of 8 trials passed only on a retry (2 retried); first-attempt score "
                         "25.0% vs final 37.5% — FLAGGED: the score rests on retries")
    assert all(len(line) <= 80 for line in reliability_lines(summary, width=80))
    wide = reliability_lines(summary, verbose=True, width=400)
    assert wide[1].split() == ["model", "mult", "pass^1", "pass^2", "pass@2", "flaky", "run-to-run", "rerun", "±"]
    assert wide[3].split()[-3:] == ["50%", "10.0", "pts"]
    agreeing = {**block_of(summary), "cells": [{**block_of(summary)["cells"][0],
                                                "flakiness": {"flaky": [], "tasks": 3, "share_within": 0.0, "rerun_sd": 0.0}}],
                "retries": []}
    one = reliability_lines(dataclasses.replace(summary, reliability=agreeing))
    assert len(one) == 1 and "every task's samples agree" in one[0] and len(one[0]) <= 80
    assert "[0–60]" in wide[3] and "flaky m@1x: t2" in wide[4]


def block_of(summary):
    return summary.reliability


@pytest.mark.parametrize("name", ["results-d4030c8", "results-before-issue-12"])
def test_the_summary_of_an_earlier_runs_records_prints_what_it_printed_before_the_summary_model(name):
    """Issue 22: the summary model changed how the summary is computed, not what it says. The expected text is what
    report.render printed for these records at d4030c8, the commit before (both files in tests/data); the
    confounder block (issue 25, after the power line) is the one thing added since."""
    data = Path(__file__).parent / "data"
    records = [TrialRecord.from_dict(json.loads(line)) for line in (data / f"{name}.jsonl").read_text().splitlines()]
    summary = summarize(records, models=["oracle:heavy", "oracle:lean", "nop"], multipliers=["1x", "3x", "uncapped"])
    lines = (report.render(summary, run_dir="RUN") + ["-- verbose --"]
             + report.render(summary, run_dir="RUN", verbose=True, width=100))
    added = report.confounder_lines(summary, 80), report.confounder_lines(summary, 100)
    assert all(added) and all(_sublist(block, lines) for block in added)
    assert [line for line in lines if line not in {*added[0], *added[1]}] == \
        (data / f"{name}.summary.txt").read_text().splitlines()


def _sublist(part: list, whole: list) -> bool:
    return any(whole[i:i + len(part)] == part for i in range(len(whole)))
