"""The sequential gate: decide after each finished task, stop when every comparison is decided.

Pure functions and one small state object (no pytest). Tasks run in a seeded
random order (:func:`order_key`: a hash of the seed and the task id, so any
subset of tasks, a shard's or a resumed run's, keeps the same relative order
in every process); each task's trials (models × multipliers × samples) run
together. After each task whose trials are all recorded, the gate looks
again, at the *prefix* of the order whose tasks are all complete (tasks that
finish out of order under xdist wait for the ones before them: a slow task is
often a failing one, and skipping past it would bias the look).

The rule is asymmetric, because early stops for FAIL are where the savings are
and early stops for PASS are where the error rates rose above the fixed gate's:

- **fail** at any look from :func:`first_look` on. The looks are those of a
  group-sequential design with alpha spending (Lan & DeMets 1983; Jennison &
  Turnbull 1989): the number of tasks N is known at collection, so the fail
  direction spends FAIL_SHARE · α/2 over the looks as FAIL_SHARE · α/2 · (n/N)^ρ
  (the Kim–DeMets power family), and recursive numerical integration of the
  Brownian-motion approximation gives boundaries z_n such that the chance of
  ever crossing by look n is exactly what has been spent. At look n the
  comparison fails if ``gate.decide``'s interval (paired by task, the t interval
  widened where it collapses) at the two-sided level 1 − 2(1 − Φ(z_n)) lies
  below the margin: the t quantile in place of z is the usual small-sample
  adjustment.
- **pass** only at the last look (all N tasks), with the fixed gate's own
  interval at α: so the sequential gate passes only where the fixed gate passes
  on the same trials, and its false-pass rate cannot exceed the fixed gate's.

A comparison is decided at its first look that fails it, or at the last look
(pass first, as ``gate.classify``; else fail at the last fail boundary; else
inconclusive). An equal candidate therefore runs every task; a clear
regression stops early.

Why FAIL_SHARE < 1 and ρ = 1.75 rather than α/2 · (n/N)^1.5: an early look sees
too few tasks to tell an equal candidate from one at the margin, so with the
full α the fail side's error fell more slowly away from the margin than the
fixed gate's (``benchmarks/gate_sequential.py --share 1 --rho 1.5``: an equal
candidate failed 0.6% of the time against 0.3% at 89 mixed tasks × 2 samples,
+3.6 standard errors). Spending 0.8 of α/2, later in the suite, keeps every false-fail rate
of the benchmark's grid within two paired standard errors of the fixed gate's
(README, "The sequential gate"), at about 3 points of the savings.

Why spending and not a confidence sequence: a confidence sequence must hold
for ever, so it pays for looks the run will never make; knowing N, a spending
boundary is tighter at every look. benchmarks/gate_sequential.py measures
error rates and savings against the fixed gate; with ``--designs`` it measures
the alternatives on the same bake-offs (other spending functions and first
looks, the earlier symmetric rule, normal-mixture, betting and
empirical-Bernstein confidence sequences) and the most any stopping rule on the
running mean could save.

Looks start at :func:`first_look` tasks (at least MIN_TASKS: the per-task SD is
too unstable below that); a suite of MIN_TASKS or fewer has one look, at the
end, at the full α both ways, which is the fixed gate exactly.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from typing import TYPE_CHECKING

from .gate import GateVerdict, Margin, decide

if TYPE_CHECKING:
    from .records import TrialRecord

MIN_TASKS = 10
STEP = 0.01  # the integration grid of spending_boundaries, on the score scale
#: The fail side spends FAIL_SHARE·α/2·(n/N)^RHO by look n of N: the most saved on a 15-pts-worse candidate while no
#: error rate of benchmarks/gate_sequential.py's whole grid (20, 40, 89 tasks × 1–3 samples × mixed, easy; 10,000
#: gates a cell) exceeds the fixed gate's by 2 paired standard errors, on seeds 1, 2 and 3 (shares 0.7–1 × ρ 1–3 ×
#: first looks 10, 20, 30 tried). The column that binds is "equal: fail": with --seed 1, `--share 1 --rho 1.5`
#: exceeds the fixed gate's by 3.6 SE, `--share 0.8 --rho 1.5` by 2.2, `--share 0.85 --rho 1.75` by 1.9 (and 1.9 with
#: --seed 2: too close to call); 0.8 and 1.75 by at most 1.6 on the three seeds, saving 32.4–33.3% of the trials at
#: 89 mixed tasks × 3 samples and 50.7–51.3% with easy ones. A later first look saved no more at 89 tasks.
FAIL_SHARE = 0.8
RHO = 1.75
METHOD = ("group-sequential: fail at any look, repeated confidence intervals spending "
          "fail_share*alpha/2*(n/N)^rho; pass only at the last look, at the fixed gate's alpha")


def order_key(seed: str, task_id: str) -> str:
    """Where a task runs in the seeded order: the same in every process and for any subset of tasks."""
    return hashlib.sha256(f"{seed}\0{task_id}".encode()).hexdigest()


def task_order(seed: str, task_ids: Iterable[str]) -> list[str]:
    return sorted(set(task_ids), key=lambda t: order_key(seed, t))


def first_look(total: int) -> int:
    """The first look: MIN_TASKS tasks, or a tenth of the suite if that is more; never past the last task."""
    return min(total, max(MIN_TASKS, math.ceil(total / 10)))


@functools.lru_cache(maxsize=32)
def boundaries(total: int, alpha: float, rho: float = RHO, share: float = FAIL_SHARE) -> tuple[float, ...]:
    """The fail side's z boundaries for looks at n = first_look(total) .. total tasks (index 0 is the first look).

    One-sided: the chance that a standardized sum whose true mean is at the margin ever crosses z_n at some look
    up to n is ``share`` · ``alpha``/2 · (n/N)^ρ. With one look (a suite of MIN_TASKS tasks or fewer) there is
    nothing to spend over: the fixed gate's z at ``alpha``/2.
    """
    looks = range(first_look(total), total + 1)
    if len(looks) == 1:
        from statistics import NormalDist

        return (NormalDist().inv_cdf(1 - alpha / 2),)
    return spending_boundaries(tuple(n / total for n in looks),
                               tuple(share * alpha / 2 * (n / total) ** rho for n in looks))


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


def fail_alpha(n: int, total: int, alpha: float, rho: float = RHO, share: float = FAIL_SHARE) -> float | None:
    """The two-sided alpha of the interval that may fail a comparison at the look after ``n`` of ``total`` tasks;
    None before the first look."""
    first = first_look(total)
    if n < first or n > total or total < 1:
        return None
    from statistics import NormalDist

    return 2 * NormalDist().cdf(-boundaries(total, alpha, rho, share)[n - first])


def pass_alpha(n: int, total: int, alpha: float) -> float | None:
    """The two-sided alpha of the interval that may pass a comparison after ``n`` of ``total`` tasks: the fixed
    gate's, at the last look only (None before it)."""
    return alpha if n == total and total >= 1 else None


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
    share: float = FAIL_SHARE
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
        for comparison in self.comparisons:
            if comparison in self.decided:
                continue
            mult = comparison.multiplier
            base = [r for r in base_pool if r.multiplier == mult and rank[r.task_id] < n]
            cand = [r for r in records if r.model == comparison.candidate and r.multiplier == mult
                    and rank[r.task_id] < n]
            if not (base and cand):
                continue
            verdict = self.judge(base, cand, comparison.margin, n)
            self.last[comparison] = verdict
            if verdict.status != "inconclusive":
                self.decided[comparison] = (n, verdict)

    def judge(self, base: list[TrialRecord], cand: list[TrialRecord], margin: Margin, n: int) -> GateVerdict:
        """The verdict at the look after ``n`` tasks: pass only at the last look, with the fixed gate's interval;
        else fail if the interval at the look's fail level lies past the margin; else inconclusive (with that
        interval, which at an earlier look may already clear the margin: a pass waits for the last task)."""
        passing = pass_alpha(n, self.total, self.alpha)
        if passing is not None:
            verdict = decide(base, cand, margin, passing, self.strict)
            if verdict.status == "pass":
                return verdict
        verdict = decide(base, cand, margin, fail_alpha(n, self.total, self.alpha, self.rho, self.share), self.strict)
        return replace(verdict, status="inconclusive") if verdict.status == "pass" else verdict

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
        return {"method": METHOD, "rho": self.rho, "fail_share": self.share, "first_look": first_look(self.total),
                "tasks": self.total,
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
        at (the run ended before the first look) is judged once on the complete tasks, as at the first look (so it
        may fail, and pass only if the first look is the last)."""
        self.start((), records)
        gate = self.gate
        gate.update(records, baseline_records)
        missing = [c for c in gate.comparisons if c not in gate.decided and c not in gate.last]
        if missing:
            prefix = set(gate.order[:gate.complete_prefix(records)])
            pool = records if baseline_records is None else baseline_records
            for c in missing:
                base = [r for r in pool if r.model == self.baseline and r.multiplier == c.multiplier
                        and r.task_id in prefix]
                cand = [r for r in records if r.model == c.candidate and r.multiplier == c.multiplier
                        and r.task_id in prefix]
                gate.last[c] = gate.judge(base, cand, c.margin, first_look(gate.total)) if gate.total else \
                    decide(base, cand, c.margin, self.alpha, self.strict)
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
