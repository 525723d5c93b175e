"""How often the CI gate passes a candidate that is worse than the margin, by simulation.

Each simulated bake-off draws every task's baseline pass probability from a
difficulty profile; the candidate's is DELTA lower on every task, and each
model runs ``samples`` trials per task. The gate (``gate.decide``, margin
``score:3pt``, alpha 0.05: the defaults) then judges candidate vs baseline.
For each suite size the table gives, in percent of simulated gates:

- equal (delta 0): how often it passes (a correct pass) and fails (a false fail);
- 3.5 and 5 pts worse (beyond the 3-point margin): how often it passes, the
  false-pass rate, which the two-sided 95% interval should keep at or below
  about 2.5% (it is highest just past the margin);
- 15 pts worse: how often it fails (the regression is caught).

Difficulty profiles: "mixed" (pass probabilities uniform in 0.2–0.95) and
"easy" (0.9–1.0, where both models often pass every trial: the case that used
to collapse the interval and pass).

    python benchmarks/gate_false_pass.py [--gates 2000] [--seed 1]

tests/test_gate.py runs the same simulation with fewer gates and checks the
false-pass rate; the README quotes this script's output.
"""

from __future__ import annotations

import argparse
import random
from collections import Counter

from pytest_harnessbench.gate import Margin, decide
from pytest_harnessbench.records import TrialRecord

MARGIN = Margin("score", 3.0)
DIFFICULTY: dict[str, tuple[float, float]] = {"mixed": (0.2, 0.95), "easy": (0.9, 1.0)}
TASKS = (2, 5, 10, 40)
SAMPLES = (1, 2, 3)
JUST_WORSE, WORSE, MUCH_WORSE = 0.035, 0.05, 0.15


def simulate(rng: random.Random, tasks: int, samples: int, delta: float, difficulty: str) -> tuple[list, list]:
    """Baseline and candidate records of one bake-off; the candidate is ``delta`` worse on every task."""
    low, high = DIFFICULTY[difficulty]
    baseline, candidate = [], []
    for t in range(tasks):
        p = rng.uniform(low, high)
        for model, rate, out in (("baseline", p, baseline), ("candidate", p - delta, candidate)):
            for s in range(1, samples + 1):
                outcome = "passed" if rng.random() < rate else "failed"
                out.append(TrialRecord.from_dict({"task_id": f"t{t}", "model": model, "multiplier": "1x", "sample": s,
                            "outcome": outcome, "cause": None}))
    return baseline, candidate


def gate_statuses(seed: int, gates: int, tasks: int, samples: int, delta: float, difficulty: str) -> Counter:
    """How many of ``gates`` simulated bake-offs the gate passes, fails and leaves inconclusive."""
    rng = random.Random(seed)
    return Counter(decide(*simulate(rng, tasks, samples, delta, difficulty), MARGIN).status for _ in range(gates))


def table(difficulty: str, gates: int, seed: int) -> list[str]:
    lines = [f"difficulty {difficulty} (pass probabilities {DIFFICULTY[difficulty][0]}–{DIFFICULTY[difficulty][1]}), "
             f"margin {MARGIN}, {gates} gates per row, % of gates:",
             "| tasks × samples | equal: pass | equal: fail | 3.5 pts worse: pass | 5 pts worse: pass "
             "| 15 pts worse: fail |",
             "|---|---|---|---|---|---|"]
    for tasks in TASKS:
        for samples in SAMPLES:
            runs = {delta: gate_statuses(seed, gates, tasks, samples, delta, difficulty)
                    for delta in (0.0, JUST_WORSE, WORSE, MUCH_WORSE)}
            counts = [runs[0.0]["pass"], runs[0.0]["fail"], runs[JUST_WORSE]["pass"], runs[WORSE]["pass"],
                      runs[MUCH_WORSE]["fail"]]
            lines.append(f"| {tasks} × {samples} | " + " | ".join(f"{100 * c / gates:.1f}" for c in counts) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gates", type=int, default=2000, help="simulated bake-offs per table cell")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for difficulty in DIFFICULTY:
        print("\n".join(table(difficulty, args.gates, args.seed)), end="\n\n")


if __name__ == "__main__":
    main()
