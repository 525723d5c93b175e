"""Rates, intervals, tests and verdicts: pure functions over trial records.

A record is a :class:`~pytest_harnessbench.records.TrialRecord` (one per
trial); these functions read its ``task_id``, ``model``, ``multiplier``,
``multiplier_factor``, ``outcome`` and ``metrics``. The summary
(``summary.py``) groups records once and calls the functions that take counts
(:class:`Tally`, :func:`rate_of`, :func:`paired_counts_comparison`, ...).

Conventions:

- Rates and differences are *fractions* (0..1); only display helpers
  (``verdict``, messages) speak in percentage points.
- Trials of one task are not independent, so anything that spans tasks is
  clustered by ``task_id`` and models are compared *paired by task*, never by
  sample index.
- scipy is imported lazily inside functions so that importing this module
  stays cheap (``pytest --help`` and collection must not pay for it).
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .outcomes import ERROR, INFRA, METRIC_OUTCOMES, PASSED

if TYPE_CHECKING:
    from .records import TrialRecord

Metric = Literal["score", "pass_rate", "infra_rate"]
METRICS: tuple[str, ...] = ("score", "pass_rate", "infra_rate")

#: Boschloo's exact test costs roughly (cells of the table space)^2: about
#: 0.06 s for 100 trials per arm, 0.3 s for 200 and 2.7 s for 445, and the
#: summary runs several per model. Above this many cells, (n1 + 1) * (n2 + 1),
#: ``compare_proportions`` uses Fisher's exact test instead (also exact,
#: slightly conservative, and near-identical at these sizes).
BOSCHLOO_MAX_CELLS = 101 * 101


# --------------------------------------------------------------------------
# Normal quantiles (stdlib: no scipy needed for these)


def _z(confidence: float) -> float:
    """Two-sided normal quantile for a confidence level (0.95 -> 1.95996...)."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence}")


# --------------------------------------------------------------------------
# Single proportions


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; n == 0 gives (0.0, 1.0)."""
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got {successes}/{n}")
    _check_confidence(confidence)
    if n == 0:
        return (0.0, 1.0)
    z = _z(confidence)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (low, high)


@dataclass(frozen=True)
class Rate:
    """k of n, with a Wilson interval and (when trials cluster) a task-clustered SE.

    ``value`` is 0.0 when n == 0 (the interval is then the uninformative (0, 1);
    always show the denominator). ``se`` is None when it adds nothing: fewer
    than two tasks, or every task contributes at most one trial (then the
    Wilson interval already is the right one).
    """

    k: int
    n: int
    value: float
    low: float
    high: float
    se: float | None = None

    def clustered_interval(self, confidence: float = 0.95) -> tuple[float, float] | None:
        """Normal interval value ± z·se, clipped to [0, 1]; None without a clustered SE."""
        if self.se is None:
            return None
        z = _z(confidence)
        return (max(0.0, self.value - z * self.se), min(1.0, self.value + z * self.se))


def make_rate(k: int, n: int, confidence: float = 0.95, se: float | None = None) -> Rate:
    low, high = wilson_interval(k, n, confidence)
    return Rate(k=k, n=n, value=k / n if n else 0.0, low=low, high=high, se=se)


@dataclass
class Tally:
    """Outcomes of a group of trials (normally one task's in one model × multiplier cell): every rate's counts.

    score      = passed / all trials (infra and error count as not passed)
    pass_rate  = passed / (all trials - infra)   (error trials stay in)
    infra_rate = infra / all trials
    """

    trials: int = 0
    passed: int = 0
    infra: int = 0
    errors: int = 0

    def add(self, outcome: str) -> None:
        self.trials += 1
        self.passed += outcome == PASSED
        self.infra += outcome == INFRA
        self.errors += outcome == ERROR

    def counts(self, metric: str) -> tuple[int, int]:
        """(numerator, denominator) of a metric over these trials."""
        if metric == "score":
            return (self.passed, self.trials)
        if metric == "pass_rate":
            return (self.passed, self.trials - self.infra)
        if metric == "infra_rate":
            return (self.infra, self.trials)
        raise ValueError(f"unknown metric {metric!r}: expected one of {', '.join(METRICS)}")


def tally_by_task(records: Iterable[TrialRecord]) -> dict[str, Tally]:
    """task_id -> the Tally of its trials, in one pass."""
    tallies: dict[str, Tally] = defaultdict(Tally)
    for record in records:
        tallies[record.task_id].add(record.outcome)
    return dict(tallies)


def task_counts(tallies: Mapping[str, Tally], metric: str) -> dict[str, tuple[int, int]]:
    """task_id -> (k, m) of a metric from tallies; tasks with m == 0 (e.g. all infra for pass_rate) are left out."""
    counts = {task: tally.counts(metric) for task, tally in tallies.items()}
    return {task: km for task, km in counts.items() if km[1] > 0}


def per_task_counts(records: Iterable[TrialRecord], metric: str = "pass_rate") -> dict[str, tuple[int, int]]:
    """task_id -> (k, m) for a metric. Tasks with m == 0 (e.g. all infra for pass_rate) are left out."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}: expected one of {', '.join(METRICS)}")
    return task_counts(tally_by_task(records), metric)


def clustered_se(task_counts: Sequence[tuple[int, int]]) -> float | None:
    """Task-clustered (cluster-robust, CR1) standard error of a pooled proportion.

    With G tasks, task i having k_i successes out of m_i trials, N = Σ m_i and
    p = Σ k_i / N, the sandwich (linearisation) variance of the ratio p is

        Var(p) = G / (G - 1) · Σ_i (k_i - p·m_i)² / N²

    i.e. the SE of the trial-weighted mean of per-task rates, treating tasks as
    the independent units. With one trial per task it reduces to
    sqrt(G/(G-1) · p(1-p)/N), the binomial SE. Returns None for fewer than two
    tasks (no between-task variation to estimate).
    """
    clusters = [(k, m) for k, m in task_counts if m > 0]
    g = len(clusters)
    if g < 2:
        return None
    total = sum(m for _, m in clusters)
    p = sum(k for k, _ in clusters) / total
    squares = sum((k - p * m) ** 2 for k, m in clusters)
    return math.sqrt(g / (g - 1) * squares) / total


def metric_rate(records: Iterable[TrialRecord], metric: str = "score", confidence: float = 0.95) -> Rate:
    """One metric over a set of records (normally one model × multiplier cell)."""
    return rate_of(per_task_counts(records, metric).values(), confidence)


def rate_of(task_counts: Iterable[tuple[int, int]], confidence: float = 0.95) -> Rate:
    """The pooled rate of per-task (k, m) counts, with the task-clustered SE when some task has several trials."""
    counts = list(task_counts)
    k = sum(c[0] for c in counts)
    n = sum(c[1] for c in counts)
    clustered = any(m > 1 for _, m in counts)
    return make_rate(k, n, confidence, se=clustered_se(counts) if clustered else None)


@dataclass(frozen=True)
class CellSummary:
    """Rates of one model × multiplier cell. ``samples`` = most trials of any one task."""

    model: str
    multiplier: str
    trials: int
    tasks: int
    samples: int
    errors: int
    score: Rate
    pass_rate: Rate
    infra_rate: Rate


def multiplier_key(records: Iterable[TrialRecord]) -> Callable[[str], float]:
    """A sort key for the multiplier labels of ``records``: each record's own number.

    ``multiplier_factor`` holds it (None for uncapped, which ranks last; a
    record of a run directory older than that field got it from its label
    when it was read, ``TrialRecord.from_dict``).
    """
    ranks: dict[str, float] = {}
    for record in records:
        if record.multiplier not in ranks:
            ranks[record.multiplier] = record.multiplier_rank
    return ranks.__getitem__


def cell_summary(model: str, multiplier: str, tallies: Mapping[str, Tally], confidence: float = 0.95) -> CellSummary:
    """The CellSummary of one model × multiplier from its per-task tallies (:func:`tally_by_task`)."""
    rates = {metric: rate_of(task_counts(tallies, metric).values(), confidence) for metric in METRICS}
    return CellSummary(
        model=model,
        multiplier=multiplier,
        trials=sum(t.trials for t in tallies.values()),
        tasks=len(tallies),
        samples=max((t.trials for t in tallies.values()), default=0),
        errors=sum(t.errors for t in tallies.values()),
        **rates,
    )


def summarize(records: Sequence[TrialRecord], confidence: float = 0.95) -> dict[tuple[str, str], CellSummary]:
    """(model, multiplier) -> CellSummary, ordered by model then multiplier rank."""
    cells: dict[tuple[str, str], list[TrialRecord]] = defaultdict(list)
    for record in records:
        cells[(record.model, record.multiplier)].append(record)
    rank = multiplier_key(records)
    return {(model, mult): cell_summary(model, mult, tally_by_task(cells[(model, mult)]), confidence)
            for model, mult in sorted(cells, key=lambda key: (key[0], rank(key[1])))}


# --------------------------------------------------------------------------
# Two independent proportions (e.g. a multiplier vs 1x)


@dataclass(frozen=True)
class ProportionTest:
    """Exact two-sided test of k1/n1 vs k2/n2; ``difference`` = second − first (fraction)."""

    difference: float
    pvalue: float
    method: Literal["boschloo", "fisher", "none"]


def compare_proportions(
    k1: int, n1: int, k2: int, n2: int, *, max_boschloo_cells: int = BOSCHLOO_MAX_CELLS
) -> ProportionTest:
    """Boschloo's exact test, falling back to Fisher's exact test.

    scipy's ``boschloo_exact`` treats each *column* as one arm, so the table is
    [[k1, k2], [n1 - k1, n2 - k2]] (26/445 vs 9/445 -> p ≈ 0.0044).
    Fisher is used when the table is degenerate (a zero row or column), when
    Boschloo fails or returns nan, or when the table space exceeds
    ``max_boschloo_cells`` (Boschloo's run time; see BOSCHLOO_MAX_CELLS).
    An arm with no trials at all gives method "none" and p = 1.0.
    """
    for k, n in ((k1, n1), (k2, n2)):
        if n < 0 or k < 0 or k > n:
            raise ValueError(f"need 0 <= k <= n, got {k}/{n}")
    if n1 == 0 or n2 == 0:
        return ProportionTest(difference=0.0, pvalue=1.0, method="none")
    from scipy import stats

    difference = k2 / n2 - k1 / n1
    table = [[k1, k2], [n1 - k1, n2 - k2]]
    degenerate = k1 + k2 == 0 or k1 + k2 == n1 + n2
    if not degenerate and (n1 + 1) * (n2 + 1) <= max_boschloo_cells:
        try:
            pvalue = float(stats.boschloo_exact(table).pvalue)
        except (ValueError, FloatingPointError, ArithmeticError):
            pvalue = math.nan
        if math.isfinite(pvalue):
            return ProportionTest(difference=difference, pvalue=min(1.0, pvalue), method="boschloo")
    pvalue = float(stats.fisher_exact(table).pvalue)
    return ProportionTest(difference=difference, pvalue=min(1.0, pvalue), method="fisher")


# --------------------------------------------------------------------------
# Trend over ordered groups (e.g. multipliers 1x < 1.5x < 3x < uncapped)


@dataclass(frozen=True)
class TrendTest:
    """Cochran–Armitage trend: z < 0 means the rate falls as the score rises."""

    z: float
    pvalue: float


def cochran_armitage(groups: Sequence[tuple[int, int]], scores: Sequence[float] | None = None) -> TrendTest:
    """Cochran–Armitage test for a linear trend in proportions k_i/n_i over ordered groups.

    With p = Σk/N, T = Σ s_i (k_i − n_i p) and
    Var(T) = p(1−p) [Σ n_i s_i² − (Σ n_i s_i)² / N], z = T / √Var(T) and the
    two-sided p-value is from the normal distribution. Scores default to
    0..G−1 (rank order; pass the groups sorted, "uncapped" last). No variation
    (every trial the same, or a single non-empty group) gives z = 0, p = 1.
    It treats trials as independent; with samples > 1 per task read p as optimistic.
    """
    if scores is None:
        scores = list(range(len(groups)))
    if len(scores) != len(groups):
        raise ValueError(f"{len(scores)} scores for {len(groups)} groups")
    for k, n in groups:
        if n < 0 or k < 0 or k > n:
            raise ValueError(f"need 0 <= k <= n, got {k}/{n}")
    total = sum(n for _, n in groups)
    if total == 0:
        return TrendTest(z=0.0, pvalue=1.0)
    p = sum(k for k, _ in groups) / total
    t = sum(s * (k - n * p) for s, (k, n) in zip(scores, groups))
    sum_ns = sum(s * n for s, (_, n) in zip(scores, groups))
    sum_ns2 = sum(s * s * n for s, (_, n) in zip(scores, groups))
    variance = p * (1 - p) * (sum_ns2 - sum_ns * sum_ns / total)
    if variance <= 1e-12:
        return TrendTest(z=0.0, pvalue=1.0)
    z = t / math.sqrt(variance)
    return TrendTest(z=z, pvalue=math.erfc(abs(z) / math.sqrt(2)))


def multiplier_trend(records: Iterable[TrialRecord], metric: str = "infra_rate") -> TrendTest:
    """Cochran–Armitage over the multipliers present in ``records`` (one model), rank scores."""
    records = list(records)
    groups: dict[str, Tally] = defaultdict(Tally)
    for record in records:
        groups[record.multiplier].add(record.outcome)
    ordered = sorted(groups, key=multiplier_key(records))
    return cochran_armitage([groups[m].counts(metric) for m in ordered])


# --------------------------------------------------------------------------
# Paired-by-task comparison of two models


def paired_difference_interval(
    differences: Sequence[float], step: float, confidence: float = 0.95
) -> tuple[float, float]:
    """Interval for the mean of per-task differences that does not collapse when they are all equal.

    The paired t interval, mean ± t·s/√n over n tasks (t on n − 1 df), has zero
    width when every task moved by the same amount (s = 0): two tasks that both
    models passed every time would "prove" the models identical. But each
    difference is one of pass *rates* over a few trials, so it lies on a lattice
    of ``step`` (1/samples when every task has ``samples`` trials per model), and
    anything on that lattice with mean δ has variance at least step²·f·(1 − f),
    f the fractional part of δ/step (all its weight on the two lattice points
    around δ). Whatever the tasks and models, per-task differences whose true
    mean is δ vary at least that much (unless δ is on the lattice they cannot
    all sit at δ), so a sample SD below the bound is known to be an
    underestimate at δ.

    So the interval holds every δ that the t test accepts with the variance
    max(s², bound at δ), as Wilson's score interval takes the binomial variance
    at the tested p rather than at the estimate: the smallest interval holding
    the t interval and every δ with n·(mean − δ)² ≤ t²·step²·f·(1 − f). It is
    never narrower than the t interval, and equals it once s ≥ step/2 (the
    bound's largest value). With s = 0 it is mean ± step·w, w the Wilson upper
    limit for 0 events in n trials with t in place of z (from three tasks up;
    with two, t on 1 df is so large that farther lattice cells join and the
    interval is wider still): twelve tasks that both models always passed give
    ±29 points at one sample per task and ±10 at three, forty give ±9 and ±3.

    The bound is the least variance the data could have, not an estimate of it:
    it removes the collapse and nothing more, and elsewhere the t interval's
    approximate calibration applies (benchmarks/gate_false_pass.py measures the
    gate's). Clipped to [−1, 1]; fewer than two tasks give (−1, 1).
    """
    n = len(differences)
    if n < 2:
        return (-1.0, 1.0)
    from scipy import stats

    mean = sum(differences) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / (n - 1))
    q = float(stats.t.ppf(0.5 + confidence / 2.0, n - 1))
    low, high = difference_interval_bounds(mean, sd, n, step, q)
    return (float(low), float(high))


def difference_interval_bounds(mean, sd, n: int, step: float, q):
    """:func:`paired_difference_interval` from the differences' ``mean`` and ``sd`` over ``n`` tasks and the
    quantile ``q`` (in place of t), element-wise over arrays (benchmarks/gate_sequential.py judges thousands
    of simulated gates at once): the t interval, widened where the lattice's least variance reaches past it."""
    import numpy as np

    mean, sd, q = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (mean, sd, q)))
    low, high = mean - q * sd / math.sqrt(n), mean + q * sd / math.sqrt(n)
    # With δ = u·step and mean = centre·step, inside the lattice cell k ≤ u ≤ k + 1 the
    # condition is (n + q²)u² − (2n·centre + q²(2k + 1))u + n·centre² + q²k(k + 1) ≤ 0.
    # The bound never exceeds step²/4, so only cells within q/(2√n) of the centre can hold a δ; and if
    # a cell past −1 − step (or 1 + step) holds a δ, so does the one next to ±1 (the same δ moved towards
    # the centre by whole steps), so looking no farther gives the same clipped interval however large q is.
    centre = mean / step
    reach = q / (2 * math.sqrt(n))
    a = n + q * q
    cells = math.ceil(1 / step)
    first = np.maximum(np.floor(centre - reach), -cells - 1)
    end = np.minimum(np.ceil(centre + reach), cells + 1)
    for offset in range(int(np.max(end - first, initial=0.0))):
        k = first + offset
        inside = k < end
        b = -(2 * n * centre + q * q * (2 * k + 1))
        c = n * centre * centre + q * q * k * (k + 1)
        discriminant = b * b - 4 * a * c
        root = np.sqrt(np.maximum(discriminant, 0.0))
        u_low, u_high = np.maximum(k, (-b - root) / (2 * a)), np.minimum(k + 1, (-b + root) / (2 * a))
        holds = inside & (discriminant >= 0) & (u_low <= u_high)
        low = np.where(holds, np.minimum(low, u_low * step), low)
        high = np.where(holds, np.maximum(high, u_high * step), high)
    return np.clip(low, -1.0, 1.0), np.clip(high, -1.0, 1.0)


@dataclass(frozen=True)
class PairedComparison:
    """Model B − model A, paired by task.

    ``mean_a``/``mean_b`` are means of per-task rates over the paired tasks and
    ``difference`` = mean_b − mean_a (a fraction; ×100 for points), with the
    interval of ``paired_difference_interval`` at ``confidence`` (the t interval
    over tasks, which it widens only where that collapses). ``pvalue`` is from
    exact McNemar when every paired task has exactly one trial per model
    (``method`` "mcnemar"), otherwise from the paired t test (``method`` "paired-t").
    """

    metric: str
    tasks: int
    mean_a: float
    mean_b: float
    difference: float
    sd: float
    low: float
    high: float
    confidence: float
    pvalue: float
    method: Literal["paired-t", "mcnemar", "none"]
    unpaired_tasks: int = 0

    @property
    def difference_points(self) -> float:
        return 100.0 * self.difference


def paired_comparison(
    records_a: Iterable[TrialRecord],
    records_b: Iterable[TrialRecord],
    metric: str = "pass_rate",
    confidence: float = 0.95,
) -> PairedComparison:
    """Compare model B with model A task by task (B − A).

    Each task's trials are pooled into one rate per model; only tasks with a
    rate for both models are paired (``unpaired_tasks`` counts the rest). Pass
    records of one multiplier to compare at that multiplier; otherwise a task's
    rate pools all its multipliers. The interval is ``paired_difference_interval``
    on the per-task differences, whose lattice step is 1 over the least common
    multiple of the paired tasks' trial counts; with fewer than two tasks it is
    the whole [−1, 1].
    """
    _check_confidence(confidence)
    return paired_counts_comparison(per_task_counts(records_a, metric), per_task_counts(records_b, metric), metric,
                                    confidence)


def paired_counts_comparison(counts_a: Mapping[str, tuple[int, int]], counts_b: Mapping[str, tuple[int, int]],
                             metric: str = "pass_rate", confidence: float = 0.95) -> PairedComparison:
    """:func:`paired_comparison` of per-task (k, m) counts already grouped (:func:`task_counts`)."""
    _check_confidence(confidence)
    tasks = sorted(counts_a.keys() & counts_b.keys())
    unpaired = len(counts_a.keys() ^ counts_b.keys())
    n = len(tasks)
    if n == 0:
        return PairedComparison(metric, 0, 0.0, 0.0, 0.0, 0.0, -1.0, 1.0, confidence, 1.0, "none", unpaired)

    rates_a = [counts_a[t][0] / counts_a[t][1] for t in tasks]
    rates_b = [counts_b[t][0] / counts_b[t][1] for t in tasks]
    diffs = [b - a for a, b in zip(rates_a, rates_b)]
    mean_a, mean_b = sum(rates_a) / n, sum(rates_b) / n
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1)) if n > 1 else 0.0

    from scipy import stats

    trial_counts = [counts[t][1] for counts in (counts_a, counts_b) for t in tasks]
    low, high = paired_difference_interval(diffs, 1 / math.lcm(*trial_counts), confidence)
    if n < 2:
        pvalue = 1.0
    elif sd == 0.0:  # every task moved by exactly the same amount
        pvalue = 1.0 if mean == 0.0 else 0.0
    else:
        pvalue = _t_two_sided(abs(mean) / (sd / math.sqrt(n)), n - 1)

    method: Literal["paired-t", "mcnemar", "none"] = "paired-t"
    if all(counts_a[t][1] == 1 and counts_b[t][1] == 1 for t in tasks):
        method = "mcnemar"
        b_only = sum(d > 0 for d in diffs)  # B passed, A did not
        a_only = sum(d < 0 for d in diffs)
        discordant = a_only + b_only
        pvalue = float(stats.binomtest(b_only, discordant, 0.5).pvalue) if discordant else 1.0

    return PairedComparison(
        metric=metric,
        tasks=n,
        mean_a=mean_a,
        mean_b=mean_b,
        difference=mean,
        sd=sd,
        low=low,
        high=high,
        confidence=confidence,
        pvalue=min(1.0, pvalue),
        method=method,
        unpaired_tasks=unpaired,
    )


# --------------------------------------------------------------------------
# Numeric trial metrics (``record.metrics``: steps, tokens, trajectory match, ...)
# Only passed and failed trials count (outcomes.METRIC_OUTCOMES).


def per_task_metrics(records: Iterable[TrialRecord]) -> dict[str, dict[str, list[float]]]:
    """metric -> task_id -> its values over the task's passed/failed trials, in one pass over the records."""
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        if record.outcome in METRIC_OUTCOMES:
            for metric, value in record.metrics.items():
                if value is not None:
                    values[metric][record.task_id].append(float(value))
    return {metric: dict(by_task) for metric, by_task in values.items()}


def per_task_metric(records: Iterable[TrialRecord], metric: str) -> dict[str, list[float]]:
    """task_id -> the metric's values over the task's passed/failed trials that recorded it."""
    return per_task_metrics(records).get(metric, {})


@functools.lru_cache(maxsize=None)
def _t_quantile(confidence: float, df: int) -> float:
    """Two-sided t quantile (cached: the summary asks for the same few hundreds of times)."""
    from scipy import stats

    return float(stats.t.ppf(0.5 + confidence / 2.0, df))


def _t_interval(values: Sequence[float], confidence: float) -> tuple[float, float]:
    """mean ± t·s/√n, the t on n − 1 df; (−inf, inf) for fewer than two values."""
    n = len(values)
    if n < 2:
        return (-math.inf, math.inf)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = _t_quantile(confidence, n - 1) * sd / math.sqrt(n)
    return (mean - half, mean + half)


@dataclass(frozen=True)
class MetricMean:
    """A metric's mean over tasks (each task's trials averaged first) and its t interval over tasks.

    ``low``/``high`` are None with fewer than two tasks: nothing to say how far the mean may be off.
    """

    metric: str
    value: float
    low: float | None
    high: float | None
    tasks: int
    trials: int


def metric_mean(records: Iterable[TrialRecord], metric: str, confidence: float = 0.95,
                bounds: tuple[float, float] = (-math.inf, math.inf)) -> MetricMean:
    """One metric over a set of records (normally one model × multiplier cell), clustered by task."""
    return mean_over_tasks(metric, per_task_metric(records, metric), confidence, bounds)


def mean_over_tasks(metric: str, by_task: Mapping[str, Sequence[float]], confidence: float = 0.95,
                    bounds: tuple[float, float] = (-math.inf, math.inf)) -> MetricMean:
    """:func:`metric_mean` of values already grouped by task (``per_task_metrics``).

    The t interval is clipped to ``bounds``, the metric's range (no count or
    duration below 0, no score above 1). The mean cannot lie outside that
    range, so cutting the interval there loses no coverage. A transformed
    interval (log for costs, logit for scores) would respect the range too, but
    breaks on the zeros and ones these metrics often take (``tokens`` 0 for
    built-in models, a match score of exactly 1).
    """
    _check_confidence(confidence)
    task_means = [sum(v) / len(v) for v in by_task.values()]
    trials = sum(len(v) for v in by_task.values())
    if not task_means:
        return MetricMean(metric, 0.0, None, None, 0, 0)
    value = sum(task_means) / len(task_means)
    if len(task_means) < 2:
        return MetricMean(metric, value, None, None, 1, trials)
    low, high = _t_interval(task_means, confidence)
    return MetricMean(metric, value, max(low, bounds[0]), min(high, bounds[1]), len(task_means), trials)


def paired_metric_comparison(records_a: Iterable[TrialRecord], records_b: Iterable[TrialRecord], metric: str,
                             confidence: float = 0.95) -> PairedComparison:
    """Model B − model A on a numeric metric, paired by task (B − A), in the metric's own units.

    Each task's trials are averaged per model; the paired t test and interval
    run over the per-task differences. Unlike pass rates these values lie on no
    lattice, so the plain t interval is used (it has zero width when every task
    moved by exactly the same amount, as deterministic models do). Fewer than
    two tasks: the interval is (−inf, inf) and p = 1.
    """
    return paired_tasks_comparison(metric, per_task_metric(records_a, metric), per_task_metric(records_b, metric),
                                   confidence)


def paired_tasks_comparison(metric: str, values_a: Mapping[str, Sequence[float]],
                            values_b: Mapping[str, Sequence[float]], confidence: float = 0.95) -> PairedComparison:
    """:func:`paired_metric_comparison` of values already grouped by task (``per_task_metrics``)."""
    return paired_means_comparison(metric, task_means(values_a), task_means(values_b), confidence)


def task_means(values: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """task_id -> the mean of its values (tasks without values are left out)."""
    return {task: sum(v) / len(v) for task, v in values.items() if v}


def paired_means_comparison(metric: str, means_a: Mapping[str, float], means_b: Mapping[str, float],
                            confidence: float = 0.95) -> PairedComparison:
    """:func:`paired_metric_comparison` of per-task means (:func:`task_means`): the summary computes each
    cell's means once and pairs them with every other model's."""
    _check_confidence(confidence)
    tasks = sorted(means_a.keys() & means_b.keys())
    unpaired = len(means_a.keys() ^ means_b.keys())
    n = len(tasks)
    if n == 0:
        return PairedComparison(metric, 0, 0.0, 0.0, 0.0, 0.0, -math.inf, math.inf, confidence, 1.0, "none", unpaired)
    side_a = [means_a[t] for t in tasks]
    side_b = [means_b[t] for t in tasks]
    diffs = [b - a for a, b in zip(side_a, side_b)]
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1)) if n > 1 else 0.0
    low, high = _t_interval(diffs, confidence)
    if n < 2:
        pvalue = 1.0
    elif sd == 0.0:
        pvalue = 1.0 if mean == 0.0 else 0.0
    else:
        pvalue = _t_two_sided(abs(mean) / (sd / math.sqrt(n)), n - 1)
    return PairedComparison(metric, n, sum(side_a) / n, sum(side_b) / n, mean, sd, low, high, confidence,
                            min(1.0, pvalue), "paired-t", unpaired)


def _t_two_sided(t: float, df: int) -> float:
    """Two-sided p of a t statistic: 2·P(T > |t|), T on ``df`` degrees of freedom.

    ``scipy.special.stdtr`` is what ``scipy.stats.t.sf`` computes (sf(x) = stdtr(df, −x)), without
    the distribution object's argument checks, which cost ~100 times more than the value (the summary
    asks for hundreds).
    """
    from scipy.special import stdtr

    return float(2.0 * stdtr(df, -abs(t)))


# --------------------------------------------------------------------------
# Many comparisons, verdicts, power


def benjamini_hochberg(pvalues: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg adjusted p-values (step-up FDR), in the input order.

    adjusted p_(i) = min over j ≥ i of (m / j) · p_(j), capped at 1, where
    p_(1) ≤ … ≤ p_(m). Matches ``scipy.stats.false_discovery_control``.
    """
    m = len(pvalues)
    for p in pvalues:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p-values must be in [0, 1], got {p}")
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, pvalues[i] * m / rank)
        adjusted[i] = running
    return adjusted


def format_p(p: float) -> str:
    """Two significant figures ("0.40", "0.0044", "1.0"); below 0.0001 as "<0.0001"."""
    if p < 0.0001:
        return "<0.0001"
    return f"{p:#.2g}"


def verdict(p_adjusted: float, difference_points: float | None, alpha: float = 0.05) -> str:
    """Verdict in words: 'within noise (p=0.40)' or 'differs: +6.0 pts (p=0.0044)'.

    ``difference_points`` None (a trend test has no single difference) gives 'differs (p=...)'.
    """
    shown = format_p(p_adjusted)
    p_text = f"p{shown}" if shown.startswith("<") else f"p={shown}"
    if p_adjusted < alpha:
        size = "" if difference_points is None else f": {difference_points:+.1f} pts"
        return f"differs{size} ({p_text})"
    return f"within noise ({p_text})"


def fallback_difference_sd(samples: int = 1, baseline_rate: float = 0.5) -> float:
    """SD of a per-task difference when no data is at hand: √(2·p(1−p)/samples).

    That is the SD of the difference of two independent per-task means of
    ``samples`` Bernoulli(p) trials. p = 0.5 is the worst case; it ignores
    task-by-model interaction (which adds variance) and spread in difficulty
    (which, at fixed mean, removes some).
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if not 0.0 <= baseline_rate <= 1.0:
        raise ValueError(f"baseline_rate must be in [0, 1], got {baseline_rate}")
    return math.sqrt(2.0 * baseline_rate * (1.0 - baseline_rate) / samples)


def minimum_detectable_difference(
    tasks: int,
    sd: float | None = None,
    *,
    samples: int = 1,
    baseline_rate: float = 0.5,
    alpha: float = 0.05,
    power: float = 0.8,
) -> float:
    """Smallest paired-by-task difference (fraction) detectable at ``power``.

    Normal approximation: MDD = (z_{1−α/2} + z_{power}) · sd / √tasks, with sd
    the SD of per-task differences (``PairedComparison.sd``) or, when unknown,
    ``fallback_difference_sd(samples, baseline_rate)``. Capped at 1.0 (the whole
    range), which is also the answer for fewer than two tasks.
    """
    if sd is None:
        sd = fallback_difference_sd(samples, baseline_rate)
    if sd < 0:
        raise ValueError(f"sd must be >= 0, got {sd}")
    if tasks < 2:
        return 1.0
    from statistics import NormalDist

    z_power = NormalDist().inv_cdf(power)
    return min(1.0, (_z(1.0 - alpha) + z_power) * sd / math.sqrt(tasks))
