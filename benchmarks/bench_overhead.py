"""Per-trial overhead of the plugin: the slope of wall time between 20 and 80 trials, ours minus plain.

Both sides are whole ``python -m pytest -p no:cacheprovider -q`` processes over a
suite generated in a temporary directory; start-up and collection cancel out
in the slope (t_large - t_small) / (large - small):

- ours: one task ``@pytest.mark.task(cpus=1, memory="64Mi", solutions="true")``
  whose body is ``trial.run_agent(...)``, run as ``--models oracle --samples N``
  on the local backend (admission, cgroup, working directory, LangChain agent
  loop, record and trajectory files in ``--hb-out``: everything a trial pays);
- plain: ``@pytest.mark.parametrize`` over N cases whose body is
  ``subprocess.run(["bash", "-c", "true"])`` (the command the oracle runs), with
  ``-p no:harnessbench``.

Other installed plugins stay loaded on both sides. Each round runs the four
processes in an order that alternates between rounds; the figures are medians
over rounds. Target (issue 22): overhead per trial <= 10 ms (issue 7: 30 ms). CPU time per trial
(user + sys of the process tree) is printed too: on a shared, loaded machine wall time swings, CPU much less.

    python benchmarks/bench_overhead.py [--rounds 5] [--small 20] [--large 80]
    python benchmarks/bench_overhead.py --profile 40    # cProfile one large run of ours, top 40
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_MS = 10.0

OURS = '''
import pytest


@pytest.mark.task(cpus=1, memory="64Mi", timeout=60, solutions="true")
def test_trivial(trial):
    trial.run_agent("Run the reference solution.")
'''

PLAIN = '''
import subprocess

import pytest


@pytest.mark.parametrize("sample", range(1, {n} + 1))
def test_trivial(sample):
    assert subprocess.run(["bash", "-c", "true"]).returncode == 0
'''


# Loaded with -p into both sides: the wall time the garbage collector took during the run (from the end of
# collection), printed at the end; the slope of it between the small and the large run is its cost per trial.
GC_METER = '''
import gc, time

_t = {"start": 0.0, "total": 0.0}


def _measure(phase, info):
    if phase == "start":
        _t["start"] = time.perf_counter()
    else:
        _t["total"] += time.perf_counter() - _t["start"]


gc.callbacks.append(_measure)


def pytest_collection_finish(session):
    _t["total"] = 0.0


def pytest_unconfigure(config):
    print(f"\\nhb-gc-meter: {_t['total']:.6f} s")
'''


class Runner:
    def __init__(self, root: Path):
        self.root = root
        self.count = 0
        self.cpu: dict[tuple[str, int], list[float]] = collections.defaultdict(list)
        self.env = {**os.environ, "TMPDIR": str(root), "PYTHONDONTWRITEBYTECODE": "1"}  # the default layout, isolated
        (root / "meter").mkdir()
        (root / "meter" / "hb_gc_meter.py").write_text(GC_METER)
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root / "meter"), os.environ.get("PYTHONPATH")]))
        self.gc: dict[tuple[str, int], list[float]] = collections.defaultdict(list)
        for side in ("ours", "plain"):
            (root / side).mkdir()
            (root / side / "pytest.ini").write_text("[pytest]\n")  # pin the rootdir
        (root / "ours" / "test_trivial.py").write_text(OURS)

    def command(self, side: str, n: int, prefix: list[str] | None = None) -> tuple[list[str], Path]:
        self.count += 1
        if side == "ours":
            extra = ["--models", "oracle", "--multipliers", "1", "--samples", str(n),
                     "--hb-out", str(self.root / "runs" / f"run{self.count}")]
            target = "test_trivial.py"
        else:
            target = f"test_plain_{n}.py"
            (self.root / "plain" / target).write_text(PLAIN.format(n=n))
            extra = ["-p", "no:harnessbench"]
        runner = prefix or ["-m", "pytest"]
        return [sys.executable, *runner, "-p", "no:cacheprovider", "-p", "hb_gc_meter", "-q", target, *extra], self.root / side

    def run(self, side: str, n: int) -> float:
        cmd, cwd = self.command(side, n)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, env=self.env, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # CPU of the pytest process and the children it waited for (its commands): far less sensitive than
        # wall time to other jobs on a shared machine, though blind to waits (the kernel's locks, the disk)
        self.cpu[(side, n)].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        gc_s = re.search(r"hb-gc-meter: ([0-9.]+) s", proc.stdout)
        self.gc[(side, n)].append(float(gc_s.group(1)) if gc_s else float("nan"))
        if proc.returncode != 0 or not re.search(rf"\b{n} passed\b", proc.stdout):
            sys.exit(f"run failed ({' '.join(cmd)} in {cwd}, exit {proc.returncode}):\n"
                     f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return elapsed


def profile(runner: Runner, n: int, top: int) -> None:
    out = runner.root / "profile.out"
    cmd, cwd = runner.command("ours", n, prefix=["-m", "cProfile", "-o", str(out), "-m", "pytest"])
    subprocess.run(cmd, cwd=cwd, env=runner.env, capture_output=True, check=True)
    import pstats

    print(f"\ncProfile of one {n}-trial run of ours (cumulative, top {top}):")
    pstats.Stats(str(out), stream=sys.stdout).sort_stats("cumulative").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--small", type=int, default=20, help="trials in the small suite (default 20)")
    parser.add_argument("--large", type=int, default=80, help="trials in the large suite (default 80)")
    parser.add_argument("--profile", metavar="TOP", type=int, nargs="?", const=40, default=0,
                        help="instead of measuring, cProfile one large run of ours and print the top functions")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hb-bench-overhead-") as tmp:
        runner = Runner(Path(tmp))
        if args.profile:
            profile(runner, args.large, args.profile)
            return
        runner.run("ours", 2), runner.run("plain", 2)  # warm-up
        plan = [("ours", args.small), ("plain", args.small), ("ours", args.large), ("plain", args.large)]
        times: dict[tuple[str, int], list[float]] = {key: [] for key in plan}
        slopes: dict[str, list[float]] = {"ours": [], "plain": []}
        for r in range(args.rounds):
            for key in (plan if r % 2 == 0 else plan[::-1]):
                times[key].append(runner.run(*key))
            for side in slopes:
                slopes[side].append((times[(side, args.large)][-1] - times[(side, args.small)][-1])
                                    / (args.large - args.small))
    ms = lambda seconds: 1000 * seconds  # noqa: E731
    cpu = {side: [(large - small) / (args.large - args.small) for small, large in
                  zip(runner.cpu[(side, args.small)][-args.rounds:], runner.cpu[(side, args.large)][-args.rounds:])]
           for side in slopes}
    so, sp = statistics.median(slopes["ours"]), statistics.median(slopes["plain"])
    overheads = [ms(o - p) for o, p in zip(slopes["ours"], slopes["plain"])]
    overhead = ms(so - sp)
    print(f"per-trial cost = (t{args.large} - t{args.small}) / {args.large - args.small}, whole pytest processes, "
          f"medians of {args.rounds} interleaved rounds:")
    for side, label in (("ours", "harnessbench oracle trial (local backend)"), ("plain", "plain test, subprocess bash -c true")):
        small, large = (statistics.median(times[(side, n)]) for n in (args.small, args.large))
        print(f"  {label:42s} t{args.small} {small:6.2f} s  t{args.large} {large:6.2f} s  "
              f"slope {ms(statistics.median(slopes[side])):6.1f} ms/trial")
    print(f"  overhead per trial (ours - plain): {overhead:.2f} ms (per round: {', '.join(f'{o:.1f}' for o in overheads)});"
          f"  target <= {TARGET_MS:.0f} ms: {'met' if overhead <= TARGET_MS else 'NOT met'}")
    gc_ours = [(large - small) / (args.large - args.small) for small, large in
               zip(runner.gc[("ours", args.small)][-args.rounds:], runner.gc[("ours", args.large)][-args.rounds:])]
    cpu_overheads = [ms(o - p) for o, p in zip(cpu["ours"], cpu["plain"])]
    print(f"  CPU per trial (user + sys, the process and its waited-for children): ours "
          f"{ms(statistics.median(cpu['ours'])):.1f} ms, plain {ms(statistics.median(cpu['plain'])):.1f} ms, "
          f"overhead {statistics.median(cpu_overheads):.2f} ms (per round: {', '.join(f'{o:.1f}' for o in cpu_overheads)})")
    print(f"  garbage collection per trial of ours (wall): {ms(statistics.median(gc_ours)):.2f} ms "
          f"(per round: {', '.join(f'{ms(g):.2f}' for g in gc_ours)})")


if __name__ == "__main__":
    main()
