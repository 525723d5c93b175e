"""The suite's slow lanes: their markers, how a test gets one, and the guard that catches a missing one.

``python -m pytest tests`` runs every lane; the fast lane, pure unit tests, is ``-m "not (e2e or docker
or guest or kubernetes or browser or trials)"`` (:data:`FAST_LANE`). A test is in a slow lane when it does
something slow or something that needs more than this checkout, and it gets the marker three ways:

- from its module (``pytestmark``) where the whole module is of one lane (the docker, kubernetes and guest
  modules, and those that run real local sandboxes);
- from what it uses, at collection (:func:`lanes_of`): a fixture of :data:`FIXTURE_LANES` (``pytester``
  puts a test in ``trials``), or a parametrization that picks the docker backend;
- and whatever it forgot is caught while it runs (:class:`Guard`): a test that starts pytest in another
  process, connects to the Docker engine, boots the guest, drives a browser, starts the Kubernetes
  stand-in or creates a local sandbox backend without its lane's marker fails, naming the marker. So a
  new test cannot slip into the fast lane by forgetting it.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable

LANES = {
    "e2e": "starts pytest in another process (pytester's runpytest_subprocess, python -m pytest, xdist workers)",
    "docker": "needs the Docker engine and the base image (scripts/setup-tests.sh)",
    "guest": "needs the User-Mode Linux cgroup v2 guests, which boot in the background once it is collected (about 1 minute)",
    "kubernetes": "talks to a Kubernetes API server: the stand-in (tests/support/k8s_standin.py) or a cluster",
    "browser": "drives Debian's chromium through Playwright",
    "trials": "runs trials in this process: a pytest session through pytester, or real local sandboxes",
}
FAST_LANE = "not (" + " or ".join(LANES) + ")"

# Fixtures that put a test in a lane whatever module it is in.
FIXTURE_LANES = {
    "browser": "browser",  # tests/test_html_report.py: a Playwright chromium
    "standin": "kubernetes",
    "exec_standin": "kubernetes",
    "cluster": "kubernetes",
    "pytester": "trials",  # a pytest session in this process (a subprocess one is e2e as well)
}
# Parameter values that pick a lane's backend (e.g. the escape suite parametrized over backends).
PARAM_LANES = {"docker": "docker", "kubernetes": "kubernetes"}


def lanes_of(fixturenames: Iterable[str], params: dict) -> set[str]:
    """The lanes a test's fixtures and parameters put it in."""
    found = {FIXTURE_LANES[name] for name in fixturenames if name in FIXTURE_LANES}
    found |= {PARAM_LANES[value] for value in params.values() if isinstance(value, str) and value in PARAM_LANES}
    return found


def popen_lane(args) -> str | None:
    """The lane of a process a test starts, from its argv; None for any other process."""
    from execnet.gateway_io import popen_bootstrapline  # how xdist (execnet) starts a worker

    if isinstance(args, (str, bytes)):  # a shell command line (shell=True)
        line = args.decode(errors="replace") if isinstance(args, bytes) else args
        try:
            words = shlex.split(line)
        except ValueError:  # unbalanced quotes: the shell will say so; words are enough here
            words = line.split()
    else:
        args = [args] if isinstance(args, os.PathLike) else args
        words = [a.decode(errors="replace") if isinstance(a, bytes) else os.fspath(a) for a in args]
    if not words:
        return None
    if os.path.basename(words[0]) == "linux.uml":
        return "guest"
    if "-mpytest" in words or popen_bootstrapline in words or any(os.path.basename(w) in ("pytest", "py.test") and (
            i == 0 or words[i - 1] in ("-m", "&&", ";", "||")) for i, w in enumerate(words)):
        return "e2e"
    if "playwright" in words[0] or any(os.path.basename(w).startswith("chrom") for w in words[:1]):
        return "browser"
    return None


class Guard:
    """While a test runs: records each lane it enters without that lane's marker.

    Installed by an autouse fixture (tests/conftest.py) through ``monkeypatch``, so it wraps only the test's
    own setup, call and teardown: ``subprocess.Popen`` (pytest runs, xdist workers, the guest, the browser's
    driver), the Docker SDK's client and the Kubernetes stand-in.
    """

    def __init__(self, marked: set[str]):
        self.marked = marked
        self.missing: dict[str, str] = {}  # lane -> what the test did

    def saw(self, lane: str | None, what: str) -> None:
        if lane is not None and lane not in self.marked:
            self.missing.setdefault(lane, what)

    def install(self, monkeypatch) -> None:
        import subprocess

        guard = self
        popen_init = subprocess.Popen.__init__

        def init(self, args, *rest, **kwargs):
            guard.saw(popen_lane(args), f"started {args if isinstance(args, str) else ' '.join(map(str, args))[:120]}")
            popen_init(self, args, *rest, **kwargs)

        monkeypatch.setattr(subprocess.Popen, "__init__", init)
        self._wrap(monkeypatch, "docker.api.client", "APIClient", "docker", "connected to the Docker engine")
        self._wrap(monkeypatch, "support.k8s_standin", "StandInCluster", "kubernetes",
                   "started the Kubernetes stand-in")
        self._wrap(monkeypatch, "pytest_harnessbench.sandbox.local", "LocalBackend", "trials",
                   "created a local sandbox backend")

    def _wrap(self, monkeypatch, module_name: str, class_name: str, lane: str, what: str) -> None:
        import importlib

        cls = getattr(importlib.import_module(module_name), class_name)
        original = cls.__init__
        guard = self

        def init(self, *args, **kwargs):
            guard.saw(lane, what)
            original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", init)

    def complaint(self, nodeid: str) -> str | None:
        if not self.missing:
            return None
        lines = [f"{nodeid} {what}: mark it @pytest.mark.{lane} ({LANES[lane]}), so that the fast lane "
                 f"(-m \"{FAST_LANE}\") leaves it out; see tests/support/lanes.py"
                 for lane, what in sorted(self.missing.items())]
        return "\n".join(lines)
