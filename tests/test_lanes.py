"""The suite's lanes (tests/support/lanes.py): which processes and fixtures put a test in which slow lane."""

import sys

import pytest
from execnet.gateway_io import popen_bootstrapline

from support.lanes import FAST_LANE, LANES, Guard, lanes_of, popen_lane


@pytest.mark.parametrize("argv, lane", [
    ([sys.executable, "-mpytest", "-p", "no:cacheprovider"], "e2e"),  # pytester's runpytest_subprocess
    ([sys.executable, "-m", "pytest", "--models", "oracle"], "e2e"),
    ([sys.executable, "-u", "-c", popen_bootstrapline], "e2e"),  # an xdist worker
    ("cd /tmp/suite && pytest --hb-resume run", "e2e"),  # a printed command run through the shell
    (["/usr/bin/linux.uml", "mem=2G", "init=/x/init.sh"], "guest"),
    (["/venv/lib/python3.11/site-packages/playwright/driver/node", "cli.js", "run-driver"], "browser"),
    ([sys.executable, "-m", "pytest_harnessbench.sandbox.watchdog", "local", "run"], None),  # the sandbox watchdog
    (["bash", "-c", "python -m pytest tests/"], None),  # a command inside a sandbox is the task's business
    (["python3", "-c", "x = bytearray(1)"], None),
    ("echo 'unbalanced", None),
])
def test_the_lane_of_a_process_comes_from_its_command_line(argv, lane):
    assert popen_lane(argv) == lane


def test_fixtures_and_backend_parameters_put_a_test_in_a_lane():
    assert lanes_of(["tmp_path", "browser"], {}) == {"browser"}
    assert lanes_of(["standin", "pytester"], {}) == {"kubernetes", "trials"}
    assert lanes_of(["backend"], {"backend": "docker"}) == {"docker"}
    assert lanes_of(["backend", "pytester"], {"backend": "local", "n": 3}) == {"trials"}
    assert lanes_of(["backend", "tmp_path"], {"backend": "local", "n": 3}) == set()


def test_a_missing_marker_is_named_with_the_fast_lanes_expression():
    guard = Guard({"docker"})
    guard.saw("docker", "connected to the Docker engine")  # marked: fine
    guard.saw(None, "started bash")
    assert guard.complaint("t.py::test_x") is None
    guard.saw("e2e", "started python -m pytest")
    guard.saw("e2e", "started python -m pytest again")  # the first one is reported
    assert guard.complaint("t.py::test_x") == (
        f"t.py::test_x started python -m pytest: mark it @pytest.mark.e2e ({LANES['e2e']}), so that the fast "
        f"lane (-m \"{FAST_LANE}\") leaves it out; see tests/support/lanes.py")
    assert FAST_LANE == "not (e2e or docker or guest or kubernetes or browser or trials)"


@pytest.mark.trials  # it creates one: the guard around this test wants the marker as well
def test_a_local_sandbox_backend_needs_the_trials_lane(monkeypatch):
    from pytest_harnessbench.sandbox.local import LocalBackend

    guard = Guard(set())
    guard.install(monkeypatch)
    LocalBackend("lanes-test", enforcement="rlimit").close()
    assert "created a local sandbox backend: mark it @pytest.mark.trials" in guard.complaint("t.py::test_x")
