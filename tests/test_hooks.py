"""The extension hooks (hooks.py) through a real bake-off: a conftest plugin adds a metric, a field and a table."""

import json

import pytest
from support.rundir import results

# e2e: the hooks are seen by a conftest of a bake-off run in its own pytest process (serial and under xdist).
pytestmark = pytest.mark.e2e

TASKS = '''
import pytest

@pytest.mark.task(cpus=1, memory="64Mi", timeout=20,
                  solutions={"lean": "echo 42 > answer.txt", "wrong": "echo 41 > answer.txt"})
def test_answer(trial):
    trial.run_agent("Write the answer to answer.txt.")
    assert trial.sandbox.read_file("answer.txt").strip() == "42"
'''

CONFTEST = '''
import json
import os

import pytest


def pytest_harnessbench_trial_record(record):
    record.extra["seen_by"] = f"conftest in {os.getpid()}"
    record.metrics["message_chars"] = len(record.message)


def pytest_harnessbench_summary(summary, config):
    rows = [(m, x, c.trials) for (m, x), c in summary.cells.items()]
    summary.add_table("trials per cell (from a conftest hook)", ["model", "mult", "trials"], rows)
    with open("summary.json", "w") as sink:
        json.dump(summary.results(), sink)
'''


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_conftest_adds_a_metric_and_a_field_to_each_record_and_a_table_to_the_summary(pytester, workers):
    pytester.makepyfile(test_tasks=TASKS)
    pytester.makeconftest(CONFTEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--models", "oracle:lean,oracle:wrong",
                                           "--multipliers", "1", "--samples", "2", "--hb-out", "run",
                                           "--hb-report", "report.html", *workers)
    result.assert_outcomes(passed=2, failed=2)
    records = results(pytester.path / "run")
    assert len(records) == 4
    for record in records:  # added where the trial ran (the worker under xdist), stored with the record
        assert record["extra"]["seen_by"].startswith("conftest in ")
        assert record["metrics"]["message_chars"] == len(record["message"])
        document = json.loads((pytester.path / "run" / "trials" / f"{record['trial_id']}.json").read_text())
        assert document["record"]["extra"] == record["extra"]
    wrong = [r for r in records if r["model"] == "oracle:wrong"]
    assert all(r["metrics"]["message_chars"] > 0 for r in wrong)  # failed: the assertion's message
    # the hook's metric is summarised like the built-in ones; its table is in both renderers
    result.stdout.fnmatch_lines(["metrics (mean of per-task means*", "model *mult *message_chars", "*",
                                 "oracle:lean *1x *0.00", "oracle:wrong *1x *[1-9]*.00",
                                 "trials per cell (from a conftest hook):", "model *mult *trials", "*",
                                 "oracle:lean *1x *2", "oracle:wrong *1x *2"])
    html = (pytester.path / "report.html").read_text()
    assert "trials per cell (from a conftest hook)" in html and "message_chars" in html
    sink = json.loads((pytester.path / "summary.json").read_text())
    assert [(c["model"], c["multiplier"], c["trials"]) for c in sink["cells"]] == [
        ("oracle:lean", "1x", 2), ("oracle:wrong", "1x", 2)]
    assert sink["tables"][0]["rows"] == [["oracle:lean", "1x", "2"], ["oracle:wrong", "1x", "2"]]
    assert "message_chars" in {m["metric"] for m in sink["metrics"]}
