"""Tests for pytest_harnessbench.stats: published figures, scipy cross-checks, edge cases."""

from __future__ import annotations

import math
import random
import subprocess
import sys

import pytest
from scipy import stats as sps

from pytest_harnessbench import stats
from pytest_harnessbench.records import TrialRecord
from pytest_harnessbench.stats import (
    benjamini_hochberg,
    clustered_se,
    cochran_armitage,
    compare_proportions,
    fallback_difference_sd,
    format_p,
    metric_rate,
    minimum_detectable_difference,
    multiplier_key,
    multiplier_trend,
    paired_comparison,
    summarize,
    verdict,
    wilson_interval,
)


def rec(task: str, outcome: str, *, model: str = "m", mult: str = "1x", sample: int = 1) -> TrialRecord:
    cause = {"passed": None, "failed": "assertion", "infra": "oom", "error": "harness"}[outcome]
    return TrialRecord.from_dict({"task_id": task, "model": model, "multiplier": mult, "sample": sample,
                                  "outcome": outcome, "cause": cause})


def task_records(task: str, outcomes: list[str], **kw) -> list[TrialRecord]:
    return [rec(task, o, sample=i + 1, **kw) for i, o in enumerate(outcomes)]


def test_module_import_does_not_import_scipy():
    code = "import sys, pytest_harnessbench.stats, pytest_harnessbench.gate; print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- Wilson


def test_wilson_published_figure():
    low, high = wilson_interval(26, 445)
    assert low == pytest.approx(0.040, abs=5e-4)
    assert high == pytest.approx(0.084, abs=5e-4)


@pytest.mark.parametrize("k,n", [(0, 1), (1, 1), (3, 10), (26, 445), (9, 445), (2, 445), (445, 445), (50, 100)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_matches_scipy(k, n, confidence):
    expected = sps.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    assert wilson_interval(k, n, confidence) == pytest.approx((expected.low, expected.high), abs=1e-12)


def test_wilson_edges():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(0, 20)[0] == 0.0
    assert wilson_interval(20, 20)[1] == 1.0
    assert wilson_interval(5, 10, 0.99)[0] < wilson_interval(5, 10, 0.95)[0]
    for bad in [(-1, 5), (6, 5), (1, -1)]:
        with pytest.raises(ValueError):
            wilson_interval(*bad)
    with pytest.raises(ValueError):
        wilson_interval(1, 2, confidence=1.0)


# ---------------------------------------------------------------- rates


def test_rates_of_a_cell_keep_infra_apart():
    records = (
        task_records("a", ["passed", "passed", "infra"])
        + task_records("b", ["failed", "infra", "infra"])
        + task_records("c", ["passed", "error", "failed"])
    )
    score = metric_rate(records, "score")
    pass_rate = metric_rate(records, "pass_rate")
    infra = metric_rate(records, "infra_rate")
    assert (score.k, score.n) == (3, 9)
    assert (pass_rate.k, pass_rate.n) == (3, 6)  # infra out of the denominator, error stays in
    assert (infra.k, infra.n) == (3, 9)
    assert score.value == pytest.approx(1 / 3)
    assert (score.low, score.high) == pytest.approx(wilson_interval(3, 9))
    assert score.se is not None and pass_rate.se is not None  # 3 trials per task


def test_clustered_se_reduces_to_binomial_with_one_trial_per_task():
    counts = [(1, 1)] * 7 + [(0, 1)] * 13
    p, n = 7 / 20, 20
    assert clustered_se(counts) == pytest.approx(math.sqrt(n / (n - 1) * p * (1 - p) / n))


def test_clustered_se_matches_trial_level_cluster_robust_formula():
    rng = random.Random(3)
    counts = [(rng.randint(0, m), m) for m in (rng.randint(1, 6) for _ in range(25))]
    # independent route: trial-level residuals y_ij - p summed within clusters (CR1 sandwich)
    trials = [[1] * k + [0] * (m - k) for k, m in counts]
    n = sum(len(t) for t in trials)
    p = sum(sum(t) for t in trials) / n
    g = len(trials)
    meat = sum(sum(y - p for y in t) ** 2 for t in trials)
    assert clustered_se(counts) == pytest.approx(math.sqrt(g / (g - 1) * meat) / n)


def test_clustered_se_exceeds_binomial_when_tasks_are_all_or_nothing():
    counts = [(3, 3)] * 10 + [(0, 3)] * 10  # trials of a task perfectly correlated
    binomial = math.sqrt(0.5 * 0.5 / 60)
    se = clustered_se(counts)
    assert se is not None and se > 1.5 * binomial
    assert clustered_se([(2, 3)]) is None
    assert clustered_se([]) is None


def test_rate_se_absent_with_one_sample_and_clustered_interval():
    one = metric_rate(task_records("a", ["passed"]) + task_records("b", ["failed"]), "score")
    assert one.se is None and one.clustered_interval() is None
    many = metric_rate(task_records("a", ["passed"] * 3) + task_records("b", ["failed"] * 3), "score")
    low, high = many.clustered_interval()
    assert low == 0.0 and high == 1.0  # se = 0.5 -> 0.5 ± 0.98, clipped
    assert many.se == pytest.approx(0.5)


def test_rate_all_infra_has_empty_pass_rate():
    records = task_records("a", ["infra", "infra"])
    rate = metric_rate(records, "pass_rate")
    assert (rate.k, rate.n, rate.value, rate.low, rate.high) == (0, 0, 0.0, 0.0, 1.0)
    assert metric_rate(records, "infra_rate").value == 1.0
    with pytest.raises(ValueError, match="unknown metric"):
        metric_rate(records, "accuracy")


def test_summarize_orders_cells_and_counts():
    records = []
    for mult in ["uncapped", "3x", "1x", "1.5x"]:
        for task in "abcd":
            records += task_records(task, ["passed", "failed"], mult=mult, model="z")
    records += task_records("a", ["passed"], model="a", mult="1x")
    cells = summarize(records)
    assert list(cells) == [("a", "1x"), ("z", "1x"), ("z", "1.5x"), ("z", "3x"), ("z", "uncapped")]
    cell = cells[("z", "3x")]
    assert (cell.trials, cell.tasks, cell.samples, cell.errors) == (8, 4, 2, 0)
    assert cell.score.value == 0.5 and cell.pass_rate.value == 0.5 and cell.infra_rate.k == 0


def test_multipliers_are_ordered_by_the_records_numbers_and_older_records_by_their_labels():
    new = [TrialRecord.from_dict({"multiplier": label, "multiplier_factor": factor})
           for label, factor in [("uncapped", None), ("3x", 3.0), ("1x", 1.0), ("1.5x", 1.5)]]
    assert sorted(["uncapped", "3x", "1x", "1.5x"], key=multiplier_key(new)) == ["1x", "1.5x", "3x", "uncapped"]
    old = [TrialRecord.from_dict({"multiplier": label})  # before multiplier_factor
           for label in ["uncapped", "3x", "1x", "1.5x", "2"]]
    assert sorted(["uncapped", "3x", "1x", "1.5x", "2"], key=multiplier_key(old)) == ["1x", "1.5x", "2", "3x", "uncapped"]
    with pytest.raises(ValueError, match="multiplier"):
        multiplier_key([TrialRecord.from_dict({"multiplier": "lots"})])


# ---------------------------------------------------------------- two proportions


def test_boschloo_published_figure_columns_are_arms():
    result = compare_proportions(26, 445, 9, 445, max_boschloo_cells=10**6)
    assert result.method == "boschloo"
    assert result.pvalue == pytest.approx(0.0044, abs=1e-4)
    assert result.difference == pytest.approx(9 / 445 - 26 / 445)


def test_large_tables_fall_back_to_fisher_published_figure():
    result = compare_proportions(26, 445, 9, 445)  # beyond the default Boschloo size
    assert result.method == "fisher"
    assert result.pvalue == pytest.approx(0.0051, abs=1e-4)
    assert result.pvalue == pytest.approx(sps.fisher_exact([[26, 9], [419, 436]]).pvalue)


@pytest.mark.parametrize("k1,n1,k2,n2", [(12, 40, 3, 40), (5, 30, 9, 25), (1, 8, 6, 10)])
def test_boschloo_matches_scipy_with_one_arm_per_column(k1, n1, k2, n2):
    result = compare_proportions(k1, n1, k2, n2)
    assert result.method == "boschloo"
    assert result.pvalue == pytest.approx(sps.boschloo_exact([[k1, k2], [n1 - k1, n2 - k2]]).pvalue)
    # symmetric in the arms, antisymmetric difference
    swapped = compare_proportions(k2, n2, k1, n1)
    assert swapped.pvalue == pytest.approx(result.pvalue)
    assert swapped.difference == pytest.approx(-result.difference)


def test_degenerate_tables():
    assert compare_proportions(0, 20, 0, 30) == stats.ProportionTest(0.0, 1.0, "fisher")  # zero row
    assert compare_proportions(20, 20, 30, 30) == stats.ProportionTest(0.0, 1.0, "fisher")
    assert compare_proportions(3, 10, 0, 0) == stats.ProportionTest(0.0, 1.0, "none")  # zero column
    with pytest.raises(ValueError):
        compare_proportions(5, 4, 1, 2)


# ---------------------------------------------------------------- trend


def test_cochran_armitage_published_figure():
    result = cochran_armitage([(26, 445), (9, 445), (2, 445)])
    assert result.z == pytest.approx(-4.90, abs=0.01)
    assert result.pvalue == pytest.approx(2 * sps.norm.sf(4.9007), rel=1e-3)
    assert cochran_armitage([(2, 445), (9, 445), (26, 445)]).z == pytest.approx(4.9007, abs=1e-3)


def test_cochran_armitage_equals_n_times_squared_correlation():
    groups, scores = [(5, 40), (9, 35), (14, 41), (13, 30)], [1.0, 1.5, 3.0, 6.0]
    xs, ys = [], []
    for s, (k, n) in zip(scores, groups):
        xs += [s] * n
        ys += [1] * k + [0] * (n - k)
    r = sps.pearsonr(xs, ys).statistic
    result = cochran_armitage(groups, scores)
    assert result.z**2 == pytest.approx(len(xs) * r**2)
    assert result.z > 0


def test_cochran_armitage_two_groups_is_the_chi_square_test():
    table = [[12, 28], [4, 36]]
    chi2 = sps.chi2_contingency(table, correction=False)
    result = cochran_armitage([(12, 40), (4, 40)])
    assert result.z**2 == pytest.approx(chi2.statistic)
    assert result.pvalue == pytest.approx(chi2.pvalue)


def test_cochran_armitage_edges():
    assert cochran_armitage([(0, 10), (0, 10)]) == stats.TrendTest(0.0, 1.0)
    assert cochran_armitage([(3, 10), (0, 0)]) == stats.TrendTest(0.0, 1.0)
    assert cochran_armitage([]) == stats.TrendTest(0.0, 1.0)
    with pytest.raises(ValueError):
        cochran_armitage([(1, 2)], scores=[0, 1])


def test_multiplier_trend_orders_uncapped_last():
    records = []
    for mult, infra in [("uncapped", 2), ("3x", 9), ("1x", 26)]:
        records += [rec(f"t{i}", "infra" if i < infra else "passed", mult=mult) for i in range(445)]
    assert multiplier_trend(records, "infra_rate").z == pytest.approx(-4.90, abs=0.01)


# ---------------------------------------------------------------- paired by task


def paired_example():
    a = task_records("t1", ["passed", "failed"]) + task_records("t2", ["passed", "passed"])
    a += task_records("t3", ["failed", "failed"]) + task_records("t4", ["passed", "failed"])
    b = task_records("t1", ["passed", "passed"]) + task_records("t2", ["passed", "passed"])
    b += task_records("t3", ["passed", "failed"]) + task_records("t4", ["passed", "passed"])
    return a, b


def test_paired_comparison_matches_scipy_ttest_rel():
    a, b = paired_example()
    result = paired_comparison(a, b, "score")
    rates_a, rates_b = [0.5, 1.0, 0.0, 0.5], [1.0, 1.0, 0.5, 1.0]
    expected = sps.ttest_rel(rates_b, rates_a)
    ci = expected.confidence_interval(0.95)
    assert result.method == "paired-t" and result.tasks == 4
    assert result.difference == pytest.approx(0.375)
    assert result.difference_points == pytest.approx(37.5)
    assert (result.mean_a, result.mean_b) == pytest.approx((0.5, 0.875))
    assert result.pvalue == pytest.approx(expected.pvalue)
    assert (result.low, result.high) == pytest.approx((ci.low, ci.high))


def test_paired_comparison_ignores_sample_index():
    a, b = paired_example()
    shuffled = [r.replace(sample=3 - r.sample) for r in b]  # reverse sample numbers of B
    rng = random.Random(0)
    rng.shuffle(shuffled)
    assert paired_comparison(a, shuffled) == paired_comparison(a, b)


def test_paired_comparison_pass_rate_excludes_infra_and_counts_unpaired():
    a = task_records("t1", ["passed", "infra"]) + task_records("t2", ["infra", "infra"])
    a += task_records("t3", ["failed", "passed"]) + task_records("only_a", ["passed"])
    b = task_records("t1", ["failed", "failed"]) + task_records("t2", ["passed", "passed"])
    b += task_records("t3", ["passed", "passed"])
    result = paired_comparison(a, b, "pass_rate")
    assert result.tasks == 2  # t2 has no usable trial for A
    assert result.unpaired_tasks == 2  # t2 and only_a
    assert (result.mean_a, result.mean_b) == pytest.approx((0.75, 0.5))
    infra = paired_comparison(a, b, "infra_rate")
    assert infra.tasks == 3 and infra.difference == pytest.approx(-0.5)


def test_mcnemar_only_with_one_sample_per_task():
    outcomes_a = ["passed"] * 10 + ["failed"] * 10 + ["passed"] * 2 + ["failed"] * 8
    outcomes_b = ["passed"] * 10 + ["failed"] * 10 + ["failed"] * 2 + ["passed"] * 8
    a = [rec(f"t{i}", o) for i, o in enumerate(outcomes_a)]
    b = [rec(f"t{i}", o) for i, o in enumerate(outcomes_b)]
    result = paired_comparison(a, b, "score")
    assert result.method == "mcnemar"
    assert result.pvalue == pytest.approx(sps.binomtest(8, 10, 0.5).pvalue)
    assert result.difference == pytest.approx(6 / 30)
    doubled = paired_comparison(a + [r.replace(sample=2) for r in a], b + [r.replace(sample=2) for r in b], "score")
    assert doubled.method == "paired-t"
    assert doubled.difference == pytest.approx(result.difference)


def test_paired_comparison_edges():
    none = paired_comparison([], [])
    assert (none.tasks, none.method, none.pvalue, none.low, none.high) == (0, "none", 1.0, -1.0, 1.0)
    one = paired_comparison(task_records("t", ["passed"] * 3), task_records("t", ["failed"] * 3), "score")
    assert (one.tasks, one.difference, one.low, one.high, one.pvalue) == (1, -1.0, -1.0, 1.0, 1.0)
    all_pass = [rec(f"t{i}", "passed", sample=s) for i in range(5) for s in (1, 2)]
    same = paired_comparison(all_pass, all_pass, "score")
    assert (same.difference, same.pvalue, same.sd) == (0.0, 1.0, 0.0)
    assert same.low < 0.0 < same.high  # no difference seen in 10 trials is not a difference known to be 0
    all_fail = [r.replace(outcome="failed") for r in all_pass]
    worse = paired_comparison(all_pass, all_fail, "score")
    assert (worse.difference, worse.low, worse.pvalue) == (-1.0, -1.0, 0.0)
    assert worse.high > -1.0


@pytest.mark.parametrize("tasks,samples,shift", [(4, 1, 0), (5, 3, 0), (40, 2, 0), (4, 3, -1), (8, 2, -1), (6, 3, 1)])
def test_paired_interval_does_not_collapse_when_every_task_moves_alike(tasks, samples, shift):
    # The baseline passes every trial but one per task; the candidate passes `shift` more of them on every task,
    # so every per-task difference is shift/samples and their SD is 0. The interval is then the Wilson score
    # interval for 0 events in `tasks` (with the t quantile on tasks - 1 df as its z), in steps of 1/samples
    # around the difference: see stats.paired_difference_interval.
    base = [rec(f"t{i}", "passed" if s > 1 else "failed", sample=s) for i in range(tasks) for s in range(1, samples + 1)]
    cand = [rec(f"t{i}", "passed" if s > 1 - shift else "failed", sample=s)
            for i in range(tasks) for s in range(1, samples + 1)]
    result = paired_comparison(base, cand, "score")
    quantile = sps.t.ppf(0.975, tasks - 1)
    wilson = sps.binomtest(0, tasks).proportion_ci(2 * sps.norm.cdf(quantile) - 1, method="wilson")
    step = 1 / samples
    assert result.sd == pytest.approx(0.0, abs=1e-12) and result.difference == pytest.approx(shift * step)
    assert (result.low, result.high) == pytest.approx((shift * step - wilson.high * step,
                                                       shift * step + wilson.high * step))


def test_the_array_form_of_the_interval_is_the_interval_row_by_row():
    """stats.difference_interval_bounds (the simulations' form) against paired_difference_interval on the same
    differences: lattice-collapsed rows, ordinary rows, and a quantile so large (a look at 2 tasks and a tiny
    alpha) that the floor would reach far past ±1."""
    from pytest_harnessbench.stats import difference_interval_bounds, paired_difference_interval

    rng = random.Random(4)
    for samples, tasks, confidence in ((1, 12, 0.95), (3, 40, 0.995), (2, 2, 1 - 1e-6), (3, 10, 0.9999)):
        rows = [[(shift + rng.choice((0, 0, 0, 1, -1))) / samples for _ in range(tasks)]
                for shift in (-samples, -1, 0, 1, samples) for _ in range(6)]
        rows = [[max(-1.0, min(1.0, d)) for d in row] for row in rows]
        mean = [sum(row) / tasks for row in rows]
        sd = [math.sqrt(sum((d - m) ** 2 for d in row) / (tasks - 1)) for row, m in zip(rows, mean)]
        low, high = difference_interval_bounds(mean, sd, tasks, 1 / samples, sps.t.ppf(0.5 + confidence / 2, tasks - 1))
        assert [(a, b) for a, b in zip(low, high)] == [paired_difference_interval(row, 1 / samples, confidence)
                                                      for row in rows]
    # twelve tasks both models always passed, one sample: ±29 points (the docstring's figure)
    low, high = difference_interval_bounds([0.0], [0.0], 12, 1.0, sps.t.ppf(0.975, 11))
    assert (round(100 * low[0]), round(100 * high[0])) == (-29, 29)


# ---------------------------------------------------------------- BH, verdicts, power


def test_benjamini_hochberg_matches_scipy():
    rng = random.Random(11)
    for size in (1, 2, 5, 17):
        pvalues = [rng.random() ** 3 for _ in range(size)]
        expected = sps.false_discovery_control(pvalues)
        assert benjamini_hochberg(pvalues) == pytest.approx(list(expected))


def test_benjamini_hochberg_known_values_and_edges():
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.2]) == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.2])
    assert benjamini_hochberg([]) == []
    assert benjamini_hochberg([0.9, 1.0]) == [1.0, 1.0]
    with pytest.raises(ValueError):
        benjamini_hochberg([0.1, 1.5])


def test_verdict_wording():
    assert verdict(0.40, 1.2) == "within noise (p=0.40)"
    assert verdict(0.0044, 6.0) == "differs: +6.0 pts (p=0.0044)"
    assert verdict(0.012, -3.25) == "differs: -3.2 pts (p=0.012)"
    assert verdict(0.05, 10.0) == "within noise (p=0.050)"
    assert verdict(0.08, 10.0, alpha=0.1) == "differs: +10.0 pts (p=0.080)"
    assert verdict(0.00001, None) == "differs (p<0.0001)"  # a trend: no single difference
    assert format_p(1.0) == "1.0" and format_p(3e-7) == "<0.0001"


def test_minimum_detectable_difference_formula():
    z = sps.norm.ppf(0.975) + sps.norm.ppf(0.8)
    assert minimum_detectable_difference(40, 0.3) == pytest.approx(z * 0.3 / math.sqrt(40))
    assert fallback_difference_sd(3) == pytest.approx(math.sqrt(2 * 0.25 / 3))
    assert minimum_detectable_difference(40, samples=3) == pytest.approx(z * math.sqrt(0.5 / 3) / math.sqrt(40))
    assert minimum_detectable_difference(89) == pytest.approx(0.21, abs=0.005)  # TB2-sized suite, 1 sample
    assert minimum_detectable_difference(160) < minimum_detectable_difference(40)
    assert minimum_detectable_difference(40, samples=5) < minimum_detectable_difference(40, samples=1)
    assert minimum_detectable_difference(1, 0.1) == 1.0
    assert minimum_detectable_difference(4, 2.0) == 1.0
    with pytest.raises(ValueError):
        fallback_difference_sd(0)


# --------------------------------------------------------------------------
# Numeric trial metrics (steps, tokens, trajectory match, ...)


def metric_rec(task: str, value, *, model: str = "m", outcome: str = "passed", sample: int = 1) -> TrialRecord:
    return rec(task, outcome, model=model, sample=sample).replace(metrics={} if value is None else {"steps": value})


def test_metric_mean_is_the_mean_of_task_means_with_a_t_interval_over_tasks():
    records = [metric_rec("a", 2), metric_rec("a", 4, sample=2), metric_rec("b", 5), metric_rec("c", 9)]
    mean = stats.metric_mean(records, "steps")
    task_means = [3, 5, 9]
    assert (mean.tasks, mean.trials) == (3, 4)
    assert mean.value == pytest.approx(sum(task_means) / 3)
    half = sps.t.ppf(0.975, 2) * sps.tstd(task_means) / math.sqrt(3)
    assert (mean.low, mean.high) == pytest.approx((mean.value - half, mean.value + half))


def test_metric_mean_leaves_out_infra_error_and_trials_without_the_metric():
    records = [metric_rec("a", 2), metric_rec("b", 100, outcome="infra"), metric_rec("c", 100, outcome="error"),
               metric_rec("d", None), metric_rec("e", 4, outcome="failed")]
    mean = stats.metric_mean(records, "steps")
    assert (mean.value, mean.tasks, mean.trials) == (3, 2, 2)
    one = stats.metric_mean([metric_rec("a", 2)], "steps")
    assert (one.value, one.low, one.high) == (2, None, None)
    assert stats.metric_mean([], "steps").tasks == 0


def test_paired_metric_comparison_pairs_tasks_and_tests_their_differences():
    a = [metric_rec(t, v, model="a") for t, v in (("t1", 2), ("t2", 3), ("t3", 4), ("t4", 9))]
    b = [metric_rec(t, v, model="b") for t, v in (("t1", 3), ("t2", 5), ("t3", 4), ("t5", 1))]
    pair = stats.paired_metric_comparison(a, b, "steps")
    diffs = [1, 2, 0]
    assert (pair.tasks, pair.unpaired_tasks, pair.method) == (3, 2, "paired-t")
    assert pair.difference == pytest.approx(1.0) and (pair.mean_a, pair.mean_b) == pytest.approx((3, 4))
    assert pair.pvalue == pytest.approx(sps.ttest_1samp(diffs, 0).pvalue)
    low, high = sps.t.interval(0.95, 2, loc=1.0, scale=sps.sem(diffs))
    assert (pair.low, pair.high) == pytest.approx((low, high))


def test_paired_metric_comparison_with_fewer_than_two_tasks_bounds_nothing():
    pair = stats.paired_metric_comparison([metric_rec("t1", 2, model="a")], [metric_rec("t1", 5, model="b")], "steps")
    assert (pair.tasks, pair.difference, pair.low, pair.high, pair.pvalue) == (1, 3, -math.inf, math.inf, 1.0)
