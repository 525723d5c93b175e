"""LangSmith export: the real SDK over real HTTP to a recording server on 127.0.0.1.

The run directory comes from a real bake-off (pytester), so the format is the
plugin's own. The server answers like LangSmith (GET /info, POST /sessions,
POST /runs/multipart, POST /feedback, 409 for ids it already has) and keeps
every request, which the tests then parse.
"""

import email.parser
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from support import inprocess
from support.rundir import results

from pytest_harnessbench.records import TrialRecord
from pytest_harnessbench.export.langsmith import (ExportResult, enabled, endpoint, export_run, item_name, load_run,
                                                  trial_feedback, trial_runs)
from pytest_harnessbench.redact import Redactor

SECRET = "sk-test-1234567890"
LS_KEY = "lsv2-test-key-abcdef"

TASKS = '''
import pytest

SECRET = "%s"  # also in the environment as MY_API_KEY: the agent "leaks" it into a tool call and its output

HOG = "python3 -c 'x = bytearray(150 * 1024 * 1024); x[::4096] = b\\"1\\" * len(x[::4096])'"

@pytest.mark.task(memory="64Mi", timeout=20,
                  solutions={"lean": "echo 42 > a.txt && echo token=" + SECRET,
                             "hog": HOG + " && echo 42 > a.txt"})
def test_answer(trial):
    trial.run_agent("Write 42 to a.txt.")
    assert trial.sandbox.read_file("a.txt").strip() == "42"
''' % SECRET
MODELS, MULTIPLIERS = ["oracle:lean", "oracle:hog", "nop"], ["1x", "uncapped"]
EXPECTED = {  # (model, multiplier) -> outcome
    ("oracle:lean", "1x"): "passed", ("oracle:lean", "uncapped"): "passed",
    ("oracle:hog", "1x"): "infra", ("oracle:hog", "uncapped"): "passed",
    ("nop", "1x"): "failed", ("nop", "uncapped"): "failed",
}


# ---------------------------------------------------------------- a recording LangSmith stand-in


class FakeLangSmith:
    """A tiny LangSmith API on 127.0.0.1 that records every request."""

    def __init__(self, port: int = 0, multipart: bool = True, stall: str | None = None):
        self.multipart = multipart  # False: an older server, the SDK falls back to /runs/batch
        self.stall = stall  # a path this server accepts but never answers
        self.requests: list[tuple[str, str, dict, bytes]] = []
        self.sessions: dict[str, dict] = {}
        self.seen_ids: set[str] = set()
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, code, obj):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def handle_any(self, method):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with fake.lock:
                    fake.requests.append((method, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    answer = fake.answer(method, self.path.split("?")[0], self.headers, body)
                if self.path == fake.stall:
                    time.sleep(60)
                    return  # never answered: the client gave up long ago (a reply would meet a closed socket)
                self.reply(*answer)

            def do_GET(self):
                self.handle_any("GET")

            def do_POST(self):
                self.handle_any("POST")

            def do_PATCH(self):
                self.handle_any("PATCH")

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def answer(self, method, path, headers, body):
        if method == "GET" and path == "/info":
            return 200, {"version": "0.11.0", "instance_flags": {},
                         "batch_ingest_config": {"use_multipart_endpoint": True, "size_limit_bytes": 20_000_000}}
        if method == "POST" and path == "/sessions":
            data = json.loads(body)
            session = self.sessions.setdefault(data["name"], {
                "id": data["id"], "name": data["name"], "extra": data.get("extra"), "tenant_id": str(uuid.uuid4()),
                "start_time": datetime.now(timezone.utc).isoformat(), "reference_dataset_id": None})
            return 200, session
        if method == "POST" and path == "/runs/multipart":
            if not self.multipart:
                return 404, {"detail": "Not Found"}
            ids = {name.split(".")[1] for name, _ in multipart_parts(headers["Content-Type"], body)}
            return self.conflict_or_accept(ids)
        if method == "POST" and path == "/runs/batch":
            return self.conflict_or_accept({run["id"] for run in json.loads(body).get("post", [])})
        if method == "POST" and path == "/feedback":
            return self.conflict_or_accept({json.loads(body)["id"]})
        if method in ("POST", "PATCH") and path.startswith("/runs"):
            return 202, {}
        return 404, {"detail": f"no route {method} {path}"}

    def conflict_or_accept(self, ids):
        if ids & self.seen_ids:
            return 409, {"detail": "already exists"}
        self.seen_ids |= ids
        return 202, {}

    # what arrived, parsed

    def bodies(self) -> list[bytes]:
        return [body for _, _, _, body in self.requests]

    def projects(self) -> list[dict]:
        return [json.loads(b) for m, p, _, b in self.requests if m == "POST" and p.split("?")[0] == "/sessions"]

    def runs(self) -> dict[str, dict]:
        """Run id -> the run as LangSmith would store it (multipart parts merged)."""
        runs: dict[str, dict] = {}
        for method, path, headers, body in self.requests:
            if method == "POST" and path == "/runs/multipart":
                for name, value in multipart_parts(headers["content-type"], body):
                    op, run_id, *field = name.split(".")
                    run = runs.setdefault(run_id, {})
                    if field:
                        run[field[0]] = value
                    else:
                        run.update(value)
            elif method == "POST" and path == "/runs/batch":
                for run in json.loads(body).get("post", []):
                    runs[run["id"]] = run
        return runs

    def feedback(self) -> list[dict]:
        return [json.loads(b) for m, p, _, b in self.requests if m == "POST" and p == "/feedback"]


def multipart_parts(content_type: str, body: bytes) -> list[tuple[str, object]]:
    message = email.parser.BytesParser().parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    assert message.is_multipart(), content_type
    return [(part.get_param("name", header="content-disposition"), json.loads(part.get_payload(decode=True)))
            for part in message.get_payload()]


@pytest.fixture
def fake_langsmith(monkeypatch):
    server = FakeLangSmith()
    monkeypatch.setenv("LANGSMITH_ENDPOINT", server.url)
    yield server
    server.close()


# ---------------------------------------------------------------- a real run directory

_BUILT: dict[str, Path] = {}


@pytest.fixture
def run_dir(pytester, tmp_path, tmp_path_factory, monkeypatch):
    """A run directory from a real 6-trial bake-off (built once, copied per test).

    The oracle's solution echoes the value of MY_API_KEY: the secret lands in a tool call and its output.
    """
    monkeypatch.setenv("MY_API_KEY", SECRET)
    monkeypatch.setenv("LANGSMITH_API_KEY", LS_KEY)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # the recording server is local, whatever the proxy
    for name in ("LANGSMITH_TRACING", "LANGSMITH_TRACING_V2", "LANGCHAIN_TRACING_V2", "LANGSMITH_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    if "run" not in _BUILT:
        pytester.makepyfile(test_tasks=TASKS)
        result = inprocess.run(pytester, "-p", "no:cacheprovider", "--models", ",".join(MODELS),
                               "--multipliers", "1,uncapped", "--hb-out", "run")
        result.stdout.fnmatch_lines(["*2 failed, 3 passed, 1 infra*"])
        keep = tmp_path_factory.mktemp("langsmith-run") / "run"
        shutil.copytree(pytester.path / "run", keep)
        _BUILT["run"] = keep
    target = tmp_path / "run"
    shutil.copytree(_BUILT["run"], target)
    return target


def records_of(run: Path) -> list[dict]:
    return results(run)


# ---------------------------------------------------------------- tests


def test_export_sends_project_traces_nested_runs_and_feedback(run_dir, fake_langsmith):
    records = records_of(run_dir)
    card = json.loads((run_dir / "harness.json").read_text())
    assert {(r["model"], r["multiplier"]): r["outcome"] for r in records} == EXPECTED
    trajectory_text = "".join(p.read_text() for p in (run_dir / "trials").glob("*.json"))
    assert SECRET in trajectory_text or "[REDACTED:MY_API_KEY]" in trajectory_text  # the secret was echoed

    result = export_run(run_dir, timeout_s=20)

    project = f"harnessbench-{card['run_id']}"
    assert result == ExportResult(project, 6, 6, None, str(run_dir), fake_langsmith.url, result.seconds)
    assert result.summary() == f"LangSmith: 6/6 trials uploaded to project {project}"

    # one project whose metadata is the harness card
    (created,) = fake_langsmith.projects()
    assert created["name"] == project
    metadata = created["extra"]["metadata"]
    assert metadata["run_id"] == card["run_id"]
    assert metadata["settings"]["models"] == MODELS and metadata["settings"]["multipliers"] == MULTIPLIERS
    assert metadata["harness"]["toolset_sha256"] == card["harness"]["toolset_sha256"]
    assert metadata["enforcement"] == card["enforcement"] and metadata["host"] == card["host"]

    # one root run per trial, named like the pytest item, with the trial's metadata and tags
    runs = fake_langsmith.runs()
    roots = {r["name"]: r for r in runs.values() if not r.get("parent_run_id")}
    assert set(roots) == {f"test_answer[{m}@{x}#1]" for m, x in EXPECTED}
    session_id = fake_langsmith.sessions[project]["id"]
    for record in records:
        root = roots[item_name(TrialRecord.from_dict(record))]
        meta = root["extra"]["metadata"]
        assert root["run_type"] == "chain" and root["trace_id"] == root["id"] and root["session_id"] == session_id
        assert {k: meta[k] for k in ("task", "model", "multiplier", "sample", "outcome", "cause")} == {
            "task": record["task_id"], "model": record["model"], "multiplier": record["multiplier"],
            "sample": 1, "outcome": record["outcome"], "cause": record["cause"]}
        assert meta["allocation"] == record["allocation"] and meta["enforcement"] == record["enforcement"]
        assert meta["peak_memory_bytes"] == record["resources"]["peak_memory_bytes"]
        assert {f"model:{record['model']}", f"multiplier:{record['multiplier']}",
                f"outcome:{record['outcome']}"} <= set(root["tags"])
        assert root["inputs"] == {"instruction": "Write 42 to a.txt."}
        assert root["outputs"]["outcome"] == record["outcome"] and root["outputs"]["cause"] == record["cause"]
        assert (root.get("error") is None) == (record["outcome"] == "passed")
        assert root["start_time"].startswith(record["started_at"][:19])

        # the agent's model and tool calls nest under the trial's root run, inside its time span
        children = [r for r in runs.values() if r.get("parent_run_id") == root["id"]]
        kinds = sorted(r["run_type"] for r in children)
        expected_calls = record["usage"]["model_calls"], record["usage"]["tool_calls"]
        assert kinds == ["llm"] * expected_calls[0] + ["tool"] * expected_calls[1]
        for run in children:
            assert run["trace_id"] == root["id"]
            assert run["dotted_order"].startswith(root["dotted_order"] + ".")
            assert root["start_time"] <= run["start_time"] <= run["end_time"] <= root["end_time"]
        ordered = sorted(children, key=lambda r: r["dotted_order"])
        if record["model"].startswith("oracle"):  # llm asks for bash, bash runs, llm answers
            assert [r["run_type"] for r in ordered] == ["llm", "tool", "llm"]
            assert ordered[0]["outputs"]["choices"][0]["message"]["tool_calls"][0]["name"] == "bash"
            assert ordered[1]["name"] == "bash" and "echo 42 > a.txt" in ordered[1]["inputs"]["command"]
            assert ordered[1]["extra"]["metadata"]["exit_code"] == (137 if record["outcome"] == "infra" else 0)
            assert ordered[2]["inputs"]["messages"][-1]["role"] == "tool"
            assert ordered[0]["extra"]["metadata"]["ls_model_name"] == record["model"]

    # feedback per trial: outcome, passed, infra_error on its root run
    feedback: dict[tuple[str, str], dict] = {}
    for item in fake_langsmith.feedback():
        feedback[(item["run_id"], item["key"])] = item
        assert item["session_id"] == session_id and item["trace_id"] == item["run_id"]
    assert len(feedback) == sum(3 + len(r["metrics"]) for r in records)
    for record in records:
        root_id = roots[item_name(TrialRecord.from_dict(record))]["id"]
        assert feedback[(root_id, "outcome")]["value"] == record["outcome"]
        assert feedback[(root_id, "passed")]["score"] == (record["outcome"] == "passed")
        assert feedback[(root_id, "infra_error")]["score"] == (record["outcome"] == "infra")
        # and each of the trial's metrics, as a score under its own name
        assert record["metrics"]["steps"] == record["usage"]["model_calls"]
        for name, value in record["metrics"].items():
            assert feedback[(root_id, name)]["score"] == value

    # the echoed secret never left the machine; the API key went only into its header
    bodies = b"".join(fake_langsmith.bodies())
    assert SECRET.encode() not in bodies and LS_KEY.encode() not in bodies
    assert b"token=[REDACTED:MY_API_KEY]" in bodies
    assert {h.get("x-api-key") for _, _, h, _ in fake_langsmith.requests} == {LS_KEY}


def test_uploading_a_run_twice_reuses_the_same_ids(run_dir, fake_langsmith):
    first = export_run(run_dir, timeout_s=20)
    ids_first = set(fake_langsmith.runs())
    feedback_first = {f["id"] for f in fake_langsmith.feedback()}
    fake_langsmith.requests.clear()

    second = export_run(run_dir, timeout_s=20)  # the server now answers 409 to every id it has

    assert first.uploaded == second.uploaded == 6 and second.ok
    assert set(fake_langsmith.runs()) == ids_first and {f["id"] for f in fake_langsmith.feedback()} == feedback_first
    assert len(fake_langsmith.sessions) == 1


def test_dead_endpoint_costs_seconds_and_upload_later_sends_every_trial(run_dir, monkeypatch):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens on this port now
    monkeypatch.setenv("LANGSMITH_ENDPOINT", f"http://127.0.0.1:{port}")

    start = time.monotonic()
    result = export_run(run_dir, timeout_s=10)
    elapsed = time.monotonic() - start

    assert elapsed < 15, f"a dead endpoint took {elapsed:.1f} s"
    assert (result.uploaded, result.total) == (0, 6)
    line = result.summary()
    assert "\n" not in line and line.startswith("LangSmith: 0/6 trials uploaded — endpoint unreachable")
    assert f"127.0.0.1:{port}" in line and str(run_dir) in line
    assert len(records_of(run_dir)) == 6  # the run directory is untouched

    server = FakeLangSmith(port)  # the endpoint comes back
    try:
        env = {**os.environ, "LANGSMITH_ENDPOINT": server.url}
        done = subprocess.run([sys.executable, "-m", "pytest_harnessbench", "upload", "--mode", "project",
                               str(run_dir)], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines() == [f"LangSmith: 6/6 trials uploaded to project {result.project}"]
        roots = [r for r in server.runs().values() if not r.get("parent_run_id")]
        assert sorted(r["name"] for r in roots) == sorted(item_name(TrialRecord.from_dict(r)) for r in records_of(run_dir))
        assert len(server.feedback()) == sum(3 + len(r["metrics"]) for r in records_of(run_dir))
        assert SECRET.encode() not in b"".join(server.bodies())
    finally:
        server.close()


def test_a_stalling_server_costs_no_more_than_the_time_limit(run_dir, monkeypatch):
    server = FakeLangSmith(stall="/runs/multipart")
    monkeypatch.setenv("LANGSMITH_ENDPOINT", server.url)
    start = time.monotonic()
    result = export_run(run_dir, timeout_s=2)
    elapsed = time.monotonic() - start
    server.server.server_close()  # no shutdown(): its handler threads are asleep (daemon threads)

    assert elapsed < 5, f"took {elapsed:.1f} s with a 2 s limit"
    assert (result.uploaded, result.total) == (0, 6)
    assert "time limit" in result.summary() and str(run_dir) in result.summary()


def test_partial_run_directory_is_exported_from_what_is_there(run_dir, fake_langsmith):
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    # the recorder died: two records missing (one of them torn mid-line), their trajectories still on disk
    (run_dir / "results.jsonl").write_text("\n".join(lines[:4]) + "\n" + lines[4][:40])
    assert len(load_run(run_dir).trials) == 6

    result = export_run(run_dir, project="my-bakeoff", timeout_s=20)

    assert result.summary() == "LangSmith: 6/6 trials uploaded to project my-bakeoff"
    assert [p["name"] for p in fake_langsmith.projects()] == ["my-bakeoff"]


def test_a_server_without_multipart_gets_the_same_runs_through_runs_batch(run_dir, monkeypatch):
    server = FakeLangSmith(multipart=False)
    monkeypatch.setenv("LANGSMITH_ENDPOINT", server.url)
    try:
        result = export_run(run_dir, timeout_s=20)
        paths = [p for m, p, _, _ in server.requests if m == "POST"]
        runs = server.runs()
    finally:
        server.close()
    assert result.ok and result.uploaded == 6
    assert "/runs/batch" in paths
    roots = {r["id"] for r in runs.values() if not r.get("parent_run_id")}
    children = [r for r in runs.values() if r.get("parent_run_id")]
    assert len(roots) == 6 and children and all(r["parent_run_id"] in roots for r in children)


def test_long_trajectories_do_not_repeat_every_tool_output_in_every_model_call(tmp_path):
    run = tmp_path / "run"
    (run / "trials").mkdir(parents=True)
    record = {"run_id": "r1", "trial_id": "t1", "task_id": "t.py::test_long", "model": "anthropic:claude-x",
              "multiplier": "1x", "sample": 1, "outcome": "passed", "cause": None, "message": "",
              "started_at": "2026-01-01T00:00:00.000+00:00", "finished_at": "2026-01-01T00:01:00.000+00:00",
              "timing": {"provision_s": 1.0, "total_s": 60.0}, "usage": {"model_calls": 21, "tool_calls": 20}}
    messages = [{"type": "human", "data": {"content": "Do it."}}]
    calls = []
    for i in range(20):
        args = {"command": f"step {i}"}
        messages.append({"type": "ai", "data": {"content": "", "tool_calls": [
            {"id": f"c{i}", "name": "bash", "args": args, "type": "tool_call"}]}})
        output = f"out{i} " + "x" * 16_000
        messages.append({"type": "tool", "data": {"content": output, "tool_call_id": f"c{i}", "name": "bash"}})
        calls.append({"name": "bash", "args": args, "output": output, "duration_s": 1.0, "exit_code": 0,
                      "timed_out": False})
    messages.append({"type": "ai", "data": {"content": "done"}})
    (run / "results.jsonl").write_text(json.dumps(record) + "\n")
    (run / "trials" / "t1.json").write_text(json.dumps({"record": record, "trajectories": [
        {"model": record["model"], "instruction": "Do it.", "messages": messages, "tool_calls": calls,
         "usage": record["usage"], "stop_reason": "completed", "duration_s": 50.0, "error": None}]}))

    (trial,) = load_run(run).trials
    root, children = trial_runs("r1", "p", trial, Redactor())

    llm = [c for c in children if c["run_type"] == "llm"]
    tools = [c for c in children if c["run_type"] == "tool"]
    assert len(llm) == 21 and len(tools) == 20
    assert [t["outputs"]["output"].split()[0] for t in tools] == [f"out{i}" for i in range(20)]  # each output once
    last_inputs = llm[-1]["inputs"]["messages"]
    assert len(last_inputs) == 41 and last_inputs[0]["content"] == "Do it."
    assert last_inputs[-1]["content"].startswith("out19 ") and len(last_inputs[-1]["content"]) > 16_000
    assert len(json.dumps(last_inputs)) < 60_000  # older outputs elided, not 20 x 16 KB
    # reconstructed timeline: after provisioning, in order, inside the trial
    starts = [c["start_time"] for c in sorted(children, key=lambda c: c["dotted_order"])]
    assert starts == sorted(starts) and (starts[0] - root["start_time"]).total_seconds() == 1.0
    assert all(c["end_time"] <= root["end_time"] for c in children)


def test_every_attempt_of_a_retried_trial_is_its_own_trace(tmp_path):
    run = tmp_path / "run"
    (run / "trials").mkdir(parents=True)
    base = {"run_id": "r2", "trial_id": "t1", "task_id": "t.py::test_x[7]", "model": "nop", "multiplier": "1x",
            "sample": 1, "cause": None, "message": "", "timing": {"total_s": 1.0}, "usage": {}}
    first = {**base, "outcome": "infra", "cause": "oom", "attempts": 1, "started_at": "2026-01-01T00:00:00+00:00"}
    second = {**base, "outcome": "passed", "attempts": 2, "started_at": "2026-01-01T00:01:00+00:00"}
    (run / "results.jsonl").write_text(json.dumps(first) + "\n" + json.dumps(second) + "\n")
    messages = [{"type": "human", "data": {"content": "x"}}, {"type": "ai", "data": {"content": "ok"}}]

    def trajectory(record):
        return json.dumps({"record": record, "trajectories": [
            {"model": "nop", "instruction": "x", "messages": messages, "tool_calls": [], "usage": {"model_calls": 1},
             "stop_reason": "completed", "duration_s": 0.1}]})

    (run / "trials" / "t1.json").write_text(trajectory(second))  # the layout before attempt files: the last only
    trials = load_run(run).trials
    runs = [trial_runs("r2", "p", t, Redactor()) for t in trials]
    assert [t.key for t in trials] == ["t1", "t1~2"]
    assert len({root["id"] for root, _ in runs}) == 2
    assert [len(children) for _, children in runs] == [0, 1]  # the trajectory file belongs to attempt 2
    assert {root["name"] for root, _ in runs} == {"test_x[nop@1x#1-7]"}  # as pytest names the item

    (run / "trials" / "t1.json").write_text(trajectory(first))  # today's layout: one file per attempt
    (run / "trials" / "t1~2.json").write_text(trajectory(second))
    runs = [trial_runs("r2", "p", t, Redactor()) for t in load_run(run).trials]
    assert [len(children) for _, children in runs] == [1, 1]


def test_upload_command_errors_are_one_line(tmp_path):
    for args, expected in ([[str(tmp_path / "missing")], "no such directory"],
                           [[str(tmp_path)], "is not a run directory"],
                           [[], "the following arguments are required: RUN_DIR"]):
        done = subprocess.run([sys.executable, "-m", "pytest_harnessbench", "upload", *args],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2
        assert expected in done.stderr.strip().splitlines()[-1]


def test_enabled_and_endpoint_follow_the_environment():
    assert not enabled({})
    assert enabled({"LANGSMITH_API_KEY": "k"})
    assert enabled({"LANGSMITH_TRACING": "true"})
    assert enabled({"LANGCHAIN_TRACING_V2": "1"})
    assert not enabled({"LANGSMITH_API_KEY": "k", "LANGSMITH_TRACING": "false"})  # a global key, tracing off
    assert endpoint({}) == "https://api.smith.langchain.com"
    assert endpoint({"LANGSMITH_ENDPOINT": "https://ls.example.com/api/v1/"}) == "https://ls.example.com/api/v1"


def test_hosted_endpoint_without_a_key_fails_fast_without_contacting_it(run_dir):
    start = time.monotonic()
    result = export_run(run_dir, env={"LANGSMITH_TRACING": "true"})  # no key, no endpoint: the hosted one
    assert time.monotonic() - start < 2
    assert result.uploaded == 0 and "LANGSMITH_API_KEY is not set" in result.summary()


def test_summary_lines():
    assert ExportResult("p", 3, 5, "2 failed (HTTP 500)", "/r").summary() == \
        "LangSmith: 3/5 trials uploaded to project p — 2 failed (HTTP 500); kept in /r " \
        "(send later: python -m pytest_harnessbench upload /r)"
    assert ExportResult("p", 0, 0, None, "/r").summary() == "LangSmith: 0/0 trials uploaded to project p"


# ---------------------------------------------------------------- through the plugin, at session end
# In a subprocess (e2e): the LangSmith SDK reads its environment once per process and keeps background
# threads that can hold a process's exit, which is part of what these tests measure.


def _bake_off(pytester, tmp_path, monkeypatch, out, *extra):
    monkeypatch.setenv("MY_API_KEY", SECRET)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    pytester.makepyfile(test_tasks=TASKS)
    start = time.monotonic()
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--models", ",".join(MODELS),
                                           "--multipliers", "1,uncapped", "--hb-out", out, *extra)
    return result, time.monotonic() - start


@pytest.mark.e2e
def test_the_plugin_uploads_at_session_end_and_keeps_secrets_local(pytester, tmp_path, monkeypatch, fake_langsmith):
    monkeypatch.setenv("LANGSMITH_API_KEY", LS_KEY)
    result, _ = _bake_off(pytester, tmp_path, monkeypatch, "run", "--hb-langsmith-project", "bake-off-1")
    result.stdout.fnmatch_lines(["*LangSmith: 6/6 trials uploaded to project bake-off-1*"])
    assert [p["name"] for p in fake_langsmith.projects()] == ["bake-off-1"]
    roots = [r for r in fake_langsmith.runs().values() if not r.get("parent_run_id")]
    assert len(roots) == 6
    local = "".join(p.read_text() for p in (pytester.path / "run").rglob("*.json*"))
    assert SECRET not in local and "[REDACTED:MY_API_KEY]" in local  # redacted in the run directory too


@pytest.mark.e2e
def test_a_dead_endpoint_costs_about_nothing_and_is_reported_in_one_line(pytester, tmp_path, monkeypatch):
    for name in ("LANGSMITH_API_KEY", "LANGSMITH_TRACING", "LANGSMITH_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    _, without = _bake_off(pytester, tmp_path, monkeypatch, "plain")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    monkeypatch.setenv("LANGSMITH_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("LANGSMITH_API_KEY", LS_KEY)
    monkeypatch.setenv("LANGSMITH_TRACING", "true")  # LangChain's live tracing must not block either
    result, with_dead = _bake_off(pytester, tmp_path, monkeypatch, "dead")
    result.stdout.fnmatch_lines(["LangSmith: 0/6 trials uploaded — endpoint unreachable*kept in*dead*"])
    assert with_dead < without + 8  # generous: the bound is about one second of import and probe
    assert len((pytester.path / "dead" / "results.jsonl").read_text().splitlines()) == 6


def test_a_missing_metric_is_feedback_without_a_score_and_with_its_cause():
    record = {"outcome": "passed", "cause": None, "message": "", "metrics": {"steps": 2, "trajectory_match": 0.0},
              "metrics_missing": {"judge": "judge openai:j failed: OpenAIAPIError 503"}}
    feedback = dict(trial_feedback(TrialRecord.from_dict(record), Redactor({})))
    assert list(feedback) == ["outcome", "passed", "infra_error", "steps", "trajectory_match", "judge"]
    assert feedback["steps"] == {"score": 2} and feedback["trajectory_match"] == {"score": 0.0}
    assert feedback["judge"] == {"comment": "missing: judge openai:j failed: OpenAIAPIError 503"}
