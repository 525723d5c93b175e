"""Everything a session writes about its run: records, trajectories, the harness card, gate.json.

All of it is redacted first (secrets from the environment and the model
parameters never reach the run directory or LangSmith). A write that fails —
a full or broken disk — does not raise: the record is kept in memory and the
failure in :attr:`Recorder.storage_error`, so the session can stop cleanly,
print what finished and say how to resume.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .records import TrialRecord
from .redact import Redactor
from .store import RunStore, latest


class Recorder:
    """The run directory's writer for one session; ``make_card(finished_at)`` builds the harness card."""

    def __init__(self, run_dir: Path, redactor: Redactor, make_card: Callable[[str | None], dict],
                 previous: list[TrialRecord] | None = None, store: RunStore | None = None):
        self.run_dir = Path(run_dir)
        self.store = store or RunStore(run_dir)
        self.redactor = redactor
        self.records: list[TrialRecord] = list(previous or [])  # every attempt, as in results.jsonl
        self.storage_error: str | None = None
        self._make_card = make_card
        self._card_written = False

    def latest(self) -> list[TrialRecord]:
        """One record per trial: its last attempt (earlier attempts stay in results.jsonl)."""
        return latest(self.records)

    def earlier_attempts(self) -> list[TrialRecord]:
        """Records that a later attempt of the same trial superseded (retries, resumed infra trials)."""
        last = {id(r) for r in self.latest()}
        return [r for r in self.records if id(r) not in last]

    def redacted(self, record: TrialRecord) -> TrialRecord:
        """The record with every secret in its text replaced (the same object when there is none to hide)."""
        if not self.redactor:
            return record
        return TrialRecord.from_dict(self.redactor.redact(record.to_dict()))

    def add(self, record: TrialRecord) -> None:
        """Keep the record, redacted, and append it to results.jsonl (the card is written before the first)."""
        record = self.redacted(record)
        self.records.append(record)
        if not self._card_written:
            self.write_card()
        self._write(self.store.append, record)

    def save_trajectory(self, record: TrialRecord, document: dict) -> None:
        """The trial's file: ``document`` with the record, both redacted."""
        self._write(self.store.write_trajectory, self.redacted(record), self.redactor.redact(document))

    def write_json(self, name: str, document: dict) -> None:
        self._write(self.store.write_json, name, document)

    def write_card(self, finished_at: str | None = None) -> None:
        card = self._make_card(finished_at)
        card["trials_recorded"] = len(self.records)
        self._card_written = True
        self._write(self.store.write_card, self.redactor.redact(card))

    def close(self, finished_at: str) -> None:
        if self._card_written:
            self.write_card(finished_at)
        self._write(self.store.close)

    def _write(self, write: Callable, *args) -> None:
        try:
            write(*args)
        except OSError as exc:
            if self.storage_error is None:
                self.storage_error = f"cannot write the run directory {self.run_dir} ({exc.strerror or exc})"
