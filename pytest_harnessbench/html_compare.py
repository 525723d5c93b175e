"""The HTML report's compare view and sortable trial table (issue 30.3): markup and script only.

Two models' trials of the same task, multiplier and sample side by side: each
column shows the trial's outcome and metrics above its trajectory. It reads the
JSON the report already embeds (``hb-trials``, ``hb-trajectories``) through
``window.hb`` (set by html_report's script) and one more blob, the trial
metrics by trajectory key. The trial table sorts by any column (click a header;
again to reverse), numbers as numbers, empty cells last.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .store import trajectory_key

if TYPE_CHECKING:
    from .records import TrialRecord


def metrics_by_key(records: Sequence[TrialRecord]) -> dict[str, dict]:
    """Each trial's metrics (steps, trajectory_match, judge, ...) by trajectory key."""
    return {trajectory_key(r): dict(r.metrics) for r in records}


SECTION = """<h2>Compare two models</h2>
<p>The same task, multiplier and sample, side by side: outcome and metrics above each trajectory.</p>
<p class="filters" id="compare-pick">task <select id="c-task"></select> multiplier <select id="c-mult"></select>
sample <select id="c-sample"></select> model A <select id="c-a"></select> model B <select id="c-b"></select></p>
<div id="compare"><div class="side" id="compare-a"></div><div class="side" id="compare-b"></div></div>
"""

STYLE = """#compare { display: flex; gap: 1em; align-items: flex-start; }
#compare .side { flex: 1 1 0; min-width: 0; border: 1px solid #ddd; padding: .5em; }
#trials th { cursor: pointer; user-select: none; } #trials th[aria-sort="ascending"]::after { content: " ▲"; }
#trials th[aria-sort="descending"]::after { content: " ▼"; }
"""

SCRIPT = """<script>
(function () {
  const hb = window.hb, esc = hb.esc, metrics = JSON.parse(document.getElementById("hb-metrics").textContent);
  const sel = (id) => document.getElementById(id);
  const distinct = (i) => [...new Set(hb.trials.map((t) => t[i]))];
  const fill = (id, values, pick) => { sel(id).innerHTML = values.map((v) =>
    `<option${v === pick ? " selected" : ""}>${esc(v)}</option>`).join(""); };
  const models = distinct(2);
  fill("c-task", distinct(1)); fill("c-mult", distinct(3)); fill("c-sample", distinct(4).map(String));
  fill("c-a", models, models[0]); fill("c-b", models, models[1] ?? models[0]);
  hb.summaryHtml = function (t) {
    const m = metrics[t[0]] || {};
    return `<p class="outcome ${esc(t[5])}"><b>${esc(t[5])}</b>${t[6] ? "/" + esc(t[6]) : ""}` +
      `${t[7] ? ": " + esc(t[7]) : ""}</p><table class="trial-metrics"><tbody>` +
      [["peak/spec", t[8]], ["total s", t[9]], ["model calls", t[10]], ["tool calls", t[11]],
       ["tokens in", t[12]], ["tokens out", t[13]], ...Object.entries(m)]
        .map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join("") + `</tbody></table>`;
  };
  function side(id, model) {
    const t = hb.trials.find((r) => r[1] === sel("c-task").value && r[3] === sel("c-mult").value &&
      String(r[4]) === sel("c-sample").value && r[2] === model);
    sel(id).innerHTML = `<h3>${esc(model)}</h3>` + (t ? hb.summaryHtml(t) +
      (hb.docs[t[0]] ? hb.runsHtml(t[0]) : "<p>no trajectory recorded</p>") : "<p>no such trial</p>");
  }
  function compare() { side("compare-a", sel("c-a").value); side("compare-b", sel("c-b").value); }
  ["c-task", "c-mult", "c-sample", "c-a", "c-b"].forEach((id) => sel(id).addEventListener("change", compare));
  compare();

  const heads = [...document.querySelectorAll("#trials thead th")];
  heads.forEach((th, col) => th.addEventListener("click", () => {
    if (col >= 13) return;  // the trajectory link
    const dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    heads.forEach((h) => h.removeAttribute("aria-sort"));
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    const i = col + 1;  // rows start with the trajectory key
    hb.sortBy = (a, b) => {
      const x = a[i], y = b[i];
      if (x === null || x === "" || x === undefined) return 1;
      if (y === null || y === "" || y === undefined) return -1;
      return dir * (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y)));
    };
    hb.draw();
  }));
})();
</script>
"""
