"""The run directory end to end: a trial's identity across working directories and run locations (issue 27),
one session per run directory (issue 21.3), the resume command a partial run prints."""

import json
import re
import subprocess
import sys

import pytest

from support import inprocess
from support.rundir import results

from pytest_harnessbench.config import ConfigError
from pytest_harnessbench.tasks import match_task_ids

STEPS = '''
import pytest

@pytest.mark.parametrize("n", range(2))
@pytest.mark.task(memory="64Mi", solutions="SOLUTION")
def test_NAME(trial, n):
    trial.sandbox.write_file("n.txt", str(n))
    trial.run_agent("Write ok.")
    assert trial.sandbox.read_file("out.txt").strip() == "ok"
'''


def suite(pytester, directory: str, name: str = "step", solution: str = "echo ok > out.txt"):
    """A task file ``DIR/test_NAME.py`` (two trials per model) in a directory without an ini file."""
    path = pytester.path / directory
    path.mkdir(parents=True, exist_ok=True)
    (path / f"test_{name}.py").write_text(STEPS.replace("NAME", name).replace("SOLUTION", solution))
    return path


def records(run_dir):
    return results(run_dir)


def hb(pytester, *args):
    """A bake-off in this process; with -n in a subprocess (xdist's workers are processes anyway)."""
    args = ("-p", "no:cacheprovider", "--models", "oracle", *args)
    return pytester.runpytest_subprocess(*args) if "-n" in args else inprocess.run(pytester, *args)


def test_a_run_outside_the_suite_resumed_with_the_space_separated_form_runs_nothing_again(pytester, tmp_path_factory):
    """Issue 27: an existing run directory among the arguments moved pytest's rootdir, and so every task id."""
    suite(pytester, "a/evals")
    run_dir = tmp_path_factory.mktemp("runs") / "r1"
    hb(pytester, "a/evals", "--hb-out", str(run_dir)).assert_outcomes(passed=2)
    resumed = hb(pytester, "a/evals", "--hb-resume", str(run_dir))
    resumed.stdout.fnmatch_lines(["collected 2 items / 2 deselected / 0 selected"])
    assert len(records(run_dir)) == 2
    card = json.loads((run_dir / "harness.json").read_text())
    assert card["suite"]["ini_dir"] is None and "package root" in card["suite"]["task_ids"]


def test_the_same_suite_from_two_working_directories_gives_the_same_trial_ids(pytester, monkeypatch):
    evals = suite(pytester, "a/evals")
    hb(pytester, "a/evals", "--hb-out", "r1").assert_outcomes(passed=2)
    monkeypatch.chdir(evals)
    hb(pytester, "--hb-out", str(pytester.path / "r2")).assert_outcomes(passed=2)
    ids = [sorted((r["task_id"], r["trial_id"]) for r in records(pytester.path / name)) for name in ("r1", "r2")]
    assert ids[0] == ids[1] and ids[0][0][0] == "test_step.py::test_step[0]"


@pytest.mark.parametrize("workers", [[], pytest.param(["-n", "2"], marks=pytest.mark.e2e)])
def test_a_resume_against_a_run_of_another_suite_is_refused(pytester, workers):
    suite(pytester, "a", name="alpha")
    suite(pytester, "b", name="beta")
    hb(pytester, "a", "--hb-out", "r1").assert_outcomes(passed=2)
    refused = hb(pytester, "b", "--hb-resume", "r1", *workers)
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    assert ("ERROR: --hb-resume r1: none of its 2 task id(s) match the 2 collected here "
            "(there: test_alpha.py::test_alpha[0], test_alpha.py::test_alpha[1]; "
            "here: test_beta.py::test_beta[0], test_beta.py::test_beta[1])") in refused.stderr.str()
    assert len(records(pytester.path / "r1")) == 2  # nothing ran


@pytest.mark.parametrize("workers", [[], pytest.param(["-n", "2"], marks=pytest.mark.e2e)])
@pytest.mark.parametrize("args, source", [(["--hb-gate", "oracle", "--hb-compare", "r1"], "--hb-compare r1"),
                                          (["--models", "replay:r1"], "--models replay:r1")])
def test_a_compare_or_replay_against_a_run_of_another_suite_is_refused(pytester, args, source, workers):
    """A usage error leaves no run directory behind (one holding only ``session.lock`` was left: review finding)."""
    suite(pytester, "a", name="alpha")
    suite(pytester, "b", name="beta")
    hb(pytester, "a", "--hb-out", "r1")
    refused = hb(pytester, "b", "--hb-out", "r2", *args, *workers)
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines([f"ERROR: {source}: none of its 2 task id(s) match the 2 collected here*"])
    assert not (pytester.path / "r2").exists(), sorted(p.name for p in (pytester.path / "r2").iterdir())


def test_match_task_ids_names_both_sides_or_the_new_ones():
    assert match_task_ids("--hb-resume r", {"a", "b"}, {"a", "b"}) is None
    assert match_task_ids("--hb-resume r", set(), {"a"}) is None  # nothing recorded yet: nothing to match
    assert match_task_ids("--hb-resume r", {"a", "b"}, {"a", "c", "d", "e"}) == \
        "--hb-resume r: 1 of 4 collected task(s) match that run's, 3 new: c, d, ... (1 more)"
    with pytest.raises(ConfigError, match=r"^--hb-compare r: none of its 1 task id\(s\) match the 1 collected here "
                                          r"\(there: a; here: z\)"):
        match_task_ids("--hb-compare r", {"a"}, {"z"})


def test_a_partial_match_is_reported_and_the_new_tasks_run(pytester):
    suite(pytester, "a", name="alpha")
    suite(pytester, "b", name="beta")
    hb(pytester, "a", "--hb-out", "r1")
    both = hb(pytester, "a", "b", "--hb-resume", "r1")
    assert ("--hb-resume r1: 2 of 4 collected task(s) match that run's, 2 new: "
            "test_beta.py::test_beta[0], test_beta.py::test_beta[1]") in both.outlines
    both.assert_outcomes(passed=2)


@pytest.mark.e2e
def test_two_sessions_started_at_once_on_one_run_directory_exactly_one_runs(pytester):
    """Issue 21.3: both ran, and the directory mixed two runs' records; the lock refuses the second at start."""
    suite(pytester, "a", solution="sleep 2; echo ok > out.txt")
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--models", "oracle", "a", "--hb-out", "run"]
    sessions = [subprocess.Popen(command, cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for _ in range(2)]  # started within milliseconds of each other
    outputs = [session.communicate(timeout=120) for session in sessions]
    codes = sorted(session.returncode for session in sessions)
    assert codes == [pytest.ExitCode.OK, pytest.ExitCode.USAGE_ERROR], outputs
    refused = next(err for (_, err), s in zip(outputs, sessions) if s.returncode == pytest.ExitCode.USAGE_ERROR)
    assert re.search(r"--hb-out run: .*run is in use by another session \(pid \d+ on host \S+\)", refused)
    rows = records(pytester.path / "run")
    assert len(rows) == 2 and len({r["run_id"] for r in rows}) == 1


def test_a_session_that_died_leaves_no_lock_behind(pytester):
    suite(pytester, "a")
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time\n"
                               "os.makedirs('run')\nf = open('run/session.lock', 'w')\n"
                               "fcntl.flock(f, fcntl.LOCK_EX)\nf.write('pid 1 on host h')\nf.flush()\n"
                               "print('held', flush=True)\ntime.sleep(600)"],
                              cwd=pytester.path, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    hb(pytester, "a", "--hb-out", "run").stderr.fnmatch_lines(["*run is in use by another session (pid 1 on host h)*"])
    holder.kill()
    holder.wait()
    hb(pytester, "a", "--hb-out", "run").assert_outcomes(passed=2)


@pytest.mark.e2e  # the command it prints runs as a user would run it
def test_the_partial_run_line_prints_a_command_that_finishes_the_run(pytester):
    """Issue 21: the hint said "the same command with --hb-resume DIR", which with --hb-out was refused (exit 4)."""
    suite(pytester, "a", solution="test $(cat n.txt) = 1 && echo ok > out.txt")
    stopped = hb(pytester, "a", "--hb-out", "run", "-x")
    line = next(line for line in stopped.outlines if line.startswith("PARTIAL RUN: "))
    assert len(records(pytester.path / "run")) == 1
    command = line.split("To finish it, run: ", 1)[1]
    finished = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=120)
    assert finished.returncode == pytest.ExitCode.OK, finished.stdout + finished.stderr
    assert sorted(r["outcome"] for r in records(pytester.path / "run")) == ["failed", "passed"]
