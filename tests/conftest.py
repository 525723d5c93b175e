"""Every test gets a fresh, empty TMPDIR: isolation that keeps the plugin's default layout.

No test sets a ``HARNESSBENCH_*`` directory variable: private directories once
hid a bug that broke every trial of the default layout (issue 11). The plugin
derives all its host state from ``TMPDIR`` (see ``pytest_harnessbench/paths.py``),
so a fresh ``TMPDIR`` is a fresh machine as far as the plugin can tell.
"""

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from support import guest, inprocess
from support.lanes import LANES, Guard, lanes_of


# Whether this suite runs under CI, read once: every test's pytest runs see no CI variable (the gate's default
# depends on it, tests/test_gate_e2e.py sets it where it tests that).
_IN_CI = bool(os.environ.get("CI"))


def unused_plugins(config: pytest.Config) -> str:
    """The project's ``addopts`` (pyproject.toml): the installed pytest plugins no test uses, kept out."""
    return " ".join(config.getini("addopts"))


@pytest.fixture(autouse=True)
def fresh_tmpdir(tmp_path_factory, monkeypatch, request):
    tmpdir = tmp_path_factory.mktemp("TMPDIR")
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() caches its answer
    monkeypatch.delenv("CI", raising=False)
    for name in ("HARNESSBENCH_WORK_ROOT", "HARNESSBENCH_ADMISSION_DIR", "HARNESSBENCH_CGROUP_ROOT"):
        monkeypatch.delenv(name, raising=False)
    # The pytest runs a test starts (and their xdist workers), in directories without this project's
    # configuration, skip the third-party plugins no test uses as this run does: LangSmith's own (~1 s of
    # imports each), and hypothesis, anyio and pytest-benchmark where this machine has them (~0.3 s of CPU
    # per process; the e2e lane starts a few hundred).
    monkeypatch.setenv("PYTEST_ADDOPTS", unused_plugins(request.config))
    return tmpdir


@pytest.fixture
def pytester(pytester, monkeypatch, request):
    """pytest's own, whose set-up removes ``PYTEST_ADDOPTS`` (isolation from the outer run): set again here,
    or its runs load the plugins no test uses after all (they did, LangSmith's included)."""
    monkeypatch.setenv("PYTEST_ADDOPTS", unused_plugins(request.config))
    return pytester


EXAMPLE_SUITE = Path(__file__).resolve().parent.parent / "example_suite"


@pytest.fixture
def sort_numbers_task(pytester):
    """The example suite's sort task copied into the pytester directory; returns its module (LEAN, HEAVY...)."""
    for name in ("_tasks.py", "conftest.py", "test_sort_numbers.py"):
        shutil.copy(EXAMPLE_SUITE / name, pytester.path / name)
    # Under a name of its own: a run in this process (tests/support/inprocess.py) imports the copy as
    # test_sort_numbers, which must not find this one in sys.modules (pytest's "import file mismatch").
    spec = importlib.util.spec_from_file_location("example_suite_sort_numbers", EXAMPLE_SUITE / "test_sort_numbers.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(EXAMPLE_SUITE))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(EXAMPLE_SUITE))
        sys.modules.pop("_tasks", None)  # the copy's own _tasks is imported by the run
    return module


def _strict() -> bool:
    """Under CI every skip is a failure: scripts/setup-tests.sh installs everything the tests need.

    A test that may legitimately skip on CI's machine says so with ``@pytest.mark.may_skip(reason)``.
    """
    return _IN_CI


def pytest_configure(config):
    config.addinivalue_line("markers", "may_skip(reason): this test may skip under CI, for the reason given")
    inprocess.keep_library_modules()  # bake-offs in this process share one copy of each library
    for lane, what in LANES.items():
        config.addinivalue_line("markers", f"{lane}: a slow lane, left out of the fast lane: the test {what}")


@pytest.hookimpl(tryfirst=True)  # before -m deselects: the lanes given here count
def pytest_collection_modifyitems(items):
    """Each test gets the lanes its fixtures and parameters put it in (tests/support/lanes.py); the guests'
    test goes last: the guests boot when collection ends and run beside the suite (tests/support/guest.py),
    so by then it has the least left to wait for."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        for lane in sorted(lanes_of(item.fixturenames, params)):
            if item.get_closest_marker(lane) is None:
                item.add_marker(lane)
    items.sort(key=lambda item: item.get_closest_marker("guest") is not None)  # stable: the rest keep their order


def pytest_collection_finish(session):
    guest.start(session)  # once per session, in the first process that collected the guests' test


def pytest_sessionfinish(session, exitstatus):
    stopped = exitstatus == pytest.ExitCode.INTERRUPTED or bool(session.shouldfail or session.shouldstop)
    guest.finish(session.config, interrupted=stopped)  # -x or Ctrl-C: the guests' test will not run


def pytest_unconfigure(config):
    guest.finish(config, interrupted=True)  # a session that never finished (nothing left if it did)


@pytest.fixture(autouse=True)
def lane_guard(request, monkeypatch):
    """Fails a test that enters a slow lane without its marker (what it did, and the marker to add)."""
    guard = Guard({lane for lane in LANES if request.node.get_closest_marker(lane) is not None})
    guard.install(monkeypatch)
    yield
    complaint = guard.complaint(request.node.nodeid)
    if complaint:
        pytest.fail(complaint, pytrace=False)


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
