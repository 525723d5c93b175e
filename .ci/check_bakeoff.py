"""Check the README's example bake-off: its output must have the shape the README documents.

    python3 .ci/check_bakeoff.py OUTPUT.txt

OUTPUT.txt is what the README's first command printed. Its run directory (the
``run directory:`` line) must hold: every trial of the 3 models × 3 multipliers;
``oracle:lean`` passing everything; ``oracle:heavy`` with infra (OOM) trials at 1x;
``nop`` passing nothing; no ``error`` trial (a harness bug) at all. The output itself
must not bury the result (issue 21): at most ``MAX_LINES`` lines, no tracebacks,
progress lines on lines of their own, the outcome table on the last screen (``SCREEN``
lines), and every line after the collection line no wider than the terminal
(``COLUMNS``, else 80: the bake-off's output went to a pipe), except the outcome
table's rows (two lines per row, documented for a 100-column terminal) and the run
directory's path. Exits 1 naming each violation.
"""

from __future__ import annotations

import os
import re
import sys
from collections import Counter
from pathlib import Path

from pytest_harnessbench.store import latest, load_records

MODELS = ("oracle:lean", "oracle:heavy", "nop")
MULTIPLIERS = ("1x", "3x", "uncapped")
MAX_LINES = 150
SCREEN = 50
TABLE_WIDTH = 100
# Warnings another installed plugin prints at start-up (pytest-benchmark, preinstalled on this machine's Python,
# not a dependency of the project: two lines per process under xdist), not counted: the count is of what a user of
# this plugin gets, which another plugin's start-up noise must not push over the limit by chance.
FOREIGN_WARNING = re.compile(r"PytestBenchmarkWarning|^  warner\(PytestBenchmarkWarning")
COLLECTED = re.compile(r"^(\d+ workers \[\d+ items?\]|collected \d+ items?)")
TABLE_ROW = re.compile(r"^(model +mult +trials |-+  -+  -+ |(" + "|".join(map(re.escape, MODELS))
                       + r") +(" + "|".join(MULTIPLIERS) + r") +\d+ | {20})")  # the outcome table's lines


def layout_problems(output: str, width: int) -> list[str]:
    """What buries the result: too many lines, tracebacks, lines past the terminal, the table far from the end."""
    lines = [line for line in output.splitlines() if not FOREIGN_WARNING.search(line)]
    # pip's own output (the README command installs first) is not the bake-off's: count from pytest's header.
    first = next((i for i, line in enumerate(lines) if "test session starts" in line), 0)
    lines = lines[first:]
    found = []
    if len(lines) > MAX_LINES:
        found.append(f"{len(lines)} lines of output (other plugins' start-up warnings not counted), "
                     f"expected at most {MAX_LINES}")
    if any(line.startswith(("Traceback", "E   ")) or "= FAILURES =" in line for line in lines):
        found.append("tracebacks printed: a failed trial should report one line")
    start = next((i for i, line in enumerate(lines) if COLLECTED.match(line)), len(lines))
    wide = []
    for number, line in enumerate(lines[start:], start + 1):
        limit = TABLE_WIDTH if TABLE_ROW.match(line) else width
        if len(line) > limit and not line.startswith("run directory: "):  # a path is never cut
            wide.append(f"line {number} is {len(line)} columns wide, the terminal {limit}: {line[:60]}...")
        if "harnessbench progress" in line and not line.startswith("harnessbench progress"):
            found.append(f"line {number}: a progress line spliced into other output: {line[:60]}...")
    found += wide[:3] + ([f"... and {len(wide) - 3} more lines too wide"] if len(wide) > 3 else [])
    header = [i for i, line in enumerate(lines) if line.startswith("model ") and " trials " in line]
    if not header or header[-1] < len(lines) - SCREEN:
        found.append(f"the outcome table is not on the last screen (the last {SCREEN} lines)")
    return found


def problems(output: str) -> list[str]:
    lines = [line for line in output.splitlines() if line.startswith("run directory: ")]
    if not lines:
        return ["no 'run directory:' line: the bake-off printed no summary"]
    records = latest(load_records(Path(lines[-1].split(": ", 1)[1])))
    cells = Counter((r.model, r.multiplier, r.outcome) for r in records)
    found = []
    for model in MODELS:
        for mult in MULTIPLIERS:
            total = sum(n for (m, x, _), n in cells.items() if (m, x) == (model, mult))
            count = {outcome: cells[(model, mult, outcome)] for outcome in ("passed", "failed", "infra", "error")}
            if total == 0:
                found.append(f"{model}@{mult}: no trials")
            if count["error"]:
                found.append(f"{model}@{mult}: {count['error']} error trial(s)")
            if model == "oracle:lean" and count["passed"] != total:
                found.append(f"{model}@{mult}: {count['passed']}/{total} passed, expected all")
            if model == "nop" and count["passed"]:
                found.append(f"{model}@{mult}: {count['passed']} passed, expected none")
            if (model, mult) == ("oracle:heavy", "1x") and not count["infra"]:
                found.append(f"{model}@{mult}: no infra trial, expected OOM kills at 1x")
    for model in MODELS:
        if not any(line.startswith(model + " ") for line in output.splitlines()):
            found.append(f"the summary table has no row for {model}")
    return found + layout_problems(output, int(os.environ.get("COLUMNS") or 80))


def main() -> int:
    output = Path(sys.argv[1]).read_text()
    found = problems(output)
    for problem in found:
        print(f"check_bakeoff: {problem}", file=sys.stderr)
    if not found:
        print("check_bakeoff: the example bake-off has the documented shape")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
