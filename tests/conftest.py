"""Every test gets a fresh, empty TMPDIR: isolation that keeps the plugin's default layout.

No test sets a ``HARNESSBENCH_*`` directory variable: private directories once
hid a bug that broke every trial of the default layout (issue 11). The plugin
derives all its host state from ``TMPDIR`` (see ``pytest_harnessbench/paths.py``),
so a fresh ``TMPDIR`` is a fresh machine as far as the plugin can tell.
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest


# Whether this suite runs under CI, read once: every test's pytest runs see no CI variable (the gate's default
# depends on it, tests/test_gate_e2e.py sets it where it tests that).
_IN_CI = bool(os.environ.get("CI"))


@pytest.fixture(autouse=True)
def fresh_tmpdir(tmp_path_factory, monkeypatch):
    tmpdir = tmp_path_factory.mktemp("TMPDIR")
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() caches its answer
    monkeypatch.delenv("CI", raising=False)
    for name in ("HARNESSBENCH_WORK_ROOT", "HARNESSBENCH_ADMISSION_DIR", "HARNESSBENCH_CGROUP_ROOT"):
        monkeypatch.delenv(name, raising=False)
    # The pytest runs a test starts skip LangSmith's own pytest plugin: ~1 s of imports each, and no test uses it.
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:langsmith_plugin")
    return tmpdir


EXAMPLE_SUITE = Path(__file__).resolve().parent.parent / "example_suite"


@pytest.fixture
def sort_numbers_task(pytester):
    """The example suite's sort task copied into the pytester directory; returns its module (LEAN, HEAVY...)."""
    for name in ("_tasks.py", "conftest.py", "test_sort_numbers.py"):
        shutil.copy(EXAMPLE_SUITE / name, pytester.path / name)
    sys.path.insert(0, str(EXAMPLE_SUITE))
    try:
        import test_sort_numbers
    finally:
        sys.path.remove(str(EXAMPLE_SUITE))
    return test_sort_numbers


def _strict() -> bool:
    """Under CI every skip is a failure: scripts/setup-tests.sh installs everything the tests need.

    A test that may legitimately skip on CI's machine says so with ``@pytest.mark.may_skip(reason)``.
    """
    return _IN_CI


def pytest_configure(config):
    config.addinivalue_line("markers", "may_skip(reason): this test may skip under CI, for the reason given")


def _fail_skip(report, what: str) -> None:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = (f"{what} skipped under CI ({reason}): scripts/setup-tests.sh should have installed "
                       "what it needs, or mark it @pytest.mark.may_skip")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if _strict() and report.skipped and not hasattr(report, "wasxfail") and item.get_closest_marker("may_skip") is None:
        _fail_skip(report, item.nodeid)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    if _strict() and report.skipped:  # a module-level skip or importorskip
        _fail_skip(report, collector.nodeid)
    return report
