"""How late a command's exit is seen: ``procs.wait_exit`` (a pidfd) vs ``Popen.wait(timeout)`` (polling).

A trial gives every sandbox command a timeout (what is left of its phase), and
CPython's ``Popen.wait`` with a timeout polls: it sleeps 0.5, 1, 2, 4 ms...
(at most 50 ms) between looks, so the exit is seen up to that late. The local
backend waits on a pidfd instead (``procs.wait_exit``, used by
``LocalSandbox.exec``), which the kernel wakes at the exit. Both waits here
follow the same ``Popen`` of ``sleep SECONDS``, interleaved, for several
durations; the figures are the medians of the wall time from the start to the
wait's return, and the difference is how late the polling saw the exit.

    python benchmarks/bench_exec_wait.py [--rounds 40] [--seconds 0.004,0.05,0.3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

from pytest_harnessbench.procs import wait_exit


def timed(seconds: float, wait) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen(["sleep", f"{seconds}"])
    wait(proc)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--seconds", default="0.004,0.05,0.3", help="the commands' durations, comma-separated")
    args = parser.parse_args()
    waits = {"Popen.wait(timeout)": lambda proc: proc.wait(timeout=60),
             "procs.wait_exit": lambda proc: wait_exit(proc, 60)}
    print(f"medians of {args.rounds} interleaved rounds, ms from the start of `sleep S` to the wait's return:")
    for seconds in (float(s) for s in args.seconds.split(",")):
        times: dict[str, list[float]] = {name: [] for name in waits}
        for round_ in range(args.rounds):
            for name in (list(waits) if round_ % 2 else list(reversed(waits))):
                times[name].append(timed(seconds, waits[name]) * 1000)
        median = {name: statistics.median(values) for name, values in times.items()}
        late = median["Popen.wait(timeout)"] - median["procs.wait_exit"]
        print(f"  sleep {seconds:g} s: " + ", ".join(f"{name} {value:.2f}" for name, value in median.items())
              + f"; polling saw the exit {late:+.2f} ms later")


if __name__ == "__main__":
    main()
