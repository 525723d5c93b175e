"""End to end through pytest: options, outcomes, records, summary, cleanup, xdist.

Bake-offs run in process (tests/support/inprocess.py); those that start xdist workers or signal the session
run pytest in a subprocess and carry the ``e2e`` marker.
"""

import json
import os
import re
from pathlib import Path

import pytest

from support import inprocess
from support.polling import small_disk, wait_for
from support.rundir import results

from pytest_harnessbench.sandbox import cgroups
from pytest_harnessbench.sandbox.local import work_root
from pytest_harnessbench.store import RunDir

TASKS = '''
import pytest

HOG = "python3 -c 'x = bytearray(150 * 1024 * 1024); x[::4096] = b\\"1\\" * len(x[::4096])'"

@pytest.mark.task(cpus=1, memory="64Mi", timeout=20,
                  solutions={"lean": "echo 42 > answer.txt",
                             "heavy": HOG + " && echo 42 > answer.txt",
                             "wrong": "echo 41 > answer.txt"})
def test_answer(trial):
    trial.run_agent("Write the answer to answer.txt.")
    assert trial.sandbox.read_file("answer.txt").strip() == "42"

def test_plain_tests_still_run():
    assert True
'''


@pytest.fixture
def suite(pytester, tmp_path, monkeypatch):
    pytester.makepyfile(test_tasks=TASKS)
    return pytester


def run(pytester, *args):
    """A bake-off in this process, its run directory ``run``."""
    return inprocess.run(pytester, "-p", "no:cacheprovider", "--hb-out", "run", *args)


def run_e2e(pytester, *args):
    """The same in a subprocess: for xdist (-n) and anything that signals or kills the session."""
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--hb-out", "run", *args)


def records(pytester, run_dir="run"):
    lines = (pytester.path / run_dir / "results.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def by_model(recs):
    return {(r["model"], r["multiplier"]): (r["outcome"], r["cause"]) for r in recs}


def test_oom_at_1x_is_infra_and_uncapped_passes(suite):
    result = run(suite, "--models", "oracle:heavy,oracle:lean,oracle:wrong", "--multipliers", "1,uncapped")
    result.stdout.fnmatch_lines(["*2 failed, 4 passed, 1 infra*"])
    outcomes = by_model(records(suite))
    assert outcomes == {
        ("oracle:heavy", "1x"): ("infra", "oom"),
        ("oracle:heavy", "uncapped"): ("passed", None),
        ("oracle:lean", "1x"): ("passed", None),
        ("oracle:lean", "uncapped"): ("passed", None),
        ("oracle:wrong", "1x"): ("failed", "assertion"),
        ("oracle:wrong", "uncapped"): ("failed", "assertion"),
    }
    heavy = next(r for r in records(suite) if r["model"] == "oracle:heavy" and r["multiplier"] == "1x")
    assert heavy["resources"]["oom_kills"] >= 1
    assert heavy["allocation"]["limit"]["memory_bytes"] == 64 * 1024**2
    assert heavy["enforcement"].startswith("cgroup-")
    assert result.ret == 1


def test_a_failed_trial_is_one_line_and_keeps_its_traceback_in_its_file_plain_tests_keep_theirs(pytester):
    """Issue 21: ~2,600 lines of tracebacks for by-design failures buried the table."""
    pytester.makepyfile(test_tasks=TASKS + """
def test_plain_failure():
    assert 1 == 2, "plain tests keep their traceback"
""")
    result = run(pytester, "--models", "oracle:wrong,oracle:heavy", "--multipliers", "1")
    result.stdout.fnmatch_lines([
        "*= FAILURES =*", "*_ test_plain_failure _*", "*plain tests keep their traceback*",
        "*= short test summary info =*", "FAILED test_tasks.py::test_plain_failure - *",
        "*= harnessbench · tracebacks: RUN_DIR/trials/, -v =*",
        "FAILED test_answer?oracle:wrong@1x#1? - failed/assertion: AssertionError: *",
        "INFRA test_answer?oracle:heavy@1x#1? - infra/oom: kernel OOM-killed*",
        "model *", "*", "oracle:wrong *", "*", "oracle:heavy *", "*", "enforcement: *", "run directory: *",
        "*= 2 failed, 1 passed, 1 infra in *"])
    assert "test_answer[oracle:wrong@1x#1] _" not in result.stdout.str()  # no traceback of its own
    assert "FAILED test_tasks.py::test_answer" not in result.stdout.str()
    documents = RunDir(pytester.path / "run").trajectory_documents().values()
    wrong = next(d for d in documents if d["record"]["model"] == "oracle:wrong")
    assert "def test_answer(trial):" in wrong["traceback"] and "AssertionError" in wrong["traceback"]

    tracebacks = inprocess.run(pytester, "-p", "no:cacheprovider", "--hb-out", "run2", "--models", "oracle:wrong",
                               "--tb=short")
    tracebacks.stdout.fnmatch_lines(["*_ test_answer?oracle:wrong@1x#1? _*", "*AssertionError*",
                                     "FAILED test_tasks.py::test_answer?oracle:wrong@1x#1? - *"])


def test_infra_trials_are_listed_with_their_cause_also_when_tracebacks_are_shown(suite):
    result = run(suite, "--models", "oracle:heavy", "--multipliers", "1,uncapped", "-ra", "-v")
    result.stdout.fnmatch_lines(["infra trials (the environment ended them, not the model):",
                                 "INFRA test_answer?oracle:heavy@1x#1? - infra/oom: kernel OOM-killed*"])


def test_oom_as_failed(suite):
    run(suite, "--models", "oracle:heavy", "--hb-oom-as", "failed")
    assert by_model(records(suite)) == {("oracle:heavy", "1x"): ("failed", "oom")}


def test_task_bug_is_error_and_timeout_is_failed_timeout(pytester, tmp_path, monkeypatch):
    pytester.makepyfile(test_more='''
import pytest

@pytest.mark.task(timeout=1, solutions="sleep 10; echo done > out.txt")
def test_slow(trial):
    trial.run_agent("Be quick.")
    assert trial.sandbox.read_file("out.txt")

@pytest.mark.task(solutions="true")
def test_broken(trial):
    trial.run_agent("Anything.")
    undefined_name
''')
    result = run(pytester)
    result.stdout.fnmatch_lines(["*1 failed, 1 error*"])
    recs = {r["task_id"].split("::")[1]: r for r in records(pytester)}
    assert (recs["test_slow"]["outcome"], recs["test_slow"]["cause"]) == ("failed", "timeout")
    assert (recs["test_broken"]["outcome"], recs["test_broken"]["cause"]) == ("error", "harness")
    assert "NameError" in recs["test_broken"]["message"]
    assert recs["test_slow"]["timing"]["agent_s"] < 3


def test_nop_fails_and_ids_read_model_at_multiplier_sample(suite):
    result = run(suite, "--models", "nop", "--multipliers", "1,3x", "--samples", "2", "-v")
    result.stdout.fnmatch_lines(["*test_answer?nop@1x#1?*", "*test_answer?nop@3x#2?*", "*4 failed, 1 passed*"])
    assert {(r["outcome"], r["cause"]) for r in records(suite)} == {("failed", "assertion")}


def test_run_directory_holds_card_records_and_trajectories(suite):
    run(suite, "--models", "oracle:lean", "--multipliers", "1,3")
    run_dir = suite.path / "run"
    card = json.loads((run_dir / "harness.json").read_text())
    assert card["settings"]["multipliers"] == ["1x", "3x"]
    assert card["harness"]["system_prompt_sha256"] and card["harness"]["toolset_sha256"]
    assert card["enforcement"].startswith("cgroup-") and card["trials_recorded"] == 2
    assert card["packages"]["langchain"]
    for rec in records(suite):
        doc = json.loads((run_dir / "trials" / f"{rec['trial_id']}.json").read_text())
        calls = doc["trajectories"][0]["tool_calls"]
        assert [(c["name"], c["args"]["command"], c["exit_code"]) for c in calls] == [("bash", "echo 42 > answer.txt", 0)]
        assert doc["trajectories"][0]["stop_reason"] == "completed"
        assert rec["usage"]["model_calls"] == 2 and rec["usage"]["tool_calls"] == 1


def test_summary_table(suite):
    result = run(suite, "--models", "oracle:heavy,oracle:lean", "--multipliers", "1,uncapped")
    result.stdout.fnmatch_lines([
        "=*= harnessbench * =*=",
        "model*mult*trials*pass*fail*infra*err*score*excl. infra*infra rate",
        "oracle:heavy*1x*1*0*0*1*0*0.0%*-*100.0%",
        "*oom:1*0.0–79.3*20.7–100.0",
        "oracle:heavy*uncapped*1*1*0*0*",
        "oracle:lean*1x*",
        "enforcement: local/cgroup-v*",
        "run directory: *run",
    ])


def test_the_section_starts_as_pytests_own_sections_do(suite):
    """A blank line before the separator and none after it, also when no trial is listed (a new user's first run)."""
    lines = run(suite, "--models", "oracle:lean", "--multipliers", "1").outlines
    at = next(i for i, line in enumerate(lines) if re.fullmatch(r"=+ harnessbench =+", line))
    assert lines[at - 1] == "" and lines[at + 1].startswith("detectable score difference"), lines[at - 2:at + 3]


def _summary(stdout_lines):
    """The outcome table's first lines of rows and the enforcement line; the metric tables before them hold
    timings, which differ per run."""
    start = next(i for i, line in enumerate(stdout_lines) if line.startswith("model ") and " trials " in line)
    end = next(i for i, line in enumerate(stdout_lines) if line.startswith("enforcement"))
    return [line for line in stdout_lines[start:end + 1]
            if line.startswith(("model", "oracle", "nop", "-", "enforcement"))]


def _run_dir_of(result) -> Path:
    return Path(next(line for line in result.outlines if line.startswith("run directory: ")).split(": ", 1)[1])


@pytest.mark.e2e
def test_default_environment_serial_and_xdist_give_the_same_outcomes(suite):
    """Issue 11: no HARNESSBENCH_* variable, a fresh empty TMPDIR, the default run directory, as a user runs it."""
    assert not [name for name in os.environ if name.startswith("HARNESSBENCH_")]
    assert list(Path(os.environ["TMPDIR"]).iterdir()) == []
    args = ["-p", "no:cacheprovider", "--models", "oracle:heavy,oracle:lean,nop", "--multipliers", "1,3,uncapped",
            "--samples", "2"]
    serial = suite.runpytest_subprocess(*args)
    parallel = suite.runpytest_subprocess("-n", "2", *args)
    runs = {name: results(_run_dir_of(result))
            for name, result in (("serial", serial), ("xdist", parallel))}
    for recs in runs.values():
        outcomes = {(r["model"], r["multiplier"], r["outcome"], r["cause"]) for r in recs}
        assert outcomes == {("oracle:heavy", "1x", "infra", "oom"), ("oracle:heavy", "3x", "passed", None),
                            ("oracle:heavy", "uncapped", "passed", None),
                            *{("oracle:lean", m, "passed", None) for m in ("1x", "3x", "uncapped")},
                            *{("nop", m, "failed", "assertion") for m in ("1x", "3x", "uncapped")}}
        assert len(recs) == 18
    assert _summary(serial.outlines) == _summary(parallel.outlines)
    assert len(_summary(serial.outlines)) == 2 + 9 + 1
    assert {r["worker"] for r in runs["xdist"]} == {"gw0", "gw1"}
    assert _run_dir_of(serial).parent == suite.path / ".harnessbench" / "runs"


def test_a_provisioning_bug_that_hits_every_trial_stops_the_session_early(suite):
    suite.makeconftest('''
import shutil, tempfile, os, pytest

@pytest.fixture(autouse=True)
def broken_host():  # every trial's admission ledger vanishes, as in issue 11
    shutil.rmtree(os.path.join(tempfile.gettempdir(), f"harnessbench-{os.getuid()}", "admission"), ignore_errors=True)
''')
    result = run(suite, "--models", "oracle:lean", "--multipliers", "1,3,uncapped", "--samples", "3")
    assert len(records(suite)) == 3
    result.stdout.fnmatch_lines(["*the last 3 trials could not be provisioned (FileNotFoundError*stopping the session*"])


@pytest.mark.e2e
def test_nothing_left_behind(suite, tmp_path):
    run_e2e(suite, "--models", "oracle:heavy,oracle:lean", "--multipliers", "1,uncapped", "-n", "2")
    work = work_root()  # under the test's own TMPDIR
    assert not work.exists() or list(work.iterdir()) == []
    for parent in cgroups.detect().parents.values():
        leftovers = [p.name for p in parent.iterdir() if p.is_dir() and p.name.startswith("2")]
        run_ids = {r["run_id"] for r in records(suite)}
        assert not [name for name in leftovers if any(name.startswith(rid) for rid in run_ids)]


@pytest.mark.parametrize("args, message", [
    (["--multipliers", "0.5"], "*--multipliers*'0.5'*below 1*"),
    (["--multipliers", "abc"], "*--multipliers*'abc'*1, 1.5, 3x*uncapped*"),
    (["--multipliers", "3y"], "*--multipliers*'3y'*"),
    (["--multipliers", ""], "*--multipliers*empty entry*"),
    (["--multipliers", "1,3,3x"], "*--multipliers*'3x' repeats '3'*"),
    (["--hb-backend", "podman"], "*--hb-backend*'podman'*local, docker*"),
    (["--models", "gpt-5"], "*unknown built-in model 'gpt-5'*oracle*nop*"),
    (["--models", "oracle:fast"], "*test_answer*no solution 'fast'*lean, heavy, wrong*"),
])
def test_usage_errors_before_any_sandbox(suite, args, message):
    result = run(suite, *args)
    assert result.ret == 4
    result.stderr.fnmatch_lines([message])
    assert not (suite.path / "run").exists()


def test_malformed_marker_is_a_usage_error(pytester):
    pytester.makepyfile(test_bad='''
import pytest

@pytest.mark.task(memory="2 gigs")
def test_x(trial):
    pass
''')
    result = inprocess.run(pytester, "-p", "no:cacheprovider")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*test_x*memory size '2 gigs' is not understood*256Mi*"])


def test_a_task_marker_without_the_trial_fixture_is_a_usage_error_naming_the_test(pytester):
    """Issue 21: it ran silently as one plain test, left out of the table."""
    pytester.makepyfile(test_forgot='''
import pytest

@pytest.mark.task(cpus=1)
def test_forgot_the_fixture():
    pass
''')
    result = inprocess.run(pytester, "-p", "no:cacheprovider")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*test_forgot.py::test_forgot_the_fixture: @pytest.mark.task on a test without "
                                 "the `trial` fixture: add `trial` to its arguments, or remove the marker"])


def test_ini_keys_configure_the_bake_off(suite):
    suite.makeini("[pytest]\nhb_models = oracle:lean,nop\nhb_multipliers = 1, uncapped\nhb_samples = 2\n")
    result = run(suite)
    result.stdout.fnmatch_lines(["*4 failed, 5 passed*"])
    assert len(records(suite)) == 8


def test_rlimit_enforcement_is_flagged_as_weaker(suite):
    result = run(suite, "--models", "oracle:heavy", "--multipliers", "1,uncapped", "--hb-enforcement", "rlimit")
    result.stdout.fnmatch_lines(["*enforcement: local/rlimit*", "*WARNING: rlimit enforcement*weaker*"])
    assert by_model(records(suite)) == {("oracle:heavy", "1x"): ("infra", "oom"),
                                        ("oracle:heavy", "uncapped"): ("passed", None)}


@pytest.mark.e2e
def test_admission_keeps_concurrent_guarantees_within_capacity(pytester, tmp_path, monkeypatch):
    from datetime import datetime

    pytester.makepyfile(test_wait='''
import pytest

@pytest.mark.parametrize("n", range(3))
@pytest.mark.task(cpus=1, memory="64Mi", solutions="sleep 0.4; echo ok > out.txt")
def test_sleepy(trial, n):
    trial.run_agent("Sleep, then write ok.")
    assert trial.sandbox.read_file("out.txt").strip() == "ok"
''')
    result = run_e2e(pytester, "-n", "2", "--hb-capacity", "cpus=1,memory=1Gi")
    result.assert_outcomes(passed=3)
    spans = sorted((datetime.fromisoformat(r["started_at"]), datetime.fromisoformat(r["finished_at"]))
                   for r in records(pytester))
    assert all(prev_end <= start for (_, prev_end), (start, _) in zip(spans, spans[1:]))
    assert max(r["timing"]["queued_s"] for r in records(pytester)) > 0.2


def test_a_task_bigger_than_capacity_is_a_usage_error(suite):
    result = run(suite, "--hb-capacity", "cpus=0.5")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*test_answer*can never fit*cpus*"])


@pytest.mark.e2e
def test_killed_worker_is_infra_worker_crash_and_its_sandbox_is_reaped(pytester, tmp_path, monkeypatch):
    pytester.makepyfile(test_crash='''
import pytest

@pytest.mark.parametrize("n", range(4))
@pytest.mark.task(memory="64Mi", solutions="echo ok > out.txt")
def test_fine(trial, n):
    trial.run_agent("Write ok.")
    assert trial.sandbox.read_file("out.txt").strip() == "ok"

@pytest.mark.task(memory="64Mi", solutions="(sleep 300 &); kill -9 $PPID")
def test_kills_its_worker(trial):
    trial.run_agent("This command kills the worker process that runs the trial.")
''')
    result = run_e2e(pytester, "-n", "2")
    result.stdout.fnmatch_lines(["*4 passed, 1 infra*"])
    crashed = [r for r in records(pytester) if r["cause"] == "worker_crash"]
    assert len(crashed) == 1 and crashed[0]["outcome"] == "infra"
    assert crashed[0]["task_id"].endswith("test_crash.py::test_kills_its_worker")
    assert len(records(pytester)) == 5
    run_id = crashed[0]["run_id"]
    work = work_root()  # under the test's own TMPDIR
    assert not (work / f"run-{run_id}").exists()  # the dead worker's directory was reaped
    for parent in cgroups.detect().parents.values():
        assert not [p for p in parent.iterdir() if p.name.startswith(run_id)]  # and its cgroup, sleep killed


RESUMABLE = '''
import pytest

@pytest.mark.parametrize("n", range(4))
@pytest.mark.task(memory="64Mi", solutions={"lean": "sleep 0.3; echo ok > out.txt",
                                            "heavy": "python3 -c 'x = bytearray(150 << 20); x[::4096] = b\\"1\\" * len(x[::4096])' && echo ok > out.txt"})
def test_step(trial, n):
    trial.run_agent("Write ok.")
    assert trial.sandbox.read_file("out.txt").strip() == "ok"
'''


def _interrupt_after(pytester, seconds, *args):
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=pytester.path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    results = pytester.path / "run" / "results.jsonl"
    while time.monotonic() < deadline and (not results.exists() or len(results.read_text().splitlines()) < seconds):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGINT)
    out = proc.communicate(timeout=60)[0].decode()
    return proc.returncode, out


@pytest.mark.e2e
def test_ctrl_c_keeps_finished_records_and_prints_their_summary(pytester, tmp_path, monkeypatch):
    pytester.makepyfile(test_resumable=RESUMABLE)
    # 12 trials, interrupted after 3: a trial is surely still running (with only one left, an idle machine
    # sometimes finished it and was in its session-end hooks when the signal came: exit 1 in CI).
    code, out = _interrupt_after(pytester, 3, "--hb-out", "run", "--models", "oracle:lean", "--samples", "3")
    assert code == 2 and "KeyboardInterrupt" in out, out[-4000:]
    finished = records(pytester)
    assert 3 <= len(finished) < 12
    assert re.search(rf"^oracle:lean +1x +{len(finished)} ", out, re.M)  # the summary of what finished
    assert f"PARTIAL RUN: interrupted; {len(finished)} trial(s) recorded" in out and "--hb-resume" in out
    assert not any(work_root().glob("*/*"))  # the running sandbox was torn down


@pytest.mark.e2e
def test_resume_completes_the_same_trials_without_duplicates(pytester, tmp_path, monkeypatch):
    pytester.makepyfile(test_resumable=RESUMABLE)
    models = ["--models", "oracle:lean,oracle:heavy", "--multipliers", "1,uncapped"]
    full = run(pytester, *models)
    expected = sorted(r["trial_id"] for r in records(pytester))
    assert len(expected) == 16
    (pytester.path / "run").rename(pytester.path / "full")

    _interrupt_after(pytester, 5, "--hb-out", "run", *models)
    before = records(pytester)
    resumed = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--hb-resume", "run", "-n", "2", *models)
    after = records(pytester)
    assert sorted(r["trial_id"] for r in after) == expected  # nothing twice, nothing missing
    assert after[:len(before)] == before  # appended, earlier lines untouched
    resumed.stdout.fnmatch_lines([f"*2 workers ?{16 - len(before)} items?*"])  # workers deselect what is done
    assert _summary(resumed.outlines) == _summary(full.outlines)  # the summary covers the whole run

    retried = inprocess.run(pytester, "-p", "no:cacheprovider", "--hb-resume", "run", "--hb-resume-retry", "infra", *models)
    retried.stdout.fnmatch_lines(["collected 16 items / 12 deselected / 4 selected", "*4 infra*"])
    infra = [r for r in records(pytester) if r["outcome"] == "infra"]
    assert sorted(r["attempts"] for r in infra) == [1] * 4 + [2] * 4  # every attempt stays recorded
    card = json.loads((pytester.path / "run" / "harness.json").read_text())
    assert len(card["resumes"]) == 2


FLAKY_ONCE = '''
import pytest

HOG = "python3 -c 'x = bytearray(150 << 20); x[::4096] = b\\"1\\" * len(x[::4096])'"
# The first attempt of each trial is OOM-killed for real; the next one finds its flag and passes.
ONCE = "flag=FLAGS/$(cat n.txt); if [ -e $flag ]; then echo ok > out.txt; else touch $flag; " + HOG + "; fi"

@pytest.mark.parametrize("n", range(2))
@pytest.mark.task(memory="64Mi", solutions={"once": ONCE, "always": HOG})
def test_step(trial, n):
    trial.sandbox.write_file("n.txt", str(n))
    trial.run_agent("Write ok.")
    assert trial.sandbox.read_file("out.txt").strip() == "ok"
'''


@pytest.mark.parametrize("workers", [[], pytest.param(["-n", "2"], marks=pytest.mark.e2e)])
def test_retry_infra_reruns_infra_trials_and_keeps_every_attempt(pytester, tmp_path, monkeypatch, workers):
    flags = tmp_path / "flags"
    flags.mkdir()
    pytester.makepyfile(test_flaky=FLAKY_ONCE.replace("FLAGS", str(flags)))
    result = (run_e2e if workers else run)(pytester, "--models", "oracle:once,oracle:always", "--hb-retry-infra", "2",
                                           *workers)
    result.stdout.fnmatch_lines(["*2 passed, 6 rerun, 2 infra*"])  # once: 1 retry each; always: 2 each
    assert result.ret == 1  # trials still in infra after their retries fail the run
    attempts = sorted((r["model"], r["task_id"], r["attempts"], r["outcome"], r["cause"]) for r in records(pytester))
    once = [a[1:] for a in attempts if a[0] == "oracle:once"]
    assert [a[1:] for a in once] == [(1, "infra", "oom"), (2, "passed", None)] * 2
    always = [a[1:] for a in attempts if a[0] == "oracle:always"]
    assert [a[1:] for a in always] == [(k, "infra", "oom") for k in (1, 2, 3)] * 2
    assert len({r["trial_id"] for r in records(pytester)}) == 4  # attempts of a trial share its id
    trajectories = sorted(path.name for path in (pytester.path / "run" / "trials").iterdir())
    assert len(trajectories) == 10 and sum("~3" in name for name in trajectories) == 2  # one file per attempt
    result.stdout.fnmatch_lines(["retries: 6 earlier attempt(s) of 4 trial(s) superseded (infra/oom 6); "
                                 "2 of those trials then ended outside infra.*"])
    # issue 24: passes that came only on a retry are counted, and a score resting on them is flagged
    # (wrapped to the terminal's width, as every line of the summary)
    result.stdout.fnmatch_lines(["retry dependence oracle:once: 2 of 2 trials passed only on a retry (2 retried);",
                                 "  first-attempt score 0.0% vs final 100.0% — FLAGGED: the score rests on retries",
                                 "retry dependence oracle:always: 0 of 2 trials passed only on a retry (2",
                                 "  retried); first-attempt score 0.0% vs final 0.0%"])


def test_without_retry_infra_an_infra_trial_runs_once(pytester, tmp_path, monkeypatch):
    (tmp_path / "flags").mkdir()
    pytester.makepyfile(test_flaky=FLAKY_ONCE.replace("FLAGS", str(tmp_path / "flags")))
    result = run(pytester, "--models", "oracle:once")
    result.stdout.fnmatch_lines(["*2 infra*"])
    assert "rerun" not in result.stdout.str() and "retries:" not in result.stdout.str()
    assert [r["attempts"] for r in records(pytester)] == [1, 1]


@pytest.mark.parametrize("workers", [[], pytest.param(["-n", "2"], marks=pytest.mark.e2e)])
def test_progress_lines_per_model_and_multiplier(suite, workers):
    result = (run_e2e if workers else run)(suite, "--models", "oracle:heavy,oracle:lean", "--multipliers", "1,uncapped",
                                           "--hb-progress", "0.001",
                 "-v", *workers)
    result.stdout.fnmatch_lines(["harnessbench progress: 4/4 trials · oracle:heavy 1x 1/1 (infra 1), uncapped 1/1",
                                 "  oracle:lean 1x 1/1, uncapped 1/1"])


@pytest.mark.e2e
def test_progress_lines_go_between_rows_of_letters_and_fit_the_terminal(suite, monkeypatch):
    """Issue 21: a 282-column progress line spliced into the dots."""
    monkeypatch.setenv("COLUMNS", "40")  # pytest's narrowest: a row holds 32 letters, then the progress
    result = run_e2e(suite, "--models", "nop", "--samples", "32", "--hb-progress", "0.001", "-n", "2")
    lines = result.stdout.lines
    first = next((i for i, line in enumerate(lines) if line.startswith("harnessbench progress")), None)
    assert first is not None, result.stdout.str()
    assert re.fullmatch(r"[.F]{32} \[ 96%\]", lines[first - 1])
    assert re.fullmatch(r"harnessbench progress: 3[12]/32 trials", lines[first])
    assert re.fullmatch(r"  nop 1x 3[12]/32", lines[first + 1])
    after = next(line for line in lines[first + 2:] if not line.startswith(("harnessbench progress", "  nop 1x")))
    assert after.startswith((".", "F"))  # the next row of letters (the last trial's progress may come first)


def test_a_session_of_plain_tests_prints_no_progress_line(pytester, monkeypatch):
    """Progress counts trials: the project's own test runs (plain tests, plugin loaded) must not print 0/0."""
    monkeypatch.setenv("COLUMNS", "40")  # rows of 32 letters: several rows end before the last test
    pytester.makepyfile(test_plain="import time\n\nimport pytest\n\n@pytest.mark.parametrize('n', range(100))\n"
                                   "def test_n(n):\n    time.sleep(0.002)\n")
    result = run(pytester, "--hb-progress", "0.001")
    result.assert_outcomes(passed=100)
    assert "harnessbench progress" not in result.stdout.str()


@pytest.mark.e2e
def test_usage_errors_stay_readable_under_xdist(pytester, monkeypatch):
    pytester.makepyfile(test_bad='''
import pytest

@pytest.mark.task(memory="2 gigs")
def test_x(trial):
    pass
''')
    bad_marker = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    assert bad_marker.ret == 4  # a usage error, as in a serial run (workers can only report collection errors)
    bad_marker.stdout.fnmatch_lines(["*memory size '2 gigs' is not understood*"])
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    no_engine = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--hb-backend", "docker")
    assert no_engine.ret == 4
    no_engine.stderr.fnmatch_lines(["*--hb-backend docker*not*"])


@pytest.mark.parametrize("marker, message", [
    ('memroy="1Gi"', "*unknown key memroy=...; a task accepts cpus, gate_on, image, match_mode, memory, network, "
                     "pids, reference_answer, reference_tools, solutions, timeout*"),
    ('storage="1Gi"', "*unknown key storage=...*"),
])
def test_misspelt_marker_keys_are_usage_errors(pytester, marker, message):
    pytester.makepyfile(test_bad=f'''
import pytest

@pytest.mark.task({marker})
def test_x(trial):
    pass
''')
    result = inprocess.run(pytester, "-p", "no:cacheprovider")
    assert result.ret == 4
    result.stderr.fnmatch_lines([message])


def test_help_builds_no_session_even_with_a_provider_model_configured(pytester, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    pytester.makeini("[pytest]\nhb_models = openai:gpt-5.1\n")
    result = inprocess.run(pytester, "--help")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*--hb-backend*"])


@pytest.mark.parametrize("args, message", [
    (["--hb-gate-at", "1,3", "--hb-gate", "oracle:lean"], "*--hb-gate-at '1,3': name one of --multipliers*"),
    (["--hb-gate-margin", "nonsense"], "*--hb-gate-margin*"),
    (["--hb-gate-alpha", "7"], "*--hb-gate-alpha '7' must be*"),
])
def test_gate_options_are_checked_even_without_a_gate(suite, args, message):
    result = run(suite, "--models", "oracle:lean", "--multipliers", "1,3", *args)
    assert result.ret == 4
    result.stderr.fnmatch_lines([message])


@pytest.mark.parametrize("marker, args", [('memory="lots"', []), ("cpus=1", ["--hb-capacity", "cpus=0.5"])])
@pytest.mark.e2e
def test_a_bad_task_in_a_multi_file_suite_is_the_same_usage_error_under_xdist(pytester, marker, args):
    """Issue 17.3: with another task file collected too, -n 2 crashed with INTERNALERROR and hid the reason."""
    pytester.makepyfile(test_bad=f'''
import pytest

@pytest.mark.task({marker}, solutions="true")
def test_bad(trial):
    trial.run_agent("x")
''', test_good='''
import pytest

@pytest.mark.task(memory="64Mi", solutions="true")
def test_good(trial):
    trial.run_agent("x")
''')
    serial = inprocess.run(pytester, "-p", "no:cacheprovider", "--models", "oracle", *args)
    parallel = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--models", "oracle", "-n", "2", *args)
    errors = [[line for line in result.errlines if line.startswith("ERROR:")] for result in (serial, parallel)]
    assert serial.ret == parallel.ret == 4
    assert errors[0] == errors[1] and len(errors[0]) == 1 and "test_bad" in errors[0][0]
    assert "INTERNALERROR" not in parallel.stdout.str() + parallel.stderr.str()


@pytest.mark.e2e  # in one process, a refused resume's lock on the run directory outlived it
def test_resume_with_other_models_or_multipliers_is_a_usage_error(suite):
    run(suite, "--models", "oracle:lean", "--multipliers", "1")
    card = (suite.path / "run" / "harness.json").read_text()
    for args, message in ((["--models", "nop", "--multipliers", "1"], "*that run has --models oracle:lean, this one nop*"),
                          (["--models", "oracle:lean", "--multipliers", "1,3"], "*--multipliers 1x, this one 1x,3x*")):
        result = suite.runpytest_subprocess("-p", "no:cacheprovider", "--hb-resume", "run", *args)
        assert result.ret == 4
        result.stderr.fnmatch_lines([message])
    assert (suite.path / "run" / "harness.json").read_text() == card  # not overwritten


def test_an_unwritable_run_directory_is_a_usage_error_before_any_trial(suite):
    (suite.path / "afile").write_text("")
    result = inprocess.run(suite, "-p", "no:cacheprovider", "--models", "oracle:lean", "--hb-out", "afile/run")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["ERROR: cannot create the run directory at *afile/run*not a directory; choose a writable --hb-out"])
    suite.makepyfile(test_only_plain="def test_plain():\n    pass\n")
    plain = inprocess.run(suite, "-p", "no:cacheprovider", "--hb-out", "afile/run", "test_only_plain.py")
    plain.assert_outcomes(passed=1)  # a session that runs no trial writes nothing, so needs no run directory


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a filesystem needs root")
def test_a_disk_that_fills_mid_run_stops_with_the_summary_and_how_to_resume(pytester, monkeypatch):

    pytester.makepyfile(test_fill='''
import os, subprocess, pytest

@pytest.mark.parametrize("n", range(4))
@pytest.mark.task(memory="64Mi", solutions="echo ok > out.txt")
def test_step(trial, n):
    trial.run_agent("Write ok.")
    if n == 1:  # something else fills the disk that holds the run directory
        subprocess.run(["dd", "if=/dev/zero", "of=" + os.path.join(os.environ["RUN_DISK"], "fill"), "bs=64k"],
                       capture_output=True)
    assert trial.sandbox.read_file("out.txt").strip() == "ok"
''')
    with small_disk(pytester.path / "disk", "2m") as disk:
        monkeypatch.setenv("RUN_DISK", str(disk))
        result = inprocess.run(pytester, "-p", "no:cacheprovider", "--models", "oracle", "--hb-out", str(disk / "run"))
        out = result.stdout.str()
        assert "INTERNALERROR" not in out and result.ret == pytest.ExitCode.INTERRUPTED
        result.stdout.fnmatch_lines(["*oracle*1x*", "*PARTIAL RUN: cannot write the run directory*"
                                     "No space left on device*free some space*--hb-resume*"])
        assert not list((disk / "run").glob("**/.*.tmp"))
        assert 1 <= len((disk / "run" / "results.jsonl").read_text().splitlines()) < 4


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a filesystem needs root")
def test_a_command_that_fills_the_sandbox_disk_is_infra_disk_from_the_filesystems_evidence(pytester, monkeypatch):
    """Issue 21.4: `dd` into a full disk left no exception (its stderr was lost on the same disk): failed/assertion."""

    pytester.makepyfile(test_fill='''
import pytest

@pytest.mark.task(memory="64Mi", solutions="dd if=/dev/zero of=big.bin bs=1M count=100; echo 42 > answer.txt")
def test_answer(trial):
    trial.run_agent("Write the answer to answer.txt.")
    assert trial.sandbox.read_file("answer.txt").strip() == "42"
''')
    with small_disk(pytester.path / "tmp", "40m") as disk:
        inprocess.use_tmpdir(monkeypatch, disk)  # the sandbox's work dir lives under TMPDIR
        run(pytester, "--models", "oracle")
        (rec,) = records(pytester)
        assert (rec["outcome"], rec["cause"]) == ("infra", "disk"), rec["message"]
        assert rec["resources"]["disk_full"] is True and rec["resources"]["disk_free_bytes"] < 1 << 20


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a filesystem needs root")
def test_a_full_sandbox_disk_is_infra_disk(pytester, monkeypatch):

    pytester.makepyfile(test_big='''
import pytest

@pytest.mark.task(memory="64Mi", solutions="true")
def test_big_output(trial):
    trial.run_agent("Nothing to do.")
    trial.sandbox.write_file("big.bin", b"x" * (8 << 20))  # more than the sandbox's disk holds
''')
    with small_disk(pytester.path / "tmp", "4m") as disk:
        inprocess.use_tmpdir(monkeypatch, disk)  # the sandbox's work dir lives under TMPDIR
        result = run(pytester, "--models", "oracle")
        result.stdout.fnmatch_lines(["*1 infra*"])
        (rec,) = records(pytester)
        assert (rec["outcome"], rec["cause"]) == ("infra", "disk") and "No space left" in rec["message"]


SLEEPER = '''
import os, pytest

@pytest.mark.task(memory="64Mi", solutions="true")
def test_sleeper(trial):
    pid = trial.sandbox.exec("sleep 300 > /dev/null 2>&1 & echo $!").stdout.strip()
    with open(os.environ["SLEEPER_PID"], "w") as f:
        f.write(pid)
    trial.sandbox.exec("sleep 300")
'''


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] not in "ZX"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.e2e
@pytest.mark.parametrize("xdist", [[], ["-n", "1"]], ids=["session", "xdist-worker"])
def test_sigkill_of_the_session_leaves_no_sandbox_process_behind(pytester, xdist):
    """Issue 17.8: a SIGKILLed session's sandbox processes ran on, orphaned, until the next session."""
    import signal
    import subprocess
    import sys

    pytester.makepyfile(test_sleeper=SLEEPER)
    pid_file = pytester.path / "sleeper.pid"
    pytester._monkeypatch.setenv("SLEEPER_PID", str(pid_file))
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--models", "oracle",
                             "--hb-out", "run", *xdist], cwd=pytester.path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert wait_for(lambda: pid_file.exists() and pid_file.read_text(), 60)
        sleeper = int(pid_file.read_text())
        assert _alive(sleeper)
        pytest_pids = [proc.pid] if not xdist else [int(p) for p in subprocess.run(
            ["pgrep", "-s", str(proc.pid)], capture_output=True, text=True).stdout.split()]
        for pid in pytest_pids:  # the session and its workers: nothing of them runs a cleanup
            os.kill(pid, signal.SIGKILL)
        proc.wait()
        assert wait_for(lambda: not _alive(sleeper), 5), "the sandbox's process outlived its session by 5 s"
        assert wait_for(lambda: not any(work_root().glob("*/*")), 5)
        for parent in cgroups.detect().parents.values():
            assert wait_for(lambda: not [p for p in parent.iterdir() if ".%d-" % proc.pid in p.name], 5)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_last_failed_rerun_says_its_table_covers_a_subset(pytester):
    """Issue 21: an --lf rerun's table looked like the whole bake-off's."""
    pytester.makepyfile(test_two='''
import pytest

@pytest.mark.parametrize("n", range(2))
@pytest.mark.task(memory="64Mi", solutions="test $(cat n.txt) = 1 && echo ok > out.txt")
def test_step(trial, n):
    trial.sandbox.write_file("n.txt", str(n))
    trial.run_agent("Write ok.")
    assert trial.sandbox.read_file("out.txt").strip() == "ok"
''')
    first = inprocess.run(pytester, "--models", "oracle", "--hb-out", "r1")
    first.assert_outcomes(passed=1, failed=1)
    rerun = inprocess.run(pytester, "--models", "oracle", "--hb-out", "r2", "--lf")
    rerun.assert_outcomes(failed=1)
    subset = "subset: --lf ran only the tests that failed last time; the table covers those trials, not the whole*"
    rerun.stdout.fnmatch_lines([subset])
    assert "subset:" not in first.stdout.str()


# dash (sh), not bash: bash retries a fork that fails with EAGAIN for 15 s before it gives up
FORKY = """
import pytest

@pytest.mark.task(memory="64Mi", pids=8, timeout=60,
                  solutions="sh -c 'for i in $(seq 12); do sleep 60 & done; /bin/echo 42 > answer.txt'")
def test_answer(trial):
    trial.run_agent("Write the answer to answer.txt.")
    assert trial.sandbox.read_file("answer.txt").strip() == "42"
"""


def test_a_trial_that_hits_its_pids_limit_is_infra_pids_with_the_kernels_count(pytester):
    """Issue 21.6: it was failed/assertion with no evidence; uncapped (pids scaled) the same solution passes."""
    pytester.makepyfile(test_forky=FORKY)
    run(pytester, "--models", "oracle", "--multipliers", "1,uncapped", "--hb-scale", "cpu,memory,pids")
    recs = {r["multiplier"]: r for r in records(pytester)}
    assert (recs["1x"]["outcome"], recs["1x"]["cause"]) == ("infra", "pids"), recs["1x"]["message"]
    assert recs["1x"]["resources"]["pids_limit_hits"] >= 1 and "fork" in recs["1x"]["message"]
    assert (recs["uncapped"]["outcome"], recs["uncapped"]["resources"]["pids_limit_hits"]) == ("passed", 0)


def test_a_trial_that_runs_out_of_time_thrashing_at_its_memory_limit_is_infra_thrash(pytester):
    """Issue 21.7: it was failed/timeout (no OOM kill); a timeout without memory pressure stays the model's."""
    from support.workloads import thrash

    solutions = {"thrash": thrash(-1) + " && echo 42 > answer.txt", "sleepy": "sleep 600 && echo 42 > answer.txt"}
    pytester.makepyfile(test_slow=f"""
import pytest

@pytest.mark.task(memory="64Mi", timeout=3, solutions={solutions!r})
def test_answer(trial):
    trial.run_agent("Write the answer to answer.txt.")
    assert trial.sandbox.read_file("answer.txt").strip() == "42"
""")
    run(pytester, "--models", "oracle:thrash,oracle:sleepy")
    recs = {r["model"]: r for r in records(pytester)}
    thrashed, sleepy = recs["oracle:thrash"], recs["oracle:sleepy"]
    assert (thrashed["outcome"], thrashed["cause"]) == ("infra", "thrash"), thrashed["message"]
    assert thrashed["resources"]["memory_at_limit"] and thrashed["resources"]["oom_kills"] == 0
    assert thrashed["resources"]["file_refault_bytes"] > 64 * 1024**2
    assert (sleepy["outcome"], sleepy["cause"]) == ("failed", "timeout")
    # no pressure: a page or so may refault on a busy host (4096 bytes seen once in CI), nothing like thrashing
    assert not sleepy["resources"]["memory_at_limit"] and sleepy["resources"]["file_refault_bytes"] < 1024**2
