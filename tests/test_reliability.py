"""Tests for pytest_harnessbench.reliability: pass@k / pass^k, flakiness and retry dependence against hand
computations."""

from __future__ import annotations

import math
import random

import pytest

from pytest_harnessbench.records import TrialRecord
from pytest_harnessbench.reliability import (
    flakiness,
    parse_pass_k,
    pass_at_k,
    pass_hat_k,
    pass_k_curve,
    per_task_pass_k,
    retry_dependence,
    summarize,
    task_counts,
)

# The fixture of per-task counts (passes c, samples n): D has only 2 samples (its third was infra).
COUNTS = {"A": (3, 3), "B": (0, 3), "C": (2, 3), "D": (1, 2)}


def records(counts=COUNTS, model="m", mult="1x"):
    out = []
    for task, (c, n) in counts.items():
        outcomes = ["passed"] * c + ["failed"] * (n - c) + ["infra"] * (3 - n)
        out += [TrialRecord.from_dict({"task_id": task, "model": model, "multiplier": mult, "sample": i + 1,
                                       "outcome": o, "cause": None if o == "passed" else "x",
                                       "trial_id": f"{task}-{model}-{mult}-{i + 1}"})
                for i, o in enumerate(outcomes)]
    return out


def test_estimators_by_hand():
    assert pass_at_k(3, 2, 2) == 1.0  # C(1,2) = 0: two draws always include a pass
    assert pass_hat_k(3, 2, 2) == pytest.approx(1 / 3)  # C(2,2)/C(3,2)
    assert pass_at_k(5, 1, 2) == pytest.approx(1 - 6 / 10)  # 1 − C(4,2)/C(5,2)
    assert pass_hat_k(5, 4, 3) == pytest.approx(4 / 10)  # C(4,3)/C(5,3)
    assert pass_at_k(4, 0, 4) == 0.0 and pass_hat_k(4, 4, 4) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)


def test_estimators_are_unbiased():
    """Averaged over the binomial distribution of c, the estimate is p^k (pass^k) and 1 − (1 − p)^k (pass@k)."""
    n, p = 5, 0.3
    weights = [math.comb(n, c) * p ** c * (1 - p) ** (n - c) for c in range(n + 1)]
    for k in range(1, n + 1):
        assert sum(w * pass_hat_k(n, c, k) for c, w in enumerate(weights)) == pytest.approx(p ** k)
        assert sum(w * pass_at_k(n, c, k) for c, w in enumerate(weights)) == pytest.approx(1 - (1 - p) ** k)


def test_curve_matches_a_hand_computation_and_counts_tasks_with_too_few_samples():
    curve = {p.metric: p for p in pass_k_curve(COUNTS, 3)}
    # k = 1: c/n per task, (1 + 0 + 2/3 + 1/2) / 4
    assert curve["pass@1"].value == pytest.approx((1 + 0 + 2 / 3 + 1 / 2) / 4) == curve["pass^1"].value
    # k = 2: pass@2 per task 1, 0, 1 − C(1,2)/C(3,2) = 1, 1 − C(1,2)/C(2,2) = 1; pass^2: 1, 0, 1/3, 0
    assert curve["pass@2"].value == pytest.approx(3 / 4)
    assert curve["pass^2"].value == pytest.approx((1 + 1 / 3) / 4)
    assert curve["pass@2"].tasks == 4 and curve["pass@2"].left_out == 0
    # k = 3: D (2 samples) is left out and counted; pass@3 1, 0, 1; pass^3 1, 0, 0
    assert curve["pass@3"].value == pytest.approx(2 / 3) and curve["pass@3"].left_out == 1
    assert curve["pass^3"].value == pytest.approx(1 / 3) and curve["pass^3"].tasks == 3
    # interval over tasks: 1/3 ± t(0.975, 2) · sd / √3 with sd = √(1/3), clipped to [0, 1]
    half = 4.302652729911275 * math.sqrt(1 / 3) / math.sqrt(3)
    assert curve["pass^3"].low == 0.0 and curve["pass^3"].high == pytest.approx(min(1.0, 1 / 3 + half))
    assert [p.metric for p in pass_k_curve(COUNTS, 2)] == ["pass@1", "pass^1", "pass@2", "pass^2"]


def test_counts_leave_infra_out():
    assert task_counts(records()) == COUNTS
    assert per_task_pass_k(COUNTS, "pass^3") == {"A": 1.0, "B": 0.0, "C": 0.0}
    assert parse_pass_k("pass@3") == ("@", 3) and parse_pass_k("pass^12") == ("^", 12)
    assert parse_pass_k("pass_rate") is None and parse_pass_k("pass@0") is None


def test_flakiness_by_hand():
    f = flakiness(COUNTS)
    assert f.flaky == ("C", "D") and f.tasks == 4
    # within: mean of c(n−c)/(n(n−1)) = (0 + 0 + 1/3 + 1/2) / 4 = 5/24
    assert f.within == pytest.approx(5 / 24)
    # between: var of rates (1, 0, 2/3, 1/2) = 25/144, less mean(within_i / n_i) = (1/9 + 1/4) / 4 = 13/144
    assert f.between == pytest.approx(25 / 144 - 13 / 144)
    assert f.share_within == pytest.approx(5 / 7)
    assert f.rerun_sd == pytest.approx(math.sqrt(1 / 9 + 1 / 4) / 4)
    assert flakiness({"A": (1, 1), "B": (0, 2)}) is None  # one task with ≥ 2 samples: nothing to split


def test_flakiness_share_tracks_the_simulated_truth():
    """Tasks all at p = 0.5 vary only run to run; tasks at 0 or 1 only between tasks."""
    rng = random.Random(3)
    same = {f"t{i}": (sum(rng.random() < 0.5 for _ in range(4)), 4) for i in range(400)}
    assert flakiness(same).share_within > 0.9
    apart = {f"t{i}": (4 * (i % 2), 4) for i in range(400)}
    assert flakiness(apart).share_within == 0.0 and flakiness(apart).flaky == ()


def test_retry_dependence_counts_passes_that_came_on_a_retry():
    def r(trial, outcome, attempt, model="m"):
        return TrialRecord.from_dict({"trial_id": trial, "task_id": trial, "model": model, "multiplier": "1x",
                                      "outcome": outcome, "cause": None, "attempts": attempt})

    attempts = [r("t1", "infra", 1), r("t1", "passed", 2), r("t2", "passed", 1), r("t3", "infra", 1),
                r("t3", "failed", 2), r("t4", "failed", 1), r("u1", "passed", 1, "other")]
    (m,) = retry_dependence(attempts)  # "other" had no retry: not listed
    assert (m.model, m.trials, m.retried, m.retry_passes) == ("m", 4, 2, 1)
    assert m.first_score == 0.25 and m.final_score == 0.5 and m.flagged
    summary = summarize([a for a in attempts if a.attempts == 2 or a.trial_id in ("t2", "t4", "u1")], attempts)
    assert summary["retries"][0]["flagged"] is True and summary["cells"] == []  # one sample per task: no curve


def test_summarize_cells():
    summary = summarize(records())
    (cell,) = summary["cells"]
    assert cell["samples"] == 3 and len(cell["pass_k"]) == 6
    assert cell["flakiness"]["flaky"] == ["C", "D"] and summary["retries"] == []


def test_the_summary_model_carries_the_reliability_block():
    """Computed once in summary.summarize (Summary.reliability, in results()), from the last attempts and every
    attempt: earlier ones first, so a trial's first attempt is its first record."""
    from pytest_harnessbench.summary import summarize as summary_of

    latest = records()
    first = latest[0].replace(outcome="infra", cause="oom")  # A's first sample passed only on its retry
    retried = [latest[0].replace(attempts=2), *latest[1:]]
    model = summary_of(retried, superseded=[first])
    assert model.reliability == summarize(retried, [first, *retried])
    assert model.results()["reliability"]["cells"][0]["samples"] == 3
    (dependence,) = model.results()["reliability"]["retries"]
    assert (dependence["retried"], dependence["retry_passes"]) == (1, 1)
