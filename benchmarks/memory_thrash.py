"""A process at its memory limit lives on by re-reading its own evicted pages (README, "Memory pressure").

For each amount of memory held under a 64 MiB limit, in a local sandbox (the
kernel's cgroup), a copy of the Python interpreter runs a loop of ordinary
library calls for a few seconds. The sandbox writes that copy itself, so its
pages are charged to the trial's group and can be evicted under its limit (the
host's own interpreter is charged elsewhere). Prints the loops done, the wall
time, the OOM kills and the kernel's counters.

    python benchmarks/memory_thrash.py [--held 0,50,56,56.5,57,57.5,58] [--seconds 5]
"""

from __future__ import annotations

import argparse
import os

from pytest_harnessbench.outcomes import thrashed
from pytest_harnessbench.resources import Allocation, Multiplier, Spec
from pytest_harnessbench.sandbox.local import LocalBackend

LIMIT = 64 * 1024**2
LOOP = """
import decimal, json, re, sys, time
held = bytearray(int(float(sys.argv[1]) * 1048576)); held[::4096] = b"1" * len(held[::4096])
start, loops = time.monotonic(), 0
while time.monotonic() - start < float(sys.argv[2]):
    json.loads(json.dumps({"a": [1.5, "x"] * 50})); re.findall(r"[a-z]+", "hello world " * 20)
    decimal.Decimal(loops) / 7; loops += 1
print(loops)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held", default="0,50,56,56.5,57,57.5,58", help="MiB held under the 64 MiB limit, comma list")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--interpreter", default="/usr/bin/python3",
                        help="a statically linked one (Debian's), so that its code is in the copy")
    args = parser.parse_args()
    interpreter = os.path.realpath(args.interpreter)
    backend = LocalBackend("thrash-bench")
    allocation = Allocation.of(Spec.from_marker(memory="64Mi"), Multiplier.parse("1"))
    print(f"limit 64 MiB, {backend.check()}, interpreter {interpreter} copied into each sandbox")
    print(f"{'held MiB':>8}  {'exit':>4}  {'loops':>7}  {'wall s':>6}  {'OOM':>3}  {'major faults':>12}  "
          f"{'read back MiB':>13}  thrashed")
    try:
        for held in args.held.split(","):
            box = backend.provision(allocation, "thrash")
            try:
                box.write_file("loop.py", LOOP)
                box.exec(f"cp {interpreter} ./python")
                result = box.exec(f"./python loop.py {held} {args.seconds}", timeout=args.seconds * 10)
                ev = box.evidence()
            finally:
                box.close()
            read_back = "-" if ev.file_refault_bytes is None else f"{ev.file_refault_bytes / 2**20:.0f}"
            print(f"{held:>8}  {result.exit_code:>4}  {result.stdout.strip() or '-':>7}  {result.duration_s:6.1f}  "
                  f"{ev.oom_kills:>3}  {ev.major_faults if ev.major_faults is not None else '-':>12}  "
                  f"{read_back:>13}  {thrashed(ev, LIMIT)}")
    finally:
        backend.close()


if __name__ == "__main__":
    main()
