"""A run as LangSmith experiments: the real SDK over real HTTP to the stand-in (tests/support/langsmith_standin.py).

The run directory comes from a real bake-off (pytester): two tasks × oracle, nop × 1x, uncapped × 2 samples.
"""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from support import inprocess
from support.langsmith_standin import LangSmithStandIn
from support.rundir import results
from pytest_harnessbench.export.experiments import (LEDGER, Streamer, dataset_name, example_id, experiment_name,
                                                    upload_experiments)
from pytest_harnessbench.store import RunDir

SECRET = "sk-test-1234567890"
LS_KEY = "lsv2-test-key-abcdef"
TASKS = '''
import pytest

SECRET = "%s"

@pytest.mark.task(memory="64Mi", timeout=20, solutions="echo 42 > a.txt && echo token=" + SECRET)
def test_answer(trial):
    trial.run_agent("Write 42 to a.txt.")
    assert trial.sandbox.read_file("a.txt").strip() == "42"

@pytest.mark.task(memory="32Mi", cpus=0.5, timeout=20, solutions="echo hi > b.txt")
def test_greeting(trial):
    trial.run_agent("Write hi to b.txt.")
    assert trial.sandbox.read_file("b.txt").strip() == "hi"
''' % SECRET
ARGS = ["--models", "oracle,nop", "--multipliers", "1,uncapped", "--samples", "2"]
_BUILT = {}


def _env(monkeypatch, url=None):
    monkeypatch.setenv("MY_API_KEY", SECRET)
    monkeypatch.setenv("LANGSMITH_API_KEY", LS_KEY)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for name in ("LANGSMITH_TRACING", "LANGSMITH_TRACING_V2", "LANGCHAIN_TRACING_V2", "LANGSMITH_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    if url:
        monkeypatch.setenv("LANGSMITH_ENDPOINT", url)


@pytest.fixture
def langsmith_server(monkeypatch):
    server = LangSmithStandIn()
    _env(monkeypatch, server.url)
    yield server
    server.close()


@pytest.fixture
def run_dir(pytester, tmp_path, tmp_path_factory, monkeypatch):
    """A run directory from a real 16-trial bake-off, made without LangSmith (built once, copied per test)."""
    if "run" not in _BUILT:
        monkeypatch.setenv("MY_API_KEY", SECRET)
        for name in ("LANGSMITH_API_KEY", "LANGSMITH_TRACING", "LANGSMITH_ENDPOINT"):
            monkeypatch.delenv(name, raising=False)
        pytester.makeini("[pytest]\n")
        pytester.makepyfile(test_tasks=TASKS)
        result = inprocess.run(pytester, "-p", "no:cacheprovider", *ARGS, "--hb-out", "run")
        result.stdout.fnmatch_lines(["*8 failed, 8 passed*"])
        keep = tmp_path_factory.mktemp("experiments-run") / "run"
        shutil.copytree(pytester.path / "run", keep)
        _BUILT["run"] = keep
    target = tmp_path / "run"
    shutil.copytree(_BUILT["run"], target)
    return target


def records_of(run):
    return results(run)


def check_experiments(langsmith_server, run):
    """One dataset with one example per task; one experiment per model × multiplier on it; every trial a root
    run in its experiment, linked to its task's example, with its feedback."""
    records = records_of(run)
    card = json.loads((run / "harness.json").read_text())
    name = dataset_name(card)
    assert name == f"harnessbench-{card['suite']['name']}"
    (dataset,) = langsmith_server.datasets.values()
    assert dataset["name"] == name
    examples = {e["inputs"]["task_id"]: e for e in langsmith_server.examples_of(name)}
    assert set(examples) == {r["task_id"] for r in records} and len(examples) == 2
    for record in records:
        example = examples[record["task_id"]]
        assert example["id"] == str(example_id(name, record["task_id"]))
        guarantee = record["allocation"]["guarantee"]
        assert example["metadata"]["spec"] == {"cpus": guarantee["cpus"], "memory_bytes": guarantee["memory_bytes"]}
    assert examples["test_tasks.py::test_answer"]["inputs"]["instruction"] == "Write 42 to a.txt."

    sessions = {s["name"]: s for s in langsmith_server.sessions.values()}
    assert set(sessions) == {experiment_name(card["run_id"], m, x)
                             for m in ("oracle", "nop") for x in ("1x", "uncapped")}
    for session in sessions.values():
        assert session["reference_dataset_id"] == dataset["id"] and session["num_repetitions"] == 2
        meta = session["extra"]["metadata"]
        assert meta["run_id"] == card["run_id"] and meta["harness"] == card["harness"]
        assert meta["multiplier"] in ("1x", "uncapped") and meta["guarantee"].startswith("the task's spec")
        assert meta["kill_threshold"] == ("none (uncapped)" if meta["multiplier"] == "uncapped"
                                          else f"spec × 1 for {', '.join(card['settings']['scale'])}")

    roots = langsmith_server.roots()
    assert len(roots) == len(records) == 16
    by_session = {}
    for root in roots:
        meta = root["extra"]["metadata"]
        session = langsmith_server.sessions[root["session_id"]]
        assert session["name"] == experiment_name(card["run_id"], meta["model"], meta["multiplier"])
        assert root["reference_example_id"] == examples[meta["task"]]["id"]
        by_session.setdefault(session["name"], []).append((meta["task"], meta["sample"]))
    for pairs in by_session.values():  # each task twice per experiment: its two samples, as repetitions
        assert sorted(pairs) == sorted((t, s) for t in examples for s in (1, 2))
    children = [r for r in langsmith_server.runs.values() if r.get("parent_run_id")]
    assert children and all(r["trace_id"] == r["parent_run_id"] for r in children)

    feedback = {}
    for item in langsmith_server.feedback.values():
        feedback[(str(item["run_id"]), item["key"])] = item
    assert len(feedback) == sum(3 + len(r["metrics"]) for r in records)
    outcome_of = {(r["task_id"], r["model"], r["multiplier"], r["sample"]): r["outcome"] for r in records}
    for root in roots:
        meta = root["extra"]["metadata"]
        outcome = outcome_of[(meta["task"], meta["model"], meta["multiplier"], meta["sample"])]
        assert feedback[(root["id"], "outcome")]["value"] == outcome
        assert feedback[(root["id"], "passed")]["score"] == (outcome == "passed")
        assert feedback[(root["id"], "infra_error")]["score"] == 0
        assert feedback[(root["id"], "steps")]["session_id"] == root["session_id"]
    bodies = b"".join(langsmith_server.bodies)
    assert SECRET.encode() not in bodies and LS_KEY.encode() not in bodies and b"[REDACTED:MY_API_KEY]" in bodies


def test_a_run_uploads_as_one_dataset_and_an_experiment_per_model_and_multiplier(run_dir, langsmith_server):
    result = upload_experiments(run_dir, timeout_s=30)

    card = json.loads((run_dir / "harness.json").read_text())
    assert result.ok, result.summary()
    assert result.summary() == f"LangSmith: 16/16 trials uploaded to dataset {dataset_name(card)} as 4 experiments"
    check_experiments(langsmith_server, run_dir)
    # feedback went in the runs' multipart requests: no POST /feedback, a handful of requests in all
    posts = [p for m, p, _ in langsmith_server.requests if m == "POST"]
    assert "/feedback" not in posts and posts.count("/runs/multipart") <= 3
    assert len(langsmith_server.requests) < 16


def test_a_server_without_multipart_gets_runs_through_runs_batch_and_feedback_one_by_one(run_dir, monkeypatch):
    server = LangSmithStandIn(multipart=False)
    _env(monkeypatch, server.url)
    try:
        result = upload_experiments(run_dir, timeout_s=60)
        assert result.ok, result.summary()
        check_experiments(server, run_dir)
        posts = [p for m, p, _ in server.requests if m == "POST"]
        assert "/runs/batch" in posts and posts.count("/feedback") == len(server.feedback)
    finally:
        server.close()


def test_a_second_upload_creates_nothing_new_with_or_without_the_ledger(run_dir, langsmith_server):
    upload_experiments(run_dir, timeout_s=30)
    counts = langsmith_server.counts()
    sent = len(langsmith_server.requests)

    done = subprocess.run([sys.executable, "-m", "pytest_harnessbench", "upload", str(run_dir)],
                          env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "16/16 trials uploaded to dataset" in done.stdout
    assert langsmith_server.counts() == counts and len(langsmith_server.requests) == sent  # the ledger lists everything: no request

    (run_dir / LEDGER).unlink()  # lost: the same ids again, LangSmith keeps one of each
    again = upload_experiments(run_dir, timeout_s=30)
    assert again.ok and langsmith_server.counts() == counts


def test_an_interrupted_upload_is_finished_by_the_upload_command(run_dir, langsmith_server):
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    later = run_dir.parent / "later"
    later.mkdir()
    for record in map(json.loads, lines[5:]):  # the run so far: its first 5 trials (the upload ran out of time)
        (run_dir / "trials" / f"{record['trial_id']}.json").rename(later / f"{record['trial_id']}.json")
    (run_dir / "results.jsonl").write_text("\n".join(lines[:5]) + "\n")
    first = upload_experiments(run_dir, timeout_s=30)
    assert first.ok and first.uploaded == 5 and len(langsmith_server.roots()) == 5
    for path in later.iterdir():
        path.rename(run_dir / "trials" / path.name)
    (run_dir / "results.jsonl").write_text("\n".join(lines) + "\n")
    done = subprocess.run([sys.executable, "-m", "pytest_harnessbench", "upload", str(run_dir)],
                          env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    check_experiments(langsmith_server, run_dir)
    ledger = [json.loads(line) for line in (run_dir / LEDGER).read_text().splitlines()]
    sent = sorted(line["trial"] for line in ledger if "trial" in line)
    assert sent == sorted(r["trial_id"] for r in records_of(run_dir))


def test_the_streamer_sends_trials_as_they_come_and_the_end_sends_the_rest(run_dir, langsmith_server):
    records = RunDir(run_dir).records()  # TrialRecords, as the plugin hands them over
    streamer = Streamer(run_dir, group_wait_s=0.1)
    for record in records[:10]:
        streamer.add(record)
    deadline = time.monotonic() + 30
    while len(langsmith_server.roots()) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(langsmith_server.roots()) == 10  # sent while the "session" goes on

    result = upload_experiments(run_dir, streamer=streamer, timeout_s=30)  # the end of the run: the other 6
    assert result.ok and result.uploaded == 16
    check_experiments(langsmith_server, run_dir)


def test_a_dead_endpoint_is_one_line_and_costs_seconds(run_dir, monkeypatch):
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    _env(monkeypatch, f"http://127.0.0.1:{port}")
    start = time.monotonic()
    result = upload_experiments(run_dir, timeout_s=10)
    assert time.monotonic() - start < 6
    assert result.summary().startswith("LangSmith: 0/16 trials uploaded — endpoint unreachable")
    assert "harnessbench upload" in result.summary()


def test_a_stalled_server_costs_the_time_limit_and_the_process_exits_at_once(run_dir, monkeypatch):
    """The SDK's background queue would hold the interpreter's exit 12-22 s retrying a stalled server."""
    server = LangSmithStandIn(stall="/runs/multipart")
    _env(monkeypatch, server.url)
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest_harnessbench", "upload", "--timeout", "2", str(run_dir)],
                          env=dict(os.environ), capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - start
    server.close()
    assert done.returncode == 1
    assert "stopped at the 2 s time limit" in done.stdout and done.stderr == ""
    assert elapsed < 8, f"took {elapsed:.1f} s with a 2 s limit"


@pytest.mark.e2e  # the SDK reads LANGSMITH_* once per process: the session runs in its own
def test_the_plugin_streams_trials_and_uploads_the_rest_at_the_end(pytester, monkeypatch, langsmith_server):
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_tasks=TASKS)
    monkeypatch.setenv("MY_API_KEY", SECRET)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *ARGS, "--hb-out", "run")
    result.stdout.fnmatch_lines(["*LangSmith: 16/16 trials uploaded to dataset harnessbench-* as 4 experiments*"])
    check_experiments(langsmith_server, pytester.path / "run")
