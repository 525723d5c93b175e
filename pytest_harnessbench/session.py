"""The bake-off session: one object per pytest process, kept in ``config.stash``.

It owns the run id and directory, the backend, the parsed tasks and, in the
process that sees every report (the xdist controller, or the only process),
the records and the run store.
"""

from __future__ import annotations

import os
import secrets
import shlex
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from . import __version__
from .config import Config, ConfigError
from .admission import Admission
from .paths import StateDirError, check_creatable
from .records import TrialRecord, harness_card
from .redact import Redactor
from .resources import SpecError
from .sandbox import make_backend
from .sandbox.base import EnforcementUnavailable
from .recorder import Recorder
from .store import RESULTS, RunDir, RunDirBusy, RunStore
from .trial import AgentSettings, Case, SuiteRoot, Task, Trial, TrialKey, make_cases, utc_now


STOP_AFTER_BROKEN_SETUPS = 3
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
    def load(cls, records: list[dict], retry: frozenset[str]) -> Resume:
        attempts: dict[str, int] = {}
        final: dict[str, bool] = {}
        for r in records:
            attempts[r["trial_id"]] = attempts.get(r["trial_id"], 0) + 1
            final[r["trial_id"]] = r["outcome"] not in retry
        run_id = records[0]["run_id"] if records else new_run_id()
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
    for key, flag in RESUME_MUST_MATCH.items():
        if key in earlier and earlier[key] != now[key]:
            shown = lambda v: ",".join(map(str, v)) if isinstance(v, list) else v  # noqa: E731
            raise ConfigError(f"--hb-resume {settings.resume}: that run has {flag} {shown(earlier[key])}, this one "
                              f"{shown(now[key])}; resume with the same settings, or start a new run")


def match_task_ids(source: str, there: set[str], here: set[str]) -> str | None:
    """How an earlier run's task ids (``source``: the option that names it) match the ones collected here.

    Returns a line for a partial match, None for a full one (or nothing to match).

    Raises:
        ConfigError: none match: a run of another suite, or of this one under other task ids.
    """
    if not there or not here:
        return None
    matched, new = here & there, here - there
    if not matched:
        raise ConfigError(f"{source}: none of its {len(there)} task id(s) match the {len(here)} collected here "
                          f"(there: {_some(there)}; here: {_some(here)}); run the suite that run was made with")
    if not new:
        return None
    return f"{source}: {len(matched)} of {len(here)} collected task(s) match that run's, {len(new)} new: {_some(new)}"


def _some(ids: set[str], shown: int = 2) -> str:
    first = sorted(ids)[:shown]
    return ", ".join(first) + (f", ... ({len(ids) - shown} more)" if len(ids) > shown else "")


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


def open_bench(settings: Config, rootpath: Path, *, ini_dir: Path | None = None, handed: dict | None = None,
               worker: str | None = None, concurrency: int = 1, args: list[str] | None = None,
               cwd: Path | None = None, preflight: bool = True) -> Bench:
    """The session for this process: a new run, a resumed one, or (on an xdist worker) the controller's.

    Raises:
        ConfigError: a used run directory, a provider model that is not ready, ...
    """
    previous: list[dict] = []
    resume = None
    if handed is not None:
        run_id, run_dir = handed["run_id"], Path(handed["run_dir"])
        resume = handed["resume"] and Resume.from_json(handed["resume"])
    else:
        run_id = new_run_id()
        run_dir = settings.resume or resolve_run_dir(settings, rootpath, run_id)
    store = RunStore(run_dir)
    if handed is None and preflight and Path(run_dir).is_dir():
        # A busy directory is refused at once; a new one is created and locked once trials are sure to run
        # (Bench.own_run_dir): a session that runs none leaves nothing behind.
        own(store, _named(settings, run_dir))
    if handed is None and settings.resume is not None:
        earlier = RunDir(settings.resume)
        check_resumable(settings, earlier.card() or {})
        previous = earlier.records()
        resume = Resume.load(previous, settings.resume_retry)
        run_id = resume.run_id
    elif handed is None:
        check_unused(settings)
    problems = preflight_problems(settings) if handed is None and preflight else []
    try:
        bench = Bench(settings, run_id, run_dir, worker=worker if handed is not None else None,
                      concurrency=concurrency, args=args, cwd=cwd, resume=resume, previous=previous,
                      suite=SuiteRoot(rootpath, ini_dir), store=store)
    except ConfigError as exc:  # e.g. the backend's refusal: said together with the models' problems
        raise ConfigError("\n".join([str(exc), *problems])) from None
    if problems:
        raise ConfigError("\n".join(problems))
    return bench


def _named(settings: Config, run_dir: Path) -> str:
    """The run directory as the user named it, for messages."""
    if settings.resume or settings.out:
        return f"--hb-resume {settings.resume}" if settings.resume else f"--hb-out {settings.out}"
    return f"run directory {run_dir}"


def preflight_problems(settings: Config) -> list[str]:
    """Every problem of every provider model (and the judge) before any trial starts, all at once."""
    from .agents.providers import preflight

    models = (*settings.models, *filter(None, [settings.judge]))
    return [problem for model in models
            for problem in preflight(model, settings.model_params, call=settings.preflight_call)]


class Bench:
    def __init__(self, config: Config, run_id: str, run_dir: Path, *, worker: str | None = None,
                 concurrency: int = 1, args: list[str] | None = None, cwd: Path | None = None,
                 resume: Resume | None = None, previous: list[dict] | None = None, suite: SuiteRoot | None = None,
                 store: RunStore | None = None):
        self.config = config
        self.suite = suite or SuiteRoot(Path.cwd())  # what task ids are relative to
        self.run_id = run_id
        self.run_dir = run_dir
        self.worker = worker  # xdist worker id, None in the process that records
        self.concurrency = concurrency
        self.args = args or []
        self.cwd = cwd or Path.cwd()  # where pytest was started: the args' relative paths start there
        self.started_at = utc_now()
        try:
            self.backend = make_backend(config, run_id)
        except EnforcementUnavailable as exc:
            raise ConfigError(str(exc)) from None
        self._reaped = False  # leftovers of dead sessions are removed once, at the first check
        try:  # a backend whose sandboxes run elsewhere (a cluster's scheduler admits them) needs no host ledger
            self.admission: Admission | None = Admission(config.capacity) if self.backend.host_admission else None
        except StateDirError as exc:
            raise ConfigError(str(exc)) from None
        self.agent_settings = AgentSettings(max_steps=config.max_steps, model_params=config.model_params,
                                            retries=config.provider_retries, backoff_s=config.provider_backoff,
                                            prices=config.prices, judge=config.judge)
        self.cases: list[Case] = make_cases(config.models, config.multipliers, config.samples)
        self._case_by_id = {case.id: case for case in self.cases}
        self.tasks: dict[str, Task] = {}
        self.problems: list[str] = []
        self._images_checked: set[str | None] = set()  # bad markers, reported as one usage error after collection
        self.resume = resume
        # Secrets (from the environment or given as model parameters) never reach the run directory or LangSmith.
        self.recorder = Recorder(run_dir, Redactor.from_environ().with_params(config.model_params), self._card,
                                 previous, store)
        self.gate_exit = 0  # the gate's exit status (gate.exit_status), once it ran
        self.gate_plans: list = []  # what the gate can decide (gate.GatePlan), from the collected trials
        self._started: Counter = Counter()  # trial id -> attempts started by this process
        self._broken_setups = 0  # trials in a row that could not be provisioned, by a harness error

    @property
    def records_results(self) -> bool:
        return self.worker is None

    def task(self, nodeid: str, name: str, marker_kwargs: dict, harbor_task=None,
             uses_trial: bool = True) -> Task | None:
        """Parse a task's marker (or take a Harbor task directory) once; a bad one is kept in ``problems``
        and gives None, as does a marked test that does not use the ``trial`` fixture (it would run as one
        plain test, silently left out of the bake-off). ``nodeid``: the test function's, as pytest has it."""
        try:
            task_id = self.suite.node_id(nodeid)
        except SpecError as exc:
            self.problems.append(str(exc))
            return None
        if not uses_trial:
            self.problems.append(f"{task_id}: @pytest.mark.task on a test without the `trial` fixture: add `trial` "
                                 "to its arguments, or remove the marker")
            return None
        if task_id not in self.tasks:
            try:
                task = Task.from_marker(task_id, name, marker_kwargs) if harbor_task is None else \
                    Task.from_harbor(task_id, harbor_task)
                task.check(self.config.models, self.config.capacity if self.admission is not None else None)
                if harbor_task is None or (task.image is not None and self.backend.runs_images):
                    self._check_image(task.image)
            except (SpecError, ValueError, EnforcementUnavailable) as exc:
                where = "@pytest.mark.task" if harbor_task is None else "task.toml"
                self.problems.append(f"{task_id}: {where}: {exc}")
                return None
            self.tasks[task_id] = task
        return self.tasks[task_id]

    def _check_image(self, image: str | None) -> None:
        """A task's image must exist before any trial starts (a typo would make every trial infra)."""
        if image not in self._images_checked:
            self.backend.check_image(image)
            self._images_checked.add(image)

    def check_backend(self) -> str:
        """Before any sandbox starts, once trials are sure to run: the enforcement method, a writable run directory.

        Raises:
            ConfigError: no enforcement, or the run directory cannot be created (checked only now:
                a session that runs no trial, e.g. a project's plain tests, writes nothing).
        """
        try:
            check_creatable(self.run_dir, "run directory", "choose a writable --hb-out")
        except StateDirError as exc:
            raise ConfigError(str(exc)) from None
        self.own_run_dir()
        try:
            enforcement = self.backend.check()
        except (EnforcementUnavailable, StateDirError) as exc:
            raise ConfigError(f"--hb-backend {self.config.backend}: {exc}") from None
        if not self._reaped:
            self._reaped = True
            self.backend.reap()  # what sessions that died left behind
        return enforcement

    def own_run_dir(self) -> None:
        """In the process that records: lock the run directory (creating it), then check it holds no other run.

        Raises:
            ConfigError: another live session holds it, or another run finished there since this one started.
        """
        if self.records_results:
            own(self.recorder.store, _named(self.config, self.run_dir))
            if self.resume is None:
                check_unused(self.config)

    def reap(self) -> int:
        """``--hb-reap``: remove the sandboxes that sessions which died left behind; returns how many."""
        self._reaped = True
        self.check_backend()
        return self.backend.reap()

    def handover(self) -> dict:
        """What an xdist worker needs from the controller to join this run."""
        return {"run_id": self.run_id, "run_dir": str(self.run_dir), "resume": self.resume and self.resume.to_json(),
                "controller_pid": os.getpid()}

    def exit_status(self, current: int, other_failures: int) -> int:
        """With a gate, the exit status is the gate's: trial failures alone don't fail the run.

        Failures of ordinary (non-trial) tests still do, and an interrupted or
        broken session keeps its own status.
        """
        if self.config.gate is None or current not in (0, 1):
            return current
        return 1 if other_failures else self.gate_exit

    def skip(self, trial_id: str) -> bool:
        return self.resume is not None and trial_id in self.resume.done

    def new_trial(self, key: TrialKey, agent_factory=None) -> Trial:
        attempt = self._next_attempt(key.trial_id)
        return Trial(task=self.tasks[key.function_id], key=key, scale=self.config.scale, run_id=self.run_id,
                     backend=self.backend, admission=self.admission, attempt=attempt, agent=self.agent_settings,
                     agent_factory=agent_factory, worker=self.worker or "main")

    def _attempts_before(self, trial_id: str) -> int:
        """Attempts at this trial an earlier run (resume) and this process already made."""
        return self._started[trial_id] + (self.resume.attempts.get(trial_id, 0) if self.resume else 0)

    def _next_attempt(self, trial_id: str) -> int:
        attempt = 1 + self._attempts_before(trial_id)
        self._started[trial_id] += 1
        return attempt

    def retry(self, record: dict) -> bool:
        """Whether ``--hb-retry-infra`` runs this trial again: it ended in infra and has attempts left.

        A crashed worker's trial is not retried here: its process is gone.
        """
        return (record["outcome"] == "infra" and record["cause"] != "worker_crash"
                and self._started[record["trial_id"]] <= self.config.retry_infra)

    def key_of(self, nodeid: str) -> TrialKey | None:
        """The key of a trial from its node id alone (xdist's controller has no items), or None for other tests."""
        try:
            return TrialKey.find(nodeid, self._case_by_id, self.suite)
        except SpecError:  # two test files share a task id: the workers report it as a usage error
            return None

    def earlier_task_ids(self) -> dict[str, set[str]]:
        """The task ids of every earlier run this session reads trials from, by the option that names it."""
        sources = {}
        if self.config.resume is not None:
            sources[f"--hb-resume {self.config.resume}"] = (self.config.resume, None)
        if self.config.compare is not None:
            sources[f"--hb-compare {self.config.compare}"] = (self.config.compare, self.config.gate)
        for model in self.config.models:
            if model.kind == "replay":
                run_dir, _, named = model.argument.partition("::")
                sources[f"--models {model.text}"] = (Path(run_dir), named or None)
        return {source: {r["task_id"] for r in RunDir(path).latest() if model in (None, r["model"])}
                for source, (path, model) in sources.items()}

    def check_task_ids(self, collected: set[str]) -> list[str]:
        """Lines for earlier runs whose tasks match the collected ones only in part (issue 27).

        Raises:
            ConfigError: an earlier run none of whose task ids were collected here.
        """
        lines = (match_task_ids(source, there, collected) for source, there in self.earlier_task_ids().items())
        return [line for line in lines if line]

    def key(self, nodeid: str, case: Case) -> TrialKey:
        """The key of a collected trial (its task, parsed by :meth:`task`, already has its id)."""
        return TrialKey.of(nodeid, case, self.suite)

    def crash_record(self, nodeid: str, worker: str, message: str) -> dict | None:
        """The record of a trial whose worker process died under it (``infra/worker_crash``)."""
        key = self.key_of(nodeid)
        if key is None:
            return None  # not a trial
        case, trial_id = key.case, key.trial_id
        attempt = 1 + self._attempts_before(trial_id)
        return TrialRecord(
            run_id=self.run_id, trial_id=trial_id, task_id=key.task_id, model=case.model.text,
            multiplier=case.multiplier.label, multiplier_factor=case.multiplier.factor, sample=case.sample,
            outcome="infra", cause="worker_crash",
            message=message, allocation={}, enforcement="", backend=self.config.backend, resources={},
            attempts=attempt, finished_at=utc_now(), worker=worker).to_dict()

    def provisioned(self, record: dict | None) -> str | None:
        """Note how a trial's setup ended (None: it provisioned); a reason to stop the session, or None.

        A harness error in provisioning (a bug of the plugin or the host, not an
        infra fault of one sandbox) that hits the first few trials in a row will
        hit them all: stop with one message instead of one traceback per trial.
        """
        if record is None or (record["outcome"], record["cause"]) != ("error", "harness"):
            self._broken_setups = 0
            return None
        self._broken_setups += 1
        if self._broken_setups < STOP_AFTER_BROKEN_SETUPS:
            return None
        return (f"harnessbench: the last {self._broken_setups} trials could not be provisioned "
                f"({record['message']}); stopping the session")

    def finish_trial(self, trial: Trial, exc: BaseException | None, body_s: float, traceback: str | None = None) -> dict:
        """Classify, redact and save a trial's trajectory (with pytest's ``traceback`` of a failed one, which the
        terminal shows as one line); returns the record to send on."""
        record = self.recorder.redactor.redact(trial.finish(exc, body_s, self.config.oom_as).to_dict())
        self.recorder.save_trajectory(record, {**trial.trajectory_document(record), "traceback": traceback})
        return record

    def langsmith_on(self) -> bool:
        import os

        from .export.langsmith import enabled

        return self.config.langsmith or enabled(os.environ)

    def upload_stream(self):
        """A :class:`~pytest_harnessbench.export.experiments.Streamer` that sends trials as they finish, when
        LangSmith is configured in experiments mode; else None."""
        if not self.langsmith_on() or self.config.langsmith_mode != "experiments":
            return None
        from .export.experiments import Streamer

        return Streamer(self.run_dir, dataset=self.config.langsmith_dataset)

    def export(self, stream=None):
        """Upload the run (what ``stream`` did not send) to LangSmith if configured; returns the ExportResult or None."""
        if not self.langsmith_on():
            return None
        self.recorder.write_card(finished_at=utc_now())
        if self.config.langsmith_mode == "experiments":
            from .export.experiments import upload_experiments

            return upload_experiments(self.run_dir, dataset=self.config.langsmith_dataset, streamer=stream,
                                      timeout_s=self.config.langsmith_timeout)
        from .export.langsmith import export_run

        return export_run(self.run_dir, project=self.config.langsmith_project, timeout_s=self.config.langsmith_timeout)

    def partial_line(self, interrupted: str | None) -> str | None:
        """Why this run is incomplete and the command that finishes it; None when it ran to its end."""
        storage_error = self.recorder.storage_error
        reason = storage_error or interrupted
        if reason is None:
            return None
        fix = "free some space, then run" if storage_error else "run"
        return (f"PARTIAL RUN: {reason}; {len(self.recorder.latest())} trial(s) recorded. To finish it, {fix}: "
                f"{resume_command(self.args, self.cwd, self.run_dir)}")

    def plan_gate(self, cases: Iterable[Case]) -> list[str]:
        """Before the first trial: what the gate can decide with the collected tasks × samples.

        Rate margins only: a trial metric's spread is unknown before the run. The plan goes to gate.json with
        the verdicts (:meth:`run_gate`); writing it now would create the run directory of a session that may
        yet end in a usage error.
        """
        cfg = self.config
        if cfg.gate is None:
            return []
        from .gate import INCONCLUSIVE_EXIT_STATUS, plan

        per_cell = Counter((case.model.text, case.multiplier.label) for case in cases if case.sample == 1)
        tasks = max(per_cell.values(), default=0)
        self.gate_plans = [plan(m, tasks, cfg.samples, cfg.gate_alpha) for m in cfg.gate_margins if not m.absolute]
        lines = [p.line for p in self.gate_plans]
        if cfg.gate_strict:
            lines.append(f"gate: an INCONCLUSIVE verdict fails this run, exit status {INCONCLUSIVE_EXIT_STATUS} "
                         f"({cfg.gate_strict_why})")
        else:
            why = cfg.gate_strict_why or "no CI variable"
            lines.append(f"gate: an INCONCLUSIVE verdict exits 0 here ({why}); --hb-gate-strict makes it "
                         f"exit {INCONCLUSIVE_EXIT_STATUS}")
        return lines

    def run_gate(self) -> list[str] | None:
        """Gate verdicts as summary lines (and gate.json); None when no gate is configured.

        Sets ``gate_exit``: the run's exit status as the gate decides it (0, 1 or 6).
        """
        cfg = self.config
        if cfg.gate is None:
            return None
        from .gate import evaluate, verdicts_to_json

        multipliers = [cfg.gate_at.label] if cfg.gate_at else [m.label for m in cfg.multipliers]
        baseline = RunDir(cfg.compare).latest() if cfg.compare else None
        pairs = evaluate(self.recorder.latest(), cfg.gate, cfg.gate_margins, multipliers=multipliers, alpha=cfg.gate_alpha,
                         strict=cfg.gate_strict, baseline_records=baseline)
        verdicts = [v for _, v in pairs]
        document = verdicts_to_json(verdicts)
        for entry, (mult, _) in zip(document["verdicts"], pairs):
            entry["multiplier"] = mult
        if not verdicts:  # nothing could be compared: that decides nothing, and blocks
            from .gate import INCONCLUSIVE_EXIT_STATUS

            document.update(status="inconclusive", blocks=True, exit_status=INCONCLUSIVE_EXIT_STATUS)
        document["plan"] = [p.to_dict() for p in self.gate_plans]
        self.recorder.write_json("gate.json", document)
        self.gate_exit = document["exit_status"]
        from .report import gate_lines

        return gate_lines(document, pairs, baseline=cfg.gate, compare=cfg.compare)

    def run_calibration(self, verbose: bool = False) -> list[str] | None:
        """Calibration block for the summary (and calibration.json); None unless --hb-calibrate."""
        if not self.config.calibrate:
            return None
        from .calibrate import calibrate, lines

        document = calibrate(self.recorder.latest(), [m.text for m in self.config.models])
        self.recorder.write_json("calibration.json", document)
        return lines(document, verbose)

    def write_report(self) -> str | None:
        """Write the --hb-report HTML from the run directory; the summary line saying where (or why not)."""
        if self.config.report is None:
            return None
        from .html_report import write

        self.recorder.write_card(finished_at=utc_now())
        try:
            path = write(RunDir(self.run_dir), self.config.report, models=[m.text for m in self.config.models],
                         multipliers=[m.label for m in self.config.multipliers])
        except OSError as exc:
            return f"report: cannot write {self.config.report}: {exc}"
        return f"report: {path} ({path.stat().st_size / 1e6:.1f} MB)"

    def _card(self, finished_at: str | None) -> dict:
        """The harness card (DESIGN.md §6) as it stands; a resumed run keeps its first start and lists resumptions."""
        try:
            backend_info = self.backend.describe()
        except EnforcementUnavailable as exc:
            backend_info = {"backend": self.config.backend, "error": str(exc)}
        card = harness_card(run_id=self.run_id, started_at=self.started_at, settings=self.config.to_dict(),
                            backend=backend_info, concurrency=self.concurrency, plugin_version=__version__,
                            args=self.args)
        card["finished_at"] = finished_at
        card["suite"] = self.suite.describe()
        if self.resume is not None:
            # Keep the original run's start; list every resumption.
            earlier = RunDir(self.run_dir).card() or {}
            card["started_at"] = earlier.get("started_at", card["started_at"])
            resumes = [r for r in earlier.get("resumes", []) if r.get("started_at") != self.started_at]
            card["resumes"] = resumes + [{"started_at": self.started_at, "args": self.args,
                                          "trials_already_final": len(self.resume.done)}]
        return card

    def finish(self) -> None:
        self.recorder.close(finished_at=utc_now())
        self.backend.close()
