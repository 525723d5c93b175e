"""The sequential gate (--hb-gate-sequential) against the fixed gate, by simulation.

The same bake-offs as benchmarks/gate_false_pass.py (task pass probabilities
from a difficulty profile, the candidate DELTA lower on every task, margin
``score:3pt``, alpha 0.05), plus an 89-task suite. Each simulated bake-off is
judged twice on the same trials: by the fixed gate (every task) and by the
sequential gate, which looks after each task in run order from its first look
on (sequential.first_look: 10 tasks, or a tenth of the suite) and stops at the
first look that decides. For each suite size the table gives, in percent of
simulated gates, fixed / sequential:

- equal (delta 0): pass (correct) and fail (a false fail);
- 3.5 and 5 pts worse (past the 3-point margin): pass, the false-pass rate;
- 15 pts worse: fail (the regression caught);

and the share of trials the sequential gate did not run, on the 15-pts-worse
candidate, the equal one and the one 3.5 pts worse (just past the margin).
With 10 tasks or fewer the sequential gate has one look, at the end, with the
fixed gate's interval: the same verdicts by construction, so those rows are
not simulated again (tests/test_sequential.py checks it).

Each look uses the gate's own interval (stats.paired_difference_interval, at
the look's level from sequential.look_alpha) and gate.classify on the per-task
differences; tests/test_sequential.py checks that this gives the verdict and
the stopping look of sequential.Sequential on whole records.

    python benchmarks/gate_sequential.py [--gates 1000] [--seed 1] [--rho 1.5]
"""

from __future__ import annotations

import argparse
import random
from collections import Counter

from benchmarks.gate_false_pass import DIFFICULTY, JUST_WORSE, MARGIN, MUCH_WORSE, SAMPLES, WORSE, simulate
from pytest_harnessbench import sequential
from pytest_harnessbench.gate import classify
from pytest_harnessbench.stats import paired_difference_interval

TASKS = (40, 89)
DELTAS = (0.0, JUST_WORSE, WORSE, MUCH_WORSE)


def differences(rng: random.Random, tasks: int, samples: int, delta: float, difficulty: str) -> list[float]:
    """Per-task candidate − baseline score differences of one simulated bake-off, in run order."""
    baseline, candidate = simulate(rng, tasks, samples, delta, difficulty)
    def rate(records: list, t: int) -> float:
        return sum(r.outcome == "passed" for r in records[t * samples:(t + 1) * samples]) / samples

    return [rate(candidate, t) - rate(baseline, t) for t in range(tasks)]


def fixed_status(diffs: list[float], samples: int, alpha: float = 0.05) -> str:
    if len(diffs) < 2:
        return "inconclusive"
    return classify(*paired_difference_interval(diffs, 1 / samples, 1 - alpha), MARGIN)


def sequential_status(diffs: list[float], samples: int, alpha: float = 0.05,
                      rho: float = sequential.RHO) -> tuple[str, int]:
    """(verdict, tasks run): the first look that decides, else the last look's verdict after every task."""
    total = len(diffs)
    status = "inconclusive"
    for n in range(sequential.first_look(total), total + 1):
        level = sequential.look_alpha(n, total, alpha, rho)
        status = classify(*paired_difference_interval(diffs[:n], 1 / samples, 1 - level), MARGIN) \
            if n >= 2 else "inconclusive"
        if status != "inconclusive":
            return status, n
    return status, total


def cell(seed: int, gates: int, tasks: int, samples: int, delta: float, difficulty: str,
         rho: float) -> tuple[Counter, Counter, float]:
    """Fixed and sequential verdict counts over ``gates`` bake-offs, and the mean share of trials saved."""
    rng = random.Random(seed)
    fixed, seq, saved = Counter(), Counter(), 0.0
    for _ in range(gates):
        diffs = differences(rng, tasks, samples, delta, difficulty)
        fixed[fixed_status(diffs, samples)] += 1
        status, ran = sequential_status(diffs, samples, rho=rho)
        seq[status] += 1
        saved += (tasks - ran) / tasks
    return fixed, seq, saved / gates


def table(difficulty: str, gates: int, seed: int, rho: float) -> list[str]:
    low, high = DIFFICULTY[difficulty]
    lines = [f"difficulty {difficulty} (pass probabilities {low}–{high}), margin {MARGIN}, rho {rho}, {gates} gates "
             "per row, % of gates, fixed / sequential:",
             "| tasks × samples | equal: pass | equal: fail | 3.5 pts worse: pass | 5 pts worse: pass "
             "| 15 pts worse: fail | saved: 15 worse | saved: equal | saved: 3.5 worse |",
             "|---|---|---|---|---|---|---|---|---|"]
    for tasks in TASKS:
        for samples in SAMPLES:
            runs = {delta: cell(seed, gates, tasks, samples, delta, difficulty, rho) for delta in DELTAS}
            pct = lambda delta, status: "{:.1f} / {:.1f}".format(  # noqa: E731
                *(100 * runs[delta][i][status] / gates for i in (0, 1)))
            cells = [pct(0.0, "pass"), pct(0.0, "fail"), pct(JUST_WORSE, "pass"), pct(WORSE, "pass"),
                     pct(MUCH_WORSE, "fail")]
            saved = [f"{100 * runs[d][2]:.0f}%" for d in (MUCH_WORSE, 0.0, JUST_WORSE)]
            lines.append(f"| {tasks} × {samples} | " + " | ".join(cells + saved) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gates", type=int, default=1000, help="simulated bake-offs per table cell")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rho", type=float, default=sequential.RHO, help="alpha spending exponent")
    parser.add_argument("--difficulty", choices=sorted(DIFFICULTY), action="append",
                        help="only this difficulty profile (repeatable; default all)")
    args = parser.parse_args()
    for difficulty in args.difficulty or DIFFICULTY:
        print("\n".join(table(difficulty, args.gates, args.seed, args.rho)), end="\n\n", flush=True)


if __name__ == "__main__":
    main()
