"""The HTML report of a real bake-off, opened offline in headless Chromium (Debian's, driven by Playwright).

scripts/setup-tests.sh installs both; without CI the test skips when either is missing.
"""

import os
import shutil
import tempfile

import pytest

from support import inprocess

TASKS = '''
import pytest

HOG = "python3 -c 'x = bytearray(150 * 1024 * 1024); x[::4096] = b\\"1\\" * len(x[::4096])'"

@pytest.mark.task(cpus=1, memory="64Mi", timeout=20,
                  solutions={"lean": "echo 42 > answer.txt", "heavy": HOG + " && echo 42 > answer.txt"})
def test_answer(trial):
    trial.run_agent("Write the answer to answer.txt.")
    assert trial.sandbox.read_file("answer.txt").strip() == "42"
'''
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACT = "report.png"


@pytest.fixture
def browser():
    """Chromium with a TMPDIR of its own directly under /tmp.

    Chromium puts its SingletonSocket in ``$TMPDIR/org.chromium.Chromium.XXXXXX/``
    and aborts ("Socket path too long") past the 108 bytes a Unix socket path may
    have: each test's own TMPDIR (tests/conftest.py) under a CI runner's deeper
    temp directory went past it (issue 21.8).
    """
    playwright = pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH: bash scripts/setup-tests.sh installs it")
    short_tmp = tempfile.mkdtemp(prefix="hb-chromium-", dir="/tmp")
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"],
                                        env={**os.environ, "TMPDIR": short_tmp})
            yield browser
            browser.close()
    finally:
        shutil.rmtree(short_tmp, ignore_errors=True)


@pytest.fixture
def deep_tmpdir(fresh_tmpdir, monkeypatch):
    """A TMPDIR as deep as a CI runner's can be: Chromium's socket path beneath it exceeds 108 bytes."""
    deep = fresh_tmpdir / ("d" * 60) / ("e" * 40)
    deep.mkdir(parents=True)
    monkeypatch.setenv("TMPDIR", str(deep))
    return deep


def test_the_browser_starts_however_deep_tmpdir_is(deep_tmpdir, browser):
    """Issue 21.8: with a deep TMPDIR Chromium aborted at launch (TargetClosedError), failing the suite at random."""
    assert len(f"{deep_tmpdir}/org.chromium.Chromium.XXXXXX/SingletonSocket") > 108
    page = browser.new_page()
    page.set_content("<p id=ok>ok</p>")
    assert page.locator("#ok").inner_text() == "ok"


def _count(page, selector: str) -> int:
    return page.locator(selector).count()


def test_the_report_of_a_real_bake_off_opens_offline_with_plots_filters_and_trajectories(pytester, browser, tmp_path):
    pytester.makepyfile(test_tasks=TASKS)
    report = tmp_path / "report.html"
    result = inprocess.run(pytester, "-p", "no:cacheprovider", "--hb-out", "run", "--models",
                           "oracle:heavy,oracle:lean", "--multipliers", "1,3,uncapped",
                           "--samples", "2", "--hb-report", str(report), "--hb-calibrate")
    result.stdout.fnmatch_lines(["*calibration:*", "*oracle:heavy: cannot decide — too few trials*",
                                 "*oracle:lean: 1x*", f"report: {report} (*MB)"])
    assert (pytester.path / "run" / "calibration.json").is_file()

    context = browser.new_context(offline=True, viewport={"width": 1300, "height": 900})
    requests = []
    context.on("request", lambda r: requests.append(r.url))
    page = context.new_page()
    page.goto(report.as_uri())
    page.wait_for_function("window.Bokeh && Bokeh.documents.length > 0")
    page.locator("canvas").first.wait_for()
    assert {url.split(":", 1)[0] for url in requests} <= {"file", "data", "blob"}  # nothing from the network

    # the study's figure: one figure per model, one point per multiplier for score and infra rate
    points = page.evaluate("""() => {
        const out = {};
        for (const doc of Bokeh.documents)
            for (const name of ["score", "infra_rate"])
                for (const model of ["oracle:heavy", "oracle:lean"]) {
                    const r = doc.get_model_by_name(`${name}:${model}`);
                    if (r) out[`${name}:${model}`] = Array.from(r.data_source.data.x);
                }
        return out;
    }""")
    assert points == {f"{name}:{model}": ["1x", "3x", "uncapped"]
                      for name in ("score", "infra_rate") for model in ("oracle:heavy", "oracle:lean")}
    assert page.evaluate("Bokeh.documents[0].get_model_by_name('outcomes') !== null")
    assert page.evaluate("Bokeh.documents[0].get_model_by_name('peaks') !== null")
    legend = page.evaluate("""() => {  // pass^k / pass@k: one legend entry per line, grouped by BokehJS
        const fig = Bokeh.documents[0].get_model_by_name('passk');
        const legend = fig.right.find((m) => m.items !== undefined);
        return legend.items.flatMap((item) => item.get_labels_list_from_label_prop());
    }""")
    assert legend == ["oracle:heavy@3x", "oracle:heavy@uncapped", "oracle:lean@1x", "oracle:lean@3x",
                      "oracle:lean@uncapped"]  # heavy at 1x: every trial an OOM (infra), nothing to count
    for axis in ("hour of day (UTC)", "concurrency at start"):  # oracle models make no provider calls: no latency
        assert page.evaluate(f"Bokeh.documents[0].get_model_by_name('confounder:{axis}') !== null")
    assert _count(page, "canvas") >= 4  # Playwright's CSS pierces Bokeh's shadow roots

    # the per-trial table filters
    assert _count(page, "#trials tbody tr") == 12
    page.select_option("#f-model", "oracle:heavy")
    assert _count(page, "#trials tbody tr") == 6
    page.select_option("#f-outcome", "infra")
    assert _count(page, "#trials tbody tr") == 2
    assert set(page.locator("#trials tbody tr td:nth-child(3)").all_inner_texts()) == {"1x"}
    assert page.locator("#f-count").inner_text() == "2 trial(s)"

    # a trajectory opens: its messages and tool calls with exit code and output
    page.locator("#trials tbody tr a.open").first.click()
    dialog = page.locator("dialog#trajectory")
    dialog.wait_for(state="visible")
    assert dialog.locator(".call").count() == 1
    call = dialog.locator(".call").first.inner_text()
    assert "bash" in call and "exit 137" in call and "bytearray" in call
    assert "human" in dialog.inner_text() and "usage" in dialog.inner_text()
    assert "def test_answer(trial):" in dialog.locator("pre.traceback").inner_text()  # the terminal showed one line
    assert dialog.locator("p.outcome").inner_text().startswith("infra/oom")  # the outcome, above the trajectory
    assert "peak/spec" in dialog.locator("table.trial-metrics").inner_text()
    page.screenshot(path=str(tmp_path / ARTIFACT), full_page=True)
    print(f"screenshot: {tmp_path / ARTIFACT}")
    page.locator("#close").click()
    assert not dialog.is_visible()

    # the table sorts by any column: numbers as numbers, a second click reverses
    page.select_option("#f-model", "")
    page.select_option("#f-outcome", "")
    column = lambda n: page.locator(f"#trials tbody tr td:nth-child({n})").all_inner_texts()  # noqa: E731
    page.locator("#trials thead th", has_text="total s").click()
    totals = [float(v) for v in column(9)]
    assert totals == sorted(totals) and len(totals) == 12 and totals[0] < totals[-1]
    page.locator("#trials thead th", has_text="total s").click()
    assert [float(v) for v in column(9)] == sorted(totals, reverse=True)
    page.locator("#trials thead th", has_text="outcome").click()
    assert column(5) == sorted(column(5))

    # the compare view: two models' trials of the same task, multiplier and sample, side by side
    page.select_option("#c-mult", "1x")
    page.select_option("#c-sample", "1")
    page.select_option("#c-a", "oracle:heavy")
    page.select_option("#c-b", "oracle:lean")
    a, b = page.locator("#compare-a"), page.locator("#compare-b")
    assert a.locator("p.outcome").inner_text().startswith("infra/oom")
    assert b.locator("p.outcome").inner_text() == "passed"
    assert "bytearray" in a.locator(".call").inner_text() and "echo 42" in b.locator(".call").inner_text()
    assert "steps" in b.locator("table.trial-metrics").inner_text()
    box_a, box_b = a.bounding_box(), b.bounding_box()
    assert box_a["x"] + box_a["width"] <= box_b["x"] and abs(box_a["y"] - box_b["y"]) < 2  # side by side

    # the peak-memory plot: its title fits the figure, task and model labels run vertically (no overlap)
    peaks = page.evaluate("""() => {
        const fig = Bokeh.documents[0].get_model_by_name('peaks');
        const axis = fig.below[0];
        return {title: fig.title.text, width: fig.width, major: axis.major_label_orientation,
                group: axis.group_label_orientation};
    }""")
    assert len(peaks["title"]) * 8 < peaks["width"], peaks  # 8 px a character is generous at Bokeh's 13px bold
    assert peaks["major"] == peaks["group"] == "vertical"
    # the calibration table made it into the page
    assert "too few trials" in page.locator("table", has_text="ceiling").inner_text()
    # the trial metrics: each metric's mean per model × multiplier, the same rows as the terminal summary
    metrics = page.locator("table", has_text="trials").filter(has_text="95% CI").first.inner_text()
    assert "steps" in metrics and "failed_tool_calls" in metrics and "oracle:lean" in metrics


def test_pass_k_plot_against_k_per_model():
    from pytest_harnessbench.html_report import pass_k_figure

    from pytest_harnessbench.records import TrialRecord
    from pytest_harnessbench.summary import summarize

    records = [TrialRecord.from_dict({"task_id": f"t{t}", "model": m, "multiplier": "1x", "sample": s,
                                      "trial_id": f"{m}{t}{s}", "cause": None,
                                      "outcome": "passed" if (m == "a" or s == 1) else "failed"})
               for m in ("a", "b") for t in range(3) for s in (1, 2, 3)]
    fig = pass_k_figure(summarize(records, models=["a", "b"]))
    lines = {(r.glyph.line_dash == [], tuple(ys)) for r in fig.renderers if type(r.glyph).__name__ == "MultiLine"
             for ys in r.data_source.data["ys"]}
    # b passes 1 of 3 on each task: pass^k 1/3, 0, 0 (solid) and pass@k 1/3, 2/3, 1 (dashed)
    assert (True, (1 / 3, 0.0, 0.0)) in lines and (False, (1 / 3, 2 / 3, 1.0)) in lines
    assert (True, (1.0, 1.0, 1.0)) in lines
    assert len(fig.renderers) == 3  # solid lines, dashed lines, points: not two renderers per line
    solid = next(r for r in fig.renderers if type(r.glyph).__name__ == "MultiLine" and r.glyph.line_dash == [])
    assert solid.data_source.data["label"] == ["a@1x", "b@1x"]  # the legend's entries, one per line
    assert [item.label.field for item in fig.legend[0].items] == ["label"]
    assert pass_k_figure(summarize([r for r in records if r.sample == 1], models=["a", "b"])) is None
