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

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pytest_harnessbench.stats import Record, metric_rate, paired_comparison

#: metric -> True when higher is better
METRIC_DIRECTION: dict[str, bool] = {"pass_rate": True, "score": True, "infra_rate": False}

_MARGIN_RE = re.compile(r"^(?P<metric>[a-z_]+):(?P<number>\d+(?:\.\d*)?|\.\d+)(?P<unit>pts?|%)$")
_ACCEPTED = (
    "expected METRIC:NUMBERpt (or NUMBER%, both meaning percentage points), "
    f"METRIC one of {', '.join(METRIC_DIRECTION)}, e.g. pass_rate:3pt,infra_rate:2pt"
)


@dataclass(frozen=True)
class Margin:
    """How much worse the candidate may be on ``metric``, in percentage points."""

    metric: str
    points: float

    @property
    def fraction(self) -> float:
        return self.points / 100.0

    @property
    def higher_is_better(self) -> bool:
        return METRIC_DIRECTION[self.metric]

    def __str__(self) -> str:
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
        if metric not in METRIC_DIRECTION:
            raise ValueError(f"bad gate margin {piece!r}: unknown metric {metric!r}; {_ACCEPTED}")
        if any(m.metric == metric for m in margins):
            raise ValueError(f"bad gate margin {piece!r}: metric {metric!r} given twice; {_ACCEPTED}")
        points = float(match["number"])
        if points > 100:
            raise ValueError(f"bad gate margin {piece!r}: more than 100 points; {_ACCEPTED}")
        margins.append(Margin(metric=metric, points=points))
    return margins


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
        margin = f"margin {'-' if self.margin.higher_is_better else '+'}{self.margin.points:g} pts"
        if self.not_compared:
            return f"{self.metric} {self.status}: {who}{self.not_compared}; {margin} (nothing to compare: blocks)"
        text = (
            f"{self.metric} {self.status}: {who}{100 * self.candidate:.1f}% vs {100 * self.baseline:.1f}%, "
            f"{100 * self.difference:+.1f} pts ({level}% CI {100 * self.low:+.1f} to {100 * self.high:+.1f}, "
            f"{self.tasks} tasks), {margin}"
        )
        if self.status == "inconclusive" and self.strict:
            text += " (strict: blocks)"
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
            "tasks": self.tasks,
            "candidate_model": self.candidate_model,
            "baseline_model": self.baseline_model,
            "not_compared": self.not_compared,
            "message": self.message,
        }


def _models(records: Sequence[Record]) -> str:
    return ",".join(sorted({str(r.get("model", "")) for r in records} - {""}))


def _own_rate(side: str, records: Sequence[Record], metric: str) -> tuple[str, float | None]:
    """One side's rate over its own valid trials, in words and as a fraction (None without a valid trial)."""
    rate = metric_rate(records, metric)
    if rate.n:
        return f"{side} {100 * rate.value:.1f}% ({rate.k}/{rate.n})", rate.value
    if not records:
        return f"{side} has no trial", None
    infra = sum(r["outcome"] == "infra" for r in records)
    return f"{side} has no valid trial ({infra}/{len(records)} infra)", None


def _not_compared(
    baseline_records: Sequence[Record], candidate_records: Sequence[Record], metric: str
) -> tuple[str, float | None, float | None]:
    """Why no task could be paired, in words (a side without a valid trial first); each side's own rate."""
    candidate_words, candidate = _own_rate("candidate", candidate_records, metric)
    baseline_words, baseline = _own_rate("baseline", baseline_records, metric)
    if candidate is None:
        return f"{candidate_words}, {baseline_words}", candidate, baseline
    if baseline is None:
        return f"{baseline_words}, {candidate_words}", candidate, baseline
    return f"no task has valid trials on both sides: {candidate_words}, {baseline_words}", candidate, baseline


def classify(low: float, high: float, margin: Margin) -> Status:
    """pass / fail / inconclusive for an interval of candidate − baseline."""
    if margin.higher_is_better:
        if low >= -margin.fraction:
            return "pass"
        if high < -margin.fraction:
            return "fail"
    else:
        if high <= margin.fraction:
            return "pass"
        if low > margin.fraction:
            return "fail"
    return "inconclusive"


def decide(
    baseline_records: Iterable[Record],
    candidate_records: Iterable[Record],
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
    comparison = paired_comparison(baseline_records, candidate_records, margin.metric, 1 - alpha)
    not_compared, candidate, baseline = "", comparison.mean_b, comparison.mean_a
    if comparison.tasks == 0:
        not_compared, candidate, baseline = _not_compared(baseline_records, candidate_records, margin.metric)
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
    baseline_records: Iterable[Record],
    candidate_records: Iterable[Record],
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


def verdicts_to_json(verdicts: Sequence[GateVerdict]) -> dict[str, Any]:
    """A json.dumps-able dict: overall status, whether it blocks, and each verdict."""
    return {
        "status": overall_status(verdicts),
        "blocks": gate_blocks(verdicts),
        "verdicts": [v.to_dict() for v in verdicts],
    }


def evaluate(
    records: Sequence[Record],
    baseline_model: str,
    margins: Sequence[Margin],
    *,
    multipliers: Sequence[str],
    alpha: float = 0.05,
    strict: bool = False,
    baseline_records: Sequence[Record] | None = None,
) -> list[tuple[str, GateVerdict]]:
    """(multiplier, verdict) for every candidate model × multiplier × margin against the baseline model.

    ``baseline_records`` (from an earlier run, ``--hb-compare``) replaces this
    run's baseline records; tasks are matched by ``task_id`` either way.
    """
    baseline_pool = [r for r in (records if baseline_records is None else baseline_records)
                     if r["model"] == baseline_model]
    candidates = list(dict.fromkeys(r["model"] for r in records
                                    if baseline_records is not None or r["model"] != baseline_model))
    verdicts = []
    for mult in multipliers:
        base = [r for r in baseline_pool if r["multiplier"] == mult]
        for model in candidates:
            cand = [r for r in records if r["model"] == model and r["multiplier"] == mult]
            if base and cand:
                verdicts += [(mult, v) for v in decide_all(base, cand, margins, alpha, strict)]
    return verdicts
