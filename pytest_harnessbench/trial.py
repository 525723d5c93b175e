"""One trial at run time: its task, its case (model × multiplier × sample), its sandbox.

The test body receives a :class:`Trial` as the ``trial`` fixture. The plugin
calls :meth:`Trial.provision` before the body and :meth:`Trial.finish` after
it (before teardown, while the sandbox's kernel counters are still readable).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from datetime import datetime, timezone

from . import confounders, harbor, metrics
from .admission import Admission, Capacity, check_fits
from .budget import Caps, TrialBudget, cost_usd
from .agents.providers import oracle_commands
from .agents.trajectory import Trajectory, Usage
from .deadline import BoundedSandbox, TrialClock
from .errors import SandboxError
from .evidence import Evidence
from .models import ModelRef
from .outcomes import classify, thrashed, timeout_phase
from .records import Timing, TrialRecord
from .resources import Allocation, Multiplier, Spec, SpecError
from .sandbox.base import Backend, Sandbox
from .stats import METRIC_OUTCOMES

_UNSAFE = re.compile(r"[^A-Za-z0-9._@#=+-]+")
_DROPPED = re.compile(r"(?:[^\w]|[\x00-\x7f])+")  # within an unsafe run: all but non-ASCII letters and digits
MARKER_KEYS = frozenset({"cpus", "memory", "timeout", "verify_timeout", "pids", "image", "network", "solutions",
                         "reference_tools", "match_mode", "gate_on", "reference_answer"})


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Task:
    """What ``@pytest.mark.task(...)`` declares."""

    task_id: str
    name: str
    spec: Spec
    solutions: dict
    image: str | None = None
    network: bool = False
    harbor: harbor.HarborTask | None = None  # a Harbor task directory, run by harbor.run
    reference_tools: tuple = ()  # the expected tool-call path: names or (name, args)
    match_mode: str = "strict"  # how trajectory_match compares the path with reference_tools
    gate_on: dict = field(default_factory=dict)  # metric -> threshold a passed trial must also meet
    reference_answer: str | None = None  # the oracle's final reply (a LangSmith dataset's expected answer)

    @classmethod
    def from_harbor(cls, task_id: str, task: harbor.HarborTask) -> Task:
        """A Harbor task directory: its declared resources are the spec, ``solution/solve.sh`` the oracle."""
        solutions = {"default": harbor.oracle_command(task)} if task.has_solution else {}
        return cls(task_id=task_id, name=task.name, spec=task.spec, solutions=solutions, image=task.docker_image,
                   network=task.network, harbor=task)

    @classmethod
    def from_marker(cls, task_id: str, name: str, kwargs: dict) -> Task:
        """Raises SpecError naming the bad value (a misspelt key too: its default would pass silently)."""
        unknown = sorted(set(kwargs) - MARKER_KEYS)
        if unknown:
            raise SpecError(f"unknown key {unknown[0]}=...; a task accepts {', '.join(sorted(MARKER_KEYS))}")
        solutions = kwargs.get("solutions") or {}
        if isinstance(solutions, (str, list)):
            solutions = {"default": solutions}
        if not isinstance(solutions, dict):
            raise SpecError(f"solutions={solutions!r} must be a command, a list of commands or a dict of them")
        reference_tools = kwargs.get("reference_tools") or []
        match_mode = kwargs.get("match_mode", "strict")
        try:
            metrics.reference_document(reference_tools)
        except metrics.MetricError as exc:
            raise SpecError(str(exc)) from None
        if match_mode not in metrics.MATCH_MODES:
            raise SpecError(f"match_mode={match_mode!r} must be one of {', '.join(metrics.MATCH_MODES)}")
        return cls(task_id=task_id, name=name, spec=Spec.from_marker(**kwargs), solutions=dict(solutions),
                   image=kwargs.get("image"), network=bool(kwargs.get("network", False)),
                   reference_tools=tuple(reference_tools), match_mode=match_mode,
                   gate_on=_gate_on(kwargs.get("gate_on") or {}, bool(reference_tools)),
                   reference_answer=kwargs.get("reference_answer"))

    def check(self, models: Iterable[ModelRef], capacity: Capacity | None) -> None:
        """Whether this task can run in this bake-off at all; raises SpecError or ValueError saying why not.

        Every oracle model needs the solution it names, and the guarantee must fit the host's capacity
        (None: no host ledger admits these trials, e.g. a cluster's scheduler does).
        """
        for model in models:
            self.check_model(model)
        if capacity is not None:
            check_fits(self.spec.cpus, self.spec.memory_bytes, capacity)

    def check_model(self, model: ModelRef) -> None:
        """An oracle needs the solution it names (a task with no solutions but a reference tool path: the oracle
        replays that path). Raises SpecError."""
        if model.kind == "oracle" and self.harbor is not None:
            if model.argument:
                raise SpecError(f"--models {model.text}: a Harbor task has one solution (solution/solve.sh); use oracle")
            if not self.harbor.has_solution:
                raise SpecError(f"--models {model.text}: {self.harbor.solution_dir / 'solve.sh'} is missing")
        elif model.kind == "oracle" and not (self.reference_tools and not self.solutions and not model.argument):
            try:
                oracle_commands(self.solutions, model.argument)
            except KeyError as exc:
                raise SpecError(f"--models {model.text}: {exc.args[0]}") from None


def _gate_on(gate_on, has_reference: bool) -> dict:
    """``gate_on={"trajectory_match": 1, "steps": 10}``: metric names to numbers. Raises SpecError."""
    if not isinstance(gate_on, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) for k, v in gate_on.items()):
        raise SpecError(f"gate_on={gate_on!r} must map metric names to numbers, e.g. gate_on={{'trajectory_match': 1}}")
    if "trajectory_match" in gate_on and not has_reference:
        raise SpecError("gate_on trajectory_match needs reference_tools=[...] on the task")
    return dict(gate_on)


@dataclass(frozen=True)
class Case:
    """One parametrization of a task: the id reads ``model@multiplier#sample``."""

    model: ModelRef
    multiplier: Multiplier
    sample: int

    @cached_property
    def id(self) -> str:  # computed once: 30,000 items ask for it
        return f"{self.model.text}@{self.multiplier.label}#{self.sample}"

    @cached_property
    def cell(self) -> tuple[str, str]:
        """(model, multiplier label): the cell of the outcome table, which progress, the gate's plan and the
        shard split count by; computed once per case, not per item."""
        return self.model.text, self.multiplier.label


@dataclass(frozen=True)
class AgentSettings:
    """How the harness drives models: the same for every trial of a run."""

    max_steps: int = 30
    model_params: dict = field(default_factory=dict)  # model text (or "*") -> init_chat_model kwargs
    retries: int = 2  # provider retries per model call, done by the harness
    backoff_s: float = 1.0
    prices: dict = field(default_factory=dict)  # model text -> {"input_per_1m": $, "output_per_1m": $}
    judge: ModelRef | None = None  # scores every trial's outcome (metric "judge")
    caps: Caps = Caps()  # token and cost caps per trial (budget.py), before --hb-scale budget
    rate_limits: object = None  # ratelimit.RateLimits shared by every worker, or None


def make_cases(models, multipliers, samples: int) -> list[Case]:
    return [Case(model, mult, k) for model in models for mult in multipliers for k in range(1, samples + 1)]


class SuiteRoot:
    """Where task ids start: the same suite gives the same ids from any working directory (issue 27).

    pytest's node ids are relative to its rootdir, which moves with the working
    directory and with every existing path on the command line (an option's value
    written after a space, ``--hb-resume /tmp/runs/r1``, counts too). Task ids are
    relative to the suite's own root instead: the ini file's directory when the
    test file lies under it, else the file's package root (the directory above
    its outermost package, as pytest's default import mode finds it; for a Harbor
    ``task.toml``, the directory above its task directory).
    """

    def __init__(self, rootdir: Path, ini_dir: Path | None = None):
        self.rootdir = Path(rootdir)
        self.ini_dir = None if ini_dir is None else Path(ini_dir)
        self._ids: dict[str, str] = {}  # node id's file part -> its path from the suite's root
        self._files: dict[str, Path] = {}  # that path -> the file it came from: two files may not share one

    def describe(self) -> dict:
        """For the harness card: what the task ids are relative to."""
        return {"ini_dir": self.ini_dir and str(self.ini_dir), "name": (self.ini_dir or self.rootdir).name,
                "task_ids": "relative to ini_dir, else to each test file's package root"}

    def node_id(self, nodeid: str) -> str:
        """A pytest node id with its file part relative to the suite's root instead of the rootdir.

        Raises:
            SpecError: two test files give the same path (same names in directories without __init__.py).
        """
        file_part, sep, rest = nodeid.partition("::")
        if file_part not in self._ids:
            path = Path(os.path.normpath(self.rootdir / file_part))
            suite_path = path.relative_to(self._anchor(path)).as_posix()
            other = self._files.setdefault(suite_path, path)
            if other != path:
                raise SpecError(f"{other} and {path} would share the task id {suite_path}: add a pytest.ini (or "
                                "[tool.pytest.ini_options]) at the suite's root, or an __init__.py to each directory")
            self._ids[file_part] = suite_path
        return self._ids[file_part] + sep + rest

    def _anchor(self, path: Path) -> Path:
        if self.ini_dir is not None and path.is_relative_to(self.ini_dir):
            return self.ini_dir
        if path.name == harbor.CONFIG:
            return path.parent.parent
        directory = path.parent
        while (directory / "__init__.py").is_file() and directory != directory.parent:
            directory = directory.parent
        return directory


@dataclass(frozen=True)
class TrialKey:
    """Who a trial is: its task and case. Computed once per pytest item (kept in ``item.stash``).

    ``function_id`` is the test function's node id (``path::test_name``), where its
    task marker is parsed; ``task_id`` adds the user's own parameters, if any.
    The attempt number is not part of it: every attempt of a trial shares its id.
    """

    function_id: str
    task_id: str
    case: Case

    @classmethod
    def of(cls, nodeid: str, case: Case, suite: SuiteRoot) -> TrialKey:
        """The one reader of trial node ids: ``path::name[params]``, our case id among the params.

        The path is made relative to the suite's root (see :class:`SuiteRoot`). pytest
        joins parametrization ids with ``-``: the user's own stay, ours is cut out.
        """
        function_id, _, params = suite.node_id(nodeid).partition("[")
        own_ids = params.removesuffix("]").replace(case.id, "", 1).strip("-")
        return cls(function_id, f"{function_id}[{own_ids}]" if own_ids else function_id, case)

    @classmethod
    def find(cls, nodeid: str, cases: Mapping[str, Case], suite: SuiteRoot) -> TrialKey | None:
        """The key of a node id whose parameters hold one of ``cases`` (by case id); None for other tests."""
        params = nodeid.partition("[")[2].removesuffix("]")
        # pytest joins parametrization ids with "-": ours is the whole id, or a run at its start or end.
        cuts = [params] + [params[i + 1:] for i, c in enumerate(params) if c == "-"] + \
               [params[:i] for i, c in enumerate(params) if c == "-"]
        case = next((cases[cut] for cut in cuts if cut in cases), None)
        return None if case is None else cls.of(nodeid, case, suite)

    @property
    def name(self) -> str:
        return self.function_id.rsplit("::", 1)[-1]

    @cached_property
    def trial_id(self) -> str:
        """Readable, filename-safe and stable across runs (resume matches on it).

        Letters and digits beyond ASCII are kept; other characters outside the safe
        set become ``_``. Where that drops a non-ASCII character, a digest of the
        case id follows, so that models differing only there never share a file.
        """
        readable = f"{self.name}[{self.case.id}]"
        digest = hashlib.sha1(self.task_id.encode()).hexdigest()[:6]
        if readable.isascii():  # the common case, and the ids of runs made before non-ASCII was kept
            return f"{_UNSAFE.sub('_', readable)}-{digest}"
        safe = _UNSAFE.sub(lambda run: _DROPPED.sub("_", run.group()), readable)
        if sum(not c.isascii() for c in safe) < sum(not c.isascii() for c in readable):
            digest += "-" + hashlib.sha1(self.case.id.encode()).hexdigest()[:6]
        return f"{safe}-{digest}"


class Trial:
    """The ``trial`` fixture: ``trial.sandbox`` and ``trial.run_agent(instruction)``."""

    def __init__(self, *, task: Task, key: TrialKey, scale: frozenset[str], run_id: str, backend: Backend,
                 agent: AgentSettings = AgentSettings(), admission: Admission | None = None, attempt: int = 1,
                 worker: str = "main", agent_factory=None):
        self.task = replace(task, task_id=key.task_id)
        self.case = case = key.case
        self.model = case.model.text
        self.run_id = run_id
        self.trial_id = key.trial_id
        self.allocation = Allocation.of(task.spec, case.multiplier, scale)
        self.backend = backend
        self.admission = admission
        self._admitted = False
        self.agent = agent
        self.agent_factory = agent_factory  # None: the harness's own agent
        self.worker = worker
        self.attempt = attempt
        self.enforcement = ""
        self.trajectories: list[Trajectory] = []
        self.timing = Timing()
        self.metrics: dict[str, float] = {}  # from trial.evaluate; the built-in ones are added at finish
        self.started_at = utc_now()
        self._sandbox: Sandbox | None = None
        self.clock = TrialClock(self.allocation.verify_timeout_s)
        self.rewards: dict[str, float] | None = None  # a Harbor verifier's rewards, kept whole in the record
        self.budget = TrialBudget(agent.caps.scaled(case.multiplier.factor, scale), agent.prices.get(self.model))
        self.confounders: dict = {}  # what the trial started into (confounders.py), set when it is admitted

    @property
    def sandbox(self) -> BoundedSandbox:
        """The trial's sandbox; each command is bounded by what is left of the current phase (deadline.py)."""
        if self._sandbox is None:
            raise RuntimeError("the trial's sandbox is not provisioned")
        return BoundedSandbox(self._sandbox, self.clock)

    def provision(self) -> None:
        """Wait for admission, then create the sandbox.

        The wait is ``queued_s``, never charged to the agent. Raises
        SandboxStartError (an infra outcome) if the backend cannot start one.
        """
        if self.admission is not None:
            guarantee = self.allocation.guarantee
            self.timing.queued_s = self.admission.acquire(self.trial_id, guarantee.cpus, guarantee.memory_bytes)
            self._admitted = True
        self.started_at = utc_now()  # admitted: the trial's own clock starts here
        self.confounders = confounders.at_start(self.admission.admitted_with(self.trial_id) if self._admitted else None)
        start = time.monotonic()
        try:
            self.enforcement = self.backend.check()
            if self.task.harbor is not None:  # its image (built from its Dockerfile, cached), workdir and env
                image, workdir, env = harbor.prepare(self.backend, self.task.harbor)
                self._sandbox = self.backend.provision(self.allocation, self.trial_id, image=image,
                                                       network=self.task.network, workdir=workdir, env=env)
            else:
                self._sandbox = self.backend.provision(self.allocation, self.trial_id, image=self.task.image,
                                                       network=self.task.network)
        finally:  # also a start that failed: e.g. the time a pod waited to be scheduled
            self.timing.provision_s = time.monotonic() - start

    def run_agent(self, instruction: str) -> Trajectory:
        """Run this trial's model in the harness's one agent; limits end it gracefully.

        Raises:
            ProviderError: the provider kept failing after the retry budget (infra).
            ModelGaveUp: the model's context overflowed (its own failure).
        """
        import pytest

        from .agents.harness import run_agent
        from .agents.providers import ModelContext, make_chat_model, translate_fault

        start = time.monotonic()
        spent = sum(t.duration_s for t in self.trajectories)
        budget = None if self.allocation.timeout_s is None else max(0.0, self.allocation.timeout_s - spent)
        context = ModelContext(self.task.task_id, self.case.sample, self.task.solutions, self.task.reference_answer,
                               self.task.reference_tools)
        model = make_chat_model(self.case.model, context, self.agent.model_params, budget)
        if model is None:
            pytest.skip(f"{self.model}: nothing recorded for this task and sample")
        trajectory = Trajectory(model=self.model, instruction=instruction)
        self.trajectories.append(trajectory)  # kept, partial or not, whatever happens below
        throttle = self.agent.rate_limits and self.agent.rate_limits.throttle(self.model, self.clock.paused)
        try:
            with self.clock.agent_phase(budget):  # the harness bounds its own tool calls by this budget
                return run_agent(model, trajectory, self._sandbox, timeout_s=budget, max_steps=self.agent.max_steps,
                                 factory=self.agent_factory, retries=self.agent.retries,
                                 backoff_s=self.agent.backoff_s, budget=self._budget_check() if self.budget.caps else None,
                                 throttle=throttle)
        except Exception as exc:
            fault = translate_fault(exc)
            if fault is not None:
                raise fault from exc
            raise
        finally:
            self.timing.rate_wait_s += trajectory.rate_wait_s  # the provider's time, like queued_s: not the agent's
            self.timing.agent_s += time.monotonic() - start - trajectory.rate_wait_s
            self.budget.reached = self.budget.reached or trajectory.budget_reached

    def _budget_check(self):
        """The harness's question between model calls: has this trial (every run_agent of it) reached a cap?"""
        before = [t.usage for t in self.trajectories[:-1]]
        earlier_in = sum(u.input_tokens for u in before)
        earlier_out = sum(u.output_tokens for u in before)
        return lambda usage: self.budget.hit(earlier_in + usage.input_tokens, earlier_out + usage.output_tokens)

    def evaluate(self, reference_tools, *, mode: str = "strict", args: str = "given", name: str | None = None) -> float:
        """Score this trial's tool-call path against ``reference_tools`` (agentevals); recorded as a metric.

        ``mode``: strict, unordered, subset or superset; ``args``: given (the
        arguments the reference names must match), exact or ignore. The metric is
        ``name`` (default ``trajectory_<mode>``), 1.0 or 0.0; it never changes the
        outcome unless the task gates on it. Raises MetricError for a bad mode or reference.
        """
        reference = metrics.reference_document(reference_tools)
        score = metrics.trajectory_match(self._document(), reference, mode, args)
        self.metrics[name or f"trajectory_{mode}"] = score
        return score

    def _document(self) -> dict:
        """The trajectories as trials/*.json stores them and the metrics read them (messages shared, not copied)."""
        return {"trajectories": [t.to_dict() for t in self.trajectories]}

    def _all_metrics(self, judge: bool) -> tuple[dict, dict]:
        """(metrics, missing): built-in ones, the task's trajectory_match, the judge's, the body's evaluate calls.

        ``judge``: whether to ask the judge (not for infra and error trials, which no summary counts).
        """
        if not self.trajectories:
            missing = dict.fromkeys(self.task.gate_on, "the agent did not run")
            return dict(self.metrics), missing
        document = self._document()
        values = metrics.builtin_metrics(document)
        missing = {}
        if self.task.reference_tools:
            try:
                values["trajectory_match"] = metrics.trajectory_match(
                    document, metrics.reference_document(self.task.reference_tools), self.task.match_mode)
            except Exception as exc:  # a metric never ends a trial; it is missing, with its cause
                missing["trajectory_match"] = f"{type(exc).__name__}: {exc}"
        if judge and self.agent.judge is not None:
            self._judge(document, values, missing)
        values.update(self.metrics)
        return values, missing

    def _judge(self, document: dict, values: dict, missing: dict) -> None:
        """The judge's score, or why there is none: a judge that failed is no evidence either way (never a 0)."""
        from .agents.providers import fault_text, make_judge_model

        try:
            values[metrics.JUDGE] = metrics.judge_outcome(
                make_judge_model(self.agent.judge, self.agent.model_params), document)
        except Exception as exc:
            missing[metrics.JUDGE] = f"judge {self.agent.judge.text} failed: {fault_text(exc)}"

    @property
    def stop_reason(self) -> str | None:
        return self.trajectories[-1].stop_reason if self.trajectories else None

    def usage(self) -> dict:
        total = Usage()
        for t in self.trajectories:
            for key, value in vars(t.usage).items():
                setattr(total, key, getattr(total, key) + value)
        usage = vars(total)
        cost = cost_usd(total.input_tokens, total.output_tokens, self.agent.prices.get(self.model))
        usage["cost_usd"] = None if cost is None else round(cost, 6)
        return usage

    def evidence(self) -> Evidence:
        """The sandbox's evidence; a sandbox that can no longer tell says so in a note."""
        if self._sandbox is None:
            return Evidence()
        try:
            return self._sandbox.evidence()
        except SandboxError as exc:
            return Evidence(notes=[f"evidence unavailable: {exc}"])

    def finish(self, exc: BaseException | None, body_s: float, oom_as: str) -> TrialRecord:
        """Classify and build the record; call before :meth:`close`."""
        evidence = self.evidence()
        allocation = self.allocation.to_dict()
        if self._sandbox is not None:
            try:
                allocation["applied"] = self._sandbox.applied_limits()
            except SandboxError as exc:
                allocation["applied"] = {"error": str(exc)}
        verdict = classify(exc, evidence.oom_kills, self.stop_reason, oom_as, evidence.pids_limit_hits,
                           evidence.disk_full, thrashed(evidence, self.allocation.limit.memory_bytes))
        values, missing = self._all_metrics(judge=verdict.outcome in METRIC_OUTCOMES)
        verdict = metrics.gate_verdict(verdict, values, self.task.gate_on, missing)
        self.timing.timeout_phase = timeout_phase(exc, verdict)
        self.timing.verify_s = max(0.0, body_s - self.timing.agent_s - self.timing.rate_wait_s)
        self.timing.total_s = self.timing.queued_s + self.timing.provision_s + body_s
        return TrialRecord(
            run_id=self.run_id, trial_id=self.trial_id, task_id=self.task.task_id, model=self.model,
            multiplier=self.case.multiplier.label, multiplier_factor=self.case.multiplier.factor,
            sample=self.case.sample,
            outcome=verdict.outcome, cause=verdict.cause, message=verdict.message,
            allocation=allocation, enforcement=self.enforcement, backend=self.backend.name,
            resources={"peak_memory_bytes": evidence.peak_memory_bytes, "cpu_seconds": evidence.cpu_seconds,
                       "oom_kills": evidence.oom_kills, "oom_source": evidence.oom_source,
                       "pids_limit_hits": evidence.pids_limit_hits, "disk_free_bytes": evidence.disk_free_bytes,
                       "disk_full": evidence.disk_full, "memory_at_limit": evidence.memory_at_limit,
                       "file_refault_bytes": evidence.file_refault_bytes, "major_faults": evidence.major_faults,
                       "memory_stall_s": evidence.memory_stall_s, "notes": evidence.notes},
            timing=self.timing, usage=self.usage(), metrics=values, metrics_missing=missing,
            attempts=self.attempt, rewards=self.rewards,
            started_at=self.started_at, finished_at=utc_now(),
            worker=self.worker,
            budget=self.budget.to_dict() if self.budget.caps else None,
            confounders={**self.confounders,  # a built-in model's calls are no provider's latency
                         **confounders.of_calls(self.trajectories if self.case.model.kind == "provider" else [])},
        )

    def trajectory_document(self, record: dict) -> dict:
        return {"record": record, **self._document()}

    def close(self) -> None:
        try:
            if self._sandbox is not None:
                self._sandbox.close()
        finally:
            if self._admitted:
                self.admission.release(self.trial_id)
                self._admitted = False
