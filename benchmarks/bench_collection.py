"""Collection at scale: 100 tasks x 5 models x 6 multipliers x 10 samples = 30,000 trials vs plain parametrize.

Both sides are a whole ``python -m pytest -p no:cacheprovider --collect-only -q``
process (start-up included, as a user sees it) over a generated suite in a
temporary directory:

- ours: TASKS functions marked ``@pytest.mark.task(..., solutions={5 variants})``
  using the ``trial`` fixture, run with ``--models oracle:a,...,oracle:e
  --multipliers 1,1.5,2,3,5,uncapped --samples 10``;
- plain: TASKS functions with ``@pytest.mark.parametrize`` over the same number
  of cases (ids shaped like ours, e.g. ``oracle:a@1.5x#3``), with
  ``-p no:harnessbench``.

- ours with ``--hb-shard 1/4``: the same, each item's trial id hashed and the
  collection split into four shares (issue 23), 7,500 kept, 22,500 deselected.

Every other installed plugin stays loaded on every side. Rounds interleave the
sides (rotating which goes first); the figures are medians. It also times the
split alone (``shard.split`` over 30,000 keyed items, in this process).
Targets: ours / plain <= 1.2 (issue 7, item 4); sharded / ours <= 1.05 (issue 23).

    python benchmarks/bench_collection.py [--rounds 5] [--tasks 100] [--samples 10]
"""

from __future__ import annotations

import argparse
import os
import re
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


def write_suites(root: Path, tasks: int, samples: int) -> tuple[Path, Path]:
    ours, plain = root / "ours", root / "plain"
    for d in (ours, plain):
        d.mkdir()
        (d / "pytest.ini").write_text("[pytest]\n")  # pin the rootdir: no ini from a parent directory
    (ours / "test_tasks.py").write_text("import pytest\n" + "".join(OURS_TASK.format(i=i) for i in range(tasks)))
    cases = [f"oracle:{v}@{m}#{k}" for v in VARIANTS for m in LABELS for k in range(1, samples + 1)]
    (plain / "test_tasks.py").write_text(
        f"import pytest\n\nCASES = {cases!r}\n" + "".join(PLAIN_TASK.format(i=i) for i in range(tasks)))
    return ours, plain


def collect(cwd: Path, extra: list[str], env: dict) -> tuple[float, int]:
    """Wall time of one whole collect-only process and the number of items it reported."""
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q", *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    found = re.search(r"(\d+) tests? collected", proc.stdout)  # "7500/30000 tests collected": the whole
    if proc.returncode != 0 or not found:
        sys.exit(f"collection failed ({' '.join(cmd)} in {cwd}, exit {proc.returncode}):\n"
                 f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed, int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--tasks", type=int, default=100, help="task functions (default 100)")
    parser.add_argument("--samples", type=int, default=10, help="--samples (default 10)")
    args = parser.parse_args()
    expected = args.tasks * len(VARIANTS) * len(MULTIPLIERS) * args.samples
    models = ",".join(f"oracle:{v}" for v in VARIANTS)
    ours_args = ["--models", models, "--multipliers", ",".join(MULTIPLIERS), "--samples", str(args.samples)]
    plain_args = ["-p", "no:harnessbench"]
    shard_args = [*ours_args, "--hb-shard", "1/4"]
    with tempfile.TemporaryDirectory(prefix="hb-bench-collection-") as tmp:
        root = Path(tmp)
        ours_dir, plain_dir = write_suites(root, args.tasks, args.samples)
        env = {**os.environ, "TMPDIR": str(root), "PYTHONDONTWRITEBYTECODE": "1"}  # the default layout, isolated
        collect(ours_dir, ours_args, env), collect(plain_dir, plain_args, env)  # warm-up (page cache, imports)
        ours, plain, sharded = [], [], []
        for r in range(args.rounds):
            sides = [(ours, ours_dir, ours_args), (plain, plain_dir, plain_args), (sharded, ours_dir, shard_args)]
            for times, cwd, extra in sides[r % 3:] + sides[:r % 3]:
                elapsed, n = collect(cwd, extra, env)
                if n != expected:
                    sys.exit(f"{cwd.name}: collected {n} items, expected {expected}")
                times.append(elapsed)
    mo, mp = statistics.median(ours), statistics.median(plain)
    ratio = mo / mp
    print(f"collect-only of {expected:,} items ({args.tasks} tasks x {len(VARIANTS)} models x "
          f"{len(MULTIPLIERS)} multipliers x {args.samples} samples), {args.rounds} interleaved rounds, whole process:")
    print(f"  harnessbench (task marker + trial fixture): median {mo:6.2f} s  (runs: {', '.join(f'{t:.2f}' for t in ours)})")
    print(f"  plain pytest (parametrize, no plugin):      median {mp:6.2f} s  (runs: {', '.join(f'{t:.2f}' for t in plain)})")
    print(f"  ratio ours / plain: {ratio:.2f}  target <= {TARGET}: {'met' if ratio <= TARGET else 'NOT met'}")
    ms = statistics.median(sharded)
    print(f"  harnessbench --hb-shard 1/4:                median {ms:6.2f} s  (runs: {', '.join(f'{t:.2f}' for t in sharded)})")
    print(f"  ratio sharded / ours: {ms / mo:.3f}  target <= {SHARD_TARGET}: "
          f"{'met' if ms / mo <= SHARD_TARGET else 'NOT met'}")
    print(f"  the split alone, {expected:,} keyed items: {split_alone(expected) * 1000:.0f} ms (median of 5)")


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
