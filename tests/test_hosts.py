"""The host effect of a merged run (hosts.py): said only with several hosts, tested against known values;
carried by the summary model and formatted by the terminal report."""

import html

import pytest

from pytest_harnessbench.hosts import cell_p, host_effect
from pytest_harnessbench.records import TrialRecord
from pytest_harnessbench.report import host_lines
from pytest_harnessbench.summary import summarize


def _records(run_id, model, mult, outcomes):
    return [TrialRecord.from_dict({"run_id": run_id, "trial_id": f"{run_id}-{model}-{mult}-{i}", "task_id": f"t{i}",
                                   "model": model, "multiplier": mult, "outcome": o, "cause": None if o == "passed"
                                   else "assertion"}) for i, o in enumerate(outcomes)]


def lines(records, host_of):
    summary = summarize(records, host_of=host_of)
    assert summary.results()["hosts"] == (summary.hosts and summary.hosts.to_dict())
    return host_lines(summary)


def test_one_host_says_nothing():
    records = _records("r1", "m", "1x", ["passed", "failed"]) + _records("r2", "m", "1x", ["infra"])
    assert host_effect(records, {"r1": "a", "r2": "a"}) is None
    assert lines(records, {"r1": "a", "r2": "a"}) == []


def test_fisher_on_a_two_by_two_table_known_value():
    # Fisher's tea-tasting table: two-sided p = 0.4857 (34/70)
    assert cell_p([[3, 1, 0, 0], [1, 3, 0, 0]]) == pytest.approx(34 / 70, abs=1e-4)


def test_no_variation_is_no_evidence():
    assert cell_p([[5, 0, 0, 0], [4, 0, 0, 0]]) is None  # one outcome
    assert cell_p([[5, 3, 0, 0], [0, 0, 0, 0]]) is None  # one host


def test_a_host_that_ends_trials_in_infra_differs():
    records = (_records("r1", "m", "1x", ["passed"] * 10) + _records("r2", "m", "1x", ["infra"] * 8 + ["passed"] * 2)
               + _records("r1", "m", "3x", ["passed"] * 6) + _records("r2", "m", "3x", ["passed"] * 6))
    effect = host_effect(records, {"r1": "fast", "r2": "slow"})
    assert effect.hosts == {"fast": 16, "slow": 16}
    assert effect.uninformative == 1  # 3x: every trial passed
    assert set(effect.cells) == {("m", "1x")}
    assert effect.p_combined == pytest.approx(cell_p([[10, 0, 0, 0], [2, 0, 8, 0]]))
    assert effect.p_combined < 0.001
    text = "\n".join(lines(records, {"r1": "fast", "r2": "slow"}))
    assert "2 machines" in text and "differs" in text and "m@1x" in text


def test_same_outcomes_on_both_hosts_are_within_noise():
    records = []
    for run_id in ("r1", "r2"):
        records += _records(run_id, "m", "1x", ["passed"] * 5 + ["failed"] * 5)
    effect = host_effect(records, {"r1": "a", "r2": "b"})
    assert effect.p_combined == pytest.approx(1.0)
    assert "within noise" in lines(records, {"r1": "a", "r2": "b"})[1]


def test_the_html_report_says_it_as_the_terminal_does():
    from pytest_harnessbench.html_report import render

    records = (_records("r1", "m", "1x", ["passed"] * 10) + _records("r2", "m", "1x", ["infra"] * 8 + ["passed"] * 2))
    summary = summarize(records, host_of={"r1": "fast", "r2": "slow"})
    page = render(summary, records)
    for line in host_lines(summary):
        assert f"<p>{html.escape(line.strip())}</p>" in page
    assert "hosts: the shards ran on 2 machines (fast 10, slow 10 trials)" in page
