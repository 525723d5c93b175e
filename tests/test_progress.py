import pytest

from pytest_harnessbench.progress import Progress
from pytest_harnessbench.records import TrialRecord


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_progress_counts_per_cell_and_is_due_every_interval():
    clock = Clock()
    progress = Progress(30, clock)
    progress.expect([("nop", "1x")] * 3 + [("nop", "3x")] * 3)
    progress.add(TrialRecord.from_dict({"model": "nop", "multiplier": "1x", "outcome": "infra"}))
    progress.add(TrialRecord.from_dict({"model": "nop", "multiplier": "3x", "outcome": "failed"}))
    assert not progress.due()
    clock.now = 31
    assert progress.due() and not progress.due()  # once per interval
    assert progress.lines(100) == ["harnessbench progress: 2/6 trials · nop 1x 1/3 (infra 1), 3x 1/3"]


def test_progress_lines_fit_the_terminal_and_never_split_a_cell():
    """Issue 21: a 282-column progress line."""
    progress = Progress(30, Clock())
    progress.expect([(model, x) for model in ("oracle:lean", "oracle:heavy", "nop") for x in ("1x", "3x", "uncapped")])
    progress.add(TrialRecord.from_dict({"model": "oracle:heavy", "multiplier": "1x", "outcome": "infra"}))
    assert progress.lines(80) == [
        "harnessbench progress: 1/9 trials · oracle:lean 1x 0/1, 3x 0/1, uncapped 0/1",
        "  oracle:heavy 1x 1/1 (infra 1), 3x 0/1, uncapped 0/1 · nop 1x 0/1, 3x 0/1",
        "  uncapped 0/1"]
    narrow = progress.lines(20)
    assert max(map(len, narrow)) == 20 and "  oracle:heavy 1x..." in narrow


def test_progress_off():
    clock = Clock()
    progress = Progress(0, clock)
    clock.now = 1000
    assert not progress.due()


@pytest.mark.trials  # a Bench starts its backend
def test_key_of_finds_our_id_among_the_users_own_parameters(tmp_path):
    from pytest_harnessbench.config import build
    from pytest_harnessbench.session import Bench

    values = {"models": "oracle:a-b,nop", "multipliers": "1,3", "samples": "2"}
    bench = Bench(build(lambda opt: values.get(opt.name, opt.default)), "r", tmp_path)
    for nodeid, task_id in [("t.py::test_x[oracle:a-b@3x#2]", "t.py::test_x"),
                            ("t.py::test_x[7-oracle:a-b@3x#2]", "t.py::test_x[7]"),
                            ("t.py::test_x[oracle:a-b@3x#2-x-y]", "t.py::test_x[x-y]")]:
        key = bench.key_of(nodeid)
        assert (key.case.id, key.task_id) == ("oracle:a-b@3x#2", task_id)
    assert bench.key_of("t.py::test_plain[1-2]") is None
