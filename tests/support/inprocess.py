"""Bake-offs run by pytest inside the test's own process (``pytester.runpytest_inprocess``).

A pytest run in a subprocess costs 2-3 s of interpreter start and imports (langchain, the plugin, the
machine's other pytest plugins) before its first trial; the same run in process pays the imports once per
worker. A test keeps a subprocess (and the ``e2e`` marker) only where the process itself is under test or
must be a fresh one: signals sent to the session, xdist workers (``-n``), a killed worker, a SIGKILLed
session, a library that reads its environment once per process (LangSmith, the Kubernetes client).

In-process runs share this process, so:

- :func:`keep_library_modules`: ``Pytester`` removes every module first imported during a test (and during
  each in-process run) when it ends. For the test's own files that is right (two tests' ``test_tasks.py``
  must not meet); for libraries it is wrong: the next run imports a second copy of, say, ``httpcore``, while
  ``httpx`` (imported earlier, kept) still maps the first copy's exceptions, so a dropped connection surfaced
  as an unknown error instead of a provider fault. Installed by tests/conftest.py: modules that come from the
  installed packages or from this checkout's package stay.
- :func:`run` never re-raises a run's KeyboardInterrupt into the outer session (a run that stops itself,
  e.g. a full disk or a provider that refuses the credentials, ends as ``INTERRUPTED``).
- ``tempfile`` caches its directory: a test that points ``TMPDIR`` elsewhere for a run resets the cache too
  (:func:`use_tmpdir`).
"""

from __future__ import annotations

import os
import sys
import sysconfig
import tempfile
from pathlib import Path

_PACKAGE_DIR = str(Path(__file__).resolve().parents[2] / "pytest_harnessbench") + os.sep
_LIBRARY_DIRS = tuple({sysconfig.get_paths()[key] + os.sep for key in ("stdlib", "platstdlib", "purelib", "platlib")})


def _is_library(name: str) -> bool:
    """A module of the standard library, of an installed package, or of this checkout's package."""
    module = sys.modules.get(name)
    path = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", None) or []), None)
    if path is None:  # a built-in module
        return module is not None
    return path.startswith(_LIBRARY_DIRS) or path.startswith(_PACKAGE_DIR)


def keep_library_modules() -> None:
    """Make ``Pytester``'s snapshots of ``sys.modules`` keep library modules (see the module's docstring)."""
    from _pytest import pytester

    base = pytester.SysModulesSnapshot
    if getattr(base, "keeps_libraries", False):
        return

    class KeepLibraries(base):
        keeps_libraries = True

        def __init__(self, preserve=None):
            super().__init__(preserve=lambda name: _is_library(name) or (preserve is not None and preserve(name)))

    pytester.SysModulesSnapshot = KeepLibraries


def run(pytester, *args):
    """``pytester.runpytest_inprocess`` that returns an interrupted run's result instead of raising."""
    return pytester.runpytest_inprocess(*args, no_reraise_ctrlc=True)


def use_tmpdir(monkeypatch, path) -> None:
    """TMPDIR for the rest of the test, ``tempfile``'s cached answer included."""
    monkeypatch.setenv("TMPDIR", str(path))
    monkeypatch.setattr(tempfile, "tempdir", None)
