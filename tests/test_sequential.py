"""Tests for pytest_harnessbench.sequential: the spending boundaries against exact values, the looks against
the benchmark's fast path, the stopping rule on records."""

from __future__ import annotations

import random

import pytest
from scipy.stats import multivariate_normal, norm

from benchmarks.gate_false_pass import MARGIN, simulate
from benchmarks.gate_sequential import fixed_status, sequential_status
from pytest_harnessbench import sequential
from pytest_harnessbench.gate import decide
from pytest_harnessbench.records import TrialRecord
from pytest_harnessbench.sequential import (
    Sequential,
    boundaries,
    comparisons,
    first_look,
    look_alpha,
    saved_cost,
    spending_boundaries,
    task_order,
)


def test_one_look_is_the_fixed_gate():
    assert first_look(8) == 8 and first_look(40) == 10 and first_look(200) == 20
    assert boundaries(8, 0.05) == (pytest.approx(norm.isf(0.025)),)
    assert look_alpha(8, 8, 0.05) == pytest.approx(0.05) and look_alpha(3, 8, 0.05) is None


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
    assert 0.021 < crossed <= 0.0255  # 2.5% spent; the grid and discrete looks lose a little


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
    assert sequential_status(diffs, 3) == ("fail", stopped_at)  # the benchmark's fast path: the same looks
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


def test_a_small_suite_has_one_look_with_the_fixed_gates_verdict():
    for seed in range(5):
        base, cand = bake_off(8, 2, 0.05, seed)
        seq = gate(8, 2)
        seq.update(base + cand)
        ((_, verdict, _),) = seq.verdicts()
        fixed = decide(base, cand, MARGIN)
        assert (verdict.status, verdict.low, verdict.high) == (fixed.status, fixed.low, fixed.high)
        rate = lambda rs, t: sum(r.outcome == "passed" for r in rs if r.task_id == t) / 2  # noqa: E731
        assert fixed_status([rate(cand, f"t{i}") - rate(base, f"t{i}") for i in range(8)], 2) == fixed.status


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
    from benchmarks.gate_sequential import cell

    fixed, seq, saved = cell(11, 40, 89, 3, 0.15, "easy", sequential.RHO)
    assert seq["fail"] >= 38 and fixed["fail"] >= 38 and seq["pass"] == 0
    assert saved > 0.4
