"""Send a run directory to LangSmith: one project per run, one trace per trial.

Reads only the run directory (``harness.json``, ``results.jsonl``,
``trials/<trial_id>.json``), so the same code serves the end of a session and a
later ``python -m pytest_harnessbench upload RUN_DIR``.

What arrives in LangSmith:

- a project (``harnessbench-<run_id>`` unless named) whose metadata is the harness card;
- per trial a root run (run_type ``chain``) named like the pytest item,
  ``test_x[model@mult#sample]``, with the trial's metadata and tags, and under it
  the agent's model calls (``llm``) and tool calls (``tool``) as child runs. The
  trajectory files keep durations but not timestamps, so child start/end times
  are reconstructed: the agent starts after queueing and provisioning, tool calls
  take their recorded durations and the model calls share the rest;
- feedback on every root run: ``outcome`` (value), ``passed`` and ``infra_error``
  (scores 1/0), and one score per trial metric (steps, trajectory_match, judge, ...;
  a missing metric with its cause as the comment).

Run and feedback ids are uuid5 of the run id and trial id (and attempt), so
uploading a run twice sends the same ids again and creates no duplicates (the
server answers 409, which counts as uploaded).

Never blocks and never raises: the whole export runs in daemon threads with a
total time limit, the endpoint is probed first with a short timeout (a dead
endpoint costs about a second), the SDK client is built without background
batching or urllib3 retries, and failures end up counted in
:class:`ExportResult`. Every string sent goes through
:class:`~pytest_harnessbench.redact.Redactor`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from ..outcomes import INFRA, PASSED
from ..records import TrialRecord
from ..redact import Redactor

DEFAULT_ENDPOINT = "https://api.smith.langchain.com"
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://pypi.org/project/pytest-harnessbench/#langsmith")
PROBE_TIMEOUT_S = 2.0  # GET /info before anything else: a dead endpoint costs at most this
CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 10.0
WORKERS = 8  # trials sent at once (each: one multipart request, a feedback request per outcome key and metric)
HISTORY_BUDGET = 32_000  # characters of earlier message content repeated in each model call's inputs
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_SDK_LOGGERS = ("langsmith", "langsmith.client", "langsmith.utils", "langsmith._internal._operations")
_BUILTIN_MODELS = {"oracle", "nop", "replay"}


def _env_get(env: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = env.get(name)
        if value:
            return value
    return None


def enabled(env: Mapping[str, str] | None = None) -> bool:
    """LangSmith is configured: LANGSMITH_API_KEY is set or LANGSMITH_TRACING is true-ish.

    An explicit false-ish LANGSMITH_TRACING (``false``, ``0``, ...) turns it off even
    with a key: that is how users keep a global key without tracing. The plugin's
    ``--hb-langsmith`` flag forces the export regardless.
    """
    env = os.environ if env is None else env
    tracing = _env_get(env, "LANGSMITH_TRACING", "LANGSMITH_TRACING_V2", "LANGCHAIN_TRACING_V2")
    if tracing is not None and tracing.strip().lower() in _FALSE:
        return False
    if tracing is not None and tracing.strip().lower() in _TRUE:
        return True
    return _env_get(env, "LANGSMITH_API_KEY", "LANGCHAIN_API_KEY") is not None


def endpoint(env: Mapping[str, str] | None = None) -> str:
    """LANGSMITH_ENDPOINT (a self-hosted server) or the hosted default."""
    env = os.environ if env is None else env
    return (_env_get(env, "LANGSMITH_ENDPOINT", "LANGCHAIN_ENDPOINT") or DEFAULT_ENDPOINT).strip().rstrip("/")


def project_name(run_id: str, project: str | None = None) -> str:
    return project or f"harnessbench-{run_id}"


def make_client(env: Mapping[str, str] | None = None, *, redactor: Redactor | None = None,
                timeout_s: float = READ_TIMEOUT_S, on_error=None):
    """A ``langsmith.Client`` that cannot stall a session: synchronous sends (no
    background batching thread, nothing to flush at exit), no urllib3 retries,
    short connect/read timeouts, every run kept (no sampling), no runtime info of
    the uploading machine (the harness card describes the run's machine)."""
    from langsmith import Client
    from urllib3.util.retry import Retry

    env = os.environ if env is None else env
    connect = max(0.2, min(CONNECT_TIMEOUT_S, timeout_s))
    read = max(0.5, min(READ_TIMEOUT_S, timeout_s))
    return Client(
        api_url=endpoint(env),
        api_key=_env_get(env, "LANGSMITH_API_KEY", "LANGCHAIN_API_KEY"),
        retry_config=Retry(total=0, raise_on_redirect=False, raise_on_status=False),
        timeout_ms=(int(connect * 1000), int(read * 1000)),
        auto_batch_tracing=False,
        anonymizer=redactor.redact if redactor else None,
        omit_traced_runtime_info=True,
        tracing_sampling_rate=1.0,
        disable_prompt_cache=True,
        tracing_error_callback=on_error,
    )


# ---------------------------------------------------------------- the result


@dataclass
class ExportResult:
    project: str
    uploaded: int
    total: int
    error: str | None = None
    run_dir: str = ""
    endpoint: str = ""
    seconds: float = 0.0
    kind: str = "project"  # what ``project`` names: a "project", or a "dataset" (its experiments, see experiments.py)

    @property
    def ok(self) -> bool:
        return self.error is None and self.uploaded == self.total

    def summary(self) -> str:
        """One line for the terminal summary."""
        head = f"LangSmith: {self.uploaded}/{self.total} trials uploaded"
        if self.ok:
            return f"{head} to {self.kind} {self.project}"
        where = f"to {self.kind} {self.project} " if self.uploaded else ""
        kept = f"kept in {self.run_dir}" if self.run_dir else "kept locally"
        retry = f" (send later: python -m pytest_harnessbench upload {self.run_dir})" if self.run_dir else ""
        return f"{head} {where}— {self.error or 'incomplete'}; {kept}{retry}"


# ---------------------------------------------------------------- reading a run directory


@dataclass
class _TrialData:
    key: str  # unique within the run: the trial id, with ~N for a repeated attempt
    record: TrialRecord
    trajectories: list[dict] = field(default_factory=list)


@dataclass
class _RunData:
    run_id: str
    card: dict
    trials: list[_TrialData]


def load_run(run_dir: Path) -> _RunData:
    """The card, records and trajectories of a finished or partial run directory.

    A torn last line of results.jsonl is skipped; a trajectory file whose record is
    missing from results.jsonl (the recording process died) still counts as a trial.
    Raises FileNotFoundError if ``run_dir`` holds neither results nor trajectories.
    """
    from ..store import RESULTS, TRIALS, RunDir, trajectory_key

    run = RunDir(run_dir)
    if not run.is_run_dir():
        raise FileNotFoundError(f"{run_dir} is not a harnessbench run directory (no {RESULTS}, no {TRIALS}/)")
    card = run.card() or {}
    docs = run.trajectory_documents()
    in_files = run.trajectory_records(docs)
    records = run.records()
    seen = {(r.trial_id, r.started_at) for r in records}
    records += [r for r in in_files.values() if (r.trial_id, r.started_at) not in seen]
    run_id = card.get("run_id") or next((r.run_id for r in records if r.run_id), None) or run.path.name
    trials, used = [], set()
    for record in records:
        key = file_key = trajectory_key(record)  # a retry or resumed attempt: a trace of its own
        n = 1
        while key in used:
            n += 1
            key = f"{file_key}.{n}"
        used.add(key)
        # attach the trajectory to the record it belongs to (an older layout kept the last attempt in TRIAL_ID.json)
        doc_key = file_key if file_key in docs else record.trial_id
        doc = docs.get(doc_key)
        same_attempt = doc_key in in_files and in_files[doc_key].started_at == record.started_at
        trajectories = [t for t in doc.get("trajectories", []) if isinstance(t, dict)] if same_attempt else []
        trials.append(_TrialData(key, record, trajectories))
    return _RunData(str(run_id), card, trials)


# ---------------------------------------------------------------- building runs


def trial_feedback(record: TrialRecord, redactor: Redactor) -> list[tuple[str, dict]]:
    """(key, create_feedback arguments) for one trial: its outcome, then each metric.

    ``outcome`` (value), ``passed`` and ``infra_error`` (1/0) carry the outcome
    with its cause as the comment; every metric is a score under its own name; a
    metric that is missing (a judge that failed) is sent with no score and its
    cause as the comment, never as a 0.
    """
    outcome = record.outcome
    comment = redactor.redact_text(f"{outcome}/{record.cause}: {record.message}".rstrip(": "))
    feedback = [("outcome", {"value": outcome, "comment": comment}),
                ("passed", {"score": int(outcome == PASSED), "comment": comment}),
                ("infra_error", {"score": int(outcome == INFRA), "comment": comment})]
    feedback += [(name, {"score": value}) for name, value in record.metrics.items()]
    feedback += [(name, {"comment": redactor.redact_text(f"missing: {cause}")})
                 for name, cause in record.metrics_missing.items()]
    return feedback


def _uuid(run_id: str, *parts: object) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, "/".join([run_id, *map(str, parts)]))


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _dotted(start: datetime, run_id: uuid.UUID) -> str:
    return start.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ") + str(run_id)


def item_name(record: TrialRecord) -> str:
    """The pytest item name: ``test_x[model@mult#sample]`` (``test_x[model@mult#sample-own_ids]``
    for a task with parameters of its own)."""
    node, _, own = str(record.task_id or record.trial_id or "trial").partition("[")
    case = f"{record.model}@{record.multiplier}#{record.sample}"
    own = own.removesuffix("]")
    return f"{node.split('::')[-1]}[{case}-{own}]" if own else f"{node.split('::')[-1]}[{case}]"


def _provider_model(model: str) -> tuple[str, str]:
    kind, _, rest = model.partition(":")
    if kind in _BUILTIN_MODELS:
        return "harnessbench", model
    return (kind, rest) if rest else ("unknown", model)


def _message(entry: dict) -> dict:
    """A langchain ``messages_to_dict`` entry as a role/content message LangSmith renders."""
    data = entry.get("data") if isinstance(entry.get("data"), dict) else entry
    kind = entry.get("type") or data.get("type")
    role = {"human": "user", "ai": "assistant", "tool": "tool", "system": "system"}.get(kind, str(kind))
    message: dict[str, Any] = {"role": role, "content": data.get("content", "")}
    if kind == "ai" and data.get("tool_calls"):
        message["tool_calls"] = [{"id": c.get("id"), "name": c.get("name"), "args": c.get("args", {}),
                                  "type": "tool_call"} for c in data["tool_calls"]]
    if kind == "tool":
        message["tool_call_id"] = data.get("tool_call_id")
        if data.get("name"):
            message["name"] = data["name"]
    return message


def _history(entries: list[dict], budget: int = HISTORY_BUDGET) -> list[dict]:
    """The messages a model call saw. The instruction and everything after the previous
    model reply stay whole; if the rest is longer than ``budget``, the oldest long contents
    are elided (they are in the earlier runs of the same trace), so a 30-step trajectory
    does not upload its tool outputs thirty times over."""
    messages = [_message(m) for m in entries]
    sizes = [len(m["content"]) if isinstance(m["content"], str) else len(json.dumps(m["content"]))
             for m in messages]
    total = sum(sizes)
    last_reply = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=0)
    for i in range(1, last_reply + 1):
        if total <= budget:
            break
        if sizes[i] > 200:
            elided = f"[{sizes[i]} characters elided: see the earlier runs of this trace]"
            messages[i] = {**messages[i], "content": elided}
            total -= sizes[i]
    return messages


class _Clock:
    """Hands out start times that never go backwards and never repeat (sibling order)."""

    def __init__(self, start: datetime, end: datetime):
        self.now, self.end = start, end

    def span(self, seconds: float) -> tuple[datetime, datetime]:
        start = self.now
        end = max(start, min(start + timedelta(seconds=max(0.0, seconds)), self.end))
        self.now = max(end, start + timedelta(microseconds=1))
        return start, end


def trial_runs(run_id: str, project: str, trial: _TrialData, redactor: Redactor,
               session_id: str | None = None, id_space: str | None = None) -> tuple[dict, list[dict]]:
    """The root run and its child runs for one trial, as multipart-ingest dicts.

    Run ids are uuid5 of ``id_space`` (default the run id) and the trial's key: the
    experiment upload uses an id space of its own, so a run can be sent both ways."""
    id_space = id_space or run_id
    record = trial.record
    timing = dataclasses.asdict(record.timing)
    resources = record.resources
    total_s = float(record.timing.total_s or 0.0)
    start = _parse_time(record.started_at)
    end = _parse_time(record.finished_at)
    if start is None:
        start = (end - timedelta(seconds=total_s)) if end else datetime.now(timezone.utc)
    if end is None or end < start:
        end = start + timedelta(seconds=total_s)
    root_id = _uuid(id_space, trial.key)
    root_dotted = _dotted(start, root_id)
    model = record.model
    outcome, cause = record.outcome, record.cause
    instructions = [t.get("instruction", "") for t in trial.trajectories]
    last = trial.trajectories[-1] if trial.trajectories else {}
    final = next((m for m in reversed(last.get("messages") or []) if m.get("type") == "ai"), None)
    common = {"session_name": project, "trace_id": str(root_id)}
    if session_id:
        common["session_id"] = session_id
    metadata = {
        "run_id": run_id, "trial_id": record.trial_id, "task": record.task_id, "model": model,
        "multiplier": record.multiplier, "sample": record.sample, "outcome": outcome, "cause": cause,
        "allocation": record.allocation, "peak_memory_bytes": resources.get("peak_memory_bytes"),
        "oom_kills": resources.get("oom_kills"), "cpu_seconds": resources.get("cpu_seconds"),
        "enforcement": record.enforcement, "backend": record.backend, "timing": timing,
        "usage": record.usage, "attempts": record.attempts, "worker": record.worker,
        "stop_reason": last.get("stop_reason"), "timeline": "reconstructed from recorded durations",
    }
    tags = ["harnessbench", f"model:{model}", f"multiplier:{record.multiplier}", f"outcome:{outcome}"]
    if cause:
        tags.append(f"cause:{cause}")
    root = {
        **common, "id": str(root_id), "dotted_order": root_dotted, "name": item_name(record), "run_type": "chain",
        "start_time": start, "end_time": end, "tags": tags, "extra": {"metadata": metadata},
        "inputs": ({"instruction": instructions[0]} if len(instructions) == 1 else {"instructions": instructions}),
        "outputs": {"outcome": outcome, "cause": cause, "message": record.message,
                    "final_answer": _message(final)["content"] if final else None},
        "error": None if outcome == PASSED else f"{outcome}/{cause}: {record.message}".rstrip(": "),
    }
    provider, model_name = _provider_model(model)
    agent_start = start + timedelta(seconds=float(timing.get("queued_s") or 0) + float(timing.get("provision_s") or 0))
    clock = _Clock(agent_start, end)
    children: list[dict] = []

    def child(kind: str, index: str, name: str, seconds: float, **fields: Any) -> None:
        run_uuid = _uuid(id_space, trial.key, kind, index)
        begin, finish = clock.span(seconds)
        children.append({**common, "id": str(run_uuid), "parent_run_id": str(root_id), "name": name,
                         "run_type": kind, "dotted_order": f"{root_dotted}.{_dotted(begin, run_uuid)}",
                         "start_time": begin, "end_time": finish, **fields})

    for t_index, trajectory in enumerate(trial.trajectories):
        messages = [m for m in trajectory.get("messages") or [] if isinstance(m, dict)]
        calls = [c for c in trajectory.get("tool_calls") or [] if isinstance(c, dict)]
        ai_positions = [i for i, m in enumerate(messages) if m.get("type") == "ai"]
        model_calls = (trajectory.get("usage") or {}).get("model_calls", len(ai_positions))
        if trajectory.get("stop_reason") == "step_limit" and ai_positions and len(ai_positions) > model_calls:
            ai_positions = ai_positions[:-1]  # the step-limit notice is not a model call
        tool_s = sum(float(c.get("duration_s") or 0.0) for c in calls)
        llm_s = max(0.0, float(trajectory.get("duration_s") or 0.0) - tool_s) / max(1, len(ai_positions))
        tool_messages = {m["data"].get("tool_call_id"): m for m in messages
                         if m.get("type") == "tool" and isinstance(m.get("data"), dict)}
        unused = list(range(len(calls)))
        for n, position in enumerate(ai_positions):
            data = messages[position].get("data") or {}
            usage = data.get("usage_metadata") or {}
            out = _message(messages[position])
            child("llm", f"{t_index}/{n}", model, llm_s,
                  inputs={"messages": _history(messages[:position])},
                  outputs={"choices": [{"message": out}], "usage_metadata": usage or None},
                  extra={"metadata": {"ls_provider": provider, "ls_model_name": model_name, "trajectory": t_index,
                                      "step": n + 1}})
            for request in data.get("tool_calls") or []:
                match = next((i for i in unused if calls[i].get("name") == request.get("name")
                              and calls[i].get("args") == request.get("args")), None)
                call = calls[unused.pop(unused.index(match))] if match is not None else {}
                reply = tool_messages.get(request.get("id"), {}).get("data", {})
                output = call.get("output", reply.get("content", ""))
                timed_out = bool(call.get("timed_out"))
                child("tool", f"{t_index}/{n}/{request.get('id')}", request.get("name") or "tool",
                      float(call.get("duration_s") or 0.0), inputs=request.get("args") or {},
                      outputs={"output": output}, error="timed out" if timed_out else None,
                      extra={"metadata": {"exit_code": call.get("exit_code"), "timed_out": timed_out,
                                          "duration_s": call.get("duration_s"), "trajectory": t_index}})
        for i in unused:  # recorded but never answered (the loop was cut short)
            call = calls[i]
            child("tool", f"{t_index}/extra/{i}", call.get("name") or "tool", float(call.get("duration_s") or 0.0),
                  inputs=call.get("args") or {}, outputs={"output": call.get("output", "")},
                  error="timed out" if call.get("timed_out") else None,
                  extra={"metadata": {"exit_code": call.get("exit_code"), "timed_out": bool(call.get("timed_out")),
                                      "trajectory": t_index}})
    if children:
        root["end_time"] = max(end, children[-1]["end_time"])
    redact = redactor.redact
    for run in (root, *children):
        for key in ("inputs", "outputs", "extra", "error", "name", "tags"):
            if run.get(key) is not None:
                run[key] = redact(run[key])
    return root, children


# ---------------------------------------------------------------- sending


def _short(exc: BaseException | str, limit: int = 160) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_unreachable(exc: BaseException) -> bool:
    import requests
    from langsmith import utils as ls_utils

    return isinstance(exc, (ls_utils.LangSmithConnectionError, ls_utils.LangSmithRequestTimeout,
                            requests.ConnectionError, requests.Timeout))


def _status(exc: BaseException) -> str | None:
    from langsmith import utils as ls_utils

    for cls, text in ((ls_utils.LangSmithAuthError, "authentication failed (HTTP 401): check LANGSMITH_API_KEY"),
                      (ls_utils.LangSmithRateLimitError, "rate limited (HTTP 429)")):
        if isinstance(exc, cls):
            return text
    return None


class _Quiet(logging.Filter):
    """Drops the SDK's log records from the export's own threads (failures are
    reported once, in the summary) and remembers the first one."""

    def __init__(self):
        super().__init__()
        self.threads: set[int] = set()
        self.first: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread in self.threads:
            if self.first is None and record.levelno >= logging.WARNING:
                self.first = _short(record.getMessage())
            return False
        return True


class _Export:
    def __init__(self, run: _RunData, project: str, timeout_s: float, client, env: Mapping[str, str],
                 redactor: Redactor):
        self.run, self.project, self.timeout_s, self.env, self.redactor = run, project, timeout_s, env, redactor
        self.client = client
        self.own_client = client is None
        self.deadline = time.monotonic() + timeout_s
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.uploaded = 0
        self.timed_out = False
        self.error: str | None = None
        self.failures: list[str] = []
        self.local = threading.local()
        self.quiet = _Quiet()
        self.restore_callback: tuple | None = None

    # errors the SDK swallows (multipart sends) come back through this callback
    def on_error(self, exc: Exception) -> None:
        errors = getattr(self.local, "errors", None)
        if errors is not None:
            errors.append(exc)

    def fail(self, message: str, *, fatal: bool = False) -> None:
        with self.lock:
            if fatal and self.error is None:
                self.error = message
                self.stop.set()
            else:
                self.failures.append(message)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run_all(self) -> None:
        self.quiet.threads.add(threading.get_ident())
        for name in _SDK_LOGGERS:
            logging.getLogger(name).addFilter(self.quiet)
        try:
            self._run()
        except Exception as exc:  # never let the export break the session
            self.fail(f"export failed: {type(exc).__name__}: {_short(exc)}", fatal=True)
        finally:
            if self.own_client and self.client is not None:
                try:
                    self.client.close(timeout=0)
                except Exception:
                    pass
            elif self.restore_callback is not None:
                setattr(self.client, "_tracing_error_callback", self.restore_callback[0])
            for name in _SDK_LOGGERS:
                logging.getLogger(name).removeFilter(self.quiet)

    def _run(self) -> None:
        url = endpoint(self.env)
        if self.own_client:
            hosted = url.startswith(DEFAULT_ENDPOINT) or url.endswith(".smith.langchain.com")
            if hosted and not _env_get(self.env, "LANGSMITH_API_KEY", "LANGCHAIN_API_KEY"):
                self.fail(f"LANGSMITH_API_KEY is not set ({url} needs one)", fatal=True)
                return
            try:
                self.client = make_client(self.env, redactor=self.redactor, timeout_s=self.timeout_s,
                                          on_error=self.on_error)
            except Exception as exc:
                self.fail(f"LangSmith client not configured: {_short(exc)}", fatal=True)
                return
        else:  # a caller's client: chain our callback onto its own, to see swallowed send errors
            previous = getattr(self.client, "_tracing_error_callback", None)

            def chained(exc: Exception, previous=previous) -> None:
                self.on_error(exc)
                if previous is not None:
                    previous(exc)

            if hasattr(self.client, "_tracing_error_callback"):  # restored when the export ends
                self.restore_callback = (previous,)
                self.client._tracing_error_callback = chained
            url = getattr(self.client, "api_url", url)
        probe = max(0.2, min(PROBE_TIMEOUT_S, self.left()))
        try:
            self.client.request_with_retries("GET", "/info", stop_after_attempt=1, timeout=(probe, probe))
        except Exception as exc:
            if _is_unreachable(exc):
                self.fail(f"endpoint unreachable ({url})", fatal=True)
            else:
                self.fail(f"endpoint {url} did not answer GET /info: {_short(exc)} — is LANGSMITH_ENDPOINT right?",
                          fatal=True)
            return
        _ = self.client.info  # fetched (and cached by the client) once here, not by every worker
        card = self.redactor.redact(self.run.card)
        models = ", ".join((card.get("settings") or {}).get("models") or [])
        try:
            session = self.client.create_project(
                self.project, upsert=True, metadata=card,
                description=f"pytest-harnessbench run {self.run.run_id}" + (f": {models}" if models else ""))
            session_id = str(session.id)
        except Exception as exc:
            reason = _status(exc) or ("endpoint unreachable (" + url + ")" if _is_unreachable(exc)
                                      else f"could not create project {self.project}: {_short(exc)}")
            self.fail(reason, fatal=True)
            return
        work: queue.SimpleQueue = queue.SimpleQueue()
        for trial in self.run.trials:
            work.put(trial)
        workers = [threading.Thread(target=self._worker, args=(work, session_id), daemon=True,
                                    name=f"harnessbench-langsmith-{i}")
                   for i in range(min(WORKERS, len(self.run.trials)))]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if not self.own_client and getattr(self.client, "tracing_queue", None) is not None:
            self.client.flush(timeout=max(0.0, self.left()))  # a caller's batching client: bounded

    def _worker(self, work: queue.SimpleQueue, session_id: str) -> None:
        self.quiet.threads.add(threading.get_ident())
        while not self.stop.is_set():
            try:
                trial = work.get_nowait()
            except queue.Empty:
                return
            if self.left() <= 0:
                self.timed_out = True
                return
            try:
                ok = self._send(trial, session_id)
            except Exception as exc:
                if _is_unreachable(exc):
                    self.fail(f"endpoint stopped answering ({_short(exc, 80)})", fatal=True)
                    return
                self.fail(_status(exc) or f"{trial.key}: {_short(exc)}")
                continue
            if ok:
                with self.lock:
                    self.uploaded += 1

    def _send(self, trial: _TrialData, session_id: str) -> bool:
        from langsmith import utils as ls_utils

        root, children = trial_runs(self.run.run_id, self.project, trial, self.redactor, session_id)
        root_id, start_time = root["id"], root["start_time"]  # the SDK transforms the dicts in place
        self.local.errors = []
        try:
            self.client.multipart_ingest(create=[root, *children])
        finally:
            errors, self.local.errors = self.local.errors, None
        if errors:
            if any(_is_unreachable(e) for e in errors):
                raise errors[0]
            self.fail(_status(errors[0]) or f"{trial.key}: runs not accepted: {_short(errors[0])}")
            return False
        for key, value in trial_feedback(trial.record, self.redactor):
            if self.stop.is_set() or self.left() <= 0:
                self.timed_out = self.timed_out or self.left() <= 0
                return False
            try:
                self.client.create_feedback(
                    run_id=root_id, trace_id=root_id, key=key, session_id=session_id,
                    feedback_id=_uuid(self.run.run_id, trial.key, "feedback", key), start_time=start_time,
                    source_info={"source": "pytest-harnessbench"}, stop_after_attempt=1, **value)
            except ls_utils.LangSmithConflictError:
                pass  # already there: an earlier upload of the same run
        return True

    def result(self, run_dir: Path, started: float, finished: bool) -> ExportResult:
        with self.lock:
            uploaded, error, failures = self.uploaded, self.error, list(self.failures)
        total = len(self.run.trials)
        if error is None and uploaded < total:
            if not finished or self.timed_out:
                error = f"stopped at the {self.timeout_s:g} s time limit"
            else:
                detail = failures[0] if failures else self.quiet.first
                error = f"{total - uploaded} failed" + (f" ({detail})" if detail else "")
        return ExportResult(self.project, uploaded, total, error, str(run_dir), endpoint(self.env)
                            if self.own_client else str(getattr(self.client, "api_url", "")),
                            round(time.monotonic() - started, 3))


def export_run(run_dir: Path, *, project: str | None = None, timeout_s: float = 10.0, client=None,
               env: Mapping[str, str] | None = None) -> ExportResult:
    """Upload a finished or partial run directory to LangSmith; never raises, never
    takes much longer than ``timeout_s`` in total.

    ``client``: a ``langsmith.Client`` to use instead of one built from the
    environment (prefer :func:`make_client`: a client with background batching
    would leave feedback in its queue). ``env`` defaults to ``os.environ`` and
    supplies LANGSMITH_ENDPOINT / LANGSMITH_API_KEY and the secrets to redact.
    """
    started = time.monotonic()
    run_dir = Path(run_dir)
    env = os.environ if env is None else env
    run = load_or_explain(run_dir, env, project or "", "project")
    if isinstance(run, ExportResult):
        return run
    name = project_name(run.run_id, project)
    if not run.trials:
        return ExportResult(name, 0, 0, None, str(run_dir), endpoint(env))
    job = _Export(run, name, timeout_s, client, env, Redactor.from_environ(env))
    finished = run_until(job.run_all, job.deadline, job.stop)
    return job.result(run_dir, started, finished)


def load_or_explain(run_dir: Path, env: Mapping[str, str], name: str, kind: str) -> _RunData | ExportResult:
    """The run directory's trials, or the result of an upload that could not read them."""
    try:
        return load_run(run_dir)
    except (OSError, ValueError) as exc:
        return ExportResult(name, 0, 0, _short(exc), str(run_dir), endpoint(env), kind=kind)


def run_until(job: Callable[[], None], deadline: float, stop: threading.Event) -> bool:
    """Run ``job`` in a daemon thread until it ends or ``deadline`` (monotonic) passes; False if
    it was still running then (``stop`` is set so it winds down, and nobody waits for it)."""
    thread = threading.Thread(target=job, name="harnessbench-langsmith", daemon=True)
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()) + 0.25)
    if thread.is_alive():
        stop.set()
        return False
    return True
