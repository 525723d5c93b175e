"""The sequential gate: decide after each finished task, stop when every comparison is decided.

Pure functions and one small state object (no pytest). Tasks run in a seeded
random order (:func:`order_key`: a hash of the seed and the task id, so any
subset of tasks, a shard's or a resumed run's, keeps the same relative order
in every process); each task's trials (models × multipliers × samples) run
together. After each task whose trials are all recorded, the gate looks
again, at the *prefix* of the order whose tasks are all complete (tasks that
finish out of order under xdist wait for the ones before them: a slow task is
often a failing one, and skipping past it would bias the look).

The interval at a look is a repeated confidence interval of a group-sequential
design with alpha spending (Lan & DeMets 1983; Jennison & Turnbull 1989): the
number of tasks N is known at collection, so the gate spends its one-sided
α/2 in each direction (pass, fail) over the looks as α/2 · (n/N)^ρ
(the Kim–DeMets power family) and computes, by recursive numerical
integration of the Brownian-motion approximation, boundaries z_n such that
the chance of ever crossing by look n is exactly what has been spent. At look
n the interval is ``gate.decide``'s (paired by task, the t interval widened
where it collapses) at the two-sided level 1 − 2(1 − Φ(z_n)): the t quantile
in place of z is the usual small-sample adjustment. A comparison is decided
at its first look whose interval passes or fails it and keeps that verdict;
one still open at the last look (all N tasks) takes the last look's verdict.

Why spending and not a confidence sequence: a confidence sequence must hold
for ever, so it pays for looks the run will never make; knowing N, a spending
boundary is tighter at every look, and its last look is close to the fixed
gate's 95% interval, so a comparison that needs every task loses little.
benchmarks/gate_sequential.py measures error rates and savings against the
fixed gate; with ``--designs`` it measures the alternatives on the same
bake-offs (other spending functions and first looks, normal-mixture, betting
and empirical-Bernstein confidence sequences) and the most any stopping rule on
the running mean could save (README, "The sequential gate").

Looks start at :func:`first_look` tasks (at least MIN_TASKS: the per-task SD is
too unstable below that); a suite of MIN_TASKS or fewer has one look, at the
end, which is the fixed gate exactly.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from typing import TYPE_CHECKING

from .gate import GateVerdict, Margin, decide

if TYPE_CHECKING:
    from .records import TrialRecord

MIN_TASKS = 10
STEP = 0.01  # the integration grid of spending_boundaries, on the score scale
#: Spending α/2·(n/N)^ρ: ρ = 1 spends evenly over the suite (early stops come easily, the last look is widest);
#: larger ρ keeps more for the end. From benchmarks/gate_sequential.py --designs (89 mixed tasks × 3, 10,000 gates,
#: 15 pts worse): ρ 1, 1.5, 2 saved 36.6%, 35.5%, 34.0% of trials and caught 79.7%, 81.8%, 83.2% (fixed gate 86.7%).
RHO = 1.5
METHOD = "group-sequential repeated confidence intervals, alpha spending alpha/2*(n/N)^rho per direction"


def order_key(seed: str, task_id: str) -> str:
    """Where a task runs in the seeded order: the same in every process and for any subset of tasks."""
    return hashlib.sha256(f"{seed}\0{task_id}".encode()).hexdigest()


def task_order(seed: str, task_ids: Iterable[str]) -> list[str]:
    return sorted(set(task_ids), key=lambda t: order_key(seed, t))


def first_look(total: int) -> int:
    """The first look: MIN_TASKS tasks, or a tenth of the suite if that is more; never past the last task."""
    return min(total, max(MIN_TASKS, math.ceil(total / 10)))


@functools.lru_cache(maxsize=32)
def boundaries(total: int, alpha: float, rho: float = RHO) -> tuple[float, ...]:
    """z boundaries for looks at n = first_look(total) .. total tasks (index 0 is the first look).

    One-sided at ``alpha``/2 per direction: the chance that a standardized sum whose true mean is at the
    boundary ever crosses z_n at some look up to n is α/2 · (n/N)^ρ.
    """
    looks = range(first_look(total), total + 1)
    return spending_boundaries(tuple(n / total for n in looks), tuple(alpha / 2 * (n / total) ** rho for n in looks))


def spending_boundaries(fractions: Sequence[float], spent: Sequence[float]) -> tuple[float, ...]:
    """z boundaries at information ``fractions`` (increasing, last 1) that cumulatively spend ``spent``.

    Brownian motion S(t), t the information fraction: z_k is such that P(S(t_j) < z_j·√t_j for j < k,
    S(t_k) ≥ z_k·√t_k) = spent_k − spent_{k−1}. Computed on a grid (step 0.01 on the S scale): each look's
    density below its boundary is carried to the next look by the normal increment's kernel, and the
    boundary solves "mass that crosses now = what is spent now" by bisection.
    """
    import numpy as np
    from scipy.special import ndtr
    from scipy.stats import norm

    step = STEP
    grid = np.arange(-8.0, 8.0 + step, step)
    result = [float(norm.isf(spent[0]))]
    density = np.where(grid < result[0] * math.sqrt(fractions[0]),
                       norm.pdf(grid, scale=math.sqrt(fractions[0])), 0.0)
    kernels: dict[float, object] = {}
    for k in range(1, len(fractions)):
        delta = fractions[k] - fractions[k - 1]
        now = spent[k] - spent[k - 1]
        weights = density * step

        def crossing(b: float) -> float:
            return float(np.dot(weights, ndtr((grid - b) / math.sqrt(delta))))  # P(increment > b − s)

        low, high = -2.0, 12.0
        for _ in range(50):
            mid = (low + high) / 2
            low, high = (mid, high) if crossing(mid) > now else (low, mid)
        b = (low + high) / 2
        result.append(b / math.sqrt(fractions[k]))
        key = round(delta, 12)
        if key not in kernels:
            kernels[key] = norm.pdf((grid[:, None] - grid[None, :]) / math.sqrt(delta)) / math.sqrt(delta) * step
        density = np.where(grid < b, kernels[key] @ density, 0.0)
    return tuple(result)


def look_alpha(n: int, total: int, alpha: float, rho: float = RHO) -> float | None:
    """The two-sided alpha of the interval at a look after ``n`` of ``total`` tasks; None before the first look."""
    first = first_look(total)
    if n < first or n > total or total < 1:
        return None
    from statistics import NormalDist

    return 2 * NormalDist().cdf(-boundaries(total, alpha, rho)[n - first])


@dataclass(frozen=True)
class Comparison:
    multiplier: str
    candidate: str
    margin: Margin


@dataclass
class Sequential:
    """The gate's state over the looks: which comparisons are decided, at which look, with which verdict.

    ``order``: every task of the run in run order; ``per_task``: trials a task has when complete (models ×
    multipliers × samples of this run), or per task in ``expected`` (a subset of trials collected, as ``-k``
    makes). Looks are made by :meth:`update` with the records so far (each trial's last attempt); it only
    moves forward, so calling it after every trial costs one look per newly complete task.
    """

    order: list[str]
    per_task: int
    baseline: str
    comparisons: list[Comparison]
    alpha: float = 0.05
    strict: bool = False
    rho: float = RHO
    expected: dict[str, int] = field(default_factory=dict)
    looked: int = 0  # tasks in the prefix at the last look
    decided: dict[Comparison, tuple[int, GateVerdict]] = field(default_factory=dict)
    last: dict[Comparison, GateVerdict] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return len(self.order)

    @property
    def stopped(self) -> bool:
        """Every comparison decided before the last task: the remaining trials need not run."""
        return bool(self.comparisons) and len(self.decided) == len(self.comparisons) and self.looked < self.total

    @property
    def reason(self) -> str:
        return f"decided after {self.looked}/{self.total} tasks"

    def complete_prefix(self, records: Sequence[TrialRecord]) -> int:
        """How many tasks from the start of the order have all their trials recorded."""
        trials = Counter(r.task_id for r in {r.trial_id: r for r in records}.values())
        n = 0
        while n < self.total and trials[self.order[n]] >= self.expected.get(self.order[n], self.per_task):
            n += 1
        return n

    def update(self, records: Sequence[TrialRecord], baseline_records: Sequence[TrialRecord] | None = None) -> bool:
        """Look at each newly complete task; True when this call decided every comparison (stop now)."""
        if len(self.decided) == len(self.comparisons):
            return False
        prefix = self.complete_prefix(records)
        first = first_look(self.total)
        if prefix <= self.looked or prefix < first:
            return False
        rank = {task: i for i, task in enumerate(self.order)}
        in_order = [r for r in records if r.task_id in rank]
        base_pool = [r for r in (records if baseline_records is None else baseline_records)
                     if r.model == self.baseline and r.task_id in rank]
        for n in range(max(self.looked + 1, first), prefix + 1):
            self._look(n, rank, in_order, base_pool)
            self.looked = n
            if len(self.decided) == len(self.comparisons):
                return True
        return False

    def _look(self, n: int, rank: dict[str, int], records: list[TrialRecord], base_pool: list[TrialRecord]) -> None:
        level = look_alpha(n, self.total, self.alpha, self.rho)
        for comparison in self.comparisons:
            if comparison in self.decided:
                continue
            mult = comparison.multiplier
            base = [r for r in base_pool if r.multiplier == mult and rank[r.task_id] < n]
            cand = [r for r in records if r.model == comparison.candidate and r.multiplier == mult
                    and rank[r.task_id] < n]
            if not (base and cand):
                continue
            verdict = decide(base, cand, comparison.margin, level, self.strict)
            self.last[comparison] = verdict
            if verdict.status != "inconclusive":
                self.decided[comparison] = (n, verdict)

    def verdicts(self) -> list[tuple[str, GateVerdict, int | None]]:
        """(multiplier, verdict, look it was decided at or None) per comparison that was looked at."""
        out = []
        for c in self.comparisons:
            if c in self.decided:
                out.append((c.multiplier, self.decided[c][1], self.decided[c][0]))
            elif c in self.last:
                out.append((c.multiplier, self.last[c], None))
        return out

    def to_json(self) -> dict:
        """gate.json's ``sequential`` block: the design, the order, where it stopped and why."""
        return {"method": METHOD, "rho": self.rho, "first_look": first_look(self.total), "tasks": self.total,
                "looked": self.looked, "stopped": self.stopped, "reason": self.reason if self.stopped else None,
                "order": self.order,
                "comparisons": [{"multiplier": c.multiplier, "candidate": c.candidate, "margin": str(c.margin),
                                 "decided_after": self.decided[c][0] if c in self.decided else None,
                                 "status": self._status(c)} for c in self.comparisons]}

    def _status(self, c: Comparison) -> str | None:
        verdict = self.decided[c][1] if c in self.decided else self.last.get(c)
        return verdict and verdict.status


def comparisons(models: Sequence[str], baseline: str, margins: Sequence[Margin], multipliers: Sequence[str],
                compare: bool = False) -> list[Comparison]:
    """Every candidate × multiplier × margin the gate decides (every model is a candidate with ``compare``)."""
    return [Comparison(mult, model, margin) for mult in multipliers for model in models
            if compare or model != baseline for margin in margins]


def saved_cost(skipped: Counter, records: Sequence[TrialRecord]) -> float | None:
    """USD the skipped trials would have cost (per model: count × its mean cost per recorded trial);
    None when no recorded trial of a skipped model has a cost (no --hb-prices)."""
    costs: dict[str, list[float]] = {}
    for r in records:
        cost = (r.usage or {}).get("cost_usd")
        if cost is not None:
            costs.setdefault(r.model, []).append(cost)
    if not any(costs.get(m) for m in skipped):
        return None
    return sum(n * sum(costs[m]) / len(costs[m]) for m, n in skipped.items() if costs.get(m))


# --- in a session ---------------------------------------------------------------------------------------

#: The decision, in the run directory: written by the process that records (it owns the directory), read by
#: every process (xdist workers too) before a trial starts.
DECISION = "gate-stop.json"
REASON_PREFIX = "decided after "


class SequentialRun:
    """The sequential gate in one pytest process: the run order, the looks, the shared decision.

    Every process orders its items (:meth:`reorder`) and asks :meth:`stop_reason` before a trial starts;
    the process that records also :meth:`start`\\s the gate once the trials are collected and calls
    :meth:`after_trial` after each record, which writes :data:`DECISION` once every comparison is decided.
    """

    def __init__(self, seed: str, run_dir: Path, per_task: int, baseline: str, comparisons: list[Comparison],
                 alpha: float = 0.05, strict: bool = False):
        self.seed = seed
        self.run_dir = Path(run_dir)
        self.per_task = per_task
        self.baseline = baseline
        self.comparisons = comparisons
        self.alpha = alpha
        self.strict = strict
        self.gate: Sequential | None = None
        self.skipped: Counter = Counter()  # model -> its trials skipped as decided
        self._decision: dict | None = None
        self._latest: dict[str, TrialRecord] = {}  # trial id -> its last record, as after_trial saw them
        self._done: Counter = Counter()  # task id -> its trials recorded
        self._next = 0  # tasks at the start of the order with all their trials recorded

    def _prefix(self) -> int:
        gate = self.gate
        while self._next < gate.total and \
                self._done[gate.order[self._next]] >= gate.expected.get(gate.order[self._next], gate.per_task):
            self._next += 1
        return self._next

    def reorder(self, items: list, task_of) -> list:
        """Trials in the seeded task order (a task's trials together, in collection order); other items keep
        their places. ``task_of(item)``: the trial's task id, None for an item that is no trial."""
        places = [i for i, item in enumerate(items) if task_of(item) is not None]
        trials = sorted((items[i] for i in places), key=lambda item: order_key(self.seed, task_of(item)))
        ordered = list(items)
        for place, item in zip(places, trials):
            ordered[place] = item
        return ordered

    def start(self, trials: Iterable[tuple[str, str]], recorded: Sequence[TrialRecord] = ()) -> None:
        """In the process that records, once: the gate over these (task id, trial id) pairs (the collected trials
        and those an earlier run ``recorded``); a task is complete once all of its trials are recorded."""
        if self.gate is None:
            expected = Counter(task for task, _ in {*trials, *((r.task_id, r.trial_id) for r in recorded)})
            self.gate = Sequential(task_order(self.seed, expected), self.per_task, self.baseline, self.comparisons,
                                   self.alpha, self.strict, expected=dict(expected))
            for record in recorded:
                self._done[record.task_id] += record.trial_id not in self._latest
                self._latest[record.trial_id] = record

    def after_trial(self, record: TrialRecord, baseline_records: Sequence[TrialRecord] | None = None) -> str | None:
        """Look again after a trial's record (a later attempt replaces an earlier one); the reason to stop when
        this decided it. Cheap unless the record completes the next task in the order (then one look per task)."""
        if self.gate is None or self._decision is not None:
            return None
        if record.trial_id not in self._latest:
            self._done[record.task_id] += 1
        self._latest[record.trial_id] = record
        if self._prefix() <= self.gate.looked:
            return None
        if not self.gate.update(list(self._latest.values()), baseline_records) or not self.gate.stopped:
            return None  # undecided, or decided with the last task: nothing left to skip
        from datetime import datetime, timezone

        from .store import RunStore

        self._decision = {"reason": self.gate.reason, "tasks": self.gate.looked, "of": self.gate.total,
                          "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                          "trials_recorded": len(self._latest)}
        RunStore(self.run_dir).write_json(DECISION, self._decision)
        return self.gate.reason

    def stop_reason(self) -> str | None:
        """Why trials are no longer started (the decision, from the run directory), or None."""
        if self._decision is None and (self.run_dir / DECISION).is_file():
            from .store import RunStore

            self._decision = RunStore(self.run_dir).read_json(DECISION)
        return self._decision and self._decision.get("reason")

    def note_skip(self, model: str | None, longrepr: str) -> None:
        """A trial skipped as decided (its report, in the process that records)."""
        if model is not None and REASON_PREFIX in longrepr:
            self.skipped[model] += 1

    def final(self, records: Sequence[TrialRecord], baseline_records: Sequence[TrialRecord] | None = None
              ) -> list[tuple[str, GateVerdict, int | None]]:
        """The verdicts at the end: each decided comparison's, else its last look's; a comparison never looked
        at (the run ended before the first look) is judged once on the complete tasks, at the first look's level."""
        self.start((), records)
        gate = self.gate
        gate.update(records, baseline_records)
        missing = [c for c in gate.comparisons if c not in gate.decided and c not in gate.last]
        if missing:
            prefix = set(gate.order[:gate.complete_prefix(records)])
            level = look_alpha(first_look(gate.total), gate.total, self.alpha, gate.rho) if gate.total else self.alpha
            pool = records if baseline_records is None else baseline_records
            for c in missing:
                base = [r for r in pool if r.model == self.baseline and r.multiplier == c.multiplier
                        and r.task_id in prefix]
                cand = [r for r in records if r.model == c.candidate and r.multiplier == c.multiplier
                        and r.task_id in prefix]
                gate.last[c] = decide(base, cand, c.margin, level, self.strict)
        return gate.verdicts()

    def to_json(self, records: Sequence[TrialRecord]) -> dict:
        """gate.json's ``sequential`` block: the design and order, where it stopped and why, what it saved."""
        block = self.gate.to_json() if self.gate is not None else {"method": METHOD}
        cost = saved_cost(self.skipped, records)
        return {**block, "seed": self.seed, "decision": self.stop_reason() and self._decision,
                "skipped_trials": sum(self.skipped.values()), "skipped_by_model": dict(self.skipped),
                "saved_usd": None if cost is None else round(cost, 4)}

    def card(self) -> dict:
        """The harness card's ``sequential`` entry: how the tasks were ordered, and the order."""
        return {"method": METHOD, "seed": self.seed, "order": self.gate.order if self.gate is not None else None}


def from_config(config, seed: str, run_dir: Path, per_task: int) -> SequentialRun | None:
    """The session's sequential gate under ``--hb-gate-sequential`` (``config``: the session's Config), else None."""
    if not config.gate_sequential or config.gate is None:
        return None
    multipliers = [config.gate_at.label] if config.gate_at else [m.label for m in config.multipliers]
    found = comparisons([m.text for m in config.models], config.gate, config.gate_margins, multipliers,
                        compare=config.compare is not None)
    return SequentialRun(seed, run_dir, per_task, config.gate, found, config.gate_alpha, config.gate_strict)
