"""The run directory: results.jsonl, harness.json, trials/<trial_id>[~attempt].json.

results.jsonl is append-only and flushed after every trial, so a crash loses
nothing that had finished. Trajectory files are written by whichever process
ran the trial (an xdist worker or the main process); results.jsonl and
harness.json only by the process that sees every report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from .records import TrialRecord

RESULTS = "results.jsonl"
CARD = "harness.json"
TRIALS = "trials"
LOCK = "session.lock"


class RunDirBusy(OSError):
    """Another live session holds the run directory; the message names its pid and host."""


def _dump(path: Path, data: dict, indent: int | None = 2) -> None:
    """Write JSON atomically (temp file + rename), so a reader never sees half a file.

    ``indent=None``: on one line, through json's C encoder (an indent makes it use
    the pure-Python one, about 4 times slower: 0.17 against 0.05 ms for the smallest
    trajectory file, once per trial).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=indent, sort_keys=indent is not None, default=str))
        os.replace(tmp, path)
    except BaseException:  # a full disk must not leave half a temp file behind
        tmp.unlink(missing_ok=True)
        raise


class RunStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._results = None
        self._lock: int | None = None  # the descriptor holding LOCK, while this session owns the directory

    def lock(self) -> None:
        """Own the run directory for this session's life (creating it): one session writes a run at a time.

        An ``flock`` on ``session.lock``, which dies with its holder (a killed session
        never locks anyone out) and is not inherited by child processes; the file
        says who holds it, for the message. xdist workers never take it.

        Raises:
            RunDirBusy: another live session holds it.
            OSError: the directory cannot be created.
        """
        import fcntl
        import socket

        if self._lock is not None:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise RunDirBusy(f"{self.path} is in use by another session ({holder}); wait for it to end, "
                             "or choose another run directory") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on host {socket.gethostname()}\n".encode())
        self._lock = fd

    def write_card(self, card: dict) -> None:
        self.write_json(CARD, card)

    def read_json(self, name: str) -> dict | None:
        try:
            return json.loads((self.path / name).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def write_json(self, name: str, data: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        _dump(self.path / name, data)

    def append(self, record: TrialRecord) -> None:
        if self._results is None:
            self.path.mkdir(parents=True, exist_ok=True)
            self._results = open(self.path / RESULTS, "a", encoding="utf-8")
        self._results.write(json.dumps(record.to_dict(), sort_keys=True) + "\n")
        self._results.flush()

    def write_trajectory(self, record: TrialRecord, data: dict) -> Path:
        """The trial's document (trajectories, traceback), with the record as a dict under ``record``."""
        target = trajectory_path(self.path, record)
        target.parent.mkdir(parents=True, exist_ok=True)
        _dump(target, {**data, "record": record.to_dict()}, indent=None)
        return target

    def close(self) -> None:
        if self._results is not None:
            self._results.close()
            self._results = None
        if self._lock is not None:
            os.close(self._lock)  # releases the flock; the file stays (removing it would race a new holder)
            self._lock = None


def _holder(fd: int, attempts: int = 20) -> str:
    """Who holds a lock file, as its holder wrote it (a holder that just took it may not have written yet)."""
    import time

    for _ in range(attempts):
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
        if text:
            return text
        time.sleep(0.01)
    return "its pid and host not yet written"


def trajectory_key(record: TrialRecord) -> str:
    """``TRIAL_ID`` for a first attempt, ``TRIAL_ID~N`` for attempt N (a retry): no attempt overwrites another."""
    return attempt_key(record.trial_id, record.attempts)


def attempt_key(trial_id: str, attempt) -> str:
    """:func:`trajectory_key` of attempt ``attempt`` of ``trial_id`` (a merge renumbers attempts by these)."""
    attempt = attempt if isinstance(attempt, int) else 1
    return trial_id if attempt <= 1 else f"{trial_id}~{attempt}"


def trajectory_path(run_dir: Path, record: TrialRecord) -> Path:
    return Path(run_dir) / TRIALS / f"{trajectory_key(record)}.json"


class RunDir:
    """The read side of a run directory: the one reader of what :class:`RunStore` writes.

    Config validation, resume, replay, the gate's ``--hb-compare``, the
    LangSmith export and the command line all read through it; older run
    directories (a retried trial's last attempt in ``TRIAL_ID.json``) still load.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)

    @property
    def has_results(self) -> bool:
        return (self.path / RESULTS).is_file()

    def is_run_dir(self) -> bool:
        """Results, or at least trajectories (the recording process died before its first record)."""
        return self.has_results or (self.path / TRIALS).is_dir()

    def records(self) -> list[TrialRecord]:
        """Every attempt's record, in order; none when there is no results.jsonl."""
        return load_records(self.path) if self.has_results else []

    def latest(self) -> list[TrialRecord]:
        """One record per trial, its last attempt."""
        return latest(self.records())

    def model(self, named: str, spell: str) -> str:
        """The model a ``RUN_DIR[::MODEL]`` source means: ``named``, or the run's only model.

        ``spell`` shows how to name one (e.g. ``replay:RUN_DIR::MODEL``). Raises
        ValueError if the run has no records of ``named``, or several models and none named.
        """
        models = sorted({r.model for r in self.latest()})
        if named and named not in models:
            raise ValueError(f"{self.path} has no records of {named!r} (it has: {', '.join(models) or 'none'})")
        if not named and len(models) > 1:
            raise ValueError(f"{self.path} holds several models ({', '.join(models)}); name one: {spell}")
        return named or models[0]

    def card(self) -> dict | None:
        return self.document(CARD)

    def document(self, name: str) -> dict | None:
        """A JSON document beside the results (``harness.json``, ``gate.json``, ``calibration.json``), or None."""
        return RunStore(self.path).read_json(name)

    def trajectory(self, record: TrialRecord) -> dict:
        """The trajectory document of one attempt (raises OSError/ValueError if it is missing or torn)."""
        return json.loads(trajectory_path(self.path, record).read_text())

    def trajectory_documents(self) -> dict[str, dict]:
        """Every readable trajectory document by file key (``TRIAL_ID`` or ``TRIAL_ID~N``)."""
        documents = {}
        for path in sorted((self.path / TRIALS).glob("*.json")):
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(document, dict) and isinstance(document.get("record"), dict):
                documents[path.stem] = document
        return documents

    def trajectory_records(self, documents: dict[str, dict] | None = None) -> dict[str, TrialRecord]:
        """The record in each trial file (``trajectory_documents``), by file key: a trial whose line never reached
        results.jsonl (the recording process died) still has one. A file key stands in for a missing trial id;
        a record this version cannot read is left out."""
        records = {}
        for key, document in (self.trajectory_documents() if documents is None else documents).items():
            try:
                records[key] = TrialRecord.from_dict({"trial_id": key, **document["record"]})
            except (TypeError, ValueError):
                continue
        return records

    def __str__(self) -> str:
        return str(self.path)


def latest(records: list[TrialRecord]) -> list[TrialRecord]:
    """One record per trial, its last attempt (a resumed run keeps every attempt in results.jsonl)."""
    return list({r.trial_id: r for r in records}.values())


class RecordLine(NamedTuple):
    """What a merge needs of one record, and its line as written (a merge copies lines, not 100,000 records)."""

    trial_id: str
    task_id: str
    case_id: str  # MODEL@MULT#K, as a trial's case names it
    outcome: str
    finished_at: str
    attempt: int | None
    line: str

    def renumbered(self, attempt: int) -> str:
        """The line as written, with its attempt number ``attempt`` (a merge renumbers a trial's attempts)."""
        if attempt == self.attempt:
            return self.line
        return json.dumps({**json.loads(self.line), "attempts": attempt}, sort_keys=True) + "\n"


def iter_record_lines(run_dir: Path) -> Iterator[RecordLine]:
    """Each record of a run directory, one at a time; a torn last line is skipped."""
    with open(Path(run_dir) / RESULTS, encoding="utf-8") as f:
        for line in f:
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            yield RecordLine(r["trial_id"], r["task_id"], f"{r['model']}@{r['multiplier']}#{r['sample']}",
                             r["outcome"], r.get("finished_at") or "", r.get("attempts"),
                             line if line.endswith("\n") else line + "\n")


def write_results(run_dir: Path, lines) -> None:
    """A whole results.jsonl at once (a merge writes a new directory; a session appends instead)."""
    with open(Path(run_dir) / RESULTS, "w", encoding="utf-8") as f:
        f.writelines(lines)


def load_records(run_dir: Path) -> list[TrialRecord]:
    """Records of a run directory; a torn last line (crash mid-write), or one that is no record, is skipped."""
    records = []
    with open(Path(run_dir) / RESULTS, encoding="utf-8") as f:
        for line in f:
            try:
                data = json.loads(line)
                if isinstance(data, dict) and data.get("trial_id"):
                    records.append(TrialRecord.from_dict(data))
            except (json.JSONDecodeError, TypeError, ValueError):
                continue
    return records
