"""The run's summary model: everything the terminal summary and the HTML report show, computed once.

:func:`summarize` reads the records in one pass, grouping them by model ×
multiplier × task into counts (``stats.Tally``), metric values, usage, peaks
and rewards; every rate, comparison, metric table, the power line and (when
asked) the calibration are then computed from those groups, never by going
over the records again. ``report.py`` (terminal) and ``html_report.py`` only
format a :class:`Summary`; neither calls the other, nor ``stats``.

Everything depends only on the set of records and the configured order of
models and multipliers, so the summary is the same however trials were
scheduled. :meth:`Summary.results` is the model as JSON-able data; plugins add
tables to it through the ``pytest_harnessbench_summary`` hook
(:meth:`Summary.add_table`).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from . import confounders, stats
from .outcomes import ERROR, INFRA, METRIC_OUTCOMES, PASSED

if TYPE_CHECKING:
    from .hosts import HostEffect
    from .records import TrialRecord

Cell = tuple[str, str]  # (model, multiplier label)


@dataclass(frozen=True)
class Comparison:
    """One test of the summary's family: a multiplier vs the lowest, a trend over multipliers, or two models.

    ``difference`` is a fraction (None for a trend); ``p_adjusted`` is
    Benjamini–Hochberg over every comparison of the run; ``verdict`` in words.
    """

    label: str
    kind: str  # "multiplier" | "trend" | "models"
    model: str  # the model (multiplier, trend) or "B − A" pair
    multiplier: str
    metric: str
    difference: float | None
    pvalue: float
    p_adjusted: float
    verdict: str

    @property
    def differs(self) -> bool:
        return self.verdict.startswith("differs")


@dataclass(frozen=True)
class MetricRow:
    metric: str
    model: str
    multiplier: str
    mean: stats.MetricMean


@dataclass(frozen=True)
class MetricComparison:
    """A trial metric, model B − model A paired by task at one multiplier, p adjusted with the other metrics'."""

    metric: str
    multiplier: str
    model_a: str
    model_b: str
    comparison: stats.PairedComparison
    p_adjusted: float
    verdict: str


@dataclass(frozen=True)
class Power:
    """The smallest score difference (a fraction) the run's tasks × samples detect at 80% power, α = 0.05."""

    tasks: int
    samples: int
    detectable: float


@dataclass(frozen=True)
class Usage:
    """One model's totals over its trials (the renderers divide by ``trials``); ``cost_usd`` None when unpriced."""

    model: str
    trials: int
    model_calls: int
    tool_calls: int
    input_tokens: int
    output_tokens: int
    provider_retries: int
    cost_usd: float | None


@dataclass(frozen=True)
class RewardKey:
    """A Harbor verifier's reward key in one cell: ``passed`` trials had it ≥ 1, of ``trials`` that wrote it."""

    model: str
    multiplier: str
    key: str
    passed: int
    trials: int


@dataclass(frozen=True)
class OverDeclared:
    """A Harbor task whose measured peak memory exceeded what its task.toml declares."""

    task_id: str
    declared_bytes: int
    peak_bytes: int
    over: int
    trials: int


@dataclass(frozen=True)
class Retries:
    """Earlier attempts a later one superseded: how many, of how many trials, why, and how many then left infra."""

    attempts: int
    trials: int
    causes: dict[str, int]
    recovered: int


@dataclass(frozen=True)
class PeakBox:
    """Peak memory over the task's spec for one task × model (trials not OOM-killed): range and quartiles."""

    task_id: str
    model: str
    trials: int
    low: float
    q1: float
    median: float
    q3: float
    high: float


@dataclass(frozen=True)
class Table:
    """A table as data: both renderers show it (a hook's column or metric, the metric tables)."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass
class Summary:
    """The computed summary of one run (its last attempts). Built by :func:`summarize`; read, never recomputed."""

    models: list[str]  # present, configured order first
    multipliers: list[str]  # present, by their numbers (uncapped last)
    trials: int
    cells: dict[Cell, stats.CellSummary]  # in table order: model, then multiplier
    infra_causes: dict[Cell, dict[str, int]]
    outcome_counts: dict[Cell, dict[str, int]]  # "passed", "failed/assertion", "infra/oom", ...
    comparisons: list[Comparison]
    power: Power
    metric_names: list[str]
    metric_means: list[MetricRow]
    metric_comparisons: list[MetricComparison]
    usage: list[Usage]
    reward_keys: list[RewardKey]
    over_declared: list[OverDeclared]
    retries: Retries | None
    nothing_measured: str | None  # every trial ended in error: the most common message; else None
    enforcement: list[str]  # "backend/method" of the trials
    peaks: list[PeakBox]
    confounders: confounders.Block | None = None  # the confounder tests and pass-rate bins (confounders.py)
    calibration: dict | None = None  # calibrate.calibrate's document, when computed or read
    hosts: HostEffect | None = None  # a run merged from shards on several hosts: outcome by host (hosts.py)
    # pass@k / pass^k and flaky tasks per cell, retry dependence per model (reliability.summarize; gate.json too)
    reliability: dict = field(default_factory=lambda: {"cells": [], "retries": []})
    tables: list[Table] = field(default_factory=list)  # added by pytest_harnessbench_summary hooks
    extra: dict = field(default_factory=dict)  # anything a hook adds to results(); JSON-able values

    def add_table(self, title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
        """A table for both renderers (cells shown with ``str``); returns it."""
        table = Table(title, tuple(map(str, header)), tuple(tuple(map(str, row)) for row in rows))
        self.tables.append(table)
        return table

    @property
    def rlimit(self) -> bool:
        """Some trial ran under rlimit enforcement (weaker than cgroups: the renderers warn)."""
        return any(e.endswith("/rlimit") for e in self.enforcement)

    def metric_table(self) -> Table:
        """Each metric's mean per model × multiplier with its 95% t interval over tasks."""
        rows = []
        for row in self.metric_means:
            mean = row.mean
            interval = "-" if mean.low is None else f"{number(mean.low)}–{number(mean.high)}"
            rows.append((row.metric, row.model, row.multiplier, number(mean.value), interval, str(mean.tasks),
                         str(mean.trials)))
        return Table("metrics (mean of per-task means, t interval over tasks; passed and failed trials only)",
                     METRIC_HEADER, tuple(rows))

    def metric_comparison_table(self) -> Table:
        """Each metric, model B − model A paired by task at each multiplier."""
        rows = tuple((f"@{c.multiplier}", c.metric, f"{c.model_b} − {c.model_a}", str(c.comparison.tasks),
                      f"{c.comparison.difference:+.2f} [{c.comparison.low:+.2f}, {c.comparison.high:+.2f}]",
                      c.verdict) for c in self.metric_comparisons)
        return Table("metric comparisons (paired by task, in the metric's units; t over tasks, p adjusted by BH)",
                     METRIC_COMPARISON_HEADER, rows)

    def results(self) -> dict:
        """The model as JSON-able data (non-finite numbers as None): a hook's sink stores or sends this."""
        def cell(key: Cell) -> dict:
            return {"model": key[0], "multiplier": key[1]}

        data = {
            "models": self.models, "multipliers": self.multipliers, "trials": self.trials,
            "cells": [{**dataclasses.asdict(c), "infra_causes": self.infra_causes.get(k, {}),
                       "outcomes": self.outcome_counts.get(k, {})} for k, c in self.cells.items()],
            "comparisons": [{**dataclasses.asdict(c), "differs": c.differs} for c in self.comparisons],
            "power": dataclasses.asdict(self.power),
            "metrics": [{"metric": r.metric, **cell((r.model, r.multiplier)), **dataclasses.asdict(r.mean)}
                        for r in self.metric_means],
            "metric_comparisons": [{"metric": c.metric, "multiplier": c.multiplier, "model_a": c.model_a,
                                    "model_b": c.model_b, **dataclasses.asdict(c.comparison),
                                    "p_adjusted": c.p_adjusted, "verdict": c.verdict}
                                   for c in self.metric_comparisons],
            "usage": [dataclasses.asdict(u) for u in self.usage],
            "reward_keys": [dataclasses.asdict(r) for r in self.reward_keys],
            "over_declared": [dataclasses.asdict(o) for o in self.over_declared],
            "retries": self.retries and dataclasses.asdict(self.retries),
            "nothing_measured": self.nothing_measured,
            "enforcement": self.enforcement,
            "peaks": [dataclasses.asdict(p) for p in self.peaks],
            "confounders": self.confounders and {
                "findings": [dataclasses.asdict(f) for f in self.confounders.findings],
                "trials": self.confounders.trials, "detectable": self.confounders.detectable,
                "alpha": self.confounders.alpha, "pass_rates": self.confounders.pass_rates},
            "calibration": self.calibration,
            "hosts": self.hosts and self.hosts.to_dict(),
            "reliability": self.reliability,
            "tables": [dataclasses.asdict(t) for t in self.tables],
            **self.extra,
        }
        return _finite(data)


METRIC_HEADER = ("metric", "model", "mult", "mean", "95% CI", "tasks", "trials")
METRIC_COMPARISON_HEADER = ("mult", "metric", "B − A", "tasks", "difference [95% CI]", "verdict")


def number(x: float) -> str:
    """A metric's value as the tables show it: two decimals, thousands grouped from 1,000."""
    return f"{x:.2f}" if abs(x) < 1000 else f"{x:,.0f}"


def rate_text(r: stats.Rate) -> str:
    """``33.3% [19.1–51.2] (6/18)``: value, Wilson 95% interval, denominator (± clustered SE when there is one)."""
    if r.n == 0:
        return "-"
    text = f"{100 * r.value:5.1f}% [{100 * r.low:.1f}–{100 * r.high:.1f}] ({r.k}/{r.n})"
    return text + (f" ±{100 * r.se:.1f}" if r.se is not None else "")


def _share(k: int, n: int) -> str:
    return f"{100 * k / n:.0f}% ({k}/{n})" if n else "-"


def confounder_text(block: confounders.Block | None) -> list[str]:
    """The confounder block's sentences, for both renderers: one per confounder outcomes depend on, else one
    saying nothing was found and what size of effect the run could have seen."""
    if block is None:
        return []
    if not block.tested:
        return ["confounders: none testable (no task's trials differ in outcome within a model × multiplier)"]
    lines = []
    for f in block.flagged:
        odds = "-" if f.test.odds_ratio is None else f"{f.test.odds_ratio:.2f}"
        lines.append(f"confounder: {f.name}: pass rate {_share(*f.pass_high)} in the upper half vs "
                     f"{_share(*f.pass_low)} in the lower, within model × multiplier × task "
                     f"(CMH p={f.p_adjusted:.2g} Holm, MH odds ratio {odds})")
    return lines or [f"confounders: nothing found ({len(block.tested)} tested within model × multiplier × task: "
                     f"{', '.join(f.name for f in block.tested)}); this run could have seen a pass-rate "
                     f"difference of {100 * block.detectable:.0f} points between a confounder's halves "
                     f"({block.trials} trials, 80% power)"]


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def order(values, preferred: Sequence[str], key: Callable = str) -> list[str]:
    """``values`` in the ``preferred`` order first, then the rest sorted by ``key``."""
    seen = set(values)
    return [v for v in preferred if v in seen] + sorted((v for v in seen if v not in preferred), key=key)


@dataclass
class _Groups:
    """What one pass over the records collects."""

    tallies: dict[Cell, dict[str, stats.Tally]] = field(default_factory=lambda: defaultdict(
        lambda: defaultdict(stats.Tally)))
    infra_causes: dict[Cell, Counter] = field(default_factory=lambda: defaultdict(Counter))
    outcomes: dict[Cell, Counter] = field(default_factory=lambda: defaultdict(Counter))
    metric_values: dict[Cell, dict[str, dict[str, list[float]]]] = field(default_factory=lambda: defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))))
    usage: dict[str, _UsageTotals] = field(default_factory=dict)
    rewards: dict[Cell, dict[str, list[int]]] = field(default_factory=lambda: defaultdict(dict))
    several_rewards: bool = False
    declared: dict[str, list] = field(default_factory=dict)  # Harbor task -> [declared, top, over, n]
    ratios: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    enforcement: set = field(default_factory=set)
    ranks: dict[str, float] = field(default_factory=dict)
    tasks: set = field(default_factory=set)
    measured: bool = False

    def add_all(self, records: Sequence[TrialRecord], harbor_task: Callable[[str], bool]) -> None:
        """The one pass over the records, written for speed (30,000 records are the benchmark).

        What only needs counting (outcomes and causes per model × multiplier ×
        task, multipliers, enforcement) is counted by ``Counter`` over attribute
        tuples, in C; the Python loop does what needs each record's nested parts.
        """
        combos = Counter(map(attrgetter("model", "multiplier", "task_id", "outcome", "cause"), records))
        errors = 0
        for (model, mult, task, outcome, cause), n in combos.items():
            key = (model, mult)
            tally = self.tallies[key][task]
            tally.trials += n
            self.tasks.add(task)
            if outcome == PASSED:
                tally.passed += n
                self.outcomes[key][PASSED] += n
                continue
            self.outcomes[key][f"{outcome}/{cause}"] += n
            if outcome == INFRA:
                tally.infra += n
                self.infra_causes[key][cause] += n
            elif outcome == ERROR:
                tally.errors += n
                errors += n
        self.measured = self.measured or errors < len(records)
        for label, factor in dict.fromkeys(map(attrgetter("multiplier", "multiplier_factor"), records)):
            self.ranks.setdefault(label, math.inf if factor is None else float(factor))
        self.enforcement.update(e for e in set(map(attrgetter("backend", "enforcement"), records)) if e[1])
        metric_values, usage = self.metric_values, self.usage
        for r in records:
            if r.metrics and r.outcome in METRIC_OUTCOMES:
                values, task = metric_values[(r.model, r.multiplier)], r.task_id
                for name, value in r.metrics.items():
                    if value is not None:
                        values[name][task].append(float(value))
            totals = usage.get(r.model)
            if totals is None:
                totals = usage[r.model] = _UsageTotals()
            totals.add(r.usage)
            if r.rewards:
                self._add_rewards((r.model, r.multiplier), r.rewards)
            if r.resources:
                self._add_peak(r, harbor_task)

    def _add_rewards(self, key: Cell, rewards: Mapping[str, float]) -> None:
        self.several_rewards = self.several_rewards or len(rewards) > 1
        cell = self.rewards[key]
        for name, value in rewards.items():
            counts = cell.setdefault(name, [0, 0])
            counts[0] += value >= 1
            counts[1] += 1

    def _add_peak(self, r: TrialRecord, harbor_task: Callable[[str], bool]) -> None:
        resources = r.resources
        peak = resources.get("peak_memory_bytes")
        if peak is None:
            return
        spec = r.memory_spec_bytes
        if spec is None:
            return
        if peak and spec and not resources.get("oom_kills"):
            self.ratios[(r.task_id, r.model)].append(peak / spec)
        if harbor_task(r.task_id):
            entry = self.declared.setdefault(r.task_id, [spec, 0, 0, 0])
            entry[1] = max(entry[1], peak)
            entry[2] += peak > entry[0]
            entry[3] += 1


class _UsageTotals:
    """One model's usage, summed as the records go by."""

    __slots__ = ("trials", "model_calls", "tool_calls", "input_tokens", "output_tokens", "provider_retries", "cost")

    def __init__(self):
        self.trials = self.model_calls = self.tool_calls = self.input_tokens = self.output_tokens = 0
        self.provider_retries = 0
        self.cost: float | None = None

    def add(self, u: Mapping) -> None:
        self.trials += 1
        if not u:
            return
        get = u.get
        self.model_calls += get("model_calls") or 0
        self.tool_calls += get("tool_calls") or 0
        self.input_tokens += get("input_tokens") or 0
        self.output_tokens += get("output_tokens") or 0
        self.provider_retries += get("provider_retries") or 0
        cost = get("cost_usd")
        if cost is not None:
            self.cost = (self.cost or 0.0) + cost

    def usage(self, model: str) -> Usage:
        return Usage(model, self.trials, self.model_calls, self.tool_calls, self.input_tokens, self.output_tokens,
                     self.provider_retries, self.cost)


def summarize(records: Sequence[TrialRecord], *, models: Sequence[str] = (), multipliers: Sequence[str] = (),
              superseded: Sequence[TrialRecord] = (), calibration: Mapping | bool | None = None,
              confidence: float = 0.95, host_of: Mapping[str, str] | None = None) -> Summary:
    """The summary of ``records`` (each trial's last attempt; ``superseded``: its earlier ones).

    ``models`` and ``multipliers`` give the configured order (others present
    follow). ``calibration``: a calibration document to carry (calibration.json),
    True to compute it from the records, None/False for none. ``host_of``: a merged run's shards, run id ->
    host (the merged card's ``shards``), for the host test (hosts.py).
    """
    from .harbor import is_task_id

    harbor: dict[str, bool] = {}

    def harbor_task(task_id: str) -> bool:
        known = harbor.get(task_id)
        if known is None:
            known = harbor[task_id] = is_task_id(task_id)
        return known

    groups = _Groups()
    groups.add_all(records, harbor_task)
    rank = groups.ranks.__getitem__
    tallies = groups.tallies
    present_models = order({m for m, _ in tallies}, models)
    mults_by_rank = sorted(groups.ranks, key=rank)
    table_order = [(model, mult) for model in present_models
                   for mult in order({x for m, x in tallies if m == model}, multipliers, key=rank)]
    cells = {key: stats.cell_summary(*key, tallies[key], confidence) for key in table_order}
    names = _metric_names(groups.metric_values)
    metric_means = _metric_means(groups.metric_values, names, table_order, confidence)
    summary = Summary(
        models=present_models, multipliers=mults_by_rank, trials=len(records), cells=cells,
        infra_causes={k: dict(sorted(v.items(), key=lambda cn: str(cn[0]))) for k, v in groups.infra_causes.items()},
        outcome_counts={k: dict(v) for k, v in groups.outcomes.items()},
        comparisons=_comparisons(tallies, present_models, mults_by_rank),
        power=_power(groups),
        metric_names=names, metric_means=metric_means,
        metric_comparisons=_metric_comparisons(groups.metric_values, names, present_models, mults_by_rank),
        usage=_usage(groups.usage, models),
        reward_keys=_reward_keys(groups, models, multipliers, rank),
        over_declared=[OverDeclared(task, *entry) for task, entry in sorted(groups.declared.items())
                       if entry[1] > entry[0]],
        retries=_retries(records, superseded) if superseded else None,
        nothing_measured=(Counter(r.message for r in records).most_common(1)[0][0]
                          if records and not groups.measured else None),
        enforcement=sorted({f"{backend}/{method}" for backend, method in groups.enforcement}),
        peaks=_peaks(groups.ratios, models),
        reliability=_reliability(records, superseded, table_order),
        confounders=confounders.summarize(records),
    )
    if calibration is True:
        from .calibrate import calibrate

        summary.calibration = calibrate(records, models)
    elif calibration:
        summary.calibration = dict(calibration)
    if host_of:
        from .hosts import host_effect

        summary.hosts = host_effect(records, host_of)
    return summary


def _reliability(records: Sequence[TrialRecord], superseded: Sequence[TrialRecord], table_order: list[Cell]) -> dict:
    """pass@k / pass^k, flakiness and retry dependence (every attempt in order, earlier ones first), in table
    order: the same however the trials were scheduled."""
    from .reliability import summarize as reliability

    data = reliability(records, [*superseded, *records])
    cell_rank = {cell: i for i, cell in enumerate(table_order)}
    model_rank = {model: i for i, (model, _) in reversed(list(enumerate(table_order)))}
    data["cells"].sort(key=lambda c: cell_rank.get((c["model"], c["multiplier"]), len(cell_rank)))
    data["retries"].sort(key=lambda d: model_rank.get(d["model"], len(model_rank)))
    return data


def _measured(tally: Mapping[str, stats.Tally] | None) -> bool:
    """Whether any trial here measured something: an error trial (a task or plugin bug) did not."""
    return bool(tally) and any(t.trials > t.errors for t in tally.values())


def _total(tally: Mapping[str, stats.Tally], metric: str) -> tuple[int, int]:
    counts = [t.counts(metric) for t in tally.values()]
    return sum(k for k, _ in counts), sum(m for _, m in counts)


def _comparisons(tallies: Mapping[Cell, Mapping[str, stats.Tally]], models: list[str],
                 multipliers: list[str]) -> list[Comparison]:
    """Multipliers vs the lowest, trends, and model pairs at each multiplier; p adjusted together (BH)."""
    rows: list[tuple] = []  # (label, kind, model, multiplier, metric, difference, p)
    base_mult = multipliers[0] if multipliers else ""
    rates = (("infra_rate", INFRA), ("score", "score"))
    for model in models:
        base = tallies.get((model, base_mult))
        for mult in multipliers[1:]:
            other = tallies.get((model, mult))
            if not (_measured(base) and _measured(other)):
                continue
            for metric, label in rates:
                (k1, n1), (k2, n2) = _total(base, metric), _total(other, metric)
                test = stats.compare_proportions(k1, n1, k2, n2)
                rows.append((f"{model}: {label} {mult} vs {base_mult}", "multiplier", model, mult, metric,
                             test.difference, test.pvalue))
        mine = [tallies[(model, mult)] for mult in multipliers if (model, mult) in tallies]
        if sum(map(_measured, mine)) > 2:
            for metric, label in rates:
                trend = stats.cochran_armitage([_total(t, metric) for t in mine])
                rows.append((f"{model}: {label} trend (z={trend.z:+.2f})", "trend", model, "", metric, None,
                             trend.pvalue))
    for mult in multipliers:
        for a, b in combinations(models, 2):
            ta, tb = tallies.get((a, mult)), tallies.get((b, mult))
            if not (_measured(ta) and _measured(tb)):
                continue
            pair = stats.paired_counts_comparison(stats.task_counts(ta, "score"), stats.task_counts(tb, "score"),
                                                  "score")
            if pair.tasks:
                rows.append((f"@{mult}: score {b} − {a}", "models", f"{b} − {a}", mult, "score", pair.difference,
                             pair.pvalue))
    adjusted = stats.benjamini_hochberg([row[-1] for row in rows])
    return [Comparison(*row, p, stats.verdict(p, None if row[5] is None else 100 * row[5]))
            for row, p in zip(rows, adjusted)]


def _power(groups: _Groups) -> Power:
    samples = max((t.trials for cell in groups.tallies.values() for t in cell.values()), default=1)
    tasks = len(groups.tasks)
    return Power(tasks, samples, stats.minimum_detectable_difference(tasks, samples=samples))


def _metric_names(values: Mapping[Cell, Mapping[str, Any]]) -> list[str]:
    """Every metric some record carries: the built-in ones first, then the rest by name."""
    from .metrics import BUILTIN

    names = {name for cell in values.values() for name in cell}
    return [m for m in BUILTIN if m in names] + sorted(names - set(BUILTIN))


def _metric_means(values, names: list[str], table_order: list[Cell], confidence: float) -> list[MetricRow]:
    """Each metric's mean per model × multiplier (mean of per-task means), within the metric's range."""
    from .metrics import metric_range

    rows = []
    for metric in names:
        for key in table_order:
            by_task = values.get(key, {}).get(metric)
            if by_task:
                mean = stats.mean_over_tasks(metric, by_task, confidence, bounds=metric_range(metric))
                rows.append(MetricRow(metric, *key, mean))
    return rows


def _metric_comparisons(values, names: list[str], models: list[str], multipliers: list[str]) -> list[MetricComparison]:
    """Each metric, model B − model A paired by task at each multiplier, p adjusted by Benjamini–Hochberg.

    Each cell's per-task means are computed once, then paired with every other model's."""
    means = {(key, metric): stats.task_means(by_task) for key, cell in values.items()
             for metric, by_task in cell.items()}
    rows = []
    for metric in names:
        for mult in multipliers:
            for a, b in combinations(models, 2):
                pair = stats.paired_means_comparison(metric, means.get(((a, mult), metric), {}),
                                                     means.get(((b, mult), metric), {}))
                if pair.tasks >= 2:
                    rows.append((metric, mult, a, b, pair))
    adjusted = stats.benjamini_hochberg([row[-1].pvalue for row in rows])
    return [MetricComparison(*row, p, stats.verdict(p, None)) for row, p in zip(rows, adjusted)]


def _usage(totals: Mapping[str, _UsageTotals], models: Sequence[str]) -> list[Usage]:
    """Each model that used any tokens."""
    return [totals[model].usage(model) for model in order(totals, models)
            if totals[model].input_tokens or totals[model].output_tokens]


def _reward_keys(groups: _Groups, models: Sequence[str], multipliers: Sequence[str], rank) -> list[RewardKey]:
    """Each reward key's pass count per cell, when some verifier wrote several keys."""
    if not groups.several_rewards:
        return []
    cells = groups.rewards
    mults = order({x for _, x in cells}, multipliers, key=rank)
    return [RewardKey(model, mult, key, *counts) for model in order({m for m, _ in cells}, models) for mult in mults
            if (model, mult) in cells for key, counts in sorted(cells[(model, mult)].items())]


def _retries(records: Sequence[TrialRecord], superseded: Sequence[TrialRecord]) -> Retries:
    retried = {r.trial_id for r in superseded}
    causes = Counter(f"{r.outcome}/{r.cause}" for r in superseded)
    recovered = sum(1 for r in records if r.trial_id in retried and r.outcome != INFRA)
    return Retries(len(superseded), len(retried), dict(sorted(causes.items())), recovered)


def _peaks(ratios: Mapping[tuple[str, str], list[float]], models: Sequence[str]) -> list[PeakBox]:
    """Per task × model, sorted by task then the configured model order: range and quartiles of peak/spec."""
    rank = {m: i for i, m in enumerate(models)}
    boxes = []
    for task, model in sorted(ratios, key=lambda f: (f[0], rank.get(f[1], len(rank)), f[1])):
        values = ratios[(task, model)]
        q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
        boxes.append(PeakBox(task, model, len(values), min(values), q[0], q[1], q[2], max(values)))
    return boxes
