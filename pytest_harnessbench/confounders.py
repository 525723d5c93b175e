"""Confounders: what a trial ran into besides its model, recorded per trial and tested at the end of the run.

The study behind the plugin names them: time of day ("pass rates fluctuate
with time of day, likely because API latency varies"), concurrency, host
health. Each trial records (``TrialRecord.confounders``): how many trials held
a guarantee on the host when it was admitted (the admission ledger), the host
and its 1-minute load average, and its provider's latency per model call
(median, p95, max). Its start time, provider retries and rate-limit wait
(``timing.rate_wait_s``) are elsewhere in the record.

The test (:func:`analyse`): does a trial's outcome (passed or not; error
trials left out) depend on a confounder *within* a stratum of the same model,
multiplier and task? The task belongs in the stratum because it is the
strongest confounder of all: tasks run in order, so without it an easy first
task would make "started early" look like a cause of passing. Each value is
split at its stratum's median (a host: the stratum's most common one vs the
rest) into a 2×2 table per stratum, and the Cochran–Mantel–Haenszel test
(with R's continuity correction, checked against R's ``mantelhaen.test``
example in tests) asks whether passing and the high half are associated
across strata. A stratum whose trials all pass, all fail, or all fall in one
half carries no information and drops out; with one trial per task and cell
(``--samples 1``) nothing is testable. P-values are Holm-adjusted over the
confounders tested.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from statistics import NormalDist
from typing import TYPE_CHECKING

from .outcomes import ERROR, PASSED

if TYPE_CHECKING:
    from .records import TrialRecord

ALPHA = 0.05
POWER = 0.8


# --------------------------------------------------------------------------- recorded per trial

def at_start(concurrency: int | None = None) -> dict:
    """When a trial is admitted: trials holding a guarantee on this host (itself included; None: no host
    admission, see Admission.admitted_with), host, load."""
    try:
        load = round(os.getloadavg()[0], 2)
    except OSError:
        load = None
    return {"concurrency": concurrency, "host": platform.node(), "load_1m": load}


def of_calls(trajectories: Iterable) -> dict:
    """Provider latency over a trial's model calls (failed attempts included): median, p95, max, in seconds."""
    latencies = sorted(s for t in trajectories for s in t.model_call_s)
    if not latencies:
        return {"model_call_latency_s": None}
    p95 = latencies[0] if len(latencies) == 1 else statistics.quantiles(latencies, n=20, method="inclusive")[18]
    return {"model_call_latency_s": {"median": round(statistics.median(latencies), 4), "p95": round(p95, 4),
                                     "max": latencies[-1], "calls": len(latencies)}}


# --------------------------------------------------------------------------- the test

def _started(r: TrialRecord) -> float | None:
    try:
        return datetime.fromisoformat(r.started_at).timestamp()
    except (TypeError, ValueError):
        return None


def _latency(r: TrialRecord) -> float | None:
    return ((r.confounders or {}).get("model_call_latency_s") or {}).get("median")


NAMES = ("start time", "concurrency at start", "host load (1 min)", "host", "provider latency (median per trial)",
         "provider retries", "rate-limit wait")
CATEGORICAL = frozenset({"host"})


def _values(r: TrialRecord) -> tuple:
    """A record's confounder values, in the order of :data:`NAMES` (None: not recorded)."""
    c = r.confounders or {}
    return (_started(r), c.get("concurrency"), c.get("load_1m"), c.get("host"), _latency(r),
            (r.usage or {}).get("provider_retries"), r.timing.rate_wait_s)


@dataclass(frozen=True)
class CMH:
    """A Cochran–Mantel–Haenszel test over 2×2 tables ``[[a, b], [c, d]]`` (one per stratum)."""

    statistic: float
    p: float
    odds_ratio: float | None  # the Mantel–Haenszel common odds ratio (None: undefined)


def cmh(tables: Sequence[Sequence[Sequence[int]]], correct: bool = True) -> CMH | None:
    """The test for 2×2×K tables, as R's ``mantelhaen.test`` (continuity correction ``min(0.5, |Σa − ΣE[a]|)``).

    Strata with fewer than two observations, or a margin of zero, carry no
    information (zero variance). None when no stratum carries any.
    """
    import numpy as np

    cells = np.array([[a, b, c, d] for (a, b), (c, d) in tables], float).reshape(-1, 4)
    return _cmh(*cells.T, correct=correct)


def _cmh(a, b, c, d, correct: bool = True) -> CMH | None:
    """:func:`cmh` over arrays of the strata's four cells."""
    n = a + b + c + d
    keep = n >= 2
    a, b, c, d, n = a[keep], b[keep], c[keep], d[keep], n[keep]
    delta = float((a - (a + b) * (a + c) / n).sum())
    variance = float(((a + b) * (c + d) * (a + c) * (b + d) / (n * n * (n - 1))).sum())
    if variance <= 0:
        return None
    correction = min(0.5, abs(delta)) if correct else 0.0
    statistic = (abs(delta) - correction) ** 2 / variance
    p = math.erfc(math.sqrt(statistic / 2))  # chi-square with 1 df
    or_num, or_den = float((a * d / n).sum()), float((b * c / n).sum())
    return CMH(statistic, p, None if or_den == 0 else or_num / or_den)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment (controls the family-wise error rate), in the input's order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class Finding:
    name: str
    test: CMH | None  # None: not testable (no stratum with variation)
    p_adjusted: float | None
    pass_high: tuple[int, int]  # (passed, trials) in the high halves
    pass_low: tuple[int, int]


def _columns(records: Sequence[TrialRecord]):
    """Arrays over the non-error trials: stratum (model × multiplier × task) index, passed, and one column of
    values per confounder (NaN: not recorded; a categorical one as codes); and the number of strata."""
    import numpy as np

    kept = [r for r in records if r.outcome != ERROR]
    ids: dict[tuple, int] = {}
    stratum = np.array([ids.setdefault((r.model, r.multiplier, r.task_id), len(ids)) for r in kept], int)
    passed = np.array([r.outcome == PASSED for r in kept], bool)
    rows = [_values(r) for r in kept]
    columns = []
    for j, name in enumerate(NAMES):
        raw = [row[j] for row in rows]
        if name in CATEGORICAL:
            codes: dict = {}
            raw = [None if v is None else codes.setdefault(v, len(codes)) for v in raw]
        columns.append(np.array([np.nan if v is None else float(v) for v in raw], float))
    return stratum, passed, columns, len(ids)


def _split(stratum, values, groups: int, categorical: bool):
    """Which trials fall in their stratum's upper half, and which strata have two halves.

    Numbers: above the stratum's median (with ties there, at or above it). A
    category: other than the stratum's most common one.
    """
    import numpy as np

    counts = np.bincount(stratum, minlength=groups)
    if categorical:
        codes = values.astype(int)
        width = int(codes.max()) + 1
        mode = np.bincount(stratum * width + codes, minlength=groups * width).reshape(groups, width).argmax(axis=1)
        high = codes != mode[stratum]
        n_high = np.bincount(stratum, weights=high, minlength=groups)
        return high, (n_high > 0) & (n_high < counts)
    order = np.lexsort((values, stratum))
    ordered = values[order]
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    lower, upper = starts + np.maximum(counts - 1, 0) // 2, starts + counts // 2
    median = np.zeros(groups)
    present = counts > 0
    median[present] = (ordered[lower[present]] + ordered[np.minimum(upper, len(ordered) - 1)[present]]) / 2
    above, at_or_above = values > median[stratum], values >= median[stratum]
    n_above = np.bincount(stratum, weights=above, minlength=groups)
    n_at = np.bincount(stratum, weights=at_or_above, minlength=groups)
    use_above = (n_above > 0) & (n_above < counts)
    use_at = ~use_above & (n_at > 0) & (n_at < counts)
    return np.where(use_above[stratum], above, at_or_above), use_above | use_at


def analyse(records: Sequence[TrialRecord]) -> tuple[list[Finding], int]:
    """Every confounder's finding (tested ones Holm-adjusted together), and the trials in strata of 2 or more.

    Vectorised (numpy): 30,000 records take a few tens of milliseconds.
    """
    import numpy as np

    stratum, passed, columns, groups = _columns(records)
    found = []
    for name, values in zip(NAMES, columns):
        known = ~np.isnan(values)
        test, high_rate, low_rate = None, (0, 0), (0, 0)
        if known.any():
            s, p, v = stratum[known], passed[known], values[known]
            high, split = _split(s, v, groups, name in CATEGORICAL)
            use = split[s]
            cell = lambda mask: np.bincount(s[use & mask], minlength=groups)[split].astype(float)  # noqa: E731
            a, b, c, d = cell(high & p), cell(high & ~p), cell(~high & p), cell(~high & ~p)
            test = _cmh(a, b, c, d)
            high_rate, low_rate = (int(a.sum()), int(a.sum() + b.sum())), (int(c.sum()), int(c.sum() + d.sum()))
        found.append((name, test, high_rate, low_rate))
    tested = [i for i, (_, test, _, _) in enumerate(found) if test is not None]
    adjusted = dict(zip(tested, holm([found[i][1].p for i in tested])))
    findings = [Finding(name, test, adjusted.get(i), high, low) for i, (name, test, high, low) in enumerate(found)]
    sizes = np.bincount(stratum, minlength=groups)
    return findings, int(sizes[sizes > 1].sum())


def detectable_difference(trials: int, tests: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The pass-rate difference between two halves of ``trials`` found at ``power`` (normal approximation,
    worst-case spread p = 0.5, Bonferroni's α/tests: Holm's first step)."""
    if trials < 2:
        return 1.0
    z = NormalDist().inv_cdf(1 - alpha / (2 * max(tests, 1))) + NormalDist().inv_cdf(power)
    return min(1.0, z / math.sqrt(trials))


@dataclass(frozen=True)
class Block:
    """The summary model's confounder block (``Summary.confounders``): what ``report.py`` prints and
    ``html_report.py`` shows, computed once from the records."""

    findings: tuple[Finding, ...]  # every confounder, in the order of NAMES
    trials: int  # non-error trials in strata (model × multiplier × task) of 2 or more
    detectable: float | None  # the pass-rate difference this run could have seen; None: nothing testable
    pass_rates: dict[str, list[tuple[str, int, int]]]  # the HTML report's plots (:func:`pass_rates`)
    alpha: float = ALPHA

    @property
    def tested(self) -> list[Finding]:
        return [f for f in self.findings if f.test is not None]

    @property
    def flagged(self) -> list[Finding]:
        """The confounders outcomes depend on (Holm-adjusted p below alpha), smallest p first."""
        return sorted((f for f in self.tested if f.p_adjusted < self.alpha), key=lambda f: f.p_adjusted)


def summarize(records: Sequence[TrialRecord], alpha: float = ALPHA) -> Block:
    """The block of the run's summary: every confounder tested, and the plots' pass rates."""
    findings, trials = analyse(records)
    tested = sum(f.test is not None for f in findings)
    return Block(tuple(findings), trials, detectable_difference(trials, tested, alpha) if tested else None,
                 pass_rates(records), alpha)


# --------------------------------------------------------------------------- for the HTML report's plots

def _hour(r: TrialRecord) -> int | None:
    try:
        return datetime.fromisoformat(r.started_at).hour
    except (TypeError, ValueError):
        return None


def _latency_bin(value: float) -> int:
    """Latency on a doubling scale from 0.25 s: -1 below it, k for [0.25·2^k, 0.25·2^(k+1)) s."""
    return -1 if value < 0.25 else math.floor(math.log2(value / 0.25))


def _latency_label(k: int) -> str:
    return "<0.25 s" if k < 0 else f"{0.25 * 2 ** k:g}–{0.25 * 2 ** (k + 1):g} s"


def pass_rates(records: Sequence[TrialRecord]) -> dict[str, list[tuple[str, int, int]]]:
    """Pass rate (passed, trials; error trials left out) against hour of day (UTC, from ``started_at``),
    provider latency (median per trial, doubling bins) and concurrency at start: rows (label, passed, trials)."""
    axes = {"hour of day (UTC)": (_hour, str),
            "provider latency (median per trial)": (lambda r: None if _latency(r) is None
                                                    else _latency_bin(_latency(r)), _latency_label),
            "concurrency at start": (lambda r: (r.confounders or {}).get("concurrency"), str)}
    out = {}
    for name, (value, label) in axes.items():
        counts: dict = defaultdict(lambda: [0, 0])
        for r in records:
            v = value(r) if r.outcome != ERROR else None
            if v is not None:
                counts[v][0] += r.outcome == PASSED
                counts[v][1] += 1
        if counts:
            out[name] = [(label(v), k, n) for v, (k, n) in sorted(counts.items())]
    return out
