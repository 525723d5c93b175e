"""Local sandbox overhead: provision + exec + evidence + teardown vs a bare subprocess.run.

All paths run the same command, interleaved in one process so machine noise
hits them alike. Prints medians and ratios:

- bare: ``subprocess.run(["/bin/bash", "-c", command])``;
- sandbox: the local backend as the built-in models get it (cgroup, network
  namespace, work directory);
- previous launch: the same sandbox launching each command as before issue 22's
  last step: a ``sh`` prologue that joined the cgroups, then util-linux's
  ``unshare --net`` (a network namespace per command), then ``bash``; now
  ``bash`` joins them itself (``BASH_ENV``) in the sandbox's one namespace
  (sandbox/netns.py), two execs fewer per command;
- confined: the local backend as a session with a provider or replay model gets
  it (the same, with every command under bubblewrap: sandbox/confine.py);
- previous bwrap: the same trial with the bubblewrap command line used before
  issue 28 (read-only host ``/``, private ``/tmp``, no network namespace of its
  own for PIDs or users), kept here as the baseline for its target: confinement
  may cost at most 2 ms per trial more than that;
- confined, bwrap as root (root sessions only): the confined trial without the
  root session's drop to ``nobody`` (confine.Confinement._drop: ``nsenter``
  into the process's stage namespace as nobody), i.e. bubblewrap started as
  root, as before that review fix; the difference is what the drop costs.

    python benchmarks/bench_local_sandbox.py [--rounds 200] [--command true] [--commands 1]

``--commands N`` runs the command N times per trial (bare: N times).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time

from pytest_harnessbench.resources import Allocation, Multiplier, Spec
from pytest_harnessbench.sandbox import confine
from pytest_harnessbench.sandbox.local import LocalBackend, LocalSandbox

TARGET_MS = 2.0


class PreviousBwrap(confine.Confinement):
    """The command line of the local backend's bubblewrap mode before issue 28 (the baseline)."""

    def __enter__(self) -> PreviousBwrap:
        return self

    @property
    def argv(self) -> list[str]:
        return ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
                "--bind", self.workdir, self.workdir, "--chdir", self.workdir, "--die-with-parent",
                "--unshare-net", "--"]


class PreviousBwrapSandbox(LocalSandbox):
    def _confinement(self):
        return PreviousBwrap(self.workdir, self.confined_etc)


class PreviousLaunchSandbox(LocalSandbox):
    """A command's launch before: ``sh`` prologue (the cgroup join), ``unshare --net``, ``bash``."""

    def _argv(self, command: str, confinement) -> list[str]:
        return ["/bin/sh", "-c", f'{self._limits}; exec "$@"', "sh", "unshare", "--net", "--", "/bin/bash", "-c",
                command]


class AsRoot(confine.Confinement):
    """The confined command line without a root session's drop to nobody: bubblewrap started as root."""

    def _drop(self):
        return [], self.workdir, self.etc


class AsRootSandbox(LocalSandbox):
    def _confinement(self):
        return AsRoot(self.workdir, self.confined_etc, stage=self.stage)


def bare(command: str, commands: int) -> float:
    start = time.perf_counter()
    for _ in range(commands):
        subprocess.run(["/bin/bash", "-c", command], capture_output=True, check=True)
    return time.perf_counter() - start


def trial(backend: LocalBackend, allocation: Allocation, command: str, variant: type | None = None,
          commands: int = 1) -> float:
    start = time.perf_counter()
    box = backend.provision(allocation, "bench")
    if variant is not None:
        box.__class__ = variant
    if variant is PreviousLaunchSandbox:  # its backend makes no namespace: unshare does, per command
        box._bash_applies_limits = False
    if variant is AsRootSandbox:  # root's again, as the work directory was before the drop (two chown calls)
        for path in (box.workdir, box.workdir / ".tmp"):
            os.chown(path, 0, 0)
    try:
        for _ in range(commands):
            result = box.exec(command)
            assert result.exit_code == 0, result
        box.evidence()
    finally:
        box.close()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--command", default="true")
    parser.add_argument("--commands", type=int, default=1, help="commands per trial (default 1)")
    args = parser.parse_args()
    reason = confine.unavailable_reason()
    if reason:
        raise SystemExit(f"bench_local_sandbox: commands cannot be confined here: {reason}")
    plain, confined = LocalBackend("bench"), LocalBackend("bench-confined", confined=True)
    previous = LocalBackend("bench-previous")
    enforcement = plain.check()
    confined.check()
    previous.check()
    isolated = previous._isolate_network
    previous._isolate_network = False  # PreviousLaunchSandbox runs unshare --net itself
    allocation = Allocation.of(Spec.from_marker(cpus=1, memory="256Mi"), Multiplier.parse("1"))
    n = args.commands
    runs = {"bare": lambda: bare(args.command, n),
            "sandbox": lambda: trial(plain, allocation, args.command, commands=n),
            "confined": lambda: trial(confined, allocation, args.command, commands=n),
            "previous bwrap": lambda: trial(confined, allocation, args.command, PreviousBwrapSandbox, n)}
    if isolated:  # the launch before used a network namespace per command: compare where there is one
        runs["previous launch"] = lambda: trial(previous, allocation, args.command, PreviousLaunchSandbox, n)
    if confine.host_owner() is not None:
        runs["confined, bwrap as root"] = lambda: trial(confined, allocation, args.command, AsRootSandbox, n)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(args.rounds + 10):  # 10 rounds of warm-up
        order = list(runs) if round_ % 2 else list(reversed(runs))
        for name in order:
            elapsed = runs[name]()
            if round_ >= 10:
                times[name].append(elapsed)
    for backend in (plain, confined, previous):
        backend.close()
    median = {name: statistics.median(values) * 1000 for name, values in times.items()}
    print(f"command: {args.command!r} x {n} per trial, rounds: {args.rounds}, enforcement: {enforcement}")
    for name in runs:
        print(f"{name + ':':<24} median {median[name]:7.2f} ms  (ratio to bare {median[name] / median['bare']:.2f})")
    extra = median["confined"] - median["previous bwrap"]
    print(f"confined - previous bwrap: {extra:+.2f} ms per trial (target <= {TARGET_MS:.0f} ms: "
          f"{'met' if extra <= TARGET_MS else 'NOT met'})")
    if "previous launch" in median:
        print(f"sandbox - previous launch: {median['sandbox'] - median['previous launch']:+.2f} ms per trial "
              f"({(median['sandbox'] - median['previous launch']) / n:+.2f} ms per command)")
    if "confined, bwrap as root" in median:
        print(f"root session's drop to nobody (confined - confined, bwrap as root): "
              f"{median['confined'] - median['confined, bwrap as root']:+.2f} ms per trial")


if __name__ == "__main__":
    main()
