"""Confounders (confounders.py): the CMH test against R's published example, Holm, and the summary block."""

from types import SimpleNamespace

import pytest

from pytest_harnessbench import confounders
from pytest_harnessbench.confounders import cmh, holm
from pytest_harnessbench.records import TrialRecord
from pytest_harnessbench.report import confounder_lines
from pytest_harnessbench.summary import summarize


def test_cmh_matches_r_mantelhaen_test_on_agresti_penicillin_and_rabbits():
    """R's ``mantelhaen.test(Rabbits)`` example (Agresti 1990, pp. 231-237): X-squared = 3.9286, p = 0.047.

    Rows: penicillin given at once / delayed 1.5 h; columns: cured / died; one table per penicillin level.
    """
    rabbits = [[[0, 6], [0, 5]], [[3, 3], [0, 6]], [[6, 0], [2, 4]], [[5, 1], [6, 0]], [[2, 0], [5, 0]]]
    result = cmh(rabbits)
    assert result.statistic == pytest.approx(3.9286, abs=1e-4)
    assert round(result.p, 3) == 0.047
    assert result.odds_ratio == pytest.approx(3.5 / 0.5)  # Σ ad/n over Σ bc/n, worked by hand
    assert cmh([[[1, 0], [0, 0]]]) is None  # no stratum with information


def test_holm_adjusts_step_down():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([]) == []


def _record(task, passed, latency, started, load=0.5, model="m", outcome=None):
    return TrialRecord.from_dict({
        "model": model, "multiplier": "1x", "task_id": task, "outcome": outcome or ("passed" if passed else "failed"),
        "started_at": f"2026-12-06T10:{started // 60:02d}:{started % 60:02d}+00:00",
        "confounders": {"concurrency": 1, "host": "h", "load_1m": load, "model_call_latency_s": {"median": latency}},
        "usage": {"provider_retries": 0}, "timing": {"rate_wait_s": 0.0}})


def block_lines(records, width):
    """The terminal's confounder block of the summary of ``records``."""
    return confounder_lines(summarize(records), width)


def test_latency_that_drives_failures_is_flagged():
    records = [_record("t", passed=i % 2 == 0, latency=0.01 if i % 2 == 0 else 3.0, started=i) for i in range(16)]
    lines = block_lines(records, width=200)
    assert len(lines) == 1 and lines[0].startswith("confounder: provider latency (median per trial): pass rate 0%")


def test_tasks_that_ran_in_order_are_not_a_start_time_effect():
    """Task a (all passing) ran first, task b (all failing) later: within each task nothing depends on time."""
    records = [_record("a", True, 0.01, i, load=i) for i in range(8)] + \
              [_record("b", False, 0.01, 100 + i, load=100 + i) for i in range(8)]
    (line,) = block_lines(records, width=400)
    assert line.startswith("confounders: none testable")
    flaky = records + [_record("c", i % 3 == 0, 0.01, 200 + i, load=(i * 7) % 5) for i in range(12)]
    (line,) = block_lines(flaky, width=400)
    assert line.startswith("confounders: nothing found") and "could have seen a pass-rate difference of" in line


def test_per_trial_values():
    calls = [SimpleNamespace(model_call_s=[0.1, 0.2, 0.3]), SimpleNamespace(model_call_s=[1.0])]
    latency = confounders.of_calls(calls)["model_call_latency_s"]
    assert latency["median"] == pytest.approx(0.25) and latency["max"] == 1.0 and latency["calls"] == 4
    assert 0.3 < latency["p95"] <= 1.0
    assert confounders.of_calls([]) == {"model_call_latency_s": None}
    start = confounders.at_start(None)
    assert start["concurrency"] is None and start["host"] and start["load_1m"] >= 0


def test_pass_rates_for_the_report_plots():
    records = [_record("t", True, 0.01, 0), _record("t", False, 3.0, 1), _record("t", True, 0.3, 2),
               _record("t", False, 0.01, 3, outcome="error")]
    rates = confounders.pass_rates(records)
    assert rates["hour of day (UTC)"] == [("10", 2, 3)]
    assert rates["provider latency (median per trial)"] == [("<0.25 s", 1, 1), ("0.25–0.5 s", 1, 1), ("2–4 s", 0, 1)]
    assert rates["concurrency at start"] == [("1", 2, 3)]


def test_the_block_is_part_of_the_summary_model_as_json():
    records = [_record("t", passed=i % 2 == 0, latency=0.01 if i % 2 == 0 else 3.0, started=i) for i in range(16)]
    block = summarize(records).results()["confounders"]
    latency = next(f for f in block["findings"] if f["name"].startswith("provider latency"))
    assert latency["p_adjusted"] < 0.05 and latency["pass_high"] == [0, 8] and latency["pass_low"] == [8, 8]
    assert block["pass_rates"]["hour of day (UTC)"] == [["10", 8, 16]]
