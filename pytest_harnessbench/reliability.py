"""Reliability across samples: pass@k, pass^k, flaky tasks, run-to-run variance, retry dependence.

Pure functions over trial records (as in :mod:`stats`), grouped by model ×
multiplier. A task's samples are its trials of one model × multiplier; infra
trials are no sample of the model (the environment ended them), so they are
left out here as in ``pass_rate``: a task with an infra trial has fewer samples.

- pass@k (at least one of k samples passes) and pass^k (all k pass, τ-bench's
  reliability) per task from its n samples with c passes, by the unbiased
  estimators (Chen et al. 2021; Yao et al. 2024)

      pass@k = 1 − C(n − c, k) / C(n, k)        pass^k = C(c, k) / C(n, k)

  averaged over tasks, with a t interval over tasks (tasks are the unit that
  varies; clipped to [0, 1]). A task with fewer than k samples has no estimate
  at that k: it is left out and counted (``left_out``).
- Flaky tasks: samples that disagree (some passed, some failed). The score's
  variance splits into within-task (run to run) and between-task parts by the
  one-way ANOVA estimators, and ``rerun_sd`` is how far a rerun of the same
  tasks would move the score from run-to-run noise alone.
- Retry dependence: under ``--hb-retry-infra`` / ``--hb-resume-retry infra`` a
  trial's last attempt counts, but passes that came only on a retry are counted
  per model and the first-attempt score is compared with the final one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from math import comb
from typing import TYPE_CHECKING

from .outcomes import PASSED
from .stats import mean_over_tasks, per_task_counts

if TYPE_CHECKING:
    from .records import TrialRecord

PASS_K = re.compile(r"^pass(?P<kind>[@^])(?P<k>[1-9]\d*)$")

#: A model whose final score exceeds its first-attempt score by at least this many points (the default gate
#: margin) is flagged: retries moved it more than the gate would tolerate between two models.
RETRY_FLAG_POINTS = 3.0


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased probability that at least one of k samples passes, from n samples with c passes (k ≤ n)."""
    _check(n, c, k)
    return 1.0 - comb(n - c, k) / comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float:
    """Unbiased probability that all k samples pass (pass^k), from n samples with c passes (k ≤ n)."""
    _check(n, c, k)
    return comb(c, k) / comb(n, k)


def _check(n: int, c: int, k: int) -> None:
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"need 0 ≤ c ≤ n and 1 ≤ k ≤ n, got n={n}, c={c}, k={k}")


def parse_pass_k(metric: str) -> tuple[str, int] | None:
    """``pass@3`` -> ("@", 3), ``pass^2`` -> ("^", 2); None for any other metric name."""
    match = PASS_K.match(metric)
    return (match["kind"], int(match["k"])) if match else None


def task_counts(records: Iterable[TrialRecord]) -> dict[str, tuple[int, int]]:
    """task_id -> (passes c, samples n) over non-infra trials: the counts every estimator here starts from."""
    return per_task_counts(records, "pass_rate")


def per_task_pass_k(counts: Mapping[str, tuple[int, int]], metric: str) -> dict[str, float]:
    """task_id -> its pass@k or pass^k estimate (``metric`` as ``pass@k``/``pass^k``); tasks with n < k left out."""
    kind, k = parse_pass_k(metric) or (None, 0)
    if kind is None:
        raise ValueError(f"not a pass@k or pass^k metric: {metric!r}")
    estimate = pass_at_k if kind == "@" else pass_hat_k
    return {task: estimate(n, c, k) for task, (c, n) in counts.items() if n >= k}


@dataclass(frozen=True)
class PassK:
    """pass@k or pass^k of one model × multiplier: mean over tasks, t interval over tasks (None below 2 tasks)."""

    metric: str  # "pass@k" or "pass^k"
    k: int
    value: float | None
    low: float | None
    high: float | None
    tasks: int
    left_out: int  # tasks with fewer than k samples


def pass_k_curve(counts: Mapping[str, tuple[int, int]], max_k: int, confidence: float = 0.95) -> list[PassK]:
    """pass@k and pass^k for k = 1..max_k, in that order for each k."""
    curve = []
    for k in range(1, max_k + 1):
        for kind in ("@", "^"):
            metric = f"pass{kind}{k}"
            values = per_task_pass_k(counts, metric)
            mean = mean_over_tasks(metric, {t: [v] for t, v in values.items()}, confidence, bounds=(0.0, 1.0))
            curve.append(PassK(metric, k, mean.value if values else None, mean.low, mean.high, len(values),
                               len(counts) - len(values)))
    return curve


@dataclass(frozen=True)
class Flakiness:
    """Tasks whose samples disagree, and the split of the score's variance (tasks with ≥ 2 samples only).

    ``within`` is the mean over tasks of each task's sample variance (unbiased,
    c(n − c)/(n(n − 1))); ``between`` the variance of the tasks' true rates, the
    variance of their observed rates less the part the samples' noise explains
    (mean of within_i / n_i), floored at 0. ``share_within`` = within /
    (within + between), None when both are 0. ``rerun_sd`` is the standard
    deviation of the score (mean of per-task rates) over reruns of these tasks
    with the same samples: √(Σ within_i / n_i) / tasks.
    """

    flaky: tuple[str, ...]
    tasks: int
    within: float
    between: float
    share_within: float | None
    rerun_sd: float


def flakiness(counts: Mapping[str, tuple[int, int]]) -> Flakiness | None:
    """:class:`Flakiness` of one model × multiplier; None with fewer than two tasks of ≥ 2 samples."""
    sampled = {t: (c, n) for t, (c, n) in counts.items() if n >= 2}
    if len(sampled) < 2:
        return None
    flaky = tuple(sorted(t for t, (c, n) in sampled.items() if 0 < c < n))
    tasks = len(sampled)
    within_i = {t: c * (n - c) / (n * (n - 1)) for t, (c, n) in sampled.items()}
    rates = [c / n for c, n in sampled.values()]
    mean = sum(rates) / tasks
    observed = sum((r - mean) ** 2 for r in rates) / (tasks - 1)
    noise = sum(within_i[t] / n for t, (_, n) in sampled.items()) / tasks
    within = sum(within_i.values()) / tasks
    between = max(0.0, observed - noise)
    total = within + between
    return Flakiness(flaky, tasks, within, between, within / total if total > 0 else None,
                     math.sqrt(sum(within_i[t] / n for t, (_, n) in sampled.items())) / tasks)


@dataclass(frozen=True)
class RetryDependence:
    """One model's passes that came only on a retry, and its score on first attempts vs on last attempts.

    Scores are passed / trials (``score``), over the trials of this model;
    ``flagged`` when the final score is at least RETRY_FLAG_POINTS above the first-attempt one.
    """

    model: str
    trials: int
    retried: int  # trials with more than one attempt
    retry_passes: int  # of those, passed on their last attempt
    first_score: float
    final_score: float

    @property
    def flagged(self) -> bool:
        return 100 * (self.final_score - self.first_score) >= RETRY_FLAG_POINTS - 1e-9


def retry_dependence(attempts: Sequence[TrialRecord]) -> list[RetryDependence]:
    """Per model, from every attempt's record (results.jsonl order; a trial's first record is its first attempt).

    Only models with at least one retried trial are listed.
    """
    first: dict[str, TrialRecord] = {}
    last: dict[str, TrialRecord] = {}
    count: dict[str, int] = {}
    for r in attempts:
        first.setdefault(r.trial_id, r)
        last[r.trial_id] = r
        count[r.trial_id] = count.get(r.trial_id, 0) + 1
    by_model: dict[str, list[str]] = {}
    for trial_id, r in last.items():
        by_model.setdefault(r.model, []).append(trial_id)
    result = []
    for model, trials in by_model.items():
        retried = [t for t in trials if count[t] > 1 or (last[t].attempts or 1) > 1]
        if not retried:
            continue
        n = len(trials)
        result.append(RetryDependence(
            model, n, len(retried), sum(last[t].outcome == PASSED for t in retried),
            sum(first[t].outcome == PASSED and (first[t].attempts or 1) <= 1 for t in trials) / n,
            sum(last[t].outcome == PASSED for t in trials) / n))
    return result


def summarize(latest: Sequence[TrialRecord], attempts: Sequence[TrialRecord] = ()) -> dict:
    """A JSON-able summary: per model × multiplier pass@k/pass^k curve and flakiness (when some task has ≥ 2
    samples), and per model retry dependence (from every attempt, when some trial was retried)."""
    cells: dict[tuple[str, str], list[TrialRecord]] = {}
    for r in latest:
        cells.setdefault((r.model, r.multiplier), []).append(r)
    out_cells = []
    for (model, mult), records in cells.items():
        counts = task_counts(records)
        samples = max((n for _, n in counts.values()), default=0)
        if samples < 2:
            continue
        flaky = flakiness(counts)
        out_cells.append({"model": model, "multiplier": mult, "samples": samples,
                          "pass_k": [dict(vars(p)) for p in pass_k_curve(counts, samples)],
                          "flakiness": None if flaky is None else {**vars(flaky), "flaky": list(flaky.flaky)}})
    # vars, not asdict: fields of numbers and strings, which asdict would copy one by one (each task id of a cell)
    retries = [{**vars(d), "flagged": d.flagged} for d in retry_dependence(attempts)]
    return {"cells": out_cells, "retries": retries}
