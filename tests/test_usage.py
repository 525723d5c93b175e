"""usage.py: a usage problem reads the same from an xdist worker (relayed as a collection error) and the controller."""

import pytest

from pytest_harnessbench.usage import PREFIX, UsageProblems, relayed


def test_the_controller_gathers_problems_and_raises_them_as_one_usage_error():
    usage = UsageProblems(on_worker=False)
    usage.add("t.py::test_a: @pytest.mark.task: bad memory")
    usage.add("tasks/x/task.toml: missing")
    with pytest.raises(pytest.UsageError) as raised:
        usage.raise_found()
    assert str(raised.value) == "t.py::test_a: @pytest.mark.task: bad memory\ntasks/x/task.toml: missing"
    UsageProblems(on_worker=False).raise_found()  # none found: nothing raised


def test_a_worker_fails_the_collector_with_a_message_the_controller_reads_back():
    usage = UsageProblems(on_worker=True)
    with pytest.raises(pytest.fail.Exception) as failed:
        usage.add("t.py::test_a: @pytest.mark.task: bad memory")
    assert str(failed.value) == f"{PREFIX}t.py::test_a: @pytest.mark.task: bad memory"
    usage.raise_found()  # a worker never raises UsageError (xdist would crash): the controller does
    report = pytest.CollectReport("t.py", "failed", f"ERROR collecting t.py\n{failed.value}", [])
    assert relayed(report) == "t.py::test_a: @pytest.mark.task: bad memory"


def test_other_collection_errors_are_not_usage_problems():
    assert relayed(pytest.CollectReport("t.py", "failed", "ImportError: no module named x", [])) is None
    assert relayed(pytest.CollectReport("t.py", "passed", None, [])) is None
