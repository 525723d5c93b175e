"""Memory of the controller per concurrent trial: why one host cannot run 100 trials at once (issue 23).

A sleep-bound task (``solutions="sleep S"``, 1 CPU, 64 MiB, local backend) run
as ``pytest -n K --samples 2K`` for several K, with ``--hb-capacity`` large
enough that admission control lets K trials run at once on any host. While it
runs, the whole process tree under the ``pytest`` process (the xdist
controller, its K workers, their sandbox watchdogs, the sandboxed ``sleep``
commands) is sampled every 0.2 s from /proc: the sum of RSS and of PSS
(proportional set size: pages shared between the workers counted once in
total, so PSS is what the host really spends). The figure per concurrent trial
is the least-squares slope of the peak over K; the intercept is what a session
costs before its first worker. Also: a serial session (no ``-n``), the plain
process.

    python benchmarks/bench_controller_memory.py [--workers 1,2,4,8] [--sleep 6]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TASK = '''
import pytest


@pytest.mark.task(cpus=1, memory="64Mi", timeout=120, solutions="sleep {sleep}")
def test_sleep(trial):
    trial.run_agent("Run the reference solution.")
'''


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def _kib(path: str, key: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory(root: int) -> tuple[int, int, int]:
    """(RSS, PSS, processes) of ``root`` and every descendant, in KiB."""
    tree, stack, rss, pss, count = _children(), [root], 0, 0, 0
    while stack:
        pid = stack.pop()
        stack += tree.get(pid, [])
        rss += _kib(f"/proc/{pid}/status", "VmRSS:")
        pss += _kib(f"/proc/{pid}/smaps_rollup", "Pss:")
        count += 1
    return rss, pss, count


def measure(suite: Path, workers: int, sleep: float, env: dict) -> tuple[int, int, int, float]:
    """Peak (RSS, PSS, processes) of one session's tree, in KiB, and its wall time."""
    args = ["--models", "oracle", "--samples", str(max(2 * workers, 2)), "--hb-capacity", "cpus=256,memory=256Gi",
            "--hb-progress", "0"]
    if workers:
        args += ["-n", str(workers)]
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_sleep.py", *args]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=suite, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0, 0, 0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            rss, pss, count = tree_memory(proc.pid)
            if pss > peak[1]:
                peak[:] = [rss, pss, count]
            time.sleep(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    output = proc.communicate()[0]
    done.set()
    sampler.join()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}:\n{output[-3000:]}")
    return peak[0], peak[1], peak[2], time.perf_counter() - start


def slope(xs: list[float], ys: list[float]) -> tuple[float, float]:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return b, my - b * mx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2,4,8", help="comma list of -n values (default 1,2,4,8)")
    parser.add_argument("--sleep", type=float, default=6.0, help="seconds each trial sleeps (default 6)")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="hb-bench-memory-") as tmp:
        suite = Path(tmp) / "suite"
        suite.mkdir()
        (suite / "pytest.ini").write_text("[pytest]\n")
        (suite / "test_sleep.py").write_text(TASK.format(sleep=args.sleep))
        env = {**os.environ, "TMPDIR": tmp, "PYTEST_ADDOPTS": "-p no:langsmith_plugin"}
        rss0, pss0, procs0, wall0 = measure(suite, 0, args.sleep, env)
        print(f"serial session (no -n): peak RSS {rss0 / 1024:.0f} MiB, PSS {pss0 / 1024:.0f} MiB, "
              f"{procs0} processes, {wall0:.0f} s")
        rows = []
        for k in counts:
            rss, pss, procs, wall = measure(suite, k, args.sleep, env)
            rows.append((k, rss, pss))
            print(f"-n {k:2d}: peak RSS {rss / 1024:6.0f} MiB, PSS {pss / 1024:6.0f} MiB, {procs:3d} processes, "
                  f"{wall:.0f} s")
    per_rss, base_rss = slope([k for k, _, _ in rows], [r / 1024 for _, r, _ in rows])
    per_pss, base_pss = slope([k for k, _, _ in rows], [p / 1024 for _, _, p in rows])
    print(f"per concurrent trial (slope over -n {args.workers}): RSS {per_rss:.0f} MiB, PSS {per_pss:.0f} MiB; "
          f"a session before its workers: RSS {base_rss:.0f} MiB, PSS {base_pss:.0f} MiB")
    print(f"so 100 concurrent trials need about {100 * per_pss / 1024:.1f} GiB (PSS) of controller memory on one host")


if __name__ == "__main__":
    main()
