"""Local sandbox overhead: provision + exec + evidence + teardown vs a bare subprocess.run.

Both paths run the same command, interleaved in one process so machine noise
hits them alike. Prints medians and the ratio sandbox / bare.

    python benchmarks/bench_local_sandbox.py [--rounds 200] [--command true]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

from pytest_harnessbench.resources import Allocation, Multiplier, Spec
from pytest_harnessbench.sandbox.local import LocalBackend


def bare(command: str) -> float:
    start = time.perf_counter()
    subprocess.run(["/bin/bash", "-c", command], capture_output=True, check=True)
    return time.perf_counter() - start


def sandboxed(backend: LocalBackend, allocation: Allocation, command: str) -> float:
    start = time.perf_counter()
    box = backend.provision(allocation, "bench")
    try:
        assert box.exec(command).exit_code == 0
        box.evidence()
    finally:
        box.close()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--command", default="true")
    args = parser.parse_args()
    backend = LocalBackend("bench")
    enforcement = backend.check()
    allocation = Allocation.of(Spec.from_marker(cpus=1, memory="256Mi"), Multiplier.parse("1"))
    for _ in range(10):  # warm-up
        bare(args.command), sandboxed(backend, allocation, args.command)
    ours, base = [], []
    for _ in range(args.rounds):
        base.append(bare(args.command))
        ours.append(sandboxed(backend, allocation, args.command))
    backend.close()
    mb, mo = statistics.median(base), statistics.median(ours)
    print(f"command: {args.command!r}, rounds: {args.rounds}, enforcement: {enforcement}")
    print(f"bare subprocess.run:                          median {mb * 1000:7.2f} ms")
    print(f"sandbox provision+exec+evidence+teardown:     median {mo * 1000:7.2f} ms")
    print(f"ratio sandbox / bare: {mo / mb:.2f}  (overhead {1000 * (mo - mb):.2f} ms per trial)")


if __name__ == "__main__":
    main()
