"""What the default gate decides about a real regression, by simulation, and whether its plan line is right.

Each simulated bake-off draws every task's baseline pass probability uniformly
from 0.2-0.95; the candidate's is DELTA lower on average, varying from task to
task with a standard deviation of EFFECT_SD (clipped to 0-1); each model runs
``samples`` trials per task, and the gate (``gate.decide``, margin
``score:3pt``, alpha 0.05: the defaults) judges candidate vs baseline.

Table 1, a candidate 5 points worse (beyond the 3-point margin): % of gates
that pass (a false pass), fail (the regression caught) and stay inconclusive,
for effect SDs of 0, 10 and 20 points.

Table 2, the plan line (``gate.plan``, printed before a gated run's first
trial): the regression it says the run can fail at 80% power, and the share of
simulated gates (effect SD 10 points, the plan's assumption) that fail it.

    python benchmarks/gate_power.py [--gates 400] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
from collections import Counter

from pytest_harnessbench.gate import Margin, decide, plan
from pytest_harnessbench.records import TrialRecord

MARGIN = Margin("score", 3.0)
SIZES = ((40, 1), (40, 3), (89, 1), (89, 3))
EFFECT_SDS = (0.0, 0.10, 0.20)
WORSE = 0.05


def simulate(rng: random.Random, tasks: int, samples: int, delta: float, effect_sd: float) -> tuple[list, list]:
    """Baseline and candidate records of one bake-off; the candidate is ``delta`` worse on average."""
    baseline, candidate = [], []
    for t in range(tasks):
        p = rng.uniform(0.2, 0.95)
        q = min(1.0, max(0.0, p - delta + rng.gauss(0.0, effect_sd)))
        for model, rate, out in (("baseline", p, baseline), ("candidate", q, candidate)):
            for s in range(1, samples + 1):
                out.append(TrialRecord.from_dict({"task_id": f"t{t}", "model": model, "multiplier": "1x", "sample": s,
                            "outcome": "passed" if rng.random() < rate else "failed", "cause": None}))
    return baseline, candidate


def statuses(seed: int, gates: int, tasks: int, samples: int, delta: float, effect_sd: float) -> Counter:
    rng = random.Random(seed)
    return Counter(decide(*simulate(rng, tasks, samples, delta, effect_sd), MARGIN).status for _ in range(gates))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gates", type=int, default=400, help="simulated bake-offs per table cell")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    pct = lambda c, k: f"{100 * c[k] / args.gates:.1f}"  # noqa: E731
    print(f"A candidate {100 * WORSE:g} pts worse, margin {MARGIN}, {args.gates} gates per row; "
          "% pass / fail / inconclusive for effect SD 0, 10, 20 pts:")
    print("| tasks × samples | pass (false pass) | fail (regression caught) | inconclusive |")
    print("|---|---|---|---|")
    for tasks, samples in SIZES:
        runs = [statuses(args.seed, args.gates, tasks, samples, WORSE, sd) for sd in EFFECT_SDS]
        cells = [" / ".join(pct(c, k) for c in runs) for k in ("pass", "fail", "inconclusive")]
        print(f"| {tasks} × {samples} | " + " | ".join(cells) + " |")
    print()
    print(f"The plan line's figure vs simulation (effect SD 10 pts), {args.gates} gates per row:")
    print("| tasks × samples | plan: fails ≥ (80% power) | simulated: fail at that regression |")
    print("|---|---|---|")
    for tasks, samples in SIZES:
        figure = plan(MARGIN, tasks, samples)
        run = statuses(args.seed, args.gates, tasks, samples, figure.detectable, 0.10)
        print(f"| {tasks} × {samples} | {100 * figure.detectable:.1f} pts | {pct(run, 'fail')}% |")


if __name__ == "__main__":
    main()
