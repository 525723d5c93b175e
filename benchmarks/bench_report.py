"""The HTML report: generation time for 30,000 records, and the example bake-off's report size and first paint.

1. ``html_report.render`` of 30,000 synthetic records (100 tasks x 5 models x 6
   multipliers x 10 samples, the records of ``bench_summary.py``, no trajectories),
   median of ``--repeats``, each in a forked child of a process that already
   imported bokeh and scipy (a session pays that import once: printed apart),
   the records' pages made the child's own first (``bench_summary.own_pages``:
   copy-on-write faults are the fork's cost, not a session's). Target: < 2 s.
2. The example bake-off (the README's first command, run here into a temporary
   run directory unless ``--run-dir`` names one): the size of its report
   (target < 2 MB, of which BokehJS is printed apart) and its first contentful
   paint in headless Chromium, offline, median of 5 loads (target < 1 s).

    python benchmarks/bench_report.py [--repeats 3] [--run-dir RUN_DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_summary import LABELS, MULTIPLIERS, in_child, make_records, own_pages

from pytest_harnessbench.records import TrialRecord

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ["--models", "oracle:lean,oracle:heavy,nop", "--multipliers", "1,3,uncapped", "--samples", "3", "-n", "2"]


def time_render(records, models, multipliers) -> float:
    from pytest_harnessbench.html_report import render
    from pytest_harnessbench.summary import summarize

    own_pages(records)
    start = time.perf_counter()
    render(summarize(records, models=models, multipliers=multipliers, calibration=True), records)
    return time.perf_counter() - start


def first_paint(path: Path, loads: int = 5) -> list[float]:
    from playwright.sync_api import sync_playwright

    paints = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        for _ in range(loads):
            page = browser.new_context(offline=True).new_page()
            page.goto(path.as_uri())
            page.wait_for_function("performance.getEntriesByName('first-contentful-paint').length > 0")
            paints.append(page.evaluate("performance.getEntriesByName('first-contentful-paint')[0].startTime") / 1000)
            page.context.close()
        browser.close()
    return paints


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--run-dir", type=Path, help="an example bake-off's run directory (default: run it now)")
    args = parser.parse_args()

    start = time.perf_counter()
    import bokeh.plotting  # noqa: F401  the import a session pays once
    import scipy.stats  # noqa: F401
    imports = time.perf_counter() - start
    models = [f"model-{c}" for c in "abcde"]
    mults = [LABELS[m] for m in MULTIPLIERS]
    records = [TrialRecord.from_dict(r) for r in make_records(100, models, mults, 10)]
    in_child(time_render, records[:500], models, mults)  # a first small render: lazy submodules are imported
    times = [in_child(time_render, records, models, mults) for _ in range(args.repeats)]
    print(f"render of {len(records):,} records: median {statistics.median(times):.2f} s over {args.repeats} "
          f"({', '.join(f'{t:.2f}' for t in times)}); target < 2 s: "
          f"{'met' if statistics.median(times) < 2 else 'NOT met'} (importing bokeh + scipy first: {imports:.2f} s)")

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run_dir
        if run_dir is None:
            run_dir = Path(tmp) / "run"
            print("running the example bake-off ...", flush=True)
            subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "example_suite", *EXAMPLE,
                            "--hb-progress", "0", "--hb-out", str(run_dir)], cwd=ROOT, stdout=subprocess.DEVNULL,
                           check=False, env={**__import__("os").environ, "TMPDIR": tmp})
        report = Path(tmp) / "report.html"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pytest_harnessbench", "report", str(run_dir), "-o", str(report)],
                       check=True, stdout=subprocess.DEVNULL)
        elapsed = time.perf_counter() - start
        from bokeh.resources import Resources

        bokeh_js = sum(map(len, Resources(mode="inline", components=["bokeh"]).js_raw))
        size = report.stat().st_size
        print(f"example report: {size / 1e6:.2f} MB (BokehJS {bokeh_js / 1e6:.2f} MB, the rest "
              f"{(size - bokeh_js) / 1e6:.2f} MB); target < 2 MB: {'met' if size < 2e6 else 'NOT met'}; "
              f"`harnessbench report` took {elapsed:.2f} s")
        paints = first_paint(report)
        median = statistics.median(paints)
        print(f"first contentful paint in Chromium, offline: median {median:.2f} s over {len(paints)} loads "
              f"({', '.join(f'{p:.2f}' for p in paints)}); target < 1 s: {'met' if median < 1 else 'NOT met'}")


if __name__ == "__main__":
    main()
