"""Tests for pytest_harnessbench.sequential: the spending boundaries against exact values, the looks against
the benchmark's fast path, the stopping rule on records; and the statistics benchmarks/gate_sequential.py
compares the gate with (confidence sequences, the optimal stopping bound) against hand figures and Monte Carlo."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy.stats import multivariate_normal, norm

from benchmarks import gate_sequential as bench
from benchmarks.gate_false_pass import MARGIN, simulate
from pytest_harnessbench import sequential
from pytest_harnessbench.gate import decide
from pytest_harnessbench.records import TrialRecord
from pytest_harnessbench.sequential import (
    Sequential,
    boundaries,
    comparisons,
    fail_alpha,
    first_look,
    pass_alpha,
    saved_cost,
    spending_boundaries,
    task_order,
)


def test_one_look_is_the_fixed_gate():
    assert first_look(8) == 8 and first_look(40) == 10 and first_look(200) == 20
    assert boundaries(8, 0.05) == (pytest.approx(norm.isf(0.025)),)  # nothing to spend over: the full alpha
    assert fail_alpha(8, 8, 0.05) == pytest.approx(0.05) and fail_alpha(3, 8, 0.05) is None
    assert pass_alpha(8, 8, 0.05) == 0.05 and pass_alpha(7, 8, 0.05) is None


def test_passes_wait_for_the_last_look_at_the_fixed_gates_level_and_fails_spend_a_share_of_alpha():
    assert [pass_alpha(n, 89, 0.05) for n in (10, 88, 89)] == [None, None, 0.05]
    assert fail_alpha(89, 89, 0.05) < 0.05 * sequential.FAIL_SHARE  # the last fail look pays for the earlier ones
    assert fail_alpha(10, 89, 0.05) < fail_alpha(50, 89, 0.05) < fail_alpha(89, 89, 0.05)
    # the benchmark's --designs rows on the same spending give the gate's own looks
    same = bench.spending_looks(89, first_look(89), lambda t: t ** sequential.RHO, passes="last",
                                share=sequential.FAIL_SHARE)
    assert np.allclose(np.array(same), np.array(bench.gate_looks(89)))


def test_two_looks_spend_exactly_what_the_bivariate_normal_says():
    """P(Z1 ≥ z1) = spent1 and P(Z1 ≥ z1 or Z2 ≥ z2) = spent2, with corr(Z1, Z2) = √(t1/t2): checked with
    scipy's bivariate normal."""
    z1, z2 = spending_boundaries((0.5, 1.0), (0.01, 0.025))
    assert norm.sf(z1) == pytest.approx(0.01)
    rho = 0.5 ** 0.5
    neither = multivariate_normal(mean=[0, 0], cov=[[1, rho], [rho, 1]]).cdf([z1, z2])
    assert 1 - neither == pytest.approx(0.025, abs=2e-4)
    # Pocock's constant boundary for two looks at one-sided 0.025 is 2.178 (Jennison & Turnbull, table 2.1);
    # the spending that equals it: the first look spends P(Z1 ≥ 2.178)
    first = norm.sf(2.178)
    z1, z2 = spending_boundaries((0.5, 1.0), (first, 0.025))
    assert z1 == pytest.approx(2.178, abs=1e-6) and z2 == pytest.approx(2.178, abs=5e-3)


def test_the_boundaries_keep_the_crossing_chance_at_alpha_over_two_under_continuous_looks():
    import numpy as np

    total, rng = 89, np.random.default_rng(5)
    z = np.array(boundaries(total, 0.05))
    walks = rng.standard_normal((100_000, total)).cumsum(axis=1) / np.sqrt(np.arange(1, total + 1))
    crossed = (walks[:, first_look(total) - 1:] >= z).any(axis=1).mean()
    spent = sequential.FAIL_SHARE * 0.025
    assert 0.85 * spent < crossed <= spent + 0.0005  # the grid and discrete looks lose a little


def test_the_order_is_seeded_and_the_same_for_every_subset():
    tasks = [f"t{i}" for i in range(30)]
    order = task_order("run-1", tasks)
    assert sorted(order) == sorted(tasks) and order != sorted(tasks) and order != task_order("run-2", tasks)
    subset = tasks[::3]
    assert task_order("run-1", subset) == [t for t in order if t in subset]


def bake_off(tasks: int, samples: int, delta: float, seed: int = 1):
    base, cand = simulate(random.Random(seed), tasks, samples, delta, "easy")

    def with_id(records):
        return [r.replace(trial_id=f"{r.task_id}-{r.model}-{r.sample}") for r in records]

    return with_id(base), with_id(cand)


def gate(tasks: int, samples: int, models=("baseline", "candidate")) -> Sequential:
    return Sequential([f"t{i}" for i in range(tasks)], 2 * samples, "baseline",
                      comparisons(list(models), "baseline", [MARGIN], ["1x"]))


def test_a_clear_regression_stops_early_and_its_verdict_is_the_benchmarks():
    base, cand = bake_off(89, 3, 0.15)
    seq = gate(89, 3)
    by_task = {}
    for r in base + cand:
        by_task.setdefault(r.task_id, []).append(r)
    seen, stopped_at = [], None
    for i in range(89):  # one finished task at a time, as the session feeds it
        seen += by_task[f"t{i}"]
        if seq.update(seen):
            stopped_at = i + 1
            break
    assert stopped_at is not None and stopped_at < 89 and seq.stopped
    assert seq.reason == f"decided after {stopped_at}/89 tasks"
    ((mult, verdict, look),) = seq.verdicts()
    assert (mult, verdict.status, look) == ("1x", "fail", stopped_at)
    rate = lambda rs, t: sum(r.outcome == "passed" for r in rs if r.task_id == t) / 3  # noqa: E731
    diffs = [rate(cand, f"t{i}") - rate(base, f"t{i}") for i in range(89)]
    status, ran = bench.judge(np.array([diffs]), 3, bench.gate_looks(89))  # the benchmark's fast path: the same looks
    assert (status[0], ran[0]) == (bench.FAIL, stopped_at)
    assert seq.update(base + cand) is False and seq.looked == stopped_at  # later records change nothing
    block = seq.to_json()
    assert block["stopped"] and block["comparisons"][0]["decided_after"] == stopped_at and len(block["order"]) == 89


def test_looks_wait_for_the_tasks_before_them():
    base, cand = bake_off(20, 1, 0.0)
    seq = gate(20, 1)
    late = [r for r in base + cand if r.task_id != "t0"]  # every task but the first one finished
    assert seq.complete_prefix(late) == 0
    seq.update(late)
    assert seq.looked == 0 and seq.verdicts() == []
    assert seq.complete_prefix(base + cand) == 20


def test_an_equal_candidate_runs_every_task_and_gets_the_fixed_gates_verdict():
    """A pass waits for the last task, where the interval is the fixed gate's: the early looks of a clear pass
    decide nothing, and the verdict at the end is decide()'s on every record (the benchmark's fast path agrees)."""
    from pytest_harnessbench.gate import Margin

    wide = Margin("score", 15.0)
    base, cand = bake_off(40, 3, 0.0)
    cand = [c.replace(outcome=b.outcome) for b, c in zip(base, cand)]  # the same outcomes: a pass, clear early
    seq = Sequential([f"t{i}" for i in range(40)], 6, "baseline", comparisons(["baseline", "candidate"], "baseline",
                                                                               [wide], ["1x"]))
    for i in range(40):
        decided = seq.update([r for r in base + cand if int(r.task_id[1:]) <= i])
        assert decided == (i == 39) and not seq.stopped
        if i == 19:  # the interval already lies above the margin; the comparison stays open
            ((_, early, _),) = seq.verdicts()
            assert early.low >= -0.15 and early.status == "inconclusive"
    ((_, verdict, look),) = seq.verdicts()
    fixed = decide(base, cand, wide)
    assert (verdict.status, verdict.low, verdict.high, look) == ("pass", fixed.low, fixed.high, 40)
    assert not seq.to_json()["stopped"] and seq.to_json()["comparisons"][0]["decided_after"] == 40


def test_the_sequential_gate_passes_only_where_the_fixed_gate_passes():
    """Every pass is the fixed gate's interval on the same trials, so no false pass the fixed gate would not make."""
    for delta in (0.0, 0.03, 0.05):
        diffs = bench.simulated_differences(np.random.default_rng(7), 2000, 40, 2, delta, "mixed")
        fixed, _ = bench.judge(diffs, 2, bench.fixed_looks(40))
        status, _ = bench.judge(diffs, 2, bench.gate_looks(40))
        assert (status == bench.PASS).any() and not ((status == bench.PASS) & (fixed != bench.PASS)).any()


def test_a_small_suite_has_one_look_with_the_fixed_gates_verdict():
    for seed in range(5):
        base, cand = bake_off(8, 2, 0.05, seed)
        seq = gate(8, 2)
        seq.update(base + cand)
        ((_, verdict, _),) = seq.verdicts()
        fixed = decide(base, cand, MARGIN)
        assert (verdict.status, verdict.low, verdict.high) == (fixed.status, fixed.low, fixed.high)
        rate = lambda rs, t: sum(r.outcome == "passed" for r in rs if r.task_id == t) / 2  # noqa: E731
        diffs = np.array([[rate(cand, f"t{i}") - rate(base, f"t{i}") for i in range(8)]])
        statuses = {bench.PASS: "pass", bench.FAIL: "fail", bench.INCONCLUSIVE: "inconclusive"}
        for looks in (bench.fixed_looks(8), bench.gate_looks(8)):
            assert statuses[bench.judge(diffs, 2, looks)[0][0]] == fixed.status


def test_saved_cost_uses_each_models_mean_cost():
    from collections import Counter

    records = [TrialRecord.from_dict({"model": m, "usage": usage})
               for m, usage in (("a", {"cost_usd": 0.5}), ("a", {"cost_usd": 1.5}), ("b", {}))]
    assert saved_cost(Counter(a=3, b=4), records) == pytest.approx(3.0)
    assert saved_cost(Counter(b=4), records) is None
    assert sequential.RHO > 0


def test_a_run_orders_trials_by_task_and_shares_its_decision_through_the_run_directory(tmp_path):
    from pytest_harnessbench.sequential import DECISION, SequentialRun

    run = SequentialRun("seed", tmp_path, 2, "baseline", comparisons(["baseline", "candidate"], "baseline",
                                                                       [MARGIN], ["1x"]))
    items = ["plain"] + [f"t{i}:{m}" for m in ("baseline", "candidate") for i in range(12)] + ["other"]
    ordered = run.reorder(items, lambda item: item.split(":")[0] if ":" in item else None)
    assert ordered[0] == "plain" and ordered[-1] == "other"  # items that are no trial keep their places
    tasks = [item.split(":")[0] for item in ordered[1:-1]]
    assert tasks == [t for t in task_order("seed", tasks) for _ in range(2)]  # a task's trials together
    # a trial deselected (-k) is not waited for: a task is complete with the trials collected
    base, cand = bake_off(12, 1, 0.15)
    run.start([(r.task_id, r.trial_id) for r in base + cand if r.trial_id != "t3-candidate-1"])
    assert run.gate.expected["t3"] == 1 and run.gate.complete_prefix(base + cand) == 12
    worker = SequentialRun("seed", tmp_path, 2, "baseline", [])
    assert worker.stop_reason() is None and run.stop_reason() is None
    # the candidate fails every task the baseline passes: decided at the first look, 10 of 12 tasks
    clear = [r.replace(outcome="passed" if r.model == "baseline" else "failed") for r in base + cand
             if r.trial_id != "t3-candidate-1"]
    finished = sorted(clear, key=lambda r: run.gate.order.index(r.task_id))
    reasons = [run.after_trial(record) for record in finished]
    assert [r for r in reasons if r] == ["decided after 10/12 tasks"] and (tmp_path / DECISION).is_file()
    assert worker.stop_reason() == "decided after 10/12 tasks"  # another process reads it before its next trial
    assert reasons.index("decided after 10/12 tasks") == sum(run.gate.expected[t] for t in run.gate.order[:10]) - 1


def test_a_clear_regression_at_89_tasks_saves_trials_and_is_still_caught():
    """benchmarks/gate_sequential.py's 15-points-worse row at 89 easy tasks × 3 samples, with few gates."""
    diffs = bench.simulated_differences(np.random.default_rng(11), 200, 89, 3, 0.15, "easy")
    fixed, _ = bench.judge(diffs, 3, bench.fixed_looks(89))
    status, ran = bench.judge(diffs, 3, bench.gate_looks(89))
    assert (fixed == bench.FAIL).mean() > 0.95 and (status == bench.FAIL).mean() > 0.95
    assert not (status == bench.PASS).any() and np.mean(89 - ran) / 89 > 0.4


def test_a_two_task_identical_suite_stays_inconclusive_under_every_look():
    """The variance floor: two tasks both models passed every time prove nothing, at any look's level."""
    same = np.zeros((1, 2))
    for looks in (bench.fixed_looks(2), bench.gate_looks(2), bench.spending_looks(2, 2, lambda t: t)):
        assert bench.judge(same, 1, looks)[0][0] == bench.INCONCLUSIVE


def test_the_simulated_task_sd_is_the_hand_computed_one():
    # mixed: p uniform in 0.2-0.95 and p - 0.15 uniform in 0.05-0.8 both have mean p(1 - p) 0.1975
    # (E p - E p² = 0.575 - 0.3775 and 0.425 - 0.2275), the planning figure of gate.PLAN_MEAN_P_Q
    from pytest_harnessbench.gate import PLAN_MEAN_P_Q

    assert bench.task_sd("mixed", 3, 0.15) == pytest.approx((2 * PLAN_MEAN_P_Q / 3) ** 0.5, rel=1e-6)
    assert bench.task_sd("mixed", 1, 0.0) == pytest.approx((2 * 0.1975) ** 0.5, rel=1e-6)
    diffs = bench.simulated_differences(np.random.default_rng(2), 4000, 20, 3, 0.15, "mixed")
    assert diffs.std() == pytest.approx(bench.task_sd("mixed", 3, 0.15), rel=0.01)
    assert diffs.mean() == pytest.approx(-0.15, abs=0.003)


def test_betting_wealth_by_hand_and_ville_under_the_null():
    # gains 0.5 then -0.25: the first bet is 0 (prior mean 0); the second is mean 0.25 over second moment
    # (0.25 + 0.25)/2 = 0.25, so 1.0, capped at 0.9/|least| = 0.9: wealth 1 · (1 - 0.9 · 0.25)
    log_wealth = bench.betting_wealth(np.array([[0.5, -0.25]]), least=-1.0)
    assert log_wealth[0] == pytest.approx([0.0, math.log(1 - 0.9 * 0.25)])
    # at the margin (mean gain 0, a two-point law as far from 0 as the bounds allow), the wealth reaches 40
    # (2/alpha) at some task of 89 in at most 2.5% of runs however often it is looked at (Ville)
    rng = np.random.default_rng(3)
    gains = np.where(rng.random((20_000, 89)) < 0.5, 0.97, -0.97)
    assert (bench.betting_wealth(gains, least=-1.03) >= math.log(40)).any(axis=1).mean() <= 0.025


def test_the_empirical_bernstein_sequence_by_hand_and_its_coverage():
    # one observation x = 1: mean before 0.5, variance before 0.25, the bet min(√(2·log 40/(0.25·log 2)), 0.5)
    # = 0.5, v = 4·0.25 = 1, ψ(0.5) = (log 2 - 0.5)/4
    lower = bench.empirical_bernstein_lower(np.array([[1.0]]), 0.025)
    assert lower[0, 0] == pytest.approx((0.5 - math.log(40) - (math.log(2) - 0.5) / 4) / 0.5)
    # a lower sequence at 2.5%: the mean of Bernoulli(0.3) lies below it somewhere in 200 draws at most 2.5% of runs
    x = (np.random.default_rng(4).random((4000, 200)) < 0.3).astype(float)
    assert (bench.empirical_bernstein_lower(x, 0.025) > 0.3).any(axis=1).mean() <= 0.025


def test_the_normal_mixture_boundary_by_hand():
    diffs = np.array([[0.1, -0.2, 0.4, 0.0]])
    passes, fails = bench.normal_mixture_decisions(diffs, first=2)
    n, mean, level = 4, 0.075, math.log(40)
    sd = (sum((d - mean) ** 2 for d in diffs[0]) / 3) ** 0.5
    r = 2 / (2 * level + math.log(1 + 2 * level))
    half = sd * (2 * (n + r) * (math.log(((n + r) / r) ** 0.5) + level)) ** 0.5 / n
    assert passes.shape == (1, 3) and passes[0, -1] == (mean - half >= -0.03) and fails[0, -1] == (mean + half < -0.03)


@pytest.fixture(scope="module")
def small_problem():
    return bench.OptimalStopping(drift=3.0, total=30, first=5, alpha_one_sided=0.025, step=0.1)


def test_the_optimal_rule_has_the_error_it_was_solved_for_and_saves_what_monte_carlo_sees(small_problem):
    saved, caught, z = small_problem.solve(0.1)
    rng = np.random.default_rng(6)
    steps = np.arange(1, 31)
    null = rng.standard_normal((100_000, 30)).cumsum(axis=1) / np.sqrt(steps)
    effect = (rng.standard_normal((100_000, 30)) + 3.0 / 30 ** 0.5).cumsum(axis=1) / np.sqrt(steps)
    assert np.isinf(z[:4]).all()  # no look before the first
    assert (null >= z).any(axis=1).mean() == pytest.approx(0.025, abs=0.0015)
    crossed = effect >= z
    ran = np.where(crossed.any(axis=1), crossed.argmax(axis=1) + 1, 30)
    assert np.mean(30 - ran) / 30 == pytest.approx(saved, abs=0.005)
    assert crossed.any(axis=1).mean() == pytest.approx(caught, abs=0.005)


def test_no_spending_boundary_saves_more_than_the_optimal_rule(small_problem):
    """The bound holds against the gate's own boundaries, whose error the same recursion confirms."""
    best, _, _ = small_problem.best()
    for rho in (0.5, 1.0, 1.5, 3.0):
        looks = range(5, 31)
        z = spending_boundaries(tuple(n / 30 for n in looks), tuple(0.025 * (n / 30) ** rho for n in looks))
        edges = dict(zip(looks, z))
        rejects = [small_problem.grid >= edges[n] * n ** 0.5 if n in edges else np.zeros_like(small_problem.grid, bool)
                   for n in range(1, 31)]
        error, _ = small_problem.outcome(rejects, small_problem.null_step)
        _, saved = small_problem.outcome(rejects, small_problem.effect_step)
        assert error == pytest.approx(0.025, abs=0.001) and 0.05 < saved <= best
