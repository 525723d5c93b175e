"""Which run this process belongs to, and where it lives: id, directory, resume state, attempts.

A new run gets an id and a directory; a resumed one (``--hb-resume``) keeps the earlier run's, skips its
trials with a final outcome and counts their attempts on; an xdist worker gets all of it from its
controller (:meth:`Run.handover`). The process that records (the controller, or the only process)
holds the directory's lock for its life (:func:`own`).
"""

from __future__ import annotations

import os
import secrets
import shlex
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from .options import ConfigError
from .store import RESULTS, RunDir, RunDirBusy, RunStore

if TYPE_CHECKING:
    from .config import Config
    from .records import TrialRecord

RUN_DIR_FLAGS = ("--hb-out", "--hb-resume")  # options naming the run directory itself
RUN_DIR_PREFIXES = tuple(f"{flag}=" for flag in RUN_DIR_FLAGS)


def new_run_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Resume:
    """What an earlier, interrupted run already holds: trials to skip, attempts so far."""

    run_id: str
    done: frozenset[str]
    attempts: dict[str, int]

    @classmethod
    def load(cls, records: list[TrialRecord], retry: frozenset[str]) -> Resume:
        attempts: dict[str, int] = {}
        final: dict[str, bool] = {}
        for r in records:
            attempts[r.trial_id] = attempts.get(r.trial_id, 0) + 1
            final[r.trial_id] = r.outcome not in retry
        run_id = records[0].run_id if records else new_run_id()
        return cls(run_id, frozenset(t for t, ok in final.items() if ok), attempts)

    def to_json(self) -> dict:
        return {"run_id": self.run_id, "done": sorted(self.done), "attempts": self.attempts}

    @classmethod
    def from_json(cls, data: dict) -> Resume:
        return cls(data["run_id"], frozenset(data["done"]), dict(data["attempts"]))


def resolve_run_dir(config: Config, rootpath: Path, run_id: str) -> Path:
    """``--hb-out`` (relative to where pytest was started, like every path option) or
    ``ROOTDIR/.harnessbench/runs/RUN_ID``."""
    if config.out is None:
        return rootpath / ".harnessbench" / "runs" / run_id
    return config.out.resolve()


def check_unused(config: Config) -> None:
    """A new run's ``--hb-out`` must not hold an earlier run. Raises ConfigError."""
    if config.out is not None and RunDir(config.out).has_results:
        raise ConfigError(f"--hb-out {config.out}: already holds {RESULTS} of an earlier run; choose a new directory")


#: Settings that define the experiment: a resumed run must keep them, or its records would mix two experiments.
RESUME_MUST_MATCH = {"models": "--models", "multipliers": "--multipliers", "samples": "--samples",
                     "backend": "--hb-backend", "scale": "--hb-scale", "enforcement": "--hb-enforcement",
                     "oom_as": "--hb-oom-as", "max_steps": "--hb-max-steps"}


def check_resumable(settings: Config, card: dict) -> None:
    """Raise ConfigError naming the first experiment setting that differs from the resumed run's card."""
    earlier, now = card.get("settings") or {}, settings.to_dict()
    for key, flag in RESUME_MUST_MATCH.items():  # a backend's own settings (enforcement) only where both have them
        if key in earlier and key in now and earlier[key] != now[key]:
            shown = lambda v: ",".join(map(str, v)) if isinstance(v, list) else v  # noqa: E731
            raise ConfigError(f"--hb-resume {settings.resume}: that run has {flag} {shown(earlier[key])}, this one "
                              f"{shown(now[key])}; resume with the same settings, or start a new run")


def resume_command(args: list[str], cwd: Path, run_dir: Path) -> str:
    """The command that finishes an interrupted run: the same arguments, from the same directory, by the same
    Python, with ``--hb-resume RUN_DIR`` in place of any ``--hb-out`` or earlier ``--hb-resume``."""
    kept, value_follows = [], False
    for arg in args:
        if not value_follows and arg not in RUN_DIR_FLAGS and not arg.startswith(RUN_DIR_PREFIXES):
            kept.append(arg)
        value_follows = arg in RUN_DIR_FLAGS and not value_follows
    command = [sys.executable, "-m", "pytest", *kept, "--hb-resume", str(cwd / run_dir)]
    return f"cd {shlex.quote(str(cwd))} && {shlex.join(command)}"


def own(store: RunStore, named: str) -> None:
    """Hold the run directory's lock (creating the directory) for this session's life.

    Only the process that records takes it. ``named``: the directory as the user gave it, for the message.

    Raises:
        ConfigError: another live session holds it, or it cannot be created.
    """
    try:
        store.lock()
    except RunDirBusy as exc:
        raise ConfigError(f"{named}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot create the run directory at {store.path} ({exc.strerror or exc}); "
                          "choose a writable --hb-out") from None


def named(settings: Config, run_dir: Path) -> str:
    """The run directory as the user named it, for messages."""
    if settings.resume or settings.out:
        return f"--hb-resume {settings.resume}" if settings.resume else f"--hb-out {settings.out}"
    return f"run directory {run_dir}"


@dataclass
class Run:
    """This process's run: its identity, directory and invocation, and the attempts at each trial so far.

    ``worker``: the xdist worker id, None in the process that records (the controller, or the only one).
    ``args``/``cwd``: how pytest was started (the command that finishes an interrupted run repeats them).
    """

    id: str
    dir: Path
    resume: Resume | None = None
    worker: str | None = None
    concurrency: int = 1
    args: list[str] = field(default_factory=list)
    cwd: Path = field(default_factory=Path.cwd)
    started: Counter = field(default_factory=Counter)  # trial id -> attempts started by this process

    @property
    def records_results(self) -> bool:
        return self.worker is None

    def handover(self) -> dict:
        """What an xdist worker needs from the controller to join this run."""
        return {"run_id": self.id, "run_dir": str(self.dir), "resume": self.resume and self.resume.to_json(),
                "controller_pid": os.getpid()}

    def skip(self, trial_id: str) -> bool:
        """The resumed run already holds this trial with a final outcome."""
        return self.resume is not None and trial_id in self.resume.done

    def attempts_before(self, trial_id: str) -> int:
        """Attempts at this trial an earlier run (resume) and this process already made."""
        return self.started[trial_id] + (self.resume.attempts.get(trial_id, 0) if self.resume else 0)

    def next_attempt(self, trial_id: str) -> int:
        attempt = 1 + self.attempts_before(trial_id)
        self.started[trial_id] += 1
        return attempt

    def partial_line(self, reason: str | None, recorded: int, storage_error: str | None) -> str | None:
        """Why this run is incomplete and the command that finishes it; None when it ran to its end."""
        reason = storage_error or reason
        if reason is None:
            return None
        fix = "free some space, then run" if storage_error else "run"
        return (f"PARTIAL RUN: {reason}; {recorded} trial(s) recorded. To finish it, {fix}: "
                f"{resume_command(self.args, self.cwd, self.dir)}")
