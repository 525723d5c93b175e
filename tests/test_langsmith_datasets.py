"""Tasks read from a LangSmith dataset (datasets.py): the real SDK against the stand-in LangSmith API
(tests/support/langsmith_standin.py), and the same dataset pulled to a file and run offline."""

import json
import os
import subprocess
import sys

import pytest

from support.langsmith_standin import LangSmithStandIn
from support.rundir import results
from pytest_harnessbench.datasets import DatasetError, Source, tasks

EXAMPLES = [
    {"inputs": {"instruction": "Write 42 to a.txt, then tell me the number you wrote."},
     "outputs": {"answer": "42", "tools": [{"name": "bash", "args": {"command": "echo 42 > a.txt"}}]},
     "metadata": {"name": "write 42", "spec": {"memory": "64Mi", "timeout": 20}}},
    {"inputs": {"instruction": "Copy the greeting in hello.txt to notes.txt.", "files": {"hello.txt": "hello\n"}},
     "outputs": {"tools": [{"name": "read_file", "args": {"path": "hello.txt"}},
                           {"name": "write_file", "args": {"path": "notes.txt", "content": "hello\n"}}]},
     "metadata": {"name": "notes", "criterion": "trajectory:1", "spec": {"memory": "64Mi", "timeout": 20}}},
]
MARKER_TASK = '''
import pytest

@pytest.mark.task(memory="64Mi", timeout=20, solutions="echo 1 > one.txt")
def test_marker(trial):
    trial.run_agent("Write 1 to one.txt.")
    assert trial.sandbox.read_file("one.txt").strip() == "1"
'''
ARGS = ("-p", "no:cacheprovider", "--models", "oracle,nop", "--multipliers", "1", "--samples", "2", "-v")


# ---------------------------------------------------------------- examples as tasks (unit)


def _document(*examples):
    return {"examples": [{"id": f"{i:08d}-0000", **e} for i, e in enumerate(examples)]}


def test_sources_parse_and_bad_ones_are_usage_errors():
    assert Source.parse("langsmith:cases@prod") == Source("langsmith:cases@prod", name="cases", version="prod")
    assert Source.parse("langsmith:cases").version is None
    assert Source.parse("pulled/cases.json").path.name == "cases.json"
    for bad in ("langsmith:", "langsmith:@v1", "cases.csv"):
        with pytest.raises(DatasetError, match="--hb-dataset"):
            Source.parse(bad)


def test_the_criterion_is_declared_or_follows_from_the_reference():
    found = tasks(_document(*EXAMPLES), "langsmith:x")
    assert [(t.name, t.criterion) for t in found] == [("write_42", "answer"), ("notes", "trajectory:1")]
    assert found[0].marker["reference_answer"] == "42" and "gate_on" not in found[0].marker
    assert found[1].marker["gate_on"] == {"trajectory_match": 1.0} and found[1].files == {"hello.txt": "hello\n"}
    assert found[0].marker["memory"] == "64Mi" and found[0].marker["cpus"] == 1  # spec: metadata over the default
    judged = tasks(_document(*EXAMPLES), "langsmith:x", criterion="judge:0.7")
    assert [t.marker["gate_on"] for t in judged] == [{"judge": 0.7}, {"judge": 0.7}]


@pytest.mark.parametrize("example, message", [
    ({"inputs": {}, "outputs": {"answer": "1"}}, "no instruction"),
    ({"inputs": {"instruction": "x"}, "outputs": {}}, "no pass criterion"),
    ({"inputs": {"instruction": "x"}, "outputs": {"tools": ["bash"]}, "metadata": {"criterion": "answer"}},
     "criterion answer, but its reference outputs have no answer"),
    ({"inputs": {"instruction": "x"}, "outputs": {"answer": "1"}, "metadata": {"criterion": "exact"}},
     "is not one of answer"),
    ({"inputs": {"instruction": "x", "files": {"a": 1}}, "outputs": {"answer": "1"}}, "inputs.files"),
])
def test_an_example_that_makes_no_task_is_an_error_naming_it(example, message):
    with pytest.raises(DatasetError, match=message) as caught:
        tasks(_document(example), "langsmith:cases")
    assert "--hb-dataset langsmith:cases: example 00000000-0000" in str(caught.value)


# ---------------------------------------------------------------- served by the stand-in, and pulled to a file


@pytest.fixture
def langsmith_server(monkeypatch):
    server = LangSmithStandIn()
    server.add_dataset("support-cases", EXAMPLES)
    server.tag("support-cases", "v1")
    server.add_dataset("other", [])
    monkeypatch.setenv("LANGSMITH_ENDPOINT", server.url)
    monkeypatch.setenv("LANGSMITH_API_KEY", "lsv2-test")
    monkeypatch.setenv("LANGSMITH_TRACING", "false")  # read the dataset; upload nothing
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    yield server
    server.close()


def _outcomes(run_dir):
    records = results(run_dir)
    return {(r["task_id"], r["model"], r["sample"]): (r["outcome"], r["cause"]) for r in records}


EXPECTED = {
    **{("langsmith/support-cases::write_42", "oracle", s): ("passed", None) for s in (1, 2)},
    **{("langsmith/support-cases::write_42", "nop", s): ("failed", "assertion") for s in (1, 2)},
    **{("langsmith/support-cases::notes", "oracle", s): ("passed", None) for s in (1, 2)},
    **{("test_tasks.py::test_marker", "oracle", s): ("passed", None) for s in (1, 2)},
    **{("test_tasks.py::test_marker", "nop", s): ("failed", "assertion") for s in (1, 2)},
}


def _check(run_dir):
    outcomes = _outcomes(run_dir)
    nop_notes = {k: v for k, v in outcomes.items() if k[0].endswith("::notes") and k[1] == "nop"}
    assert set(nop_notes.values()) == {("failed", "trajectory")}  # its body passed; trajectory_match 0 < 1 failed it
    assert {k: v for k, v in outcomes.items() if k not in nop_notes} == EXPECTED
    card = json.loads((run_dir / "harness.json").read_text())
    assert card["settings"]["dataset_criterion"].startswith("per example: metadata.criterion")


@pytest.mark.e2e  # the SDK reads LANGSMITH_* once per process: each session runs in its own
def test_a_dataset_runs_as_tasks_beside_marker_tasks_and_its_pulled_file_runs_offline(pytester, langsmith_server, monkeypatch):
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_tasks=MARKER_TASK)
    result = pytester.runpytest_subprocess(*ARGS, "--hb-dataset", "langsmith:support-cases@v1", "--hb-out", "online")
    result.stdout.fnmatch_lines(["*langsmith/support-cases::write_42?oracle@1x#1? PASSED*",
                                 "*6 failed, 6 passed*"])
    _check(pytester.path / "online")

    pulled = pytester.path / "cases.json"
    done = subprocess.run([sys.executable, "-m", "pytest_harnessbench", "dataset", "pull",
                           "langsmith:support-cases@v1", "-o", str(pulled)],
                          env=dict(os.environ), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("2 example(s) from langsmith:support-cases@v1 written to")

    monkeypatch.setenv("LANGSMITH_ENDPOINT", "http://127.0.0.1:9")  # offline now: nothing answers
    result = pytester.runpytest_subprocess(*ARGS, "--hb-dataset", str(pulled), "--hb-out", "offline")
    result.stdout.fnmatch_lines(["*6 failed, 6 passed*"])
    _check(pytester.path / "offline")
    assert _outcomes(pytester.path / "offline").keys() == _outcomes(pytester.path / "online").keys()


@pytest.mark.parametrize("source, message", [
    ("langsmith:no-such-cases", "--hb-dataset langsmith:no-such-cases: cannot read it from http://127.0.0.1:"),
    ("langsmith:support-cases@v9", "--hb-dataset langsmith:support-cases@v9: cannot read it"),
    ("missing.json", "--hb-dataset missing.json: cannot read it"),
])
@pytest.mark.e2e
def test_an_unreadable_dataset_is_a_usage_error_before_any_trial(pytester, langsmith_server, source, message):
    pytester.makepyfile(test_tasks=MARKER_TASK)
    result = pytester.runpytest_subprocess(*ARGS, "--hb-dataset", source, "--hb-out", "run")
    assert result.ret == 4
    assert any(message in line for line in result.stderr.lines), result.stderr.str()
    assert not (pytester.path / "run").exists()
