"""Collection at scale: 100 tasks x 5 models x 6 multipliers x 10 samples = 30,000 trials vs plain parametrize.

Every side is a whole ``python -m pytest -p no:cacheprovider --collect-only -q``
process (start-up included, as a user sees it) over a generated suite in a
temporary directory:

- ours: TASKS functions marked ``@pytest.mark.task(..., solutions={5 variants})``
  using the ``trial`` fixture, run with ``--models oracle:a,...,oracle:e
  --multipliers 1,1.5,2,3,5,uncapped --samples 10``;
- plain: TASKS functions with ``@pytest.mark.parametrize`` over the same number
  of cases (ids shaped like ours, e.g. ``oracle:a@1.5x#3``), with
  ``-p no:harnessbench``;
- plain, heap frozen: the same, with a conftest.py doing what the plugin does once
  the trials are collected (``gc.collect(); gc.freeze()``, see plugin._freeze_heap),
  so that pytest's five exit-time ``gc.collect()`` passes skip the items on both
  sides: ours / this is the plugin's own work per item and per session;
- ours with ``--hb-shard 1/4``: each item's trial key hashed and the collection
  split into four shares (issue 23), 7,500 kept, 22,500 deselected;
- ours with ``-k`` keeping the first quarter of the tasks: pytest's own
  deselection of as many items, the baseline a user knows (pytest and the
  installed plugins do the same bookkeeping for every deselected item).

Every other installed plugin stays loaded on every side. Each process writes and
reads its bytecode in a private cache (PYTHONPYCACHEPREFIX in the temporary
directory, warmed by a first round that is not counted), as an installed package
has its .pyc files; the figures therefore leave out compiling this checkout's
modules and pytest's assertion rewriting of plugins, which every process repeats
under PYTHONDONTWRITEBYTECODE. Rounds interleave the sides (rotating which goes
first); the figures are medians of wall time and of CPU time (user + sys of the
process), the latter less disturbed by other jobs on a shared machine. It also
times the split alone (``shard.split`` over 30,000 keyed items, in this process).
Targets: ours / plain <= 1.2 (issue 7, item 4); sharded / ours <= 1.05 (issue 23).

    python benchmarks/bench_collection.py [--rounds 5] [--tasks 100] [--samples 10]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 1.2
SHARD_TARGET = 1.05
VARIANTS = ("a", "b", "c", "d", "e")
MULTIPLIERS = ("1", "1.5", "2", "3", "5", "uncapped")
LABELS = ("1x", "1.5x", "2x", "3x", "5x", "uncapped")

OURS_TASK = '''
@pytest.mark.task(cpus=1, memory="64Mi", timeout=60,
                  solutions={{"a": "true", "b": "true", "c": "true", "d": "true", "e": "true"}})
def test_task_{i:03d}(trial):
    trial.run_agent("do nothing")
'''

PLAIN_TASK = '''
@pytest.mark.parametrize("case", CASES)
def test_task_{i:03d}(case):
    pass
'''

FREEZING_CONFTEST = '''
import gc


def pytest_collection_modifyitems(items):
    gc.collect()
    gc.freeze()
'''


def write_suites(root: Path, tasks: int, samples: int) -> tuple[Path, Path, Path]:
    ours, plain, frozen = root / "ours", root / "plain", root / "plain_frozen"
    cases = [f"oracle:{v}@{m}#{k}" for v in VARIANTS for m in LABELS for k in range(1, samples + 1)]
    plain_tests = f"import pytest\n\nCASES = {cases!r}\n" + "".join(PLAIN_TASK.format(i=i) for i in range(tasks))
    for d in (ours, plain, frozen):
        d.mkdir()
        (d / "pytest.ini").write_text("[pytest]\n")  # pin the rootdir: no ini from a parent directory
        (d / "test_tasks.py").write_text(plain_tests)
    (ours / "test_tasks.py").write_text("import pytest\n" + "".join(OURS_TASK.format(i=i) for i in range(tasks)))
    (frozen / "conftest.py").write_text(FREEZING_CONFTEST)
    return ours, plain, frozen


def collect(cwd: Path, extra: list[str], env: dict) -> tuple[float, float, int, int]:
    """Wall and CPU seconds of one whole collect-only process, the items it kept and the items it collected."""
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q", *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    found = re.search(r"(?:(\d+)/)?(\d+) tests? collected", proc.stdout)  # "7500/30000 tests collected (...)"
    if proc.returncode != 0 or not found:
        sys.exit(f"collection failed ({' '.join(cmd)} in {cwd}, exit {proc.returncode}):\n"
                 f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    whole = int(found.group(2))
    return elapsed, cpu, int(found.group(1) or whole), whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--tasks", type=int, default=100, help="task functions (default 100)")
    parser.add_argument("--samples", type=int, default=10, help="--samples (default 10)")
    args = parser.parse_args()
    expected = args.tasks * len(VARIANTS) * len(MULTIPLIERS) * args.samples
    models = ",".join(f"oracle:{v}" for v in VARIANTS)
    ours_args = ["--models", models, "--multipliers", ",".join(MULTIPLIERS), "--samples", str(args.samples)]
    quarter = " or ".join(f"test_task_{i:03d}" for i in range(args.tasks // 4))
    with tempfile.TemporaryDirectory(prefix="hb-bench-collection-") as tmp:
        root = Path(tmp)
        ours_dir, plain_dir, frozen_dir = write_suites(root, args.tasks, args.samples)
        env = {**os.environ, "TMPDIR": str(root), "PYTHONPYCACHEPREFIX": str(root / "pycache")}  # isolated
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        sides = {  # name -> (directory, arguments, expected items kept)
            "plain": (plain_dir, ["-p", "no:harnessbench"], expected),
            "plain_frozen": (frozen_dir, ["-p", "no:harnessbench"], expected),
            "ours": (ours_dir, ours_args, expected),
            "sharded": (ours_dir, [*ours_args, "--hb-shard", "1/4"], expected // 4),
            "k": (ours_dir, [*ours_args, "-k", quarter], expected // args.tasks * (args.tasks // 4)),
        }
        wall: dict[str, list[float]] = {name: [] for name in sides}
        cpu: dict[str, list[float]] = {name: [] for name in sides}
        order = list(sides)
        for r in range(args.rounds + 1):  # round 0 warms the page cache and the bytecode cache
            for name in order[r % len(order):] + order[:r % len(order)]:
                cwd, extra, kept = sides[name]
                elapsed, seconds, n_kept, n_whole = collect(cwd, extra, env)
                if (n_kept, n_whole) != (kept, expected):
                    sys.exit(f"{name}: kept {n_kept} of {n_whole} items, expected {kept} of {expected}")
                if r:
                    wall[name].append(elapsed)
                    cpu[name].append(seconds)
    report(wall, cpu, args, expected)
    print(f"  the split alone, {expected:,} keyed items: {split_alone(expected) * 1000:.0f} ms (median of 5)")


def report(wall: dict[str, list[float]], cpu: dict[str, list[float]], args, expected: int) -> None:
    med = {name: statistics.median(times) for name, times in wall.items()}
    med_cpu = {name: statistics.median(times) for name, times in cpu.items()}

    def line(label: str, name: str) -> str:
        return (f"  {label:46s} median {med[name]:5.2f} s wall, {med_cpu[name]:5.2f} s CPU  (wall: "
                f"{', '.join(f'{t:.2f}' for t in wall[name])}; CPU: {', '.join(f'{t:.2f}' for t in cpu[name])})")

    def ratio(a: str, b: str, target: float | None = None) -> str:
        walls, cpus = med[a] / med[b], med_cpu[a] / med_cpu[b]
        verdict = "" if target is None else f"  target <= {target}: {'met' if walls <= target else 'NOT met'}"
        return f"{walls:.3f} wall, {cpus:.3f} CPU{verdict}"

    print(f"collect-only of {expected:,} items ({args.tasks} tasks x {len(VARIANTS)} models x "
          f"{len(MULTIPLIERS)} multipliers x {args.samples} samples), {args.rounds} interleaved rounds, whole process:")
    print(line("harnessbench (task marker + trial fixture):", "ours"))
    print(line("plain pytest (parametrize, no plugin):", "plain"))
    print(line("plain pytest, heap frozen as the plugin does:", "plain_frozen"))
    print(line("harnessbench --hb-shard 1/4:", "sharded"))
    print(line(f"harnessbench -k (first {args.tasks // 4} tasks):", "k"))
    print(f"  ratio ours / plain: {ratio('ours', 'plain', TARGET)}")
    print(f"  ratio ours / plain with its heap frozen (the plugin's own work): {ratio('ours', 'plain_frozen')}")
    print(f"  ratio sharded / ours: {ratio('sharded', 'ours', SHARD_TARGET)}")
    print(f"  ratio -k (as many deselected by pytest) / ours: {ratio('k', 'ours')}")


def split_alone(n: int) -> float:
    """Seconds ``shard.split`` takes over ``n`` items shaped like ours (trial id, cell), in this process."""
    from pytest_harnessbench.shard import Shard, split

    items = [(f"test_task_{i % 100:03d}[oracle:{VARIANTS[i % 5]}@{LABELS[i % 6]}#{i % 10}]-{i:06x}",
              (VARIANTS[i % 5], LABELS[i % 6])) for i in range(n)]
    times = []
    for _ in range(5):
        start = time.perf_counter()
        split(items, items, Shard(1, 4), lambda item: item[0])
        times.append(time.perf_counter() - start)
    return statistics.median(times)


if __name__ == "__main__":
    main()
