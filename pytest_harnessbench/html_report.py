"""The HTML report: one self-contained file that opens with no network.

Plots are Bokeh figures, with BokehJS (``bokeh.min.js``, about 1.3 MB, from the
``bokeh`` package itself) inlined once; plotly's bundle is 4.8 MB, over the
report's 2 MB budget for the example bake-off. The per-trial table and the
trajectory viewer are plain HTML filled by a few lines of JavaScript from JSON
embedded in the page, so 30,000 trials cost one JSON blob, not 30,000 rows of
markup: the table draws the first ``TABLE_PAGE`` matching rows.

``render`` formats the run's summary model (``summary.Summary``, the same
the terminal summary formats) and the records and documents of the trial
table; ``write`` reads a run directory (through ``store.RunDir``) and writes
the file.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .outcomes import ERROR, FAILED, INFRA, PASSED
from .store import RunDir, trajectory_key
from .summary import Summary, Table, confounder_text, rate_text, summarize

if TYPE_CHECKING:
    from .records import TrialRecord

TABLE_PAGE = 500
OUTCOME_COLORS = {PASSED: "#2ca02c", FAILED: "#ff7f0e", INFRA: "#d62728", ERROR: "#7f7f7f"}
MODEL_COLORS = ("#1f77b4", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#ff7f0e", "#2ca02c")


def _short(task_id: str) -> str:
    return task_id.rsplit("::", 1)[-1]


def rate_figure(summary: Summary, model: str):
    """The study's figure for one model: score and infra rate vs multiplier, Wilson 95% whiskers."""
    from bokeh.models import ColumnDataSource, HoverTool, Whisker
    from bokeh.plotting import figure
    from bokeh.transform import dodge

    multipliers = summary.multipliers
    fig = figure(x_range=multipliers, y_range=(-0.02, 1.05), height=260, width=360, title=model,
                 toolbar_location=None, name=f"rates:{model}")
    fig.yaxis.axis_label = "rate (95% interval)"
    fig.xaxis.axis_label = "kill threshold (× spec)"
    for metric, color, offset in (("score", "#1f77b4", -0.08), ("infra_rate", "#d62728", 0.08)):
        rows = [(m, getattr(summary.cells[(model, m)], metric)) for m in multipliers if (model, m) in summary.cells]
        source = ColumnDataSource({"x": [m for m, _ in rows], "y": [r.value for _, r in rows],
                                   "low": [r.low for _, r in rows], "high": [r.high for _, r in rows],
                                   "label": [rate_text(r) for _, r in rows]})
        x = dodge("x", offset, range=fig.x_range)
        label = "score (passed/all)" if metric == "score" else "infra rate"
        fig.line(x=x, y="y", source=source, color=color, legend_label=label)
        fig.scatter(x=x, y="y", source=source, color=color, size=8, legend_label=label, name=f"{metric}:{model}")
        fig.add_layout(Whisker(base=x, lower="low", upper="high", source=source, line_color=color))
    fig.add_tools(HoverTool(tooltips=[("", "@x: @label")]))
    fig.legend.label_text_font_size = "8pt"
    fig.legend.orientation = "horizontal"
    fig.add_layout(fig.legend[0], "above")
    return fig


def outcome_figure(summary: Summary):
    """Stacked counts of outcome/cause per model × multiplier."""
    from bokeh.models import FactorRange, HoverTool
    from bokeh.plotting import figure

    counts = summary.outcome_counts
    order = {o: i for i, o in enumerate(OUTCOME_COLORS)}
    kinds = sorted({k for cell in counts.values() for k in cell}, key=lambda k: (order.get(k.split("/")[0], 9), k))
    factors = [(m, x) for m in summary.models for x in summary.multipliers if counts.get((m, x))]
    data = {"x": factors, **{k: [counts[f].get(k, 0) for f in factors] for k in kinds}}
    shades = defaultdict(int)
    colors = []
    for kind in kinds:  # each cause of one outcome a lighter shade of its colour
        outcome = kind.split("/")[0]
        colors.append(_lighten(OUTCOME_COLORS.get(outcome, "#000000"), 0.25 * shades[outcome]))
        shades[outcome] += 1
    fig = figure(x_range=FactorRange(*factors), height=300, width=max(500, 60 * len(factors)), toolbar_location=None,
                 title="outcomes per model × multiplier", name="outcomes")
    fig.vbar_stack(kinds, x="x", width=0.8, source=data, color=colors, legend_label=kinds)
    fig.add_tools(HoverTool(tooltips=[("", "@x: $name @$name trials")]))
    fig.yaxis.axis_label = "trials"
    fig.xaxis.major_label_orientation = 0.8
    fig.legend.label_text_font_size = "8pt"
    fig.add_layout(fig.legend[0], "right")
    return fig


def pass_k_figure(summary: Summary):
    """pass^k (solid) and pass@k (dashed) against k, a line per model × multiplier (``Summary.reliability``);
    None with one sample per task.

    Three renderers whatever the number of cells (the solid lines, the dashed ones, the points), not two per
    line and kind: Bokeh's cost is per model object, and at 5 models × 6 multipliers the figure was half the
    report's render time for 30,000 trials (``benchmarks/bench_report.py``).
    """
    from bokeh.models import HoverTool
    from bokeh.plotting import figure

    models = summary.models
    cells = summary.reliability["cells"]
    if not cells:
        return None
    rank = {m: i for i, m in enumerate(models)}
    top = max(cell["samples"] for cell in cells)
    fig = figure(height=300, width=560, y_range=(-0.02, 1.05), x_range=(0.8, top + 0.2), toolbar_location=None,
                 title="pass^k (solid: all k samples pass) and pass@k (dashed: at least one)", name="passk")
    lines = {kind: {"xs": [], "ys": [], "color": [], "label": []} for kind in ("^", "@")}
    points = {"k": [], "value": [], "tasks": [], "metric": [], "color": [], "label": []}
    for cell in sorted(cells, key=lambda c: (rank.get(c["model"], len(rank)), c["multiplier"])):
        color = MODEL_COLORS[rank.get(cell["model"], len(rank)) % len(MODEL_COLORS)]
        label = f"{cell['model']}@{cell['multiplier']}"
        for kind, line in lines.items():
            curve = [p for p in cell["pass_k"] if p["metric"].startswith(f"pass{kind}") and p["value"] is not None]
            line["xs"].append([p["k"] for p in curve])
            line["ys"].append([p["value"] for p in curve])
            line["color"].append(color)
            line["label"].append(label)
            for p in curve:
                for column in ("k", "value", "tasks", "metric"):
                    points[column].append(p[column])
                points["color"].append(color)
                points["label"].append(label)
    fig.multi_line("xs", "ys", source=lines["^"], color="color", legend_field="label")
    fig.multi_line("xs", "ys", source=lines["@"], color="color", line_dash="dashed")
    dots = fig.scatter("k", "value", source=points, color="color", size=6)
    fig.add_tools(HoverTool(renderers=[dots], tooltips=[("", "@label: @metric = @value{0.000} over @tasks tasks")]))
    fig.xaxis.axis_label = "k (samples)"
    fig.xaxis.ticker = list(range(1, top + 1))
    fig.legend.label_text_font_size = "8pt"
    fig.add_layout(fig.legend[0], "right")
    return fig


def _lighten(color: str, amount: float) -> str:
    rgb = [int(color[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (255 - c) * min(amount, 0.8)):02x}" for c in rgb)


def peak_figure(summary: Summary, models: Sequence[str]):
    """Peak memory over the task's spec, per task × model: a box (quartiles), a whisker (min–max) and the median.

    Summaries rather than one point per trial keep the figure's data small at
    30,000 trials. OOM-killed trials are left out (their peak is the limit they
    hit); the line at 1 is the spec.
    """
    from bokeh.models import ColumnDataSource, FactorRange, HoverTool, Span
    from bokeh.plotting import figure

    if not summary.peaks:
        return None
    rank = {m: i for i, m in enumerate(models)}
    boxes = sorted(summary.peaks, key=lambda b: (_short(b.task_id), rank.get(b.model, len(rank)), b.model))
    factors = [(_short(b.task_id), b.model) for b in boxes]
    source = ColumnDataSource({
        "x": factors, "q1": [b.q1 for b in boxes], "median": [b.median for b in boxes], "q3": [b.q3 for b in boxes],
        "low": [b.low for b in boxes], "high": [b.high for b in boxes], "n": [b.trials for b in boxes],
        "color": [MODEL_COLORS[rank.get(b.model, 0) % len(MODEL_COLORS)] for b in boxes]})
    fig = figure(x_range=FactorRange(*factors), height=360, width=max(600, 40 * len(factors)), toolbar_location=None,
                 title="peak memory / spec, per task and model", name="peaks")  # the legend is the paragraph above
    fig.segment(x0="x", x1="x", y0="low", y1="high", source=source, color="color")
    fig.vbar(x="x", width=0.6, top="q3", bottom="q1", source=source, fill_color="color", fill_alpha=0.35,
             line_color="color")
    fig.scatter(x="x", y="median", source=source, color="color", size=7, marker="square")
    fig.add_layout(Span(location=1.0, dimension="width", line_dash="dashed", line_color="#444444"))
    fig.add_tools(HoverTool(tooltips=[("", "@x: median @median{0.00}×, range @low{0.00}–@high{0.00}× (@n trials)")]))
    fig.yaxis.axis_label = "peak / spec"
    fig.xaxis.major_label_orientation = "vertical"  # model names, then task names below them: never overlapping
    fig.xaxis.group_label_orientation = "vertical"
    return fig


def confounder_figures(summary: Summary):
    """Pass rate against hour of day, provider latency and concurrency at start (bars: trials; hover: counts)."""
    from bokeh.layouts import row
    from bokeh.models import ColumnDataSource, HoverTool
    from bokeh.plotting import figure

    figures = []
    for name, rows in (summary.confounders.pass_rates if summary.confounders else {}).items():
        source = ColumnDataSource({"x": [label for label, _, _ in rows], "rate": [k / n for _, k, n in rows],
                                   "label": [f"{k}/{n} passed" for _, k, n in rows]})
        fig = figure(x_range=[label for label, _, _ in rows], y_range=(0, 1.05), height=240, width=360,
                     toolbar_location=None, title=f"pass rate vs {name}", name=f"confounder:{name}")
        fig.vbar(x="x", top="rate", width=0.7, source=source, color="#1f77b4", alpha=0.7)
        fig.add_tools(HoverTool(tooltips=[("", "@x: @label")]))
        fig.yaxis.axis_label = "pass rate (error trials left out)"
        fig.xaxis.major_label_orientation = 0.8
        figures.append(fig)
    return row(*figures) if figures else None


TRACEBACK_CHARS = 3000  # of a failed trial's traceback, its end (where it failed); the trial file holds all of it


def _trial_view(document: Mapping) -> dict:
    """What the viewer shows of a trial: its trajectories and the end of its traceback, if it failed."""
    traceback = document.get("traceback") or ""
    if len(traceback) > TRACEBACK_CHARS:
        traceback = "... (the whole traceback is in the trial's file)\n" + traceback[-TRACEBACK_CHARS:]
    return {"runs": _trajectory(document), "traceback": traceback}


def _trajectory(document: Mapping) -> list[dict]:
    """What the viewer shows of each trajectory: messages, tool calls with output, exit codes, durations, usage.

    Tool messages are dropped (their content is the tool call's output, shown with the call) and so are
    ids and provider metadata: the file stays small.
    """
    out = []
    for t in document.get("trajectories") or []:
        messages = []
        for m in t.get("messages") or []:
            data = m.get("data") or {}
            if m.get("type") == "tool":
                continue
            content = data.get("content")
            text = content if isinstance(content, str) else json.dumps(content)
            calls = [c.get("name", "?") for c in data.get("tool_calls") or []]
            messages.append({"role": m.get("type"), "text": text, "calls": calls})
        out.append({"model": t.get("model"), "instruction": t.get("instruction"), "stop": t.get("stop_reason"),
                    "duration_s": t.get("duration_s"), "usage": t.get("usage"), "error": t.get("error"),
                    "messages": messages,
                    "tool_calls": [{k: c.get(k) for k in ("name", "args", "exit_code", "duration_s", "output")}
                                   for c in t.get("tool_calls") or []]})
    return out


def _trial_rows(records: Sequence[TrialRecord]) -> list[list]:
    def num(value, digits=2):
        return None if value is None else round(value, digits)

    rows = []
    for r in records:
        spec, peak = r.memory_spec_bytes, r.peak_memory_bytes
        rows.append([trajectory_key(r), _short(r.task_id), r.model, r.multiplier, r.sample, r.outcome, r.cause,
                     r.message or "", num(peak / spec) if peak and spec else None, num(r.timing.total_s),
                     r.usage.get("model_calls"), r.usage.get("tool_calls"), r.usage.get("input_tokens"),
                     r.usage.get("output_tokens")])
    return rows


def _metrics_html(summary: Summary) -> str:
    """The metric means and their paired comparisons, the same rows as the terminal summary."""
    if not summary.metric_means:
        return "<p>no trial metrics recorded</p>"
    comparisons = summary.metric_comparison_table()
    return _table_of(summary.metric_table()) + (_table_of(comparisons) if comparisons.rows else "")


def _extension_html(tables: Sequence[Table]) -> str:
    """Tables that pytest_harnessbench_summary hooks added."""
    return "".join(f"<h3>{html.escape(t.title)}</h3>" + _table_of(t) for t in tables)


def _table_of(table: Table) -> str:
    return _table(table.header, table.rows)


def _power(summary: Summary) -> str:
    p = summary.power
    return (f"detectable score difference: ≥ {100 * p.detectable:.1f} pts "
            f"({p.tasks} tasks × {p.samples} samples, 80% power, α=0.05)")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _json_script(element_id: str, data) -> str:
    text = json.dumps(data, separators=(",", ":"), default=str).replace("</", "<\\/")
    return f'<script type="application/json" id="{element_id}">{text}</script>'


def render(summary: Summary, records: Sequence[TrialRecord], *, card: Mapping | None = None,
           trajectories: Mapping[str, Mapping] | None = None, gate: Mapping | None = None) -> str:
    """The report as one HTML string: ``summary`` formatted, ``records`` in the trial table;
    ``trajectories`` maps trajectory keys (``TRIAL_ID[~N]``) to documents."""
    from bokeh.embed import components
    from bokeh.layouts import row
    from bokeh.resources import Resources

    models, mults = summary.models, summary.multipliers
    figures = {"rates": row(*[rate_figure(summary, m) for m in models]), "outcomes": outcome_figure(summary)}
    peaks = peak_figure(summary, models)
    if peaks is not None:
        figures["peaks"] = peaks
    pass_k = pass_k_figure(summary)
    if pass_k is not None:
        figures["passk"] = pass_k
    confounding = confounder_figures(summary)
    if confounding is not None:
        figures["confounders"] = confounding
    script, divs = components(figures)
    bokeh_js = "\n".join(Resources(mode="inline", components=["bokeh"]).js_raw)
    comparisons = [(c.label, c.verdict) for c in summary.comparisons]
    gate_html = ""
    if gate:
        gate_html = (f"<p>status <b>{html.escape(str(gate.get('status')))}</b>, blocks: {gate.get('blocks')}</p>"
                     + _table(["multiplier", "verdict"], [(v.get("multiplier", ""), v.get("message", ""))
                                                        for v in gate.get("verdicts", [])]))
    calibration = summary.calibration or {"recommendations": [], "headroom": []}
    cal_rows = [(r["model"], r["multiplier"] or r["status"].replace("_", " "), r["reason"])
                for r in calibration["recommendations"]]
    room_rows = [(_short(h["task_id"]), h["model"], f"{h['median']:.2f}×", f"{h['needed']['95%']:.2f}×",
                  f"{h['needed']['99%']:.2f}×", h["trials"], h["killed"], "yes" if h["under_specified"] else "")
                 for h in calibration["headroom"]]
    trials = _trial_rows(records)
    shown = {row[0] for row in trials}
    docs = {key: _trial_view(doc) for key, doc in (trajectories or {}).items() if key in shown}
    from . import html_compare

    options = lambda values: "".join(f"<option>{html.escape(v)}</option>" for v in values)  # noqa: E731
    return _PAGE.format(
        bokeh_js=bokeh_js.replace("</script", "<\\/script"), script=script,
        title=html.escape(f"harnessbench report {(card or {}).get('run_id', '')}"),
        summary=html.escape(f"{summary.trials} trials · {len(models)} model(s) · multipliers {', '.join(mults)}"),
        rates=divs["rates"], outcomes=divs["outcomes"], peaks=divs.get("peaks", "<p>no peak memory recorded</p>"),
        passk=divs.get("passk", "<p>one sample per task: no pass@k / pass^k (run with --samples 2 or more)</p>"),
        confounders=divs.get("confounders", "<p>no start times recorded</p>"),
        confounder_lines=html.escape(" ".join(confounder_text(summary.confounders))),
        hosts="".join(f"<p>{html.escape(line.strip())}</p>" for line in (summary.hosts.lines() if summary.hosts
                                                                         else ())),
        comparisons=_table(["comparison", "verdict"], comparisons) if comparisons else "<p>nothing to compare</p>",
        power=html.escape(_power(summary)), gate=gate_html or "<p>no gate in this run</p>",
        metrics=_metrics_html(summary) + _extension_html(summary.tables),
        calibration=_table(["model", "ceiling", "why"], cal_rows),
        headroom=_table(["task", "model", "median peak/spec", "95% need", "99% need", "trials", "OOM-killed",
                         "spec below median peak"], room_rows),
        card=html.escape(json.dumps(card or {}, indent=2, sort_keys=True, default=str)),
        model_options=options(models), mult_options=options(mults), outcome_options=options(OUTCOME_COLORS),
        trials_json=_json_script("hb-trials", trials), docs_json=_json_script("hb-trajectories", docs),
        page=TABLE_PAGE, compare=html_compare.SECTION, compare_style=html_compare.STYLE,
        compare_script=html_compare.SCRIPT,
        metrics_json=_json_script("hb-metrics", html_compare.metrics_by_key(records)))


def write(run: RunDir, path: Path | str, *, models: Sequence[str] = (), multipliers: Sequence[str] = (),
          summary: Summary | None = None) -> Path:
    """Read the run directory and write the report to ``path``; returns the path.

    ``summary``: the run's summary model if the session computed it already
    (with its calibration); else it is computed here from the run's records,
    with calibration.json's document or, without one, a calibration computed now.
    """
    path = Path(path)
    records = run.latest()
    if summary is None:
        summary = summarize(records, models=models, multipliers=multipliers,
                            calibration=run.document("calibration.json") or True)
    text = render(summary, records, card=run.card(), trajectories=run.trajectory_documents(),
                  gate=run.document("gate.json"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }}
h1 {{ font-size: 1.4em; }} h2 {{ font-size: 1.15em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }}
table {{ border-collapse: collapse; font-size: 13px; }} th, td {{ border: 1px solid #ddd; padding: 2px 6px; text-align: left; }}
th {{ background: #f3f3f3; }} tr.passed td:nth-child(6) {{ color: #2ca02c; }} tr.infra td:nth-child(6) {{ color: #d62728; }}
pre {{ background: #f7f7f7; padding: .6em; overflow: auto; max-height: 30em; }}
.filters select {{ margin-right: 1em; }} dialog {{ width: 80vw; max-height: 85vh; }}
.call {{ border-left: 3px solid #1f77b4; padding-left: .5em; margin: .6em 0; }}
{compare_style}</style>
<script>{bokeh_js}</script>
</head><body>
<h1>{title}</h1><p>{summary}</p>
<h2>Score and infra rate vs kill threshold</h2>
<p>Per model, Wilson 95% intervals; the kill threshold is the task's spec × the multiplier (the guarantee stays at the spec).</p>
{rates}
<h2>Outcomes</h2>
{outcomes}
<h2>Reliability over samples</h2>
<p>Unbiased estimators from each task's samples (infra left out), averaged over tasks; tasks with fewer than k samples are left out at that k (gate.json's <code>reliability</code> has the intervals and counts).</p>
{passk}
<h2>Peak memory per task</h2>
<p>Each trial's kernel peak memory over its task's memory spec, per task and model (box: quartiles, line: range, square: median); above 1 (the dashed line) the task declares less than it used. OOM-killed trials are left out (their peak is the limit they hit).</p>
{peaks}
<h2>Confounders</h2>
<p>{confounder_lines}</p>
{hosts}<p>The test compares trials of the same model, multiplier and task (Cochran–Mantel–Haenszel, Holm-adjusted); these plots pool them.</p>
{confounders}
<h2>Calibration</h2>
<p>Smallest ceiling where infra falls significantly below 1x while the pass rate excluding infra stays within noise (Benjamini–Hochberg adjusted).</p>
{calibration}
<h3>Headroom needed (multiple of the spec keeping 95% / 99% of trials under the limit)</h3>
{headroom}
<h2>Comparisons</h2>
{comparisons}
<p>{power}</p>
<h2>Metrics</h2>
{metrics}
<h2>Gate</h2>
{gate}
<h2>Trials</h2>
<p class="filters">model <select id="f-model"><option value="">all</option>{model_options}</select>
multiplier <select id="f-mult"><option value="">all</option>{mult_options}</select>
outcome <select id="f-outcome"><option value="">all</option>{outcome_options}</select>
<span id="f-count"></span></p>
<table id="trials"><thead><tr><th>task</th><th>model</th><th>mult</th><th>#</th><th>outcome</th><th>cause</th>
<th>message</th><th>peak/spec</th><th>total s</th><th>model calls</th><th>tool calls</th><th>tokens in</th><th>tokens out</th><th>trajectory</th></tr></thead>
<tbody></tbody></table>
<dialog id="trajectory"><button id="close">close</button><div id="trajectory-body"></div></dialog>
{compare}
<h2>Harness card</h2>
<pre>{card}</pre>
{trials_json}
{docs_json}
{metrics_json}
{script}
<script>
(function () {{
  const trials = JSON.parse(document.getElementById("hb-trials").textContent);
  const docs = JSON.parse(document.getElementById("hb-trajectories").textContent);
  const body = document.querySelector("#trials tbody");
  const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({{"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}})[c]);
  const hb = window.hb = {{trials, docs, esc, sortBy: null}};
  function draw() {{
    const m = document.getElementById("f-model").value, x = document.getElementById("f-mult").value,
          o = document.getElementById("f-outcome").value;
    let match = trials.filter((t) => (!m || t[2] === m) && (!x || t[3] === x) && (!o || t[5] === o));
    if (hb.sortBy) match = match.slice().sort(hb.sortBy);  // a clicked column header (html_compare.py)
    body.innerHTML = match.slice(0, {page}).map((t) =>
      `<tr class="${{esc(t[5])}}" data-key="${{esc(t[0])}}">` + t.slice(1).map((c) => `<td>${{esc(c)}}</td>`).join("") +
      `<td>${{docs[t[0]] ? `<a href="#" class="open">open</a>` : "-"}}</td></tr>`).join("");
    document.getElementById("f-count").textContent =
      match.length > {page} ? `showing {page} of ${{match.length}}` : `${{match.length}} trial(s)`;
  }}
  function runsHtml(key) {{
    const parts = docs[key].runs.map((t) => `<h3>${{esc(t.model)}}: ${{esc(t.stop)}}, ${{(t.duration_s ?? 0).toFixed(2)}} s</h3>` +
      `<p>usage: ${{esc(JSON.stringify(t.usage))}}${{t.error ? " · error: " + esc(t.error) : ""}}</p>` +
      `<h4>messages</h4>` + t.messages.map((msg) => `<p><b>${{esc(msg.role)}}</b>: ${{esc(msg.text)}}` +
        (msg.calls.length ? ` <i>→ ${{esc(msg.calls.join(", "))}}</i>` : "") + `</p>`).join("") +
      `<h4>tool calls</h4>` + t.tool_calls.map((c) => `<div class="call"><b>${{esc(c.name)}}</b> exit ${{esc(c.exit_code)}}, ` +
        `${{(c.duration_s ?? 0).toFixed(2)}} s<pre>${{esc(JSON.stringify(c.args, null, 1))}}</pre><pre>${{esc(c.output)}}</pre></div>`).join(""));
    if (docs[key].traceback) parts.push(`<h4>traceback</h4><pre class="traceback">${{esc(docs[key].traceback)}}</pre>`);
    return parts.join("");
  }}
  function show(key) {{
    const row = trials.find((t) => t[0] === key);
    document.getElementById("trajectory-body").innerHTML = `<h2>${{esc(key)}}</h2>` +
      (row && hb.summaryHtml ? hb.summaryHtml(row) : "") + runsHtml(key);
    document.getElementById("trajectory").showModal();
  }}
  ["f-model", "f-mult", "f-outcome"].forEach((id) => document.getElementById(id).addEventListener("change", draw));
  body.addEventListener("click", (e) => {{
    if (e.target.classList.contains("open")) {{ e.preventDefault(); show(e.target.closest("tr").dataset.key); }}
  }});
  document.getElementById("close").addEventListener("click", () => document.getElementById("trajectory").close());
  Object.assign(hb, {{draw, runsHtml}});
  draw();
}})();
</script>
{compare_script}
</body></html>
"""
