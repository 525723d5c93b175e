"""The resource band: which kill threshold to run at, from a sweep of multipliers.

The study this plugin follows ends with one recommendation: give each task a
guarantee (its spec) and a separate kill threshold (spec × m), with m the
smallest ceiling at which infra errors fall significantly below strict 1x while
the score stays within noise of the 1x floor. Pure functions over records:

- ``recommend`` per model: for each multiplier above 1x, in order, an exact
  test of the infra rate vs 1x and one of the pass rate excluding infra vs 1x,
  every p-value of the model adjusted together by Benjamini–Hochberg. The score
  compared is the pass rate *excluding infra*: a ceiling that only stops the
  environment from killing trials leaves it unchanged, one that lets the model
  solve what it could not (the study's regime above 3x) moves it. Passed/all
  would count every rescued trial as a score change and could never be "within
  noise" when the rescue is the point.
- ``headroom`` per task × model: from each trial's kernel peak memory, the
  multiple of the spec that would have kept 95% / 99% of trials under the
  limit. A trial the kernel OOM-killed is left out: its recorded peak is the
  limit it hit, not what it needed.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from . import stats

if TYPE_CHECKING:
    from .records import TrialRecord
FLOOR = "1x"
QUANTILES = (0.95, 0.99)


@dataclass(frozen=True)
class Test:
    """One multiplier vs 1x on one metric: counts, difference (fraction, m − 1x), raw and BH-adjusted p."""

    metric: str
    multiplier: str
    floor: tuple[int, int]
    other: tuple[int, int]
    difference: float
    p: float
    p_adjusted: float


@dataclass(frozen=True)
class Recommendation:
    """``multiplier`` is the recommended ceiling, or None when the sweep cannot decide (``reason`` says why)."""

    model: str
    multiplier: str | None
    status: str  # "recommended" | "no_headroom_needed" | "cannot_decide" | "no_band"
    reason: str
    tests: tuple[Test, ...] = ()
    samples_needed: int | None = None


@dataclass(frozen=True)
class Headroom:
    """Peak memory of one task × model as multiples of the task's memory spec (its guarantee)."""

    task_id: str
    model: str
    spec_bytes: int
    trials: int  # trials with a measured peak that were not OOM-killed
    killed: int  # OOM-killed trials, left out (their peak is the limit they hit)
    median: float
    needed: dict[str, float] = field(default_factory=dict)  # "95%" -> multiple of the spec

    @property
    def under_specified(self) -> bool:
        """The spec is below the median peak: this task declares too little memory."""
        return self.median > 1.0


def _counts(records: Sequence[TrialRecord], metric: str) -> tuple[int, int]:
    rate = stats.metric_rate(records, metric)
    return rate.k, rate.n


def samples_needed(p_floor: float, p_other: float, tasks: int, tests: int = 1, alpha: float = 0.05,
                   power: float = 0.8) -> int | None:
    """Samples per task that would tell p_floor from p_other; None when they are equal.

    Starts from the normal approximation for a two-sided two-proportion test at
    ``power`` (n per arm = (z_α/2·√(2·p̄q̄) + z_β·√(p1q1 + p2q2))² / (p1 − p2)²),
    which is far too optimistic at rates near 0 or 1, then raises it until the
    exact test on the expected counts is significant even after multiplying by
    ``tests`` (Bonferroni, a bound on Benjamini–Hochberg's adjustment).
    """
    if p_floor == p_other or tasks < 1:
        return None
    from statistics import NormalDist

    z_a, z_b = NormalDist().inv_cdf(1 - alpha / 2), NormalDist().inv_cdf(power)
    mean = (p_floor + p_other) / 2
    root = z_a * math.sqrt(2 * mean * (1 - mean)) + z_b * math.sqrt(p_floor * (1 - p_floor) + p_other * (1 - p_other))
    samples = max(1, math.ceil(root * root / (p_floor - p_other) ** 2 / tasks))
    while samples < 1000:
        n = samples * tasks
        test = stats.compare_proportions(round(p_floor * n), n, round(p_other * n), n)
        if test.pvalue * tests < alpha:
            break
        samples += 1
    return samples


def recommend(records: Sequence[TrialRecord], model: str, alpha: float = 0.05) -> Recommendation:
    """The smallest ceiling for one model (see the module docstring); records of that model, last attempts."""
    cells: dict[str, list[TrialRecord]] = defaultdict(list)
    for r in records:
        if r.model == model:
            cells[r.multiplier].append(r)
    rank = stats.multiplier_key(r for cell in cells.values() for r in cell)
    higher = sorted((m for m in cells if m != FLOOR), key=rank)
    if FLOOR not in cells or not higher:
        return Recommendation(model, None, "cannot_decide",
                              f"needs trials at {FLOOR} and at least one higher multiplier (has: "
                              f"{', '.join(sorted(cells, key=rank)) or 'none'})")
    floor = cells[FLOOR]
    infra_floor = _counts(floor, "infra_rate")
    if infra_floor[0] == 0:
        high = stats.make_rate(0, infra_floor[1]).high
        return Recommendation(model, FLOOR, "no_headroom_needed",
                              f"no infra error at {FLOOR} (0/{infra_floor[1]}; ≤ {100 * high:.1f}% at 95%): "
                              "no headroom needed")
    raw = []
    for mult in higher:
        for metric in ("infra_rate", "pass_rate"):
            a, b = _counts(floor, metric), _counts(cells[mult], metric)
            test = stats.compare_proportions(a[0], a[1], b[0], b[1])
            raw.append((metric, mult, a, b, test.difference, test.pvalue))
    adjusted = stats.benjamini_hochberg([p for *_, p in raw])
    tests = tuple(Test(metric, mult, a, b, diff, p, adj) for (metric, mult, a, b, diff, p), adj in zip(raw, adjusted))
    by = {(t.metric, t.multiplier): t for t in tests}
    infra_falls = [m for m in higher if by["infra_rate", m].difference < 0 and by["infra_rate", m].p_adjusted < alpha]
    for mult in infra_falls:
        score = by["pass_rate", mult]
        if score.p_adjusted >= alpha:
            note = "" if score.floor[1] else f" (every {FLOOR} trial was infra: nothing to differ from)"
            return Recommendation(model, mult, "recommended",
                                  f"infra falls {_pct(by['infra_rate', mult])} ({_p(by['infra_rate', mult])}); "
                                  f"pass rate excl. infra within noise, {_pct(score)} ({_p(score)}){note}", tests)
    if infra_falls:
        return Recommendation(model, None, "no_band",
                              f"infra errors fall only where the score moves too ({', '.join(infra_falls)}): "
                              "the extra headroom changes what is measured; report the multiplier you run at", tests)
    best = min(higher, key=lambda m: by["infra_rate", m].difference)
    test = by["infra_rate", best]
    if test.difference >= 0:
        return Recommendation(model, None, "no_band",
                              f"infra errors do not fall with headroom ({_pct(test)} at {best}): they are not "
                              "caused by the limits, and no ceiling removes them", tests)
    tasks = len({r.task_id for r in floor})
    needed = samples_needed(test.floor[0] / test.floor[1], test.other[0] / test.other[1], tasks, len(tests), alpha)
    return Recommendation(model, None, "cannot_decide",
                          f"too few trials: infra {_pct(test)} is not significant ({_p(test)}); "
                          f"about {needed} samples per task ({tasks} task(s)) would show a difference this large", tests, needed)


def _pct(test: Test) -> str:
    """``5.8% at 1x → 2.1% at 3x`` ("-" without trials)."""
    def one(k: int, n: int) -> str:
        return f"{100 * k / n:.1f}%" if n else "-"
    return f"{one(*test.floor)} at {FLOOR} → {one(*test.other)} at {test.multiplier}"


def _p(test: Test) -> str:
    shown = stats.format_p(test.p_adjusted)
    return f"p_adj{shown}" if shown.startswith("<") else f"p_adj={shown}"


def headroom(records: Sequence[TrialRecord]) -> list[Headroom]:
    """Per task × model, sorted: peak/spec quantiles from trials with a measured peak that were not OOM-killed."""
    cells: dict[tuple[str, str], list[TrialRecord]] = defaultdict(list)
    for r in records:
        cells[(r.task_id, r.model)].append(r)
    out = []
    for (task, model), rs in sorted(cells.items()):
        spec = rs[0].memory_spec_bytes
        if not spec:
            continue
        killed = sum(bool(r.oom_kills) for r in rs)
        ratios = sorted(r.peak_memory_bytes / spec for r in rs if r.peak_memory_bytes and not r.oom_kills)
        if not ratios:
            continue
        # The smallest multiple that keeps a share q of trials under it: the ceil(q·n)-th smallest ratio.
        needed = {f"{round(100 * q)}%": ratios[max(0, math.ceil(q * len(ratios)) - 1)] for q in QUANTILES}
        out.append(Headroom(task, model, spec, len(ratios), killed, statistics.median(ratios), needed))
    return out


def calibrate(records: Sequence[TrialRecord], models: Sequence[str] = (), alpha: float = 0.05) -> dict:
    """Everything ``calibration.json`` holds: per-model recommendations, headroom per task × model."""
    seen = {r.model for r in records}
    present = list(dict.fromkeys([m for m in models if m in seen] + sorted(seen)))
    recommendations = [recommend(records, model, alpha) for model in present]
    rooms = headroom(records)
    return {
        "alpha": alpha,
        "score_metric": "pass_rate",
        "recommendations": [asdict(r) for r in recommendations],
        "headroom": [{**asdict(h), "under_specified": h.under_specified} for h in rooms],
    }


def lines(document: Mapping, verbose: bool = False, width: int = 100) -> list[str]:
    """The terminal block, wrapped to ``width``: one entry per model with its p-values, then the tasks
    whose memory spec is below their median peak (every task's headroom with ``verbose``)."""
    import textwrap

    out = ["calibration: smallest kill threshold whose infra rate is significantly below 1x while the pass "
           "rate excl. infra stays within noise (exact tests; p adjusted by Benjamini–Hochberg)"]
    for rec in document["recommendations"]:
        head = rec["multiplier"] or rec["status"].replace("_", " ")
        out.append(f"  {rec['model']}: {head} — {rec['reason']}")
        if rec["tests"] and (verbose or rec["status"] != "no_headroom_needed"):
            out.append("    p raw → adjusted: " + ", ".join(
                f"{t['metric'].replace('_rate', '')}@{t['multiplier']} {stats.format_p(t['p'])} → "
                f"{stats.format_p(t['p_adjusted'])}" for t in rec["tests"]))
    rooms = [h for h in document["headroom"] if verbose or h["under_specified"]]
    if rooms:
        out.append("  memory headroom, × spec: median peak, then the limit keeping 95% / 99% of trials under it"
                   + ("" if verbose else "; tasks whose spec is below their median peak:"))
        names = [f"{h['task_id'].rsplit('::', 1)[-1]} [{h['model']}]" for h in rooms]
        width_ = max(map(len, names))
        for name, h in zip(names, rooms):
            killed = f" (+{h['killed']} OOM-killed, left out)" if h["killed"] else ""
            out.append(f"    {name.ljust(width_)}  {h['median']:5.2f}×  {h['needed']['95%']:5.2f}×  "
                       f"{h['needed']['99%']:5.2f}×  {h['trials']} trials{killed}")
    wrapped = []
    for line in out:
        indent = " " * (len(line) - len(line.lstrip()) + 2)
        wrapped += textwrap.wrap(line, width, subsequent_indent=indent, break_on_hyphens=False)
    return wrapped
