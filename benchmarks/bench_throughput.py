"""Throughput of sleep-bound trials: ``-n 2`` vs serial, admission control on.

One task ``@pytest.mark.task(cpus=1, memory="64Mi", solutions="sleep 1")`` run as
``--models oracle --samples N`` on the local backend; admission control uses its
default capacity (this machine's CPUs), so on 2 cores two 1-CPU trials may run
at once. Both sides are whole ``python -m pytest -p no:cacheprovider -q``
processes with the same plugins loaded (pytest-xdist included); only ``-n 2``
differs.

Steady-state throughput is the slope between two suite sizes,
(large - small) / (t_large - t_small) trials per second, so each side's fixed
start-up (and xdist's worker start-up) cancels out; the whole-process rate of
the large suite, start-up included, is printed too. The admission ledger lives
in a private temporary directory, so trials of other sessions on the host do
not queue ours (they still compete for the CPUs). Rounds alternate the order of
the sides; the figures are medians. From the records of each ``-n 2`` run it
also prints the most trials ever running at once (must not exceed 2) and the
median ``queued_s``. Target (issue 7, item 5): parallel / serial >= 1.8.

    python benchmarks/bench_throughput.py [--rounds 2] [--small 4] [--large 20] [--sleep 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from pytest_harnessbench.admission import host_cpus

TARGET = 1.8

TASK = '''
import pytest


@pytest.mark.task(cpus=1, memory="64Mi", timeout=120, solutions="sleep {sleep}")
def test_sleep(trial):
    trial.run_agent("Run the reference solution.")
'''


def max_concurrent(records: list[dict]) -> int:
    """Most trials whose [started_at, finished_at] intervals overlap at one instant."""
    events = []
    for r in records:
        events.append((datetime.fromisoformat(r["started_at"]), 1))
        events.append((datetime.fromisoformat(r["finished_at"]), -1))
    running = peak = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):  # an end before a start at the same instant
        running += step
        peak = max(peak, running)
    return peak


class Runner:
    def __init__(self, root: Path, sleep: float):
        self.root = root
        self.count = 0
        self.infra: list[str] = []
        self.env = {**os.environ, "TMPDIR": str(root), "PYTHONDONTWRITEBYTECODE": "1"}  # the default layout, isolated
        (root / "suite").mkdir()
        (root / "suite" / "pytest.ini").write_text("[pytest]\n")  # pin the rootdir
        (root / "suite" / "test_sleep.py").write_text(TASK.format(sleep=f"{sleep:g}"))

    def run(self, workers: int, n: int) -> tuple[float, list[dict]]:
        self.count += 1
        out = self.root / "runs" / f"run{self.count}"
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_sleep.py",
               "--models", "oracle", "--multipliers", "1", "--samples", str(n), "--hb-out", str(out)]
        if workers > 1:
            cmd += ["-n", str(workers)]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=self.root / "suite", env=self.env, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        results = out / "results.jsonl"
        records = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
        bad = [r for r in records if r["outcome"] != "passed"]
        if len(records) != n or proc.returncode != (1 if bad else 0) or any(r["outcome"] != "infra" for r in bad):
            sys.exit(f"run failed ({' '.join(cmd)}, exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        # An infra trial is the plugin's finding, not the benchmark's failure: count it, say so at the end.
        self.infra += [f"{' '.join(cmd[3:])}: {r['trial_id']} {r['cause']}: {r['message']}" for r in bad]
        return elapsed, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds, order alternating (default 2)")
    parser.add_argument("--small", type=int, default=4, help="trials in the small suite (default 4)")
    parser.add_argument("--large", type=int, default=20, help="trials in the large suite (default 20)")
    parser.add_argument("--sleep", type=float, default=1.0, help="seconds each trial sleeps (default 1)")
    parser.add_argument("--workers", type=int, default=2, help="-n for the parallel side (default 2)")
    args = parser.parse_args()
    sides = {"serial": 1, "parallel": args.workers}
    times = {(side, n): [] for side in sides for n in (args.small, args.large)}
    rates: dict[str, list[float]] = {side: [] for side in sides}
    peaks, queued = [], []
    with tempfile.TemporaryDirectory(prefix="hb-bench-throughput-") as tmp:
        runner = Runner(Path(tmp), args.sleep)
        runner.run(1, 1)  # warm-up
        order = list(sides)
        for r in range(args.rounds):
            for side in (order if r % 2 == 0 else order[::-1]):
                for n in (args.small, args.large):
                    elapsed, records = runner.run(sides[side], n)
                    times[(side, n)].append(elapsed)
                    if side == "parallel":
                        peaks.append(max_concurrent(records))
                        queued += [record["timing"]["queued_s"] for record in records]
                rates[side].append((args.large - args.small) / (times[(side, args.large)][-1] - times[(side, args.small)][-1]))
        infra = runner.infra
    per_min = {side: 60 * statistics.median(v) for side, v in rates.items()}
    whole = {side: 60 * args.large / statistics.median(times[(side, args.large)]) for side in sides}
    ratio = per_min["parallel"] / per_min["serial"]
    print(f"sleep-bound trials (solution 'sleep {args.sleep:g}', cpus=1, memory=64Mi, local backend, admission on, "
          f"default capacity), medians of {args.rounds} rounds:")
    for side in sides:
        label = "serial" if sides[side] == 1 else f"-n {sides[side]}"
        small, large = (statistics.median(times[(side, n)]) for n in (args.small, args.large))
        print(f"  {label:7s} t{args.small} {small:6.2f} s  t{args.large} {large:6.2f} s  steady state "
              f"{per_min[side]:5.1f} trials/min  (whole process, {args.large} trials: {whole[side]:5.1f}/min)")
    print(f"  -n {args.workers}: most trials running at once {max(peaks)} (capacity {host_cpus():g} CPUs: "
          f"{int(host_cpus() + 1e-9)} trials of cpus=1); "
          f"median queued_s {statistics.median(queued):.2f} s")
    print(f"  ratio -n {args.workers} / serial: {ratio:.2f} steady state "
          f"({whole['parallel'] / whole['serial']:.2f} whole process);  target >= {TARGET}: "
          f"{'met' if ratio >= TARGET else 'NOT met'}")
    for line in infra:
        print(f"  WARNING: infra trial in {line}")


if __name__ == "__main__":
    main()
