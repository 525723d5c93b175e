"""The terminal summary: rows built as data from records, rendered at the end.

Everything depends only on the set of records and the configured order of
models and multipliers, so the summary is identical however trials were
scheduled (serially or under xdist).
"""

from __future__ import annotations

from collections import Counter
from itertools import combinations
from typing import Callable, Mapping, Sequence

from . import confounders, stats

Record = Mapping


def _order(values, preferred: Sequence[str], key=str) -> list[str]:
    seen = set(values)
    return [v for v in preferred if v in seen] + sorted((v for v in seen if v not in preferred), key=key)


def rate(r: stats.Rate) -> str:
    """``33.3% [19.1–51.2] (6/18)``: value, Wilson 95% interval, denominator."""
    if r.n == 0:
        return "-"
    text = f"{100 * r.value:5.1f}% [{100 * r.low:.1f}–{100 * r.high:.1f}] ({r.k}/{r.n})"
    return text + (f" ±{100 * r.se:.1f}" if r.se is not None else "")


def _compact(r: stats.Rate, denominator: bool = False) -> tuple[str, str]:
    """Two lines of one rate in the compact table: ``100.0% ±0.0`` (value, task-clustered SE) over
    ``82.4–100.0`` (Wilson 95%), with ``n=18`` appended when the count columns do not show the denominator."""
    if r.n == 0:
        return "-", ""
    first = f"{100 * r.value:.1f}%" + (f" ±{100 * r.se:.1f}" if r.se is not None else "")
    return first, f"{100 * r.low:.1f}–{100 * r.high:.1f}" + (f" n={r.n}" if denominator else "")


def _table(header: list[str], body: list[list[str]], right: Sequence[int] = ()) -> list[str]:
    """Columns padded to their widest cell, two spaces apart; columns in ``right`` are right-aligned."""
    widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header))]

    def fmt(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [fmt(header), fmt(["-" * w for w in widths])] + [fmt(cells) for cells in body]


def outcome_table(records: Sequence[Record], models: Sequence[str], multipliers: Sequence[str],
                  verbose: bool = False) -> list[str]:
    """One row per model × multiplier: two lines, to fit a 100-column terminal, or one wide line if ``verbose``.

    Compact: counts, then each rate as value ± clustered SE; the second line holds
    the infra causes and each rate's Wilson interval (with the denominator of the
    pass rate excluding infra, which no count column shows).
    """
    cells = stats.summarize(records)
    causes = Counter((r["model"], r["multiplier"], r["cause"]) for r in records if r["outcome"] == "infra")
    body = []
    for model in _order({m for m, _ in cells}, models):
        for mult in _order({x for m, x in cells if m == model}, multipliers, key=stats.multiplier_key(records)):
            c = cells[(model, mult)]
            infra = ",".join(f"{cause}:{n}" for (m, x, cause), n in sorted(causes.items()) if (m, x) == (model, mult))
            counts = [str(c.trials), str(c.score.k), str(c.trials - c.score.k - c.infra_rate.k - c.errors)]
            if verbose:
                body.append([model, mult, *counts, f"{c.infra_rate.k} ({infra})" if c.infra_rate.k else "0",
                             str(c.errors), rate(c.score), rate(c.pass_rate), rate(c.infra_rate)])
                continue
            (s1, s2), (p1, p2), (i1, i2) = _compact(c.score), _compact(c.pass_rate, True), _compact(c.infra_rate)
            body.append([model, mult, *counts, str(c.infra_rate.k), str(c.errors), s1, p1, i1])
            body.append(["", "", "", "", "", infra, "", s2, p2, i2])
    if verbose:
        header = ["model", "mult", "trials", "passed", "failed", "infra", "error",
                  "score (passed/all)", "pass rate excl. infra", "infra rate"]
        return _table(header, body)
    header = ["model", "mult", "trials", "pass", "fail", "infra", "err", "score", "excl. infra", "infra rate"]
    return _table(header, body, right=range(2, 7))


def _comparisons(records: Sequence[Record], models: list[str], multipliers: list[str]) -> list[tuple[str, float | None, float]]:
    """(label, difference or None for a trend, p) for multipliers vs 1x, trends, and model pairs at each multiplier."""
    rows = []
    cells: dict[tuple[str, str], list] = {}  # grouped once: every comparison below reads cells
    for r in records:
        cells.setdefault((r["model"], r["multiplier"]), []).append(r)

    def by(model: str, mult: str) -> list:
        return cells.get((model, mult), [])

    base_mult = multipliers[0]
    for model in models:
        base = by(model, base_mult)
        for mult in multipliers[1:]:
            other = by(model, mult)
            if not (_measured(base) and _measured(other)):
                continue
            for metric, label in (("infra_rate", "infra"), ("score", "score")):
                a, b = stats.metric_rate(base, metric), stats.metric_rate(other, metric)
                test = stats.compare_proportions(a.k, a.n, b.k, b.n)
                rows.append((f"{model}: {label} {mult} vs {base_mult}", test.difference, test.pvalue))
        if sum(_measured(by(model, mult)) for mult in multipliers) > 2:
            mine = [r for mult in multipliers for r in by(model, mult)]
            for metric, label in (("infra_rate", "infra"), ("score", "score")):
                trend = stats.multiplier_trend(mine, metric)
                rows.append((f"{model}: {label} trend (z={trend.z:+.2f})", None, trend.pvalue))
    for mult in multipliers:
        for a, b in combinations(models, 2):
            if not (_measured(by(a, mult)) and _measured(by(b, mult))):
                continue
            pair = stats.paired_comparison(by(a, mult), by(b, mult), "score")
            if pair.tasks:
                rows.append((f"@{mult}: score {b} − {a}", pair.difference, pair.pvalue))
    return rows


def _measured(records: Sequence[Record]) -> bool:
    """Whether any trial here measured something: an error trial (a task or plugin bug) did not."""
    return any(r["outcome"] != "error" for r in records)


def nothing_measured_lines(records: Sequence[Record]) -> list[str]:
    """A loud warning when every trial ended in error: the table's 0% is no result at all."""
    if not records or _measured(records):
        return []
    first = Counter(r["message"] for r in records).most_common(1)[0][0]
    return [f"WARNING: this run measured nothing: all {len(records)} trials ended in error (a bug in the tasks, "
            f"the plugin or the host, not the models); most common: {first}"]


def comparison_rows(records: Sequence[Record], models: Sequence[str], multipliers: Sequence[str]) -> list[tuple[str, str]]:
    """(label, verdict) of every comparison, p adjusted together by Benjamini–Hochberg."""
    present_models = _order({r["model"] for r in records}, models)
    present_mults = sorted({r["multiplier"] for r in records}, key=stats.multiplier_key(records))
    rows = _comparisons(records, present_models, present_mults)
    adjusted = stats.benjamini_hochberg([p for _, _, p in rows])
    return [(label, stats.verdict(p, None if diff is None else 100 * diff)) for (label, diff, _), p in zip(rows, adjusted)]


def comparison_lines(records: Sequence[Record], models: Sequence[str], multipliers: Sequence[str],
                     verbose: bool = False, width: int = 80) -> list[str]:
    """The comparisons that differ (all of them if ``verbose``), each label and verdict on one line when it fits
    ``width``, else the verdict indented on the next."""
    rows = comparison_rows(records, models, multipliers)
    if not rows:
        return []
    shown = rows if verbose else [(label, verdict) for label, verdict in rows if verdict.startswith("differs")]
    hidden = len(rows) - len(shown)
    lines = ["comparisons, p adjusted by Benjamini–Hochberg"
             + (f" ({hidden} within noise: -v lists them)" if hidden else "") + (":" if shown else "")]
    column = max((len(label) for label, _ in shown), default=0)
    for label, verdict in shown:
        line = f"  {label.ljust(column)}  {verdict}"
        lines += [line] if len(line) <= width else [f"  {label}", f"      {verdict}"]
    return lines


def usage_lines(records: Sequence[Record], models: Sequence[str]) -> list[str]:
    """Tokens, calls, retries and cost per trial for each model that used any tokens."""
    by_model: dict[str, list[dict]] = {}
    for r in records:
        by_model.setdefault(r["model"], []).append(r.get("usage") or {})
    body = []
    for model in _order(by_model, models):
        usages = by_model[model]
        total = lambda key: sum(u.get(key) or 0 for u in usages)  # noqa: E731
        if not (total("input_tokens") or total("output_tokens")):
            continue
        n = len(usages)
        costs = [u["cost_usd"] for u in usages if u.get("cost_usd") is not None]
        body.append([model, str(n), f"{total('model_calls') / n:.1f}", f"{total('tool_calls') / n:.1f}",
                     f"{total('input_tokens') / n:,.0f}", f"{total('output_tokens') / n:,.0f}",
                     str(total("provider_retries")), f"${sum(costs):.4f}" if costs else "-"])
    if not body:
        return []
    header = ["model", "trials", "model calls/trial", "tool calls/trial", "input tokens/trial",
              "output tokens/trial", "provider retries", "cost"]
    return ["usage:"] + _table(header, body)


def _number(x: float) -> str:
    return f"{x:.2f}" if abs(x) < 1000 else f"{x:,.0f}"


def _metric_names(records: Sequence[Record]) -> list[str]:
    """Every metric some record carries: the built-in ones first, then the rest by name."""
    from .metrics import BUILTIN

    names = {name for r in records for name in r.get("metrics") or {}}
    return [m for m in BUILTIN if m in names] + sorted(names - set(BUILTIN))


METRIC_HEADER = ["metric", "model", "mult", "mean", "95% CI", "tasks", "trials"]
METRIC_COMPARISON_HEADER = ["mult", "metric", "B − A", "tasks", "difference [95% CI]", "verdict"]


def _metric_cells(records: Sequence[Record]) -> dict[tuple[str, str], dict[str, dict[str, list[float]]]]:
    """(model, multiplier) -> metric -> task -> values: grouped once for every row and comparison."""
    cells: dict[tuple[str, str], list[Record]] = {}
    for r in records:
        cells.setdefault((r["model"], r["multiplier"]), []).append(r)
    return {key: stats.per_task_metrics(cell) for key, cell in cells.items()}


def metric_tables(records: Sequence[Record], models: Sequence[str],
                  multipliers: Sequence[str]) -> tuple[list[list[str]], list[list[str]]]:
    """(metric rows, metric comparison rows), from the records grouped once."""
    cells, names, rank = _metric_cells(records), _metric_names(records), stats.multiplier_key(records)
    return (_metric_rows(cells, names, models, multipliers, rank),
            _metric_comparison_rows(cells, names, models, multipliers, rank))


def _metric_rows(cells, names: list[str], models: Sequence[str], multipliers: Sequence[str],
                 rank: Callable[[str], float]) -> list[list[str]]:
    """Each metric's mean per model × multiplier with its 95% t interval over tasks, within the metric's range
    (METRIC_HEADER)."""
    from .metrics import metric_range

    rows = []
    for metric in names:
        for model in _order({m for m, _ in cells}, models):
            for mult in _order({x for m, x in cells if m == model}, multipliers, key=rank):
                mean = stats.mean_over_tasks(metric, cells[(model, mult)].get(metric, {}), bounds=metric_range(metric))
                if mean.trials:
                    interval = "-" if mean.low is None else f"{_number(mean.low)}–{_number(mean.high)}"
                    rows.append([metric, model, mult, _number(mean.value), interval, str(mean.tasks),
                                 str(mean.trials)])
    return rows


def _metric_comparison_rows(cells, names: list[str], models: Sequence[str], multipliers: Sequence[str],
                            rank: Callable[[str], float]) -> list[list[str]]:
    """Each metric, model B − model A paired by task at each multiplier, p adjusted by Benjamini–Hochberg
    (METRIC_COMPARISON_HEADER)."""
    present_models = _order({m for m, _ in cells}, models)
    present_mults = sorted({x for _, x in cells}, key=rank)
    rows, pvalues = [], []
    for metric in names:
        for mult in present_mults:
            for a, b in combinations(present_models, 2):
                pair = stats.paired_tasks_comparison(metric, cells.get((a, mult), {}).get(metric, {}),
                                                     cells.get((b, mult), {}).get(metric, {}))
                if pair.tasks >= 2:
                    rows.append([f"@{mult}", metric, f"{b} − {a}", str(pair.tasks),
                                 f"{pair.difference:+.2f} [{pair.low:+.2f}, {pair.high:+.2f}]"])
                    pvalues.append(pair.pvalue)
    for row, p in zip(rows, stats.benjamini_hochberg(pvalues)):
        row.append(stats.verdict(p, None))
    return rows


def metric_lines(records: Sequence[Record], models: Sequence[str], multipliers: Sequence[str],
                 verbose: bool = False, width: int = 80) -> list[str]:
    """Each metric's mean per model × multiplier, one column per metric, and how many paired comparisons differ;
    ``verbose``: the long table with every interval (each metric's name on its first row only) and every
    comparison."""
    rows, comparisons = metric_tables(records, models, multipliers)
    if not verbose:
        differ = sum(row[-1].startswith("differs") for row in comparisons)
        return _metric_means(rows, width) + ([
            f"metric comparisons paired by task: {differ} of {len(comparisons)} differ (-v lists them)"]
            if comparisons else [])
    lines = []
    if rows:
        shown = [[""] + row[1:] if i and row[0] == rows[i - 1][0] else row for i, row in enumerate(rows)]
        lines += (["metrics (mean of per-task means, t interval over tasks; passed and failed trials only):"]
                  + _table(METRIC_HEADER, shown, right=(3, 5, 6)))
    if comparisons:
        lines += (["metric comparisons (paired by task, in the metric's units; t over tasks, p adjusted by BH):"]
                  + _table(METRIC_COMPARISON_HEADER, comparisons, right=(3,)))
    return lines


def _metric_means(rows: list[list[str]], width: int) -> list[str]:
    """The metric rows (METRIC_HEADER) pivoted: a row per model × multiplier, a column per metric's mean; as
    many tables as it takes to fit ``width``."""
    if not rows:
        return []
    metrics = list(dict.fromkeys(row[0] for row in rows))
    cells = list(dict.fromkeys((row[1], row[2]) for row in rows))
    mean = {(row[1], row[2], row[0]): row[3] for row in rows}
    lines = ["metrics (mean of per-task means; passed and failed trials; -v: 95% intervals):"]
    fixed = max(len(m) for m, _ in cells) + max(len("mult"), *(len(x) for _, x in cells)) + 4
    while metrics:
        chunk, used = [], fixed
        for metric in metrics:
            column = max(len(metric), *(len(mean.get((m, x, metric), "-")) for m, x in cells)) + 2
            if chunk and used + column > width:
                break
            chunk.append(metric)
            used += column
        metrics = metrics[len(chunk):]
        body = [[m, x, *(mean.get((m, x, metric), "-") for metric in chunk)] for m, x in cells]
        lines += _table(["model", "mult", *chunk], body, right=range(2, 2 + len(chunk)))
    return lines


def power_line(records: Sequence[Record]) -> str:
    tasks = len({r["task_id"] for r in records})
    per_cell = Counter((r["task_id"], r["model"], r["multiplier"]) for r in records)
    samples = max(per_cell.values()) if per_cell else 1
    mdd = stats.minimum_detectable_difference(tasks, samples=samples)
    return (f"detectable score difference: ≥ {100 * mdd:.1f} pts "
            f"({tasks} tasks × {samples} samples, 80% power, α=0.05)")


def retries_line(records: Sequence[Record], superseded: Sequence[Record]) -> str:
    causes = Counter(f"{r['outcome']}/{r['cause']}" for r in superseded)
    retried = {r["trial_id"] for r in superseded}
    recovered = sum(1 for r in records if r["trial_id"] in retried and r["outcome"] != "infra")
    return (f"retries: {len(superseded)} earlier attempt(s) of {len(retried)} trial(s) superseded "
            f"({', '.join(f'{c} {n}' for c, n in sorted(causes.items()))}); {recovered} of those trials then "
            "ended outside infra. The table counts each trial's last attempt; every attempt is in results.jsonl")


def gate_lines(document: Mapping, pairs: Sequence[tuple[str, object]], *, baseline: str, compare=None) -> list[str]:
    """The gate's decision (gate.json's ``status`` and ``blocks``) and one line per verdict, by multiplier."""
    source = f" (baseline from {compare})" if compare else ""
    lines = [f"gate vs {baseline}{source}: {document['status'].upper()} — exit status {document['exit_status']}"]
    lines += [f"  @{mult}: {verdict.message}" for mult, verdict in pairs]
    if not pairs:
        lines.append("  no candidate shares tasks and multipliers with the baseline: nothing to decide")
    return lines


def over_declared_lines(records: Sequence[Record]) -> list[str]:
    """Harbor tasks whose measured peak memory exceeds what their task.toml declares (the guarantee).

    A trial at 1x cannot show it (the kernel stops it at the declaration);
    higher multipliers and ``uncapped`` do.
    """
    from .harbor import is_task_id
    from .resources import format_size

    rows: dict[str, tuple[int, int, int, int]] = {}  # task -> declared, max peak, trials over, trials
    for r in records:
        declared = ((r.get("allocation") or {}).get("guarantee") or {}).get("memory_bytes")
        peak = (r.get("resources") or {}).get("peak_memory_bytes")
        if not is_task_id(r["task_id"]) or declared is None or peak is None:
            continue
        _, top, over, n = rows.get(r["task_id"], (declared, 0, 0, 0))
        rows[r["task_id"]] = (declared, max(top, peak), over + (peak > declared), n + 1)
    over = [(task, *row) for task, row in sorted(rows.items()) if row[1] > row[0]]
    if not over:
        return []
    return ["Harbor tasks whose measured peak memory exceeds their declared memory (raise memory_mb, or expect "
            "infra/oom at 1x):"] + [
        f"  {task}  declared {format_size(declared)}, peak {format_size(top)} ({top / declared:.2f}×), "
        f"over in {k}/{n} trials" for task, declared, top, k, n in over]


def reward_key_lines(records: Sequence[Record], models: Sequence[str], multipliers: Sequence[str]) -> list[str]:
    """Each reward key's pass rate (≥ 1) per model × multiplier, when some verifier wrote several keys."""
    if not any(len(r.get("rewards") or {}) > 1 for r in records):
        return []
    cells: dict[tuple[str, str], Counter] = {}
    totals: dict[tuple[str, str], Counter] = {}
    for r in records:
        for key, value in (r.get("rewards") or {}).items():
            cell = (r["model"], r["multiplier"])
            totals.setdefault(cell, Counter())[key] += 1
            cells.setdefault(cell, Counter())[key] += value >= 1
    lines = ["reward keys (trials with the key ≥ 1, of the trials whose verifier wrote it):"]
    mults = _order({m for _, m in totals}, multipliers, key=stats.multiplier_key(records))
    for model in _order({m for m, _ in totals}, models):
        for mult in mults:
            if (model, mult) in totals:
                shown = ", ".join(f"{key} {cells[(model, mult)][key]}/{n}" for key, n in sorted(totals[(model, mult)].items()))
                lines.append(f"  {model}@{mult}: {shown}")
    return lines


TRIAL_WORDS = {"failed": "FAILED", "error": "ERROR", "infra": "INFRA"}


def fit(line: str, width: int) -> str:
    """``line`` cut to ``width`` columns, ending in ``...`` when cut (as pytest cuts its short summary)."""
    return line if len(line) <= width else line[:max(width - 3, 0)] + "..."


def trial_lines(final: Mapping[str, Record], width: int, outcomes: Sequence[str] = ("failed", "error", "infra")
                ) -> list[str]:
    """One line per trial that ended in one of ``outcomes``: ``FAILED test_x[nop@1x#1] - failed/assertion: ...``.

    ``final`` maps node ids to each trial's last record. A trial is named as
    pytest heads a failure, by the item's name (a whole node id can fill the
    line alone); each line is cut to ``width``. Grouped by outcome, in node-id
    order within each.
    """
    lines = []
    for outcome in outcomes:
        for nodeid, r in sorted(final.items()):
            if r["outcome"] == outcome:
                message = " ".join(str(r["message"] or "").split())
                name = nodeid.rsplit("::", 1)[-1]
                lines.append(fit(f"{TRIAL_WORDS[outcome]} {name} - {outcome}/{r['cause']}: {message}", width))
    return lines


def render(records: Sequence[Record], *, models: Sequence[str] = (), multipliers: Sequence[str] = (),
           run_dir: str = "", gate_lines: Sequence[str] = (), superseded: Sequence[Record] = (),
           verbose: bool = False, width: int = 80) -> list[str]:
    """The summary, ending with the outcome table (the result, on the last screen) and the gate;
    ``records`` hold each trial's last attempt, ``superseded`` its earlier ones.

    By default comparisons that differ and metric means, in ``width`` columns
    (the table's rows need 100); ``verbose`` (pytest's ``-v``) adds every
    interval and comparison and prints the table one wide line per row.
    """
    lines = usage_lines(records, models)
    lines += reward_key_lines(records, models, multipliers)
    lines += over_declared_lines(records)
    lines += comparison_lines(records, models, multipliers, verbose, width)
    lines.append(power_line(records))
    lines += confounders.lines(records, width=width)
    lines += metric_lines(records, models, multipliers, verbose, width)
    lines += outcome_table(records, models, multipliers, verbose)
    if superseded:
        lines.append(retries_line(records, superseded))
    lines += nothing_measured_lines(records)
    enforcement = sorted({f"{r['backend']}/{r['enforcement']}" for r in records if r["enforcement"]})
    lines.append(f"enforcement: {', '.join(enforcement) or 'none (no sandbox started)'}; ± clustered SE; "
                 + ("2nd line: infra causes, Wilson 95%" if not verbose else "[Wilson 95%]"))
    if any(r["enforcement"] == "rlimit" for r in records):
        lines.append("WARNING: rlimit enforcement caps virtual memory per command and does not limit CPU; "
                     "these limits are weaker than the kernel cgroup limits of a real sandbox")
    lines += list(gate_lines)
    if run_dir:
        lines.append(f"run directory: {run_dir}")
    return lines
