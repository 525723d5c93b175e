"""Docker backend overhead: our trial lifecycle vs a raw ``docker run --rm IMAGE true``.

    python benchmarks/bench_docker.py [--rounds 20] [--image harnessbench/python:3.11]

Per round, interleaved and in alternating order (so drift hits both alike):

  ours  DockerBackend.provision (create + start, 1x limits) + first exec of ``true``
        (with a timeout, as the harness runs it) + evidence() + close() (forced removal)
  cli   ``docker run --rm IMAGE true`` through the docker CLI (create, attach, start,
        wait, removal), default bridge network as a user would type it
  cli-nonet  the same with ``--network none`` (informational: our sandboxes have no
        network by default, so this is the like-for-like engine path)

Prints medians (and p10/p90) per path, our per-phase medians, and the ratio
ours/cli (target <= 1.0). Needs a running engine and the base image
(.ci/docker-setup.sh).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_harnessbench.resources import Allocation, Multiplier, Spec  # noqa: E402
from pytest_harnessbench.sandbox.docker import DEFAULT_IMAGE, DockerBackend  # noqa: E402


def ours(backend: DockerBackend, allocation: Allocation, image: str, phases: dict[str, list[float]]) -> float:
    marks = [time.perf_counter()]
    sandbox = backend.provision(allocation, f"bench-{uuid.uuid4().hex[:8]}", image=image)
    marks.append(time.perf_counter())
    try:
        result = sandbox.exec("true", timeout=60)
        marks.append(time.perf_counter())
        assert result.exit_code == 0, result
        sandbox.evidence()
        marks.append(time.perf_counter())
    finally:
        sandbox.close()
    marks.append(time.perf_counter())
    for name, start, end in zip(("provision", "exec", "evidence", "close"), marks, marks[1:]):
        phases[name].append(end - start)
    return marks[-1] - marks[0]


def cli(docker: str, image: str, *extra: str) -> float:
    start = time.perf_counter()
    subprocess.run([docker, "run", "--rm", *extra, image, "true"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p10 = ordered[int(0.1 * (len(ordered) - 1))]
    p90 = ordered[round(0.9 * (len(ordered) - 1))]
    return f"median {statistics.median(values) * 1000:6.1f} ms  (p10 {p10 * 1000:6.1f}, p90 {p90 * 1000:6.1f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--image", default=DEFAULT_IMAGE)
    parser.add_argument("--no-nonet", action="store_true", help="skip the informational --network none baseline")
    args = parser.parse_args()

    docker = shutil.which("docker")
    if docker is None:
        print("docker CLI not found; run .ci/docker-setup.sh", file=sys.stderr)
        return 2
    backend = DockerBackend(f"bench-{uuid.uuid4().hex[:8]}")
    started = time.perf_counter()
    enforcement = backend.check()
    check_s = time.perf_counter() - started
    facts = backend.describe()
    allocation = Allocation.of(Spec(cpus=1, memory_bytes=256 * 1024**2), Multiplier(1.0))

    # Warm-up (page cache, first connection, image layers) -- not counted.
    ours(backend, allocation, args.image, {k: [] for k in ("provision", "exec", "evidence", "close")})
    cli(docker, args.image)

    phases: dict[str, list[float]] = {k: [] for k in ("provision", "exec", "evidence", "close")}
    times: dict[str, list[float]] = {"ours": [], "cli": [], "cli-nonet": []}
    runs = {
        "ours": lambda: ours(backend, allocation, args.image, phases),
        "cli": lambda: cli(docker, args.image),
        "cli-nonet": lambda: cli(docker, args.image, "--network", "none"),
    }
    names = ["ours", "cli"] + ([] if args.no_nonet else ["cli-nonet"])
    try:
        for round_ in range(args.rounds):
            order = names if round_ % 2 == 0 else names[::-1]
            for name in order:
                times[name].append(runs[name]())
    finally:
        leftovers = backend.reap(all_runs=False)
        backend.close()

    print(
        f"engine {facts['engine_version']} ({facts['storage_driver']}, {enforcement}), image {args.image}, "
        f"{args.rounds} rounds interleaved; check() {check_s * 1000:.0f} ms once per session"
    )
    for name in names:
        print(f"  {name:10s} {summary(times[name])}")
    print("  ours by phase: " + ", ".join(f"{k} {statistics.median(v) * 1000:.1f}" for k, v in phases.items()) + " ms (medians)")
    ratio = statistics.median(times["ours"]) / statistics.median(times["cli"])
    print(f"ratio ours/cli = {ratio:.2f}  (target <= 1.00: {'met' if ratio <= 1.0 else 'NOT met'})")
    if not args.no_nonet:
        print(f"ratio ours/cli-nonet = {statistics.median(times['ours']) / statistics.median(times['cli-nonet']):.2f}  (informational)")
    if leftovers:
        print(f"warning: {leftovers} container(s) were left behind and reaped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
