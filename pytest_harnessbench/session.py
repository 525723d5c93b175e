"""The bake-off session: one object per pytest process, kept in ``config.stash``.

:class:`Bench` wires the owners together and runs the trials: the run's identity, directory and
attempts (run.py), the task registry (tasks.py), the backend and the host's admission ledger, the
recorder (in the process that sees every report: the xdist controller, or the only process) and the
end-of-run steps (endofrun.py). The plugin talks to it, and to those owners through it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from . import __version__
from .admission import Admission
from .config import Config
from .endofrun import EndOfRun
from .errors import EnforcementUnavailable
from .options import ConfigError
from .outcomes import ERROR, HARNESS, INFRA, WORKER_CRASH
from .paths import StateDirError, check_creatable
from .recorder import Recorder
from .records import TrialRecord, harness_card
from .redact import Redactor
from .run import Resume, Run, check_resumable, check_unused, named, new_run_id, own, resolve_run_dir
from .sandbox import registry
from .store import RunDir, RunStore
from .tasks import TaskRegistry
from .trial import AgentSettings, SuiteRoot, Trial, TrialKey, utc_now

STOP_AFTER_BROKEN_SETUPS = 3


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
        own(store, named(settings, run_dir))
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


def preflight_problems(settings: Config) -> list[str]:
    """Every problem of every provider model (and the judge) before any trial starts, all at once."""
    from .agents.providers import preflight

    models = (*settings.models, *filter(None, [settings.judge]))
    return [problem for model in models
            for problem in preflight(model, settings.model_params, call=settings.preflight_call)]


class Bench:
    """One bake-off in this process: the owners (``run``, ``tasks``, ``backend``, ``admission``, ``recorder``,
    ``end``) and what running a trial needs of them together (a new trial, its record, retries, the stop
    after provisioning keeps failing).

    Raises (constructor):
        ConfigError: the backend refuses these settings, or the admission ledger cannot be used.
    """

    def __init__(self, config: Config, run_id: str, run_dir: Path, *, worker: str | None = None,
                 concurrency: int = 1, args: list[str] | None = None, cwd: Path | None = None,
                 resume: Resume | None = None, previous: list[dict] | None = None, suite: SuiteRoot | None = None,
                 store: RunStore | None = None):
        self.config = config
        self.run = Run(run_id, run_dir, resume=resume, worker=worker, concurrency=concurrency, args=args or [],
                       cwd=cwd or Path.cwd())
        self.started_at = utc_now()
        try:
            self.backend = registry.load(config.backend).create(
                config.backend_options, run_id, untrusted=[m.text for m in config.models if m.writes_commands])
        except EnforcementUnavailable as exc:
            raise ConfigError(str(exc)) from None
        self._reaped = False  # leftovers of dead sessions are removed once, at the first check
        try:  # a backend whose sandboxes run elsewhere (a cluster's scheduler admits them) needs no host ledger
            self.admission: Admission | None = Admission(config.capacity) if self.backend.host_admission else None
        except StateDirError as exc:
            raise ConfigError(str(exc)) from None
        self.tasks = TaskRegistry(config, self.backend, suite or SuiteRoot(Path.cwd()),
                                  capacity=config.capacity if self.admission is not None else None)
        self.agent_settings = AgentSettings(max_steps=config.max_steps, model_params=config.model_params,
                                            retries=config.provider_retries, backoff_s=config.provider_backoff,
                                            prices=config.prices, judge=config.judge)
        # Secrets (from the environment or given as model parameters) never reach the run directory or LangSmith.
        self.recorder = Recorder(run_dir, Redactor.from_environ().with_params(config.model_params), self._card,
                                 previous, store)
        self.end = EndOfRun(config, self.recorder, run_dir)
        self._broken_setups = 0  # trials in a row that could not be provisioned, by a harness error

    @property
    def records_results(self) -> bool:
        return self.run.records_results

    @property
    def worker(self) -> str | None:
        return self.run.worker

    def key_of(self, nodeid: str) -> TrialKey | None:
        return self.tasks.key_of(nodeid)

    def check_backend(self, own: bool = True) -> str:
        """Before any sandbox starts, once trials are sure to run: the enforcement method, a writable run directory.

        Raises:
            ConfigError: no enforcement, or the run directory cannot be created (checked only now:
                a session that runs no trial, e.g. a project's plain tests, writes nothing).
        """
        try:
            check_creatable(self.run.dir, "run directory", "choose a writable --hb-out")
        except StateDirError as exc:
            raise ConfigError(str(exc)) from None
        if own:  # not yet in an xdist controller's configure: the collected task ids may still be refused
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
            own(self.recorder.store, named(self.config, self.run.dir))
            if self.run.resume is None:
                check_unused(self.config)

    def reap(self) -> int:
        """``--hb-reap``: remove the sandboxes that sessions which died left behind; returns how many."""
        self._reaped = True
        self.check_backend()
        return self.backend.reap()

    def new_trial(self, key: TrialKey, agent_factory=None) -> Trial:
        attempt = self.run.next_attempt(key.trial_id)
        return Trial(task=self.tasks.tasks[key.function_id], key=key, scale=self.config.scale, run_id=self.run.id,
                     backend=self.backend, admission=self.admission, attempt=attempt, agent=self.agent_settings,
                     agent_factory=agent_factory, worker=self.worker or "main")

    def retry(self, record: TrialRecord) -> bool:
        """Whether ``--hb-retry-infra`` runs this trial again: it ended in infra and has attempts left.

        A crashed worker's trial is not retried here: its process is gone.
        """
        return (record.outcome == INFRA and record.cause != WORKER_CRASH
                and self.run.started[record.trial_id] <= self.config.retry_infra)

    def crash_record(self, nodeid: str, worker: str, message: str) -> TrialRecord | None:
        """The record of a trial whose worker process died under it (``infra/worker_crash``)."""
        key = self.key_of(nodeid)
        if key is None:
            return None  # not a trial
        case, trial_id = key.case, key.trial_id
        attempt = 1 + self.run.attempts_before(trial_id)
        return TrialRecord(
            run_id=self.run.id, trial_id=trial_id, task_id=key.task_id, model=case.model.text,
            multiplier=case.multiplier.label, multiplier_factor=case.multiplier.factor, sample=case.sample,
            outcome=INFRA, cause=WORKER_CRASH,
            message=message, allocation={}, enforcement="", backend=self.config.backend, resources={},
            attempts=attempt, finished_at=utc_now(), worker=worker)

    def provisioned(self, record: TrialRecord | None) -> str | None:
        """Note how a trial's setup ended (None: it provisioned); a reason to stop the session, or None.

        A harness error in provisioning (a bug of the plugin or the host, not an
        infra fault of one sandbox) that hits the first few trials in a row will
        hit them all: stop with one message instead of one traceback per trial.
        """
        if record is None or (record.outcome, record.cause) != (ERROR, HARNESS):
            self._broken_setups = 0
            return None
        self._broken_setups += 1
        if self._broken_setups < STOP_AFTER_BROKEN_SETUPS:
            return None
        return (f"harnessbench: the last {self._broken_setups} trials could not be provisioned "
                f"({record.message}); stopping the session")

    def finish_trial(self, trial: Trial, exc: BaseException | None, body_s: float, traceback: str | None = None,
                     announce: Callable[[TrialRecord], object] | None = None) -> TrialRecord:
        """Classify, redact and save a trial's trajectory (with pytest's ``traceback`` of a failed one, which the
        terminal shows as one line); returns the record to send on.

        ``announce`` (the ``pytest_harnessbench_trial_record`` hook) sees the final record first, so what it
        adds to ``extra`` or ``metrics`` is redacted and stored with it."""
        record = trial.finish(exc, body_s, self.config.oom_as)
        if announce is not None:
            announce(record)
        record = self.recorder.redacted(record)
        self.recorder.save_trajectory(record, {**trial.trajectory_document(record), "traceback": traceback})
        return record

    def partial_line(self, interrupted: str | None) -> str | None:
        """Why this run is incomplete and the command that finishes it; None when it ran to its end."""
        return self.run.partial_line(interrupted, len(self.recorder.latest()), self.recorder.storage_error)

    def _card(self, finished_at: str | None) -> dict:
        """The harness card (docs/design.md §Harness card) as it stands; a resumed run keeps its first start and lists resumptions."""
        try:
            backend_info = self.backend.describe()
        except EnforcementUnavailable as exc:
            backend_info = {"backend": self.config.backend, "error": str(exc)}
        from .agents.defaults import fingerprint

        card = harness_card(run_id=self.run.id, started_at=self.started_at, settings=self.config.to_dict(),
                            backend=backend_info, harness=fingerprint(self.config.max_steps, self.config.model_params),
                            concurrency=self.run.concurrency, plugin_version=__version__,
                            args=self.run.args)
        card["finished_at"] = finished_at
        card["suite"] = self.tasks.suite.describe()
        if self.run.resume is not None:
            # Keep the original run's start; list every resumption.
            earlier = RunDir(self.run.dir).card() or {}
            card["started_at"] = earlier.get("started_at", card["started_at"])
            resumes = [r for r in earlier.get("resumes", []) if r.get("started_at") != self.started_at]
            card["resumes"] = resumes + [{"started_at": self.started_at, "args": self.run.args,
                                          "trials_already_final": len(self.run.resume.done)}]
        return card

    def finish(self) -> None:
        self.recorder.close(finished_at=utc_now())
        self.backend.close()
