"""Check the README's example bake-off: its output must have the shape the README documents.

    python3 .ci/check_bakeoff.py OUTPUT.txt

OUTPUT.txt is what the README's first command printed. Its run directory (the
``run directory:`` line) must hold: every trial of the 3 models × 3 multipliers;
``oracle:lean`` passing everything; ``oracle:heavy`` with infra (OOM) trials at 1x;
``nop`` passing nothing; no ``error`` trial (a harness bug) at all. Exits 1 naming
each violation.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from pytest_harnessbench.store import latest, load_records

MODELS = ("oracle:lean", "oracle:heavy", "nop")
MULTIPLIERS = ("1x", "3x", "uncapped")


def problems(output: str) -> list[str]:
    lines = [line for line in output.splitlines() if line.startswith("run directory: ")]
    if not lines:
        return ["no 'run directory:' line: the bake-off printed no summary"]
    records = latest(load_records(Path(lines[-1].split(": ", 1)[1])))
    cells = Counter((r["model"], r["multiplier"], r["outcome"]) for r in records)
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
    return found


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
