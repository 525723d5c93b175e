"""Send a run to LangSmith as experiments: the suite as a dataset, one experiment per model × multiplier.

What arrives in LangSmith:

- a dataset (``--hb-langsmith-dataset``, default ``harnessbench-<suite>``, the
  suite's root directory name) with one example per task: inputs
  ``{"task_id", "instruction"}``, metadata ``{"task_id", "spec"}`` (the spec is
  the task's guarantee: cpus, memory). Example ids are uuid5 of the dataset name
  and the task id, so every run of the suite, from any branch or machine, lands
  on the same examples;
- per model × multiplier one experiment (a project whose reference dataset is
  that dataset) named ``<model>@<multiplier> <run_id>``; its metadata is the
  harness card plus the multiplier, the guarantee and the kill threshold;
- per trial a root run linked to its task's example (``reference_example_id``),
  the trajectory as its child runs (built as the project upload builds them,
  :func:`~pytest_harnessbench.export.langsmith.trial_runs`); samples > 1 are
  repetitions: several runs on one example in one experiment;
- on each root run the feedback of the project upload (outcome, passed,
  infra_error, one score per trial metric), queued into the same batched
  multipart ingestion as the runs, not one ``POST /feedback`` each.

Sending: the runs and feedback of a few trials go in one multipart request (up
to the server's ``size_limit`` operations, 100 by default), built and sent by
the SDK's own serialisation and sender in the calling thread (see
:meth:`Uploader._ingest` for why not its background queue). A request the server took is
written to the ledger ``RUN_DIR/langsmith.jsonl``; the end-of-run step and
``harnessbench upload RUN_DIR`` send only what the ledger lacks. During a
session the controller hands each trial to a :class:`Streamer` as it finishes,
which sends it from a thread of its own (a trial never waits for it). Every id
is deterministic, so a lost ledger costs requests, never duplicates.

Like the project upload: never raises, bounded in time, everything redacted.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping

from ..records import TrialRecord
from ..redact import Redactor
from .langsmith import (DEFAULT_ENDPOINT, PROBE_TIMEOUT_S, ExportResult, _env_get, _is_unreachable, _Quiet, _RunData,
                        _short, _status, _TrialData, _uuid, endpoint, load_or_explain, make_client, run_until, trial_feedback,
                        trial_runs)

LEDGER = "langsmith.jsonl"
GROUP_TRIALS = 200  # trials the streamer sends at once at most (their operations go out 100 a request)
GROUP_WAIT_S = 1.0  # the streamer waits this long after a trial for others that finish together
STREAM_GROUP_TIMEOUT_S = 120.0  # the most one group may take while the session runs (requests time out sooner)
_SDK_LOGGERS = ("langsmith", "langsmith.client", "langsmith.utils")


class Fatal(Exception):
    """The upload cannot go on (unreachable, refused, out of time): what is not in the ledger stays for later."""


def dataset_name(card: Mapping, named: str | None = None) -> str:
    """``named``, else ``harnessbench-<suite>``: the suite's root directory name (stable across runs and branches)."""
    if named:
        return named
    suite = card.get("suite") or {}
    root = suite.get("name") or Path(suite.get("ini_dir") or suite.get("rootdir") or "suite").name
    return f"harnessbench-{root}"


def experiment_name(run_id: str, model: str, multiplier: str) -> str:
    return f"{model}@{multiplier} {run_id}"


def example_id(dataset: str, task_id: str) -> uuid.UUID:
    return _uuid(f"dataset:{dataset}", task_id)


def task_spec(record: TrialRecord) -> dict:
    """The task's spec as the record shows it: the guarantee (= spec: cpus, memory bytes) of its allocation."""
    guarantee = (record.allocation or {}).get("guarantee") or {}
    return {"cpus": guarantee.get("cpus"), "memory_bytes": guarantee.get("memory_bytes")}


def task_example(dataset: str, trial: _TrialData, redactor: Redactor) -> dict:
    """The example of the trial's task: its instruction (from the trajectory), spec and id."""
    record = trial.record
    instruction = next((t.get("instruction") for t in trial.trajectories if t.get("instruction")), None)
    task_id = str(record.task_id)
    return {"id": str(example_id(dataset, task_id)),
            "inputs": redactor.redact({"task_id": task_id, "instruction": instruction}),
            "metadata": {"task_id": task_id, "spec": task_spec(record), "source": "pytest-harnessbench"}}


def experiment_metadata(card: Mapping, model: str, multiplier: str, factor: float | None) -> dict:
    """The harness card, plus what sets this experiment apart: model, multiplier, guarantee, kill threshold."""
    scale = (card.get("settings") or {}).get("scale") or []
    kill = "none (uncapped)" if factor is None else f"spec × {factor:g} for {', '.join(scale) or 'nothing'}"
    return {**card, "model": model, "multiplier": multiplier, "multiplier_factor": factor,
            "guarantee": "the task's spec (example metadata.spec)", "kill_threshold": kill}


# ---------------------------------------------------------------- the ledger


class Ledger:
    """RUN_DIR/langsmith.jsonl: what LangSmith already holds of this run, one JSON line per fact.

    ``{"dataset": NAME, "id": ...}``, ``{"dataset": NAME, "example": TASK_ID, "id": ...}``,
    ``{"dataset": NAME, "experiment": "MODEL@MULT", "id": ..., "name": ...}``,
    ``{"dataset": NAME, "trial": KEY}``. Appended as facts become true; a torn line is skipped.
    """

    def __init__(self, run_dir: Path, dataset: str):
        self.path = Path(run_dir) / LEDGER
        self.dataset = dataset
        self.dataset_id: str | None = None
        self.examples: dict[str, str] = {}
        self.experiments: dict[str, str] = {}
        self.trials: set[str] = set()
        self.lock = threading.Lock()
        for line in self._lines():
            if line.get("dataset") != dataset:
                continue
            if "trial" in line:
                self.trials.add(line["trial"])
            elif "example" in line:
                self.examples[line["example"]] = line["id"]
            elif "experiment" in line:
                self.experiments[line["experiment"]] = line["id"]
            elif "id" in line:
                self.dataset_id = line["id"]

    def _lines(self) -> list[dict]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError:
            return []
        lines = []
        for raw in text.splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if isinstance(line, dict):
                lines.append(line)
        return lines

    def add(self, *facts: dict) -> None:
        with self.lock, open(self.path, "a", encoding="utf-8") as out:
            out.write("".join(json.dumps({"dataset": self.dataset, **fact}, sort_keys=True) + "\n" for fact in facts))


# ---------------------------------------------------------------- one connection


class Uploader:
    """Sends groups of trials to one dataset; used from one thread at a time.

    ``connect`` probes the endpoint and finds or creates the dataset; ``send``
    creates the examples and experiments the group needs, sends its runs and
    feedback a request at a time and writes what went through to the ledger.
    Raises :class:`Fatal` when nothing more can be sent.
    """

    def __init__(self, run_dir: Path, card: Mapping, *, dataset: str | None = None, env: Mapping[str, str],
                 deadline: float):
        self.run_dir = Path(run_dir)
        self.card = card
        self.run_id = str(card.get("run_id") or self.run_dir.name)
        self.dataset = dataset_name(card, dataset)
        self.env = env
        self.deadline = deadline
        self.client = None  # built at connect: it reports send errors to on_error
        self.redactor = Redactor.from_environ(env)
        self.ledger = Ledger(self.run_dir, self.dataset)
        self.existing: set[str] | None = None  # example ids the dataset holds (read once, when one is needed)
        self.errors: list[Exception] = []
        self.failures: list[str] = []
        self.connected = False
        self.quiet = _Quiet()
        self.id_space = f"experiment:{self.run_id}"

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def on_error(self, exc: Exception) -> None:
        self.errors.append(exc)

    def connect(self) -> None:
        self.quiet.threads.add(threading.get_ident())
        url = endpoint(self.env)
        hosted = url.startswith(DEFAULT_ENDPOINT) or url.endswith(".smith.langchain.com")
        if hosted and not _env_get(self.env, "LANGSMITH_API_KEY", "LANGCHAIN_API_KEY"):
            raise Fatal(f"LANGSMITH_API_KEY is not set ({url} needs one)")
        try:
            self.client = make_client(self.env, redactor=self.redactor, timeout_s=max(1.0, self.left()),
                                      on_error=self.on_error)
        except Exception as exc:
            raise Fatal(f"LangSmith client not configured: {_short(exc)}") from None
        probe = max(0.2, min(PROBE_TIMEOUT_S, self.left()))
        try:
            self.client.request_with_retries("GET", "/info", stop_after_attempt=1, timeout=(probe, probe))
        except Exception as exc:
            if _is_unreachable(exc):
                raise Fatal(f"endpoint unreachable ({url})") from None
            raise Fatal(f"endpoint {url} did not answer GET /info: {_short(exc)} — is LANGSMITH_ENDPOINT right?") \
                from None
        _ = self.client.info  # fetched once here (batch size limits, multipart support)
        if self.ledger.dataset_id is None:
            self.ledger.dataset_id = self._call(self._find_or_create_dataset)
            self.ledger.add({"id": self.ledger.dataset_id})
        self.connected = True

    def _call(self, fn, *args, **kwargs):
        """An SDK call; its failure is fatal (the dataset or an experiment is missing: no trial can go)."""
        try:
            return fn(*args, **kwargs)
        except Fatal:
            raise
        except Exception as exc:
            if _is_unreachable(exc):
                raise Fatal(f"endpoint stopped answering ({_short(exc, 80)})") from None
            raise Fatal(_status(exc) or f"{getattr(fn, '__name__', 'call')}: {_short(exc)}") from None

    def _find_or_create_dataset(self) -> str:
        from langsmith import utils as ls_utils

        try:
            return str(self.client.read_dataset(dataset_name=self.dataset).id)
        except ls_utils.LangSmithNotFoundError:
            pass
        try:
            created = self.client.create_dataset(
                self.dataset, description="Tasks of a pytest-harnessbench suite: one example per task "
                                          "(inputs: task_id, instruction; metadata: spec)",
                metadata={"source": "pytest-harnessbench"})
            return str(created.id)
        except ls_utils.LangSmithConflictError:  # another machine created it just now
            return str(self.client.read_dataset(dataset_name=self.dataset).id)

    def _ensure_examples(self, trials: list[_TrialData]) -> None:
        wanted: dict[str, dict] = {}
        for trial in trials:
            task_id = str(trial.record.task_id)
            if task_id not in self.ledger.examples and task_id not in wanted:
                wanted[task_id] = task_example(self.dataset, trial, self.redactor)
        if not wanted:
            return
        if self.existing is None:
            self.existing = {str(e.id) for e in self._call(
                lambda: list(self.client.list_examples(dataset_id=self.ledger.dataset_id)))}
        missing = [e for e in wanted.values() if e["id"] not in self.existing]
        if missing:
            self._call(self.client.create_examples, dataset_id=self.ledger.dataset_id, examples=missing)
            self.existing |= {e["id"] for e in missing}
        self.ledger.examples.update({task_id: e["id"] for task_id, e in wanted.items()})
        self.ledger.add(*({"example": task_id, "id": e["id"]} for task_id, e in wanted.items()))

    def _ensure_experiment(self, record: TrialRecord) -> str:
        model, multiplier = str(record.model), str(record.multiplier)
        key = f"{model}@{multiplier}"
        if key not in self.ledger.experiments:
            card = self.redactor.redact(dict(self.card))
            samples = (card.get("settings") or {}).get("samples")
            project = self._call(
                self.client.create_project, experiment_name(self.run_id, model, multiplier), upsert=True,
                reference_dataset_id=self.ledger.dataset_id,
                metadata=experiment_metadata(card, model, multiplier, record.multiplier_factor),
                description=f"pytest-harnessbench run {self.run_id}: {model} at {multiplier}",
                num_repetitions=samples if isinstance(samples, int) else None)
            self.ledger.experiments[key] = str(project.id)
            self.ledger.add({"experiment": key, "id": str(project.id),
                             "name": experiment_name(self.run_id, model, multiplier)})
        return self.ledger.experiments[key]

    def send(self, trials: list[_TrialData]) -> int:
        """Send the trials the ledger lacks; returns how many went through (their ledger lines are written)."""
        trials = [t for t in trials if t.key not in self.ledger.trials]
        if not trials:
            return 0
        self._ensure_examples(trials)
        sent = 0
        batch: list[tuple[_TrialData, list[dict], list[dict]]] = []
        for trial in trials:
            if self.left() <= 0:
                raise Fatal("time limit")
            runs, feedback = self._trial_ops(trial)
            if batch and sum(len(r) + len(f) for _, r, f in batch) + len(runs) + len(feedback) > self._ops_limit():
                sent += self._ingest(batch)
                batch = []
            batch.append((trial, runs, feedback))
        if batch:
            sent += self._ingest(batch)
        return sent

    def _trial_ops(self, trial: _TrialData) -> tuple[list[dict], list[dict]]:
        """The trial's runs (root linked to its example) and its feedback, as ingestion payloads."""
        from langsmith import schemas as ls_schemas

        record = trial.record
        session_id = self._ensure_experiment(record)
        name = experiment_name(self.run_id, str(record.model), str(record.multiplier))
        root, children = trial_runs(self.run_id, name, trial, self.redactor, session_id, id_space=self.id_space)
        root["reference_example_id"] = self.ledger.examples[str(record.task_id)]
        now = datetime.now(timezone.utc)
        feedback = [ls_schemas.FeedbackCreate(
            id=_uuid(self.id_space, trial.key, "feedback", key), run_id=root["id"], trace_id=root["id"], key=key,
            session_id=session_id, start_time=root["start_time"], created_at=now, modified_at=now,
            feedback_source=ls_schemas.APIFeedbackSource(metadata={"source": "pytest-harnessbench"}),
            score=value.get("score"), value=value.get("value"), comment=value.get("comment")).model_dump()
            for key, value in trial_feedback(record, self.redactor)]
        return [root, *children], feedback

    def _ops_limit(self) -> int:
        config = getattr(self.client.info, "batch_ingest_config", None) or {}
        return int(config.get("size_limit") or 100)

    def _ingest(self, batch: list[tuple[_TrialData, list[dict], list[dict]]]) -> int:
        """One multipart request with the runs and the feedback of a few trials, sent from this thread.

        The SDK has no public call for this: ``multipart_ingest`` takes runs only, and ``create_feedback``
        joins runs in a multipart request only through the client's background queue, whose thread (not a
        daemon) and shared thread pool hold the interpreter's exit while they retry a stalled server (12-22 s
        measured here past a 3 s limit). So this uses the SDK's own serialisation and sender
        (``_run_transform``, ``serialize_run_dict``/``serialize_feedback_dict``, ``_multipart_ingest_ops``),
        synchronously in a daemon thread. On a server without multipart ingestion the SDK sends the runs to
        ``/runs/batch`` and drops the feedback, which then goes one ``POST /feedback`` at a time.
        """
        from langsmith._internal._operations import serialize_feedback_dict, serialize_run_dict

        self.errors.clear()
        ops = [serialize_run_dict("post", self.client._run_transform(run))
               for _, runs, _ in batch for run in runs]
        ops += [serialize_feedback_dict(dict(item)) for _, _, feedback in batch for item in feedback]
        self.client._multipart_ingest_ops(ops)
        if getattr(self.client, "_multipart_disabled", False) and not self.errors:
            self._feedback_one_by_one([item for _, _, feedback in batch for item in feedback])
        if self.errors:
            exc = self.errors[0]
            if _is_unreachable(exc):
                raise Fatal(f"endpoint stopped answering ({_short(exc, 80)})")
            self.failures.append(_status(exc) or f"runs not accepted: {_short(exc)}")
            return 0
        trials = [trial for trial, _, _ in batch]
        self.ledger.trials |= {t.key for t in trials}
        self.ledger.add(*({"trial": t.key} for t in trials))
        return len(trials)

    def _feedback_one_by_one(self, items: list[dict]) -> None:
        from langsmith import utils as ls_utils

        for item in items:
            if self.left() <= 0:
                raise Fatal("time limit")
            try:
                self.client.create_feedback(
                    run_id=item["run_id"], trace_id=item["trace_id"], key=item["key"], session_id=item["session_id"],
                    feedback_id=item["id"], start_time=item["start_time"], score=item.get("score"),
                    value=item.get("value"), comment=item.get("comment"),
                    source_info={"source": "pytest-harnessbench"}, stop_after_attempt=1)
            except ls_utils.LangSmithConflictError:
                pass
            except Exception as exc:
                self.errors.append(exc)
                return

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.close(timeout=0)
            except Exception:
                pass


# ---------------------------------------------------------------- a run directory, or trials as they finish


def _result(run_dir: Path, uploader: Uploader | None, total: int, error: str | None, started: float,
            env: Mapping[str, str], dataset: str, timeout_s: float) -> ExportResult:
    uploaded = len(uploader.ledger.trials) if uploader is not None else 0
    experiments = len(uploader.ledger.experiments) if uploader is not None else 0
    if error == "time limit":
        error = f"stopped at the {timeout_s:g} s time limit"
    if error is None and uploaded < total:
        failures = uploader.failures if uploader is not None else []
        detail = failures[0] if failures else (uploader.quiet.first if uploader is not None else None)
        error = f"{total - uploaded} failed" + (f" ({detail})" if detail else "")
    where = f"{dataset} as {experiments} experiment{'s' * (experiments != 1)}"
    return ExportResult(where, min(uploaded, total), total, error, str(run_dir), endpoint(env),
                        round(time.monotonic() - started, 3), kind="dataset")


def _sweep(uploader: Uploader, run: _RunData, stop: threading.Event) -> None:
    """Everything in the run directory the ledger lacks, a group at a time."""
    todo = [t for t in run.trials if t.key not in uploader.ledger.trials]
    if not uploader.connected and todo:
        uploader.connect()
    for start in range(0, len(todo), GROUP_TRIALS):
        if stop.is_set():
            raise Fatal("time limit")
        uploader.send(todo[start:start + GROUP_TRIALS])


def _quietly(uploader: Uploader, body) -> str | None:
    """Run ``body`` with the SDK's log lines from this thread silenced; the error that ended it, or None."""
    uploader.quiet.threads.add(threading.get_ident())
    import logging

    for name in _SDK_LOGGERS:
        logging.getLogger(name).addFilter(uploader.quiet)
    try:
        body()
        return None
    except Fatal as exc:
        return str(exc)
    except Exception as exc:  # never let the export break the session
        return f"export failed: {type(exc).__name__}: {_short(exc)}"
    finally:
        for name in _SDK_LOGGERS:
            logging.getLogger(name).removeFilter(uploader.quiet)


def upload_experiments(run_dir: Path, *, dataset: str | None = None, timeout_s: float = 30.0,
                       env: Mapping[str, str] | None = None, streamer: Streamer | None = None) -> ExportResult:
    """Send what the ledger lacks of a run directory as experiments; never raises, bounded by ``timeout_s``.

    With the session's ``streamer``: it stops taking trials, sends what it holds,
    then the same connection sends what is left (``timeout_s`` covers both).
    """
    started = time.monotonic()
    run_dir = Path(run_dir)
    env = os.environ if env is None else env
    run = load_or_explain(run_dir, env, dataset or "", "dataset")
    if isinstance(run, ExportResult):
        return run
    name = dataset_name(run.card, dataset)
    deadline = started + timeout_s
    uploader, error = None, None
    if streamer is not None:
        uploader = streamer.finish(deadline)
        if streamer.running():
            error = "time limit"  # still sending its group: the sweep must not race it
        elif streamer.error is not None or (uploader is not None and uploader.dataset != name):
            uploader = None  # a fresh connection tries again (a dead endpoint costs one short probe)
    if uploader is None:
        uploader = Uploader(run_dir, run.card, dataset=dataset, env=env, deadline=deadline)
    uploader.deadline = deadline
    if error is None and run.trials:
        stop = threading.Event()
        box: list[str | None] = [None]

        def sweep() -> None:
            box[0] = _quietly(uploader, lambda: _sweep(uploader, run, stop))

        error = box[0] if run_until(sweep, deadline, stop) else "time limit"
    if streamer is None or not streamer.running():
        uploader.close()
    return _result(run_dir, uploader, len(run.trials), error, started, env, name, timeout_s)


class Streamer:
    """Sends each trial as it finishes, from a thread of its own, a group at a time.

    ``add`` only puts the record on a queue (a trial never waits). The thread
    connects at the first trial, then sends whatever has finished together
    (waiting up to ``GROUP_WAIT_S`` for more). The first fatal error stops it;
    what it did not send stays for the end-of-run step (:func:`upload_experiments`).
    """

    def __init__(self, run_dir: Path, *, dataset: str | None = None, env: Mapping[str, str] | None = None,
                 group_wait_s: float = GROUP_WAIT_S):
        self.run_dir = Path(run_dir)
        self.dataset = dataset
        self.env = os.environ if env is None else env
        self.group_wait_s = group_wait_s
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.uploader: Uploader | None = None
        self.error: str | None = None
        self.closing = threading.Event()
        self.thread: threading.Thread | None = None
        self.sent = 0
        self.final_deadline = float("inf")

    def add(self, record: TrialRecord) -> None:
        if self.error is not None or self.closing.is_set():
            return
        self.queue.put(record)
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="harnessbench-langsmith-stream", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        from ..store import RunDir

        card = RunDir(self.run_dir).card() or {}
        self.uploader = Uploader(self.run_dir, card, dataset=self.dataset, env=self.env,
                                 deadline=time.monotonic() + STREAM_GROUP_TIMEOUT_S)
        self.error = _quietly(self.uploader, self._loop)

    def _loop(self) -> None:
        from ..store import RunDir, trajectory_key

        run = RunDir(self.run_dir)
        while True:
            group = self._next_group()
            if not group:
                return
            self.uploader.deadline = self.final_deadline if self.closing.is_set() else \
                max(self.uploader.deadline, time.monotonic() + STREAM_GROUP_TIMEOUT_S)
            if not self.uploader.connected:
                self.uploader.connect()
            trials = []
            for record in group:
                try:
                    document = run.trajectory(record)
                    trajectories = [t for t in document.get("trajectories", []) if isinstance(t, dict)]
                except (OSError, ValueError):
                    trajectories = []  # a crashed trial has none: its record alone
                trials.append(_TrialData(trajectory_key(record), record, trajectories))
            self.sent += self.uploader.send(trials)

    def _next_group(self) -> list[TrialRecord]:
        """The trials that finished together: the first (waiting while the session runs), then those within the wait."""
        group: list[TrialRecord] = []
        while not group:
            try:
                group.append(self.queue.get(timeout=0.2))
            except queue.Empty:
                if self.closing.is_set():
                    return []
        until = time.monotonic() + self.group_wait_s
        while len(group) < GROUP_TRIALS:
            wait = until - time.monotonic()
            if self.closing.is_set():
                wait = 0
            try:
                group.append(self.queue.get(timeout=wait) if wait > 0 else self.queue.get_nowait())
            except queue.Empty:
                break
        return group

    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def finish(self, deadline: float) -> Uploader | None:
        """Stop taking trials and let the thread end its current group (within ``deadline``); its connection."""
        self.final_deadline = deadline
        if self.uploader is not None:
            self.uploader.deadline = deadline
        self.closing.set()
        if self.thread is not None:
            self.thread.join(max(0.0, deadline - time.monotonic()))
            if self.thread.is_alive():  # still sending: the end-of-run step must not race it
                self.error = self.error or "time limit"
                if self.uploader is not None:
                    self.uploader.deadline = 0.0
        return self.uploader
