"""Tests for pytest_harnessbench.gate: margin syntax, decisions, JSON, and calibration by simulation."""

from __future__ import annotations

import json
import math
import random

import pytest

from benchmarks.gate_false_pass import DIFFICULTY, SAMPLES, TASKS, WORSE
from benchmarks.gate_false_pass import gate_statuses as simulated_gate_statuses
from pytest_harnessbench.config import OPTIONS
from pytest_harnessbench.gate import (
    GateVerdict,
    Margin,
    classify,
    decide,
    decide_all,
    gate_blocks,
    overall_status,
    parse_margins,
    verdicts_to_json,
)
from pytest_harnessbench.records import TrialRecord
from pytest_harnessbench.stats import minimum_detectable_difference, paired_comparison

PASS_RATE = Margin("pass_rate", 3.0)
INFRA_RATE = Margin("infra_rate", 2.0)


def rec(task: str, outcome: str, model: str, sample: int = 1) -> TrialRecord:
    return TrialRecord.from_dict({"task_id": task, "model": model, "multiplier": "1x", "sample": sample,
                                  "outcome": outcome, "cause": None})


def model_records(model: str, outcomes_by_task: dict[str, list[str]]) -> list[TrialRecord]:
    return [rec(t, o, model, i + 1) for t, outcomes in outcomes_by_task.items() for i, o in enumerate(outcomes)]


# ---------------------------------------------------------------- margins


def test_parse_margins():
    assert parse_margins("pass_rate:3pt,infra_rate:2pt") == [PASS_RATE, INFRA_RATE]
    assert parse_margins(" score:1.5% , pass_rate:0pts") == [Margin("score", 1.5), Margin("pass_rate", 0.0)]
    assert parse_margins("PASS_RATE:.5pt") == [Margin("pass_rate", 0.5)]
    margin = parse_margins("infra_rate:2pt")[0]
    assert str(margin) == "infra_rate:2pt"
    assert margin.threshold == pytest.approx(0.02) and not margin.higher_is_better
    assert PASS_RATE.higher_is_better


@pytest.mark.parametrize(
    "text,bad_piece",
    [
        ("", ""),
        ("pass_rate", "pass_rate"),
        ("pass_rate:3", "pass_rate:3"),  # unit required: 3 points or 3%?
        ("pass_rate:0.03", "pass_rate:0.03"),
        ("pass_rate:-3pt", "pass_rate:-3pt"),
        ("pass_rate:abcpt", "pass_rate:abcpt"),
        ("accuracy:3pt", "accuracy:3pt"),  # a metric in its own units takes no pt or %
        ("steps:-2", "steps:-2"),  # fewer steps are better: the margin allows more, +2
        ("trajectory_match:+0.1", "trajectory_match:+0.1"),
        ("pass_rate:3pt,", ""),
        ("pass_rate:3pt;infra_rate:2pt", "pass_rate:3pt;infra_rate:2pt"),
        ("pass_rate:3pt,pass_rate:2pt", "pass_rate:2pt"),
        ("pass_rate:300pt", "pass_rate:300pt"),
        ("pass_rate:3ms", "pass_rate:3ms"),
    ],
)
def test_parse_margins_errors_name_the_piece_and_what_is_accepted(text, bad_piece):
    with pytest.raises(ValueError) as info:
        parse_margins(text)
    message = str(info.value)
    assert "\n" not in message
    if bad_piece:
        assert repr(bad_piece) in message
    assert "pass_rate, score, infra_rate" in message and "pass_rate:3pt" in message and "steps:+2" in message


def test_parse_metric_margins_in_the_metrics_own_units():
    steps, match = parse_margins("steps:+2,trajectory_match:-0.5")
    assert (steps.metric, steps.points, steps.absolute, steps.higher_is_better) == ("steps", 2.0, True, False)
    assert steps.threshold == 2.0 and str(steps) == "steps:+2"
    assert (match.threshold, match.higher_is_better, str(match)) == (0.5, True, "trajectory_match:-0.5")
    assert parse_margins("tokens:500") == [Margin("tokens", 500.0, absolute=True)]


# ---------------------------------------------------------------- classification


@pytest.mark.parametrize(
    "low,high,margin,status",
    [
        (-0.02, 0.04, PASS_RATE, "pass"),
        (-0.03, 0.04, PASS_RATE, "pass"),  # lower bound exactly on the margin
        (-0.05, 0.04, PASS_RATE, "inconclusive"),
        (-0.10, -0.031, PASS_RATE, "fail"),
        (-0.10, -0.03, PASS_RATE, "inconclusive"),
        (0.0, 0.0, Margin("pass_rate", 0.0), "pass"),
        (-0.04, 0.01, INFRA_RATE, "pass"),
        (-0.01, 0.05, INFRA_RATE, "inconclusive"),
        (0.021, 0.05, INFRA_RATE, "fail"),
    ],
)
def test_classify(low, high, margin, status):
    assert classify(low, high, margin) == status


# ---------------------------------------------------------------- decide


def metric_records(model: str, steps_by_task: dict[str, list[float]]) -> list[TrialRecord]:
    return [rec(t, "passed", model, i + 1).replace(metrics={"steps": v})
            for t, values in steps_by_task.items() for i, v in enumerate(values)]


def test_decide_on_a_metric_pairs_tasks_in_the_metrics_units():
    base = metric_records("base", {f"t{i}": [3 + i % 3, 4 + i % 3] for i in range(12)})
    same = metric_records("cand", {f"t{i}": [3 + i % 3, 5 + i % 3] for i in range(12)})  # +0.5 steps a task
    verdict = decide(base, same, Margin("steps", 2.0, absolute=True))
    assert (verdict.status, verdict.tasks, verdict.difference) == ("pass", 12, 0.5)
    assert verdict.message == ("steps pass: cand vs base: 5.00 vs 4.50, +0.50 (95% CI +0.50 to +0.50, 12 tasks), "
                               "margin +2")
    slower = metric_records("cand", {f"t{i}": [8 + i % 2, 9] for i in range(12)})
    assert decide(base, slower, Margin("steps", 2.0, absolute=True)).status == "fail"
    noisy = metric_records("cand", {f"t{i}": [1 + 6 * (i % 2)] for i in range(12)})
    assert decide(base[:8], noisy[:4], Margin("steps", 2.0, absolute=True)).status == "inconclusive"  # 4 tasks


def test_a_metric_no_trial_recorded_is_not_compared_and_blocks():
    base = metric_records("base", {"t1": [3], "t2": [4]})
    cand = [r.replace(model="cand", metrics={}) for r in base]
    verdict = decide(base, cand, Margin("trajectory_match", 0.0, absolute=True))
    assert verdict.status == "inconclusive" and verdict.blocks
    assert "candidate has no passed or failed trial with metric trajectory_match" in verdict.message
    assert verdicts_to_json([verdict])["verdicts"][0]["margin_units"] == "metric"


def test_decide_identical_deterministic_models_pass_only_on_a_suite_large_enough_to_show_it():
    outcomes = {f"t{i}": ["passed" if i % 3 else "failed"] * 2 for i in range(100)}
    base, cand = model_records("base", outcomes), model_records("cand", outcomes)
    verdict = decide(base, cand, PASS_RATE)
    assert verdict.status == "pass" and not verdict.blocks
    assert verdict.difference == 0.0 and -0.03 < verdict.low < 0.0 < verdict.high
    assert verdict.candidate_model == "cand" and verdict.baseline_model == "base"
    assert verdict.message.startswith("pass_rate pass: cand vs base: ")
    ten_tasks = decide(base[:20], cand[:20], PASS_RATE)
    assert ten_tasks.status == "inconclusive" and ten_tasks.low < -0.03


@pytest.mark.parametrize("samples", [1, 2, 3])
@pytest.mark.parametrize("outcome", ["passed", "failed"])
def test_two_task_suite_with_identical_results_is_inconclusive(samples, outcome):
    outcomes = {"t1": [outcome] * samples, "t2": [outcome] * samples}
    verdict = decide(model_records("b", outcomes), model_records("c", outcomes), Margin("score", 3.0))
    assert verdict.status == "inconclusive" and not verdict.blocks
    assert verdict.low < -0.03 and verdict.high > 0.03


def test_decide_uses_the_paired_comparison_candidate_minus_baseline():
    rng = random.Random(5)
    base = model_records("b", {f"t{i}": rng.choices(["passed", "failed", "infra"], k=3) for i in range(30)})
    cand = model_records("c", {f"t{i}": rng.choices(["passed", "failed"], [1, 2], k=3) for i in range(30)})
    verdict = decide(base, cand, PASS_RATE, alpha=0.1)
    paired = paired_comparison(base, cand, "pass_rate", confidence=0.9)
    assert verdict.difference == paired.difference
    assert (verdict.low, verdict.high) == (paired.low, paired.high)
    assert verdict.candidate - verdict.baseline == pytest.approx(verdict.difference)
    assert verdict.tasks == paired.tasks


def test_decide_clearly_worse_candidate_fails():
    base = model_records("b", {f"t{i}": ["passed"] * 3 for i in range(20)})
    cand = model_records("c", {f"t{i}": ["passed", "failed", "failed"] for i in range(20)})
    verdict = decide(base, cand, PASS_RATE)
    assert verdict.status == "fail" and verdict.blocks
    assert verdict.difference == pytest.approx(-2 / 3)
    assert "-66.7 pts" in verdict.message and "margin -3 pts" in verdict.message


def test_decide_too_little_data_is_inconclusive_and_strict_blocks():
    base = model_records("b", {"t1": ["passed"], "t2": ["failed"], "t3": ["passed"]})
    cand = model_records("c", {"t1": ["failed"], "t2": ["failed"], "t3": ["passed"]})
    lenient = decide(base, cand, PASS_RATE)
    strict = decide(base, cand, PASS_RATE, strict=True)
    assert lenient.status == strict.status == "inconclusive"
    assert not lenient.blocks and strict.blocks
    assert "NOT ruled out; blocks" in strict.message and "NOT ruled out)" in lenient.message
    one_task = decide(base[:1], cand[:1], Margin("pass_rate", 100.0))
    assert one_task.status == "inconclusive" and one_task.tasks == 1
    nothing = decide([], [], PASS_RATE)
    assert nothing.status == "inconclusive" and nothing.tasks == 0


def test_decide_infra_rate_is_lower_is_better():
    clean = {f"t{i}": ["passed"] * 3 for i in range(100)}
    flaky = {f"t{i}": ["infra", "passed", "infra"] for i in range(100)}
    assert decide(model_records("b", clean), model_records("c", flaky), INFRA_RATE).status == "fail"
    assert decide(model_records("b", flaky), model_records("c", clean), INFRA_RATE).status == "pass"
    # the same flaky candidate is judged on pass_rate without its infra trials
    assert decide(model_records("b", clean), model_records("c", flaky), PASS_RATE).status == "pass"


def test_a_side_without_a_valid_trial_is_named_blocks_and_shows_the_other_side_rate():
    passed = model_records("base", {f"t{i}": ["passed"] for i in range(6)})
    oom = [r.replace(model="cand", outcome="infra", cause="oom") for r in passed]
    verdict = decide(passed, oom, PASS_RATE)
    assert verdict.status == "inconclusive" and verdict.blocks and not verdict.strict
    assert verdict.tasks == 0
    assert "candidate has no valid trial (6/6 infra)" in verdict.message
    assert "baseline 100.0% (6/6)" in verdict.message and " 0.0%" not in verdict.message
    data = verdicts_to_json([verdict])
    assert data["blocks"] is True and data["status"] == "inconclusive"
    assert (data["verdicts"][0]["baseline"], data["verdicts"][0]["candidate"]) == (1.0, None)
    mirrored = decide([r.replace(model="base") for r in oom], [r.replace(model="cand") for r in passed], PASS_RATE)
    assert mirrored.blocks and "baseline has no valid trial (6/6 infra)" in mirrored.message
    assert "candidate 100.0% (6/6)" in mirrored.message
    elsewhere = decide(passed, [r.replace(model="cand", task_id=f"other-{r.task_id}") for r in passed], PASS_RATE)
    assert elsewhere.blocks and elsewhere.tasks == 0
    assert "no task has valid trials on both sides: candidate 100.0% (6/6), baseline 100.0% (6/6)" in elsewhere.message


def test_the_default_margin_gates_on_score_so_an_all_infra_candidate_fails():
    default = next(option.default for option in OPTIONS if option.name == "gate_margin")
    assert parse_margins(default) == [Margin("score", 3.0)]
    passed = model_records("base", {f"t{i}": ["passed"] for i in range(6)})
    oom = [r.replace(model="cand", outcome="infra", cause="oom") for r in passed]
    verdict = decide(passed, oom, parse_margins(default)[0])
    assert verdict.status == "fail" and verdict.blocks
    assert "0.0% vs 100.0%" in verdict.message


def test_verdicts_to_json():
    clean = model_records("b", {f"t{i}": ["passed"] * 2 for i in range(100)})
    flaky = model_records("c", {f"t{i}": ["infra", "passed"] for i in range(100)})
    verdicts = decide_all(clean, flaky, parse_margins("pass_rate:3pt,infra_rate:2pt"))
    assert [v.status for v in verdicts] == ["pass", "fail"]
    assert overall_status(verdicts) == "fail" and gate_blocks(verdicts)
    data = json.loads(json.dumps(verdicts_to_json(verdicts)))
    assert data["status"] == "fail" and data["blocks"] is True
    first = data["verdicts"][0]
    assert first["metric"] == "pass_rate" and first["margin_points"] == 3.0 and first["confidence"] == 0.95
    assert first["message"] == verdicts[0].message
    assert data["verdicts"][1]["difference"] == pytest.approx(0.5)
    assert verdicts_to_json([]) == {"status": "pass", "blocks": False, "exit_status": 0, "verdicts": []}


def test_overall_status_keeps_inconclusive_label_under_strict():
    inconclusive = GateVerdict("score", 0.5, 0.5, 0.0, -0.2, 0.2, Margin("score", 3), "inconclusive", 5, 0.05, True)
    passing = GateVerdict("score", 0.5, 0.5, 0.0, 0.0, 0.0, Margin("score", 3), "pass", 5, 0.05, True)
    assert overall_status([passing, inconclusive]) == "inconclusive"
    assert gate_blocks([passing, inconclusive]) and not gate_blocks([passing])


# ---------------------------------------------------------------- calibration by simulation


def simulate_pair(rng: random.Random, tasks: int, samples: int, delta: float, lo: float = 0.2, hi: float = 0.95):
    """Baseline and a candidate ``delta`` worse on every task; per-task difficulty random; 2% infra."""
    base, cand = [], []
    for t in range(tasks):
        p = rng.uniform(lo, hi)
        for model, rate, out in (("base", p, base), ("cand", p - delta, cand)):
            for s in range(1, samples + 1):
                u = rng.random()
                outcome = "infra" if u < 0.02 else ("passed" if rng.random() < rate else "failed")
                out.append(rec(f"t{t}", outcome, model, s))
    return base, cand


def gate_statuses(seed: int, gates: int, tasks: int, samples: int, delta: float, margin: Margin, **kw):
    rng = random.Random(seed)
    return [decide(*simulate_pair(rng, tasks, samples, delta, **kw), margin).status for _ in range(gates)]


def allowed(rate: float, trials: int) -> float:
    """rate plus three binomial standard errors of a simulated frequency."""
    return rate + 3 * math.sqrt(rate * (1 - rate) / trials)


@pytest.mark.parametrize("margin", [Margin("pass_rate", 0.0), PASS_RATE])
def test_identical_models_rarely_fail(margin):
    gates, alpha = 400, 0.05
    statuses = gate_statuses(seed=1234, gates=gates, tasks=40, samples=3, delta=0.0, margin=margin)
    false_fail = statuses.count("fail") / gates
    assert false_fail <= allowed(alpha, gates)
    if margin.points == 0:
        # a two-sided 95% interval errs below zero about 2.5% of the time: calibrated, not just conservative
        assert 0.005 <= false_fail <= allowed(alpha / 2, gates)


def test_candidate_fifteen_points_worse_fails():
    # 100 tasks x 5 samples: MDD at 80% power is well under 15 - 3 points, so "fail" is near-certain
    assert minimum_detectable_difference(100, samples=5) < 0.10
    gates = 150
    statuses = gate_statuses(seed=99, gates=gates, tasks=100, samples=5, delta=0.15, margin=PASS_RATE)
    assert statuses.count("fail") / gates >= 0.95
    assert statuses.count("pass") == 0


def test_power_at_the_minimum_detectable_difference_is_about_80_percent():
    # per-task rates 0.5 -> the fallback SD (p = 0.5) is close to the truth
    mdd = minimum_detectable_difference(40, samples=3)
    gates = 300
    statuses = gate_statuses(
        seed=7, gates=gates, tasks=40, samples=3, delta=mdd, margin=Margin("pass_rate", 0.0), lo=0.5, hi=0.5
    )
    power = statuses.count("fail") / gates
    assert 0.68 <= power <= 0.92


@pytest.mark.parametrize("difficulty", DIFFICULTY)
def test_small_suites_rarely_pass_a_worse_candidate_or_fail_an_equal_one(difficulty):
    # benchmarks/gate_false_pass.py prints these rates with more gates (the README quotes it). A candidate
    # 5 points worse than the baseline with a 3-point margin may pass at most alpha/2 of the time; so may
    # an equal candidate fail. Each row: 100 gates; all rows pooled: 1,200.
    gates, half_alpha = 100, 0.025
    for delta, wrong in ((WORSE, "pass"), (0.0, "fail")):
        rates = [simulated_gate_statuses(3, gates, tasks, samples, delta, difficulty)[wrong] / gates
                 for tasks in TASKS for samples in SAMPLES]
        assert max(rates) <= allowed(half_alpha, gates), (delta, rates)
        assert sum(rates) / len(rates) <= allowed(half_alpha, gates * len(rates)), (delta, rates)


def test_the_plan_names_the_regression_the_gate_fails_four_times_in_five():
    """gate.plan's figure against the gate itself, simulated under the plan's assumptions (benchmarks/gate_power.py)."""
    from collections import Counter

    from benchmarks.gate_power import MARGIN, simulate
    from pytest_harnessbench.gate import plan

    figure = plan(MARGIN, 40, 3)
    assert 0.19 < figure.detectable < 0.21  # 3 + (t + z) · sd / √40 points
    rng = random.Random(7)
    statuses = Counter(decide(*simulate(rng, 40, 3, figure.detectable, 0.10), MARGIN).status for _ in range(300))
    assert 0.72 <= statuses["fail"] / 300 <= 0.88
    smaller = plan(MARGIN, 89, 3)
    assert smaller.detectable < figure.detectable and "89 tasks × 3 samples" in smaller.line


def test_the_plan_names_the_smallest_number_of_tasks_that_suffices():
    """Review finding: the search stepped by 10%, so 'N tasks would' could overstate N by up to a tenth."""
    from benchmarks.gate_power import MARGIN
    from pytest_harnessbench.gate import _detectable, plan

    for samples in (1, 3, 5):
        figure = plan(MARGIN, 89, samples)
        target = 2 * MARGIN.threshold
        needed = figure.tasks_needed
        assert _detectable(needed, samples, MARGIN.threshold, 0.05, figure.power) <= target
        assert _detectable(needed - 1, samples, MARGIN.threshold, 0.05, figure.power) > target, (samples, needed)
        assert f"{needed} tasks × {samples} samples would fail ≥ 6 pts" in figure.line
        if samples == 3:  # the power figures' own check: 89 × 3 fails ≥ 14.3 pts, so 6 pts needs far more tasks
            assert figure.tasks_needed > 89 * (14.3 - 3) ** 2 / (6 - 3) ** 2 * 0.9
