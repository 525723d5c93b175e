"""The trial record: the one shape a trial's result has, from the trial to every reader (docs/design.md §Records).

A :class:`TrialRecord` is built once, when a trial's outcome is final
(``Trial.finish``, or the controller for a worker that died), and travels as
that object through the session, the statistics, the summary, the gate,
calibration and the export. It becomes a plain dict only at the edges: where
:class:`~pytest_harnessbench.store.RunStore` writes ``results.jsonl`` and
:class:`~pytest_harnessbench.store.RunDir` reads it back, and on the xdist wire
(a report's ``user_properties``), as pytest's ``TestReport`` is serialised only
there. :meth:`TrialRecord.from_dict` reads every schema-1 record, including
those of run directories older than some fields.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

SCHEMA_VERSION = 1
USER_PROPERTY = "harnessbench_record"  # key in report.user_properties


@dataclass
class Timing:
    """Where a trial's time went. Filled in while the trial runs; the record keeps its own copy."""

    queued_s: float = 0.0
    provision_s: float = 0.0
    agent_s: float = 0.0
    verify_s: float = 0.0  # time in the test body outside the agent: set-up and verification
    total_s: float = 0.0
    timeout_phase: str | None = None  # "agent" or "verify": where a failed/timeout trial ran out of time
    rate_wait_s: float = 0.0  # waited on a provider's rate limit (ratelimit.py): in total_s, not in agent_s

    @classmethod
    def from_dict(cls, data: Mapping | None) -> Timing:
        """Known fields of ``data`` (a record's ``timing``); older records lack some, none is required."""
        if not data:
            return cls()
        if data.keys() <= _TIMING_FIELDS:
            return cls(**data)
        return cls(**{k: v for k, v in data.items() if k in _TIMING_FIELDS})


_TIMING_FIELDS = frozenset(f.name for f in dataclasses.fields(Timing))


_UNSET = object()


@dataclass(frozen=True, slots=True)
class TrialRecord:
    """One attempt at one trial: identity, outcome, what it was given and what it used.

    Frozen: nothing changes a record once it is final. Two mappings are for
    others to fill before it is stored: ``metrics`` (name -> number; the plugin's
    own and any a ``pytest_harnessbench_trial_record`` hook adds) and ``extra``
    (anything JSON-able a hook wants kept with the record).
    """

    run_id: str
    trial_id: str
    task_id: str
    model: str
    multiplier: str  # its label: "1x", "1.5x", "uncapped"
    multiplier_factor: float | None  # its number; None for uncapped (nothing parses the label back)
    sample: int
    outcome: str  # outcomes.PASSED | FAILED | INFRA | ERROR
    cause: str | None
    message: str
    allocation: dict
    enforcement: str
    backend: str
    resources: dict  # peak_memory_bytes, cpu_seconds, oom_kills, ... (the sandbox's Evidence)
    timing: Timing = field(default_factory=Timing)
    usage: dict = field(default_factory=dict)  # model_calls, tool_calls, input_tokens, output_tokens
    metrics: dict = field(default_factory=dict)  # name -> number: how the agent worked (metrics.py)
    metrics_missing: dict = field(default_factory=dict)  # name -> why a metric asked for has no value
    attempts: int = 1
    started_at: str = ""
    finished_at: str = ""
    worker: str = "main"
    rewards: dict | None = None  # a Harbor task's verifier rewards (reward.json kept whole), else None
    budget: dict | None = None  # the trial's caps and the one reached (budget.py), None without caps
    confounders: dict = field(default_factory=dict)  # what the trial ran into besides its model (confounders.py)
    extra: dict = field(default_factory=dict)  # what pytest_harnessbench_trial_record hooks add
    schema: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        # The trial keeps filling its own Timing; the record holds a copy of it as it was
        # (from_dict hands over the timing's dict, made into a Timing only here).
        timing = self.timing
        object.__setattr__(self, "timing", Timing(**vars(timing)) if isinstance(timing, Timing)
                           else Timing.from_dict(timing))

    # ---- the edges: JSON in, JSON out

    def to_dict(self) -> dict:
        """The record as results.jsonl holds it.

        The nested mappings (``allocation``, ``resources``, ``usage``, ...) are the
        record's own, not copies: this is for serialising, copy before changing
        them. (``dataclasses.asdict`` deep-copies and costs ~20 times more.)
        """
        data = {name: getattr(self, name) for name in _FIELDS}
        data["timing"] = dict(vars(self.timing))
        return data

    @classmethod
    def from_dict(cls, data: Mapping) -> TrialRecord:
        """A record read back from JSON: results.jsonl, a trajectory file, a report's user properties.

        Fields a record of an older run lacks take their defaults; a record
        without ``multiplier_factor`` (older than that field) gets it from its
        label ("1.5x" -> 1.5, "uncapped" -> None). Unknown fields are dropped.

        Raises:
            ValueError: the multiplier label of such an older record is not one.
        """
        values = {name: data[name] for name in _FIELDS if name in data}
        for name, default in _REQUIRED.items():
            values.setdefault(name, default)
        if "multiplier_factor" not in data:
            values["multiplier_factor"] = multiplier_factor(str(values["multiplier"]))
        for name in ("allocation", "resources", "usage", "metrics", "metrics_missing", "extra", "confounders"):
            if values.get(name) is None:
                values[name] = {}
        return cls(**values)

    def replace(self, **changes) -> TrialRecord:
        return dataclasses.replace(self, **changes)

    # ---- facts read from the nested parts, named once

    @property
    def memory_spec_bytes(self) -> int | None:
        """The task's declared memory (the guarantee), or None."""
        return ((self.allocation or {}).get("guarantee") or {}).get("memory_bytes")

    @property
    def peak_memory_bytes(self) -> int | None:
        return self.resources.get("peak_memory_bytes")

    @property
    def oom_kills(self) -> int:
        return self.resources.get("oom_kills") or 0

    @property
    def multiplier_rank(self) -> float:
        """The multiplier as a number to sort by: uncapped (None) last."""
        return math.inf if self.multiplier_factor is None else float(self.multiplier_factor)


_FIELDS = tuple(f.name for f in dataclasses.fields(TrialRecord))
#: what a partial record (a trajectory file without its results.jsonl line, a test's shorthand) gets
_REQUIRED = {"run_id": "", "trial_id": "", "task_id": "", "model": "", "multiplier": "1x", "sample": 1,
             "outcome": "", "cause": None, "message": "", "allocation": {}, "enforcement": "", "backend": "",
             "resources": {}}


def multiplier_factor(label: str) -> float | None:
    """The number of a multiplier label: "1.5x" -> 1.5, "uncapped" -> None.

    Raises:
        ValueError: not a multiplier label.
    """
    text = label.strip().lower()
    if text == "uncapped":
        return None
    try:
        return float(text.removesuffix("x"))
    except ValueError:
        raise ValueError(f"bad multiplier label {label!r}: expected e.g. 1x, 1.5x, 3x or uncapped") from None


def package_versions(names=("pytest", "pytest-xdist", "langchain", "langchain-core", "langgraph",
                            "langsmith", "docker", "scipy")) -> dict[str, str | None]:
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def host_facts() -> dict:
    import os
    import platform

    from .procs import physical_memory_bytes

    return {"hostname": platform.node(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "memory_bytes": physical_memory_bytes(), "python": platform.python_version()}


def harness_card(*, run_id: str, started_at: str, settings: dict, backend: dict, harness: dict, concurrency: int,
                 plugin_version: str, args: list[str]) -> dict:
    """Everything that defines the experiment (docs/design.md §Harness card), for harness.json.

    Each part comes from where its facts are owned: ``backend`` from the
    backend (``describe()``), ``harness`` from the agent harness
    (``agents.defaults.fingerprint``), ``settings`` from the configuration.
    """
    return {
        "schema": SCHEMA_VERSION,
        "run_id": run_id,
        "started_at": started_at,
        "plugin_version": plugin_version,
        "packages": package_versions(),
        "host": host_facts(),
        "backend": backend,
        "enforcement": backend.get("enforcement"),
        "concurrency": concurrency,
        "settings": settings,
        "harness": harness,
        "retry_policy": {"provider_retries": settings.get("provider_retries"),
                         "provider_backoff_s": settings.get("provider_backoff_s"),
                         "infra_trials": _infra_retry_policy(settings.get("retry_infra") or 0)},
        "args": args,
    }


def _infra_retry_policy(retry_infra: int) -> str:
    """The card's words for ``--hb-retry-infra``: what happens to a trial that ended in infra."""
    later = "; also on request: --hb-resume RUN_DIR --hb-resume-retry infra"
    if retry_infra:
        return f"re-run up to {retry_infra} more time(s) in the same session, every attempt recorded" + later
    return "not re-run in the session (--hb-retry-infra 0)" + later
