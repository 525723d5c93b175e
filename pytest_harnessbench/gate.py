"""CI gate: is the candidate no worse than the baseline, beyond a margin?

Pure functions (no pytest). For each margin, the candidate − baseline
difference of a metric is estimated paired by task
(``stats.paired_comparison``) with a two-sided 1 − α interval over tasks (the
paired t interval, widened where it would collapse to zero width:
``stats.paired_difference_interval``), and compared with the margin
(non-inferiority):

- higher-is-better metric (pass_rate, score):
  pass if low ≥ −margin, fail if high < −margin, else inconclusive;
- lower-is-better metric (infra_rate): the mirror image,
  pass if high ≤ +margin, fail if low > +margin, else inconclusive.

A trial metric (``record.metrics``: steps, tokens, trajectory_match, ...)
is gated the same way, its margin in the metric's own units (``steps:+2``:
at most two more steps a task), the difference from
``stats.paired_metric_comparison`` (the paired t interval over tasks; passed
and failed trials only). Costs (steps, tool calls, tokens, time) are
lower-is-better, scores higher-is-better (``metrics.higher_is_better``).

Because the interval is two-sided at 1 − α, each one-sided call ("pass" or
"fail") is wrong at most α/2 of the time when its premise is false (about:
the interval is approximate; benchmarks/gate_false_pass.py measures it).
``strict`` makes an inconclusive verdict block the gate (``blocks``) without
relabelling it. With no task to pair (say every candidate trial was infra and
the metric is pass_rate, which leaves infra out) the verdict is inconclusive,
says why in words, and blocks whatever ``strict`` says: nothing was compared,
so nothing may pass.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pytest_harnessbench import metrics
from pytest_harnessbench.outcomes import INFRA
from pytest_harnessbench.stats import metric_rate, paired_comparison, paired_metric_comparison, per_task_metric

if TYPE_CHECKING:
    from pytest_harnessbench.records import TrialRecord

#: rate -> True when higher is better; any other name is a trial metric (metrics.higher_is_better)
METRIC_DIRECTION: dict[str, bool] = {"pass_rate": True, "score": True, "infra_rate": False}

_MARGIN_RE = re.compile(r"^(?P<metric>[a-z_]+):(?P<sign>[+-]?)(?P<number>\d+(?:\.\d*)?|\.\d+)(?P<unit>pts?|%)?$")
_ACCEPTED = (
    "expected RATE:NUMBERpt (or NUMBER%, both meaning percentage points), "
    f"RATE one of {', '.join(METRIC_DIRECTION)}, e.g. pass_rate:3pt,infra_rate:2pt; or a trial metric in its "
    "own units, + for a cost (steps, tool_calls, failed_tool_calls, tokens, wall_s), - for a score: "
    "steps:+2,trajectory_match:-0.1"
)


@dataclass(frozen=True)
class Margin:
    """How much worse the candidate may be on ``metric``: percentage points, or the metric's units if ``absolute``."""

    metric: str
    points: float
    absolute: bool = False

    @property
    def threshold(self) -> float:
        """The margin on the scale the difference is measured in (a fraction for rates)."""
        return self.points if self.absolute else self.points / 100.0

    @property
    def higher_is_better(self) -> bool:
        return METRIC_DIRECTION[self.metric] if not self.absolute else metrics.higher_is_better(self.metric)

    def __str__(self) -> str:
        if self.absolute:
            return f"{self.metric}:{'-' if self.higher_is_better else '+'}{self.points:g}"
        return f"{self.metric}:{self.points:g}pt"


def parse_margins(text: str) -> list[Margin]:
    """Parse "pass_rate:3pt,infra_rate:2pt" (like pytest-benchmark's --benchmark-compare-fail).

    Raises ValueError with a one-line message naming the bad piece.
    """
    pieces = [piece.strip() for piece in str(text).split(",")]
    if pieces == [""]:
        raise ValueError(f"empty gate margin: {_ACCEPTED}")
    margins: list[Margin] = []
    for piece in pieces:
        match = _MARGIN_RE.match(piece.replace(" ", "").lower())
        if match is None:
            raise ValueError(f"bad gate margin {piece!r}: {_ACCEPTED}")
        metric = match["metric"]
        if any(m.metric == metric for m in margins):
            raise ValueError(f"bad gate margin {piece!r}: metric {metric!r} given twice; {_ACCEPTED}")
        margins.append(_rate_margin(piece, match) if metric in METRIC_DIRECTION else _metric_margin(piece, match))
    return margins


def _rate_margin(piece: str, match: re.Match) -> Margin:
    if match["sign"] or not match["unit"]:
        raise ValueError(f"bad gate margin {piece!r}: a rate's margin is points, e.g. {match['metric']}:3pt; "
                         f"{_ACCEPTED}")
    points = float(match["number"])
    if points > 100:
        raise ValueError(f"bad gate margin {piece!r}: more than 100 points; {_ACCEPTED}")
    return Margin(metric=match["metric"], points=points)


def _metric_margin(piece: str, match: re.Match) -> Margin:
    metric = match["metric"]
    if match["unit"]:
        raise ValueError(f"bad gate margin {piece!r}: {metric!r} is no rate ({', '.join(METRIC_DIRECTION)}); "
                         f"a trial metric's margin is in its own units, no pt or %; {_ACCEPTED}")
    worse = "+" if not metrics.higher_is_better(metric) else "-"
    if match["sign"] and match["sign"] != worse:
        raise ValueError(f"bad gate margin {piece!r}: {metric} gets worse with {worse}, so its margin is "
                         f"{metric}:{worse}{match['number']}; {_ACCEPTED}")
    return Margin(metric=metric, points=float(match["number"]), absolute=True)


Status = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class GateVerdict:
    """One metric's verdict. Rates and differences are fractions (0..1).

    ``baseline``/``candidate`` are the means of per-task rates over the paired
    tasks, so ``difference`` = candidate − baseline exactly; (low, high) is its
    two-sided (1 − alpha) interval. With no paired task, ``not_compared`` says
    why in words, each side's rate is over its own valid trials (None without
    any) and ``difference`` is None.
    """

    metric: str
    candidate: float | None
    baseline: float | None
    difference: float | None
    low: float
    high: float
    margin: Margin
    status: Status
    tasks: int
    alpha: float
    strict: bool = False
    candidate_model: str = ""
    baseline_model: str = ""
    not_compared: str = ""

    @property
    def blocks(self) -> bool:
        """Does this verdict fail the gate? (fail; inconclusive under strict or with nothing compared)."""
        return self.status == "fail" or (self.status == "inconclusive" and (self.strict or bool(self.not_compared)))

    @property
    def message(self) -> str:
        level = round(100 * (1 - self.alpha))
        who = ""
        if self.candidate_model or self.baseline_model:
            who = f"{self.candidate_model or 'candidate'} vs {self.baseline_model or 'baseline'}: "
        margin = f"margin {'-' if self.margin.higher_is_better else '+'}{self.margin.points:g}"
        margin += "" if self.margin.absolute else " pts"
        if self.not_compared:
            return f"{self.metric} {self.status}: {who}{self.not_compared}; {margin} (nothing to compare: blocks)"
        if self.margin.absolute:
            values = (f"{self.candidate:.2f} vs {self.baseline:.2f}, {self.difference:+.2f} "
                      f"({level}% CI {self.low:+.2f} to {self.high:+.2f}")
        else:
            values = (f"{100 * self.candidate:.1f}% vs {100 * self.baseline:.1f}%, {100 * self.difference:+.1f} pts "
                      f"({level}% CI {100 * self.low:+.1f} to {100 * self.high:+.1f}")
        text = f"{self.metric} {self.status}: {who}{values}, {self.tasks} tasks), {margin}"
        if self.status == "inconclusive":
            text += " (a regression beyond the margin was NOT ruled out" + ("; blocks)" if self.strict else ")")
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "status": self.status,
            "blocks": self.blocks,
            "candidate": self.candidate,
            "baseline": self.baseline,
            "difference": self.difference,
            "low": self.low,
            "high": self.high,
            "confidence": 1 - self.alpha,
            "margin_points": self.margin.points,
            "margin_units": "metric" if self.margin.absolute else "points",
            "tasks": self.tasks,
            "candidate_model": self.candidate_model,
            "baseline_model": self.baseline_model,
            "not_compared": self.not_compared,
            "message": self.message,
        }


def _models(records: Sequence[TrialRecord]) -> str:
    return ",".join(sorted({r.model for r in records} - {""}))


def _own_rate(side: str, records: Sequence[TrialRecord], metric: str) -> tuple[str, float | None]:
    """One side's rate over its own valid trials, in words and as a fraction (None without a valid trial)."""
    rate = metric_rate(records, metric)
    if rate.n:
        return f"{side} {100 * rate.value:.1f}% ({rate.k}/{rate.n})", rate.value
    if not records:
        return f"{side} has no trial", None
    infra = sum(r.outcome == INFRA for r in records)
    return f"{side} has no valid trial ({infra}/{len(records)} infra)", None


def _own_mean(side: str, records: Sequence[TrialRecord], metric: str) -> tuple[str, float | None]:
    """One side's mean of a trial metric over its trials that recorded it, in words and as a number."""
    values = [v for task_values in per_task_metric(records, metric).values() for v in task_values]
    if not values:
        return f"{side} has no passed or failed trial with metric {metric}", None
    return f"{side} {sum(values) / len(values):.2f} (mean of {len(values)})", sum(values) / len(values)


def _not_compared(
    baseline_records: Sequence[TrialRecord], candidate_records: Sequence[TrialRecord], margin: Margin
) -> tuple[str, float | None, float | None]:
    """Why no task could be paired, in words (a side without a valid trial first); each side's own rate."""
    own = _own_mean if margin.absolute else _own_rate
    candidate_words, candidate = own("candidate", candidate_records, margin.metric)
    baseline_words, baseline = own("baseline", baseline_records, margin.metric)
    if candidate is None:
        return f"{candidate_words}, {baseline_words}", candidate, baseline
    if baseline is None:
        return f"{baseline_words}, {candidate_words}", candidate, baseline
    return f"no task has valid trials on both sides: {candidate_words}, {baseline_words}", candidate, baseline


def classify(low: float, high: float, margin: Margin) -> Status:
    """pass / fail / inconclusive for an interval of candidate − baseline."""
    if margin.higher_is_better:
        if low >= -margin.threshold:
            return "pass"
        if high < -margin.threshold:
            return "fail"
    else:
        if high <= margin.threshold:
            return "pass"
        if low > margin.threshold:
            return "fail"
    return "inconclusive"


def decide(
    baseline_records: Iterable[TrialRecord],
    candidate_records: Iterable[TrialRecord],
    margin: Margin,
    alpha: float = 0.05,
    strict: bool = False,
) -> GateVerdict:
    """Gate one metric: candidate − baseline, paired by task, against ``margin``.

    Pass the records of one multiplier (otherwise each task's rate pools its
    multipliers). Just one paired task is inconclusive; none at all is
    inconclusive and blocks, with the reason in ``not_compared``.
    """
    baseline_records = list(baseline_records)
    candidate_records = list(candidate_records)
    compare = paired_metric_comparison if margin.absolute else paired_comparison
    comparison = compare(baseline_records, candidate_records, margin.metric, 1 - alpha)
    not_compared, candidate, baseline = "", comparison.mean_b, comparison.mean_a
    if comparison.tasks == 0:
        not_compared, candidate, baseline = _not_compared(baseline_records, candidate_records, margin)
    return GateVerdict(
        metric=margin.metric,
        candidate=candidate,
        baseline=baseline,
        difference=comparison.difference if comparison.tasks else None,
        low=comparison.low,
        high=comparison.high,
        margin=margin,
        status=classify(comparison.low, comparison.high, margin) if comparison.tasks >= 2 else "inconclusive",
        tasks=comparison.tasks,
        alpha=alpha,
        strict=strict,
        candidate_model=_models(candidate_records),
        baseline_model=_models(baseline_records),
        not_compared=not_compared,
    )


def decide_all(
    baseline_records: Iterable[TrialRecord],
    candidate_records: Iterable[TrialRecord],
    margins: Sequence[Margin],
    alpha: float = 0.05,
    strict: bool = False,
) -> list[GateVerdict]:
    baseline_records = list(baseline_records)
    candidate_records = list(candidate_records)
    return [decide(baseline_records, candidate_records, m, alpha, strict) for m in margins]


def overall_status(verdicts: Sequence[GateVerdict]) -> Status:
    """fail if any fails, else inconclusive if any is, else pass (pass for none)."""
    statuses = {v.status for v in verdicts}
    if "fail" in statuses:
        return "fail"
    if "inconclusive" in statuses:
        return "inconclusive"
    return "pass"


def gate_blocks(verdicts: Sequence[GateVerdict]) -> bool:
    """True when the gate should fail the session's exit status."""
    return any(v.blocks for v in verdicts)


#: The session's exit status when the gate blocks without a failed verdict (inconclusive under
#: --hb-gate-strict or in CI, or nothing compared): distinct from 1, a failed verdict (README).
INCONCLUSIVE_EXIT_STATUS = 6


def exit_status(verdicts: Sequence[GateVerdict]) -> int:
    """1 if a verdict fails, 6 if one blocks otherwise (inconclusive), else 0."""
    if any(v.status == "fail" for v in verdicts):
        return 1
    return INCONCLUSIVE_EXIT_STATUS if gate_blocks(verdicts) else 0


def verdicts_to_json(verdicts: Sequence[GateVerdict]) -> dict[str, Any]:
    """A json.dumps-able dict: overall status, whether it blocks, and each verdict."""
    return {
        "status": overall_status(verdicts),
        "blocks": gate_blocks(verdicts),
        "exit_status": exit_status(verdicts),
        "verdicts": [v.to_dict() for v in verdicts],
    }


def evaluate(
    records: Sequence[TrialRecord],
    baseline_model: str,
    margins: Sequence[Margin],
    *,
    multipliers: Sequence[str],
    alpha: float = 0.05,
    strict: bool = False,
    baseline_records: Sequence[TrialRecord] | None = None,
) -> list[tuple[str, GateVerdict]]:
    """(multiplier, verdict) for every candidate model × multiplier × margin against the baseline model.

    ``baseline_records`` (from an earlier run, ``--hb-compare``) replaces this
    run's baseline records; tasks are matched by ``task_id`` either way.
    """
    baseline_pool = [r for r in (records if baseline_records is None else baseline_records)
                     if r.model == baseline_model]
    candidates = list(dict.fromkeys(r.model for r in records
                                    if baseline_records is not None or r.model != baseline_model))
    verdicts = []
    for mult in multipliers:
        base = [r for r in baseline_pool if r.multiplier == mult]
        for model in candidates:
            cand = [r for r in records if r.model == model and r.multiplier == mult]
            if base and cand:
                verdicts += [(mult, v) for v in decide_all(base, cand, margins, alpha, strict)]
    return verdicts


# --- what a run can decide, before it starts -------------------------------------------------------------

#: Planning assumptions (README, "Statistics and the CI gate"): task pass probabilities spread uniformly over
#: 0.2-0.95 (a mixed suite), whose mean of p(1 - p) is this; and a candidate's effect varying from task to
#: task with this standard deviation (a fraction). benchmarks/gate_power.py simulates the gate under them.
PLAN_MEAN_P_Q = 0.1975
PLAN_EFFECT_SD = 0.10
PLAN_POWER = 0.80


@dataclass(frozen=True)
class GatePlan:
    """What a gate on ``tasks`` × ``samples`` can decide on a rate margin, before any trial runs.

    ``detectable`` is the smallest true regression (a fraction) it fails with probability ``power``;
    ``tasks_needed`` / ``samples_needed`` would let it fail a regression of twice the margin (None: no
    number of samples does, the task-to-task spread alone is too wide).
    """

    margin: Margin
    tasks: int
    samples: int
    detectable: float
    tasks_needed: int
    samples_needed: int | None
    alpha: float
    power: float = PLAN_POWER

    @property
    def line(self) -> str:
        points = 100 * self.detectable
        twice = 2 * self.margin.points
        if self.samples_needed is None:
            more = f"{self.tasks_needed} tasks × {self.samples} samples would"
        else:
            more = (f"{self.tasks_needed} tasks × {self.samples} samples or {self.tasks} tasks × "
                    f"{self.samples_needed} samples would")
        return (f"gate plan ({self.margin.metric}): {self.tasks} tasks × {self.samples} samples can fail a "
                f"regression of ≥ {points:.0f} pts at {100 * self.power:.0f}% power; the margin is "
                f"{self.margin.points:g} pts: expect INCONCLUSIVE for smaller ones ({more} fail ≥ {twice:g} pts)")

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.margin.metric, "margin_points": self.margin.points, "tasks": self.tasks,
                "samples": self.samples, "power": self.power, "alpha": self.alpha,
                "detectable_points": round(100 * self.detectable, 1),
                "for_twice_the_margin": {"tasks": self.tasks_needed, "samples": self.samples_needed},
                "assumptions": {"mean_p_times_1_minus_p": PLAN_MEAN_P_Q, "effect_sd_points": 100 * PLAN_EFFECT_SD},
                "line": self.line}


def _task_sd(samples: int) -> float:
    """SD of one task's difference of pass rates under the planning assumptions (both sides sampled)."""
    return math.sqrt(PLAN_EFFECT_SD ** 2 + 2 * PLAN_MEAN_P_Q / samples)


def _detectable(tasks: int, samples: int, margin: float, alpha: float, power: float) -> float:
    """margin + (t_{1-α/2, n-1} + z_power) · sd / √n: the fail verdict's power is ``power`` there.

    The gate fails when the interval's upper end lies below −margin; the mean difference is about normal
    with sd/√n, its upper end t·s/√n above it (s ≈ sd).
    """
    from statistics import NormalDist

    from .stats import _t_quantile

    if tasks < 2:
        return math.inf
    spread = _task_sd(samples) / math.sqrt(tasks)
    return margin + (_t_quantile(1 - alpha, tasks - 1) + NormalDist().inv_cdf(power)) * spread


def _fewest_tasks(enough: Callable[[int], bool], most: int = 10**6) -> int:
    """The smallest n ≥ 2 with ``enough(n)`` (``most`` if none up to it), for ``enough`` false then true as n grows.

    ``_detectable`` falls as tasks are added (both the t quantile and sd/√n do), so doubling finds a
    number of tasks that suffices and bisection the smallest one.
    """
    low, high = 1, 2  # enough(low) is false (one task decides nothing)
    while not enough(high):
        if high >= most:
            return most
        low, high = high, min(2 * high, most)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return high


def plan(margin: Margin, tasks: int, samples: int, alpha: float = 0.05, power: float = PLAN_POWER) -> GatePlan:
    """What the gate can decide on ``margin`` (a rate margin) with ``tasks`` × ``samples``."""
    threshold, target = margin.threshold, 2 * margin.threshold
    tasks_needed = _fewest_tasks(lambda n: _detectable(n, samples, threshold, alpha, power) <= target)
    samples_needed: int | None = samples
    while _detectable(tasks, samples_needed, threshold, alpha, power) > target:
        samples_needed += 1
        if samples_needed > 1000:
            samples_needed = None
            break
    return GatePlan(margin, tasks, samples, min(1.0, _detectable(tasks, samples, threshold, alpha, power)),
                    tasks_needed, samples_needed, alpha, power)
