"""The terminal summary: the run's summary model (summary.py) formatted as lines, printed at the end.

Nothing is computed here: every number comes from a :class:`~pytest_harnessbench.summary.Summary`,
which the HTML report formats too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .outcomes import ERROR, FAILED, INFRA
from .summary import METRIC_COMPARISON_HEADER, METRIC_HEADER, Summary, Table, confounder_text, rate_text

if TYPE_CHECKING:
    from .records import TrialRecord

rate = rate_text  # ``33.3% [19.1–51.2] (6/18)``


def _compact(r, denominator: bool = False) -> tuple[str, str]:
    """Two lines of one rate in the compact table: ``100.0% ±0.0`` (value, task-clustered SE) over
    ``82.4–100.0`` (Wilson 95%), with ``n=18`` appended when the count columns do not show the denominator."""
    if r.n == 0:
        return "-", ""
    first = f"{100 * r.value:.1f}%" + (f" ±{100 * r.se:.1f}" if r.se is not None else "")
    return first, f"{100 * r.low:.1f}–{100 * r.high:.1f}" + (f" n={r.n}" if denominator else "")


def _table(header: Sequence[str], body: list[Sequence[str]], right: Sequence[int] = ()) -> list[str]:
    """Columns padded to their widest cell, two spaces apart; columns in ``right`` are right-aligned."""
    widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header))]

    def fmt(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [fmt(header), fmt(["-" * w for w in widths])] + [fmt(cells) for cells in body]


def outcome_table(summary: Summary, verbose: bool = False) -> list[str]:
    """One row per model × multiplier: two lines, to fit a 100-column terminal, or one wide line if ``verbose``.

    Compact: counts, then each rate as value ± clustered SE; the second line holds
    the infra causes and each rate's Wilson interval (with the denominator of the
    pass rate excluding infra, which no count column shows).
    """
    body = []
    for (model, mult), c in summary.cells.items():
        infra = ",".join(f"{cause}:{n}" for cause, n in summary.infra_causes.get((model, mult), {}).items())
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


def nothing_measured_lines(summary: Summary) -> list[str]:
    """A loud warning when every trial ended in error: the table's 0% is no result at all."""
    if summary.nothing_measured is None:
        return []
    return [f"WARNING: this run measured nothing: all {summary.trials} trials ended in error (a bug in the tasks, "
            f"the plugin or the host, not the models); most common: {summary.nothing_measured}"]


def comparison_rows(summary: Summary) -> list[tuple[str, str]]:
    """(label, verdict) of every comparison, p adjusted together by Benjamini–Hochberg."""
    return [(c.label, c.verdict) for c in summary.comparisons]


def comparison_lines(summary: Summary, verbose: bool = False, width: int = 80) -> list[str]:
    """The comparisons that differ (all of them if ``verbose``), each label and verdict on one line when it fits
    ``width``, else the verdict indented on the next."""
    rows = comparison_rows(summary)
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


def usage_lines(summary: Summary) -> list[str]:
    """Tokens, calls, retries and cost per trial for each model that used any tokens."""
    body = [[u.model, str(u.trials), f"{u.model_calls / u.trials:.1f}", f"{u.tool_calls / u.trials:.1f}",
             f"{u.input_tokens / u.trials:,.0f}", f"{u.output_tokens / u.trials:,.0f}", str(u.provider_retries),
             f"${u.cost_usd:.4f}" if u.cost_usd is not None else "-"] for u in summary.usage]
    if not body:
        return []
    header = ["model", "trials", "model calls/trial", "tool calls/trial", "input tokens/trial",
              "output tokens/trial", "provider retries", "cost"]
    return ["usage:"] + _table(header, body)


def metric_tables(summary: Summary) -> tuple[list[list[str]], list[list[str]]]:
    """(metric rows, metric comparison rows) as the tables show them."""
    return ([list(row) for row in summary.metric_table().rows],
            [list(row) for row in summary.metric_comparison_table().rows])


def metric_lines(summary: Summary, verbose: bool = False, width: int = 80) -> list[str]:
    """Each metric's mean per model × multiplier, one column per metric, and how many paired comparisons differ;
    ``verbose``: the long table with every interval (each metric's name on its first row only) and every
    comparison."""
    rows, comparisons = metric_tables(summary)
    if not verbose:
        differ = sum(c.verdict.startswith("differs") for c in summary.metric_comparisons)
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


def power_line(summary: Summary) -> str:
    p = summary.power
    return (f"detectable score difference: ≥ {100 * p.detectable:.1f} pts "
            f"({p.tasks} tasks × {p.samples} samples, 80% power, α=0.05)")


def retries_line(summary: Summary) -> str | None:
    r = summary.retries
    if r is None:
        return None
    return (f"retries: {r.attempts} earlier attempt(s) of {r.trials} trial(s) superseded "
            f"({', '.join(f'{c} {n}' for c, n in r.causes.items())}); {r.recovered} of those trials then "
            "ended outside infra. The table counts each trial's last attempt; every attempt is in results.jsonl")


def gate_lines(document: Mapping, pairs: Sequence[tuple[str, object]], *, baseline: str, compare=None) -> list[str]:
    """The gate's decision (gate.json's ``status`` and ``blocks``) and one line per verdict, by multiplier."""
    source = f" (baseline from {compare})" if compare else ""
    lines = [f"gate vs {baseline}{source}: {document['status'].upper()} — exit status {document['exit_status']}"]
    lines += [f"  @{mult}: {verdict.message}" for mult, verdict in pairs]
    if not pairs:
        lines.append("  no candidate shares tasks and multipliers with the baseline: nothing to decide")
    return lines


def over_declared_lines(summary: Summary) -> list[str]:
    """Harbor tasks whose measured peak memory exceeds what their task.toml declares (the guarantee).

    A trial at 1x cannot show it (the kernel stops it at the declaration);
    higher multipliers and ``uncapped`` do.
    """
    from .resources import format_size

    if not summary.over_declared:
        return []
    return ["Harbor tasks whose measured peak memory exceeds their declared memory (raise memory_mb, or expect "
            "infra/oom at 1x):"] + [
        f"  {o.task_id}  declared {format_size(o.declared_bytes)}, peak {format_size(o.peak_bytes)} "
        f"({o.peak_bytes / o.declared_bytes:.2f}×), over in {o.over}/{o.trials} trials" for o in summary.over_declared]


def reward_key_lines(summary: Summary) -> list[str]:
    """Each reward key's pass rate (≥ 1) per model × multiplier, when some verifier wrote several keys."""
    if not summary.reward_keys:
        return []
    cells: dict[tuple[str, str], list[str]] = {}
    for r in summary.reward_keys:
        cells.setdefault((r.model, r.multiplier), []).append(f"{r.key} {r.passed}/{r.trials}")
    return (["reward keys (trials with the key ≥ 1, of the trials whose verifier wrote it):"]
            + [f"  {model}@{mult}: {', '.join(shown)}" for (model, mult), shown in cells.items()])


def extension_lines(tables: Sequence[Table]) -> list[str]:
    """Tables that ``pytest_harnessbench_summary`` hooks added."""
    lines = []
    for table in tables:
        lines += [f"{table.title}:"] + _table(list(table.header), [list(row) for row in table.rows])
    return lines


TRIAL_WORDS = {FAILED: "FAILED", ERROR: "ERROR", INFRA: "INFRA"}


def host_lines(summary: Summary) -> list[str]:
    """A run merged from shards on several hosts: whether the outcome depended on the host (hosts.py)."""
    return summary.hosts.lines() if summary.hosts is not None else []


def fit(line: str, width: int) -> str:
    """``line`` cut to ``width`` columns, ending in ``...`` when cut (as pytest cuts its short summary)."""
    return line if len(line) <= width else line[:max(width - 3, 0)] + "..."


def trial_lines(final: Mapping[str, TrialRecord], width: int, outcomes: Sequence[str] = (FAILED, ERROR, INFRA)
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
            if r.outcome == outcome:
                message = " ".join(str(r.message or "").split())
                name = nodeid.rsplit("::", 1)[-1]
                lines.append(fit(f"{TRIAL_WORDS[outcome]} {name} - {outcome}/{r.cause}: {message}", width))
    return lines


def confounder_lines(summary: Summary, width: int = 100) -> list[str]:
    """The confounder block (confounders.py), each sentence wrapped to ``width``."""
    import textwrap

    return [part for line in confounder_text(summary.confounders)
            for part in textwrap.wrap(line, max(width, 40), subsequent_indent="    ")]


def render(summary: Summary, *, run_dir: str = "", gate_lines: Sequence[str] = (), verbose: bool = False,
           width: int = 80) -> list[str]:
    """The summary, ending with the outcome table (the result, on the last screen) and the gate.

    By default comparisons that differ and metric means, in ``width`` columns
    (the table's rows need 100); ``verbose`` (pytest's ``-v``) adds every
    interval and comparison and prints the table one wide line per row.
    """
    lines = reliability_lines(summary, verbose, width)
    lines += usage_lines(summary)
    lines += reward_key_lines(summary)
    lines += over_declared_lines(summary)
    lines += comparison_lines(summary, verbose, width)
    lines.append(power_line(summary))
    lines += confounder_lines(summary, width)
    lines += metric_lines(summary, verbose, width)
    lines += extension_lines(summary.tables)
    lines += outcome_table(summary, verbose)
    lines += filter(None, [retries_line(summary)])
    lines += nothing_measured_lines(summary)
    lines.append(f"enforcement: {', '.join(summary.enforcement) or 'none (no sandbox started)'}; ± clustered SE; "
                 + ("2nd line: infra causes, Wilson 95%" if not verbose else "[Wilson 95%]"))
    if summary.rlimit:
        lines.append("WARNING: rlimit enforcement caps virtual memory per command and does not limit CPU; "
                     "these limits are weaker than the kernel cgroup limits of a real sandbox")
    lines += host_lines(summary)
    lines += list(gate_lines)
    if run_dir:
        lines.append(f"run directory: {run_dir}")
    return lines


# --- the sequential gate and reliability across samples (sequential.py, reliability.py) ---------------------


def sequential_lines(block: Mapping | None, prices: bool = False) -> list[str]:
    """Where the sequential gate stopped and what it saved (gate.json's ``sequential``); nothing without it."""
    if not block:
        return []
    looked, total = block.get("looked", 0), block.get("tasks", 0)
    head = (f"  sequential: {block['reason']} (seeded order {block['seed']})" if block.get("stopped") else
            f"  sequential: not decided early; looked after {looked}/{total} tasks (seeded order {block['seed']})")
    if not block.get("skipped_trials"):
        return [head]
    cost = block.get("saved_usd")
    saved = f"saved {block['skipped_trials']} trials"
    saved += f", about ${cost:.2f} at --hb-prices" if cost is not None else "" if not prices else ", cost unknown"
    return [f"{head}; {saved}"]


def reliability_lines(summary: Summary, verbose: bool = False, width: int = 80) -> list[str]:
    """pass^k / pass@k per model × multiplier, flaky tasks and the run-to-run share of the score's variance, and
    retry dependence (``Summary.reliability``).

    Compact by default, as the rest of the summary (it must stay readable at thousands of trials on an 80-column
    terminal): one line when every task's samples agree in every cell (pass^k = pass@k = the score), else
    pass^1, pass^K, pass@K and the flaky count; ``verbose`` shows every k with intervals, the run-to-run share,
    the rerun SD and the flaky tasks by name."""
    import textwrap

    lines = []
    data = summary.reliability
    cells = data["cells"]
    if cells and not verbose and not any((cell["flakiness"] or {}).get("flaky") for cell in cells):
        lines += textwrap.wrap("reliability: every task's samples agree (pass^k = pass@k = score; -v: table)",
                               max(width, 40), subsequent_indent="  ")
    elif cells:
        top = max(cell["samples"] for cell in cells)
        ks = range(1, top + 1) if verbose else sorted({1, top})
        header = ["model", "mult", *(f"pass^{k}" for k in ks), f"pass@{top}", "flaky"]
        header += ["run-to-run", "rerun ±"] if verbose else []
        body, left_out = [], 0
        for cell in cells:
            by = {p["metric"]: p for p in cell["pass_k"]}
            shown = [by.get(f"pass^{k}") for k in ks] + [by.get(f"pass@{top}")]
            left_out = max([left_out, *(p["left_out"] for p in shown if p)])
            flaky = cell["flakiness"]
            row = [cell["model"], cell["multiplier"], *(_pass_k_cell(p, verbose) for p in shown),
                   f"{len(flaky['flaky'])}/{flaky['tasks']}" if flaky else "-"]
            if verbose:
                row += [f"{100 * flaky['share_within']:.0f}%" if flaky and flaky["share_within"] is not None else "-",
                        f"{100 * flaky['rerun_sd']:.1f} pts" if flaky else "-"]
            body.append(row)
        about = ("reliability over samples, infra left out"
                 + (f", tasks with fewer than k samples left out (up to {left_out} per cell)" if left_out else "")
                 + ": pass^k all k samples pass, pass@k at least one; flaky: tasks whose samples disagree"
                 + ("; run-to-run: share of the score's variance within tasks; rerun ±: the score's SD over reruns"
                    if verbose else " (-v: every k, intervals, run-to-run variance)"))
        lines += textwrap.wrap(about, max(width, 40), subsequent_indent="  ")
        lines += _table(header, body, right=range(2, len(header)))
        if verbose:
            for cell in cells:
                flaky = (cell["flakiness"] or {}).get("flaky")
                if flaky:
                    lines.append(f"  flaky {cell['model']}@{cell['multiplier']}: {', '.join(flaky)}")
    for d in data["retries"]:
        line = (f"retry dependence {d['model']}: {d['retry_passes']} of {d['trials']} trials passed only on a retry "
                f"({d['retried']} retried); first-attempt score {100 * d['first_score']:.1f}% vs final "
                f"{100 * d['final_score']:.1f}%")
        line += " — FLAGGED: the score rests on retries" if d["flagged"] else ""
        lines += textwrap.wrap(line, max(width, 40), subsequent_indent="  ")
    return lines


def _pass_k_cell(p: Mapping | None, verbose: bool) -> str:
    if p is None or p["value"] is None:
        return "-"
    text = f"{100 * p['value']:.1f}%"
    if verbose and p["low"] is not None:
        text += f" [{100 * p['low']:.0f}–{100 * p['high']:.0f}]"
    return text
