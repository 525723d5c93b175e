"""The trial record: one JSON object per trial in results.jsonl (DESIGN.md §6)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

SCHEMA_VERSION = 1
USER_PROPERTY = "harnessbench_record"  # key in report.user_properties


@dataclass
class Timing:
    queued_s: float = 0.0
    provision_s: float = 0.0
    agent_s: float = 0.0
    verify_s: float = 0.0  # time in the test body outside the agent: set-up and verification
    total_s: float = 0.0
    timeout_phase: str | None = None  # "agent" or "verify": where a failed/timeout trial ran out of time
    rate_wait_s: float = 0.0  # waited on a provider's rate limit (ratelimit.py): in total_s, not in agent_s


@dataclass
class TrialRecord:
    run_id: str
    trial_id: str
    task_id: str
    model: str
    multiplier: str  # its label: "1x", "1.5x", "uncapped"
    multiplier_factor: float | None  # its number; None for uncapped (nothing parses the label back)
    sample: int
    outcome: str
    cause: str | None
    message: str
    allocation: dict
    enforcement: str
    backend: str
    resources: dict  # peak_memory_bytes, cpu_seconds, oom_kills
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
    schema: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        return asdict(self)


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


def harness_card(*, run_id: str, started_at: str, settings: dict, backend: dict, concurrency: int,
                 plugin_version: str, args: list[str]) -> dict:
    """Everything that defines the experiment (DESIGN.md §6), for harness.json."""
    from .agents.defaults import DEFAULT_MAX_STEPS, SYSTEM_PROMPT, TOOL_DESCRIPTIONS, sha256, toolset_hash

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
        "harness": {
            "system_prompt_sha256": sha256(SYSTEM_PROMPT),
            "tools": sorted(TOOL_DESCRIPTIONS),
            "toolset_sha256": toolset_hash(),
            "max_steps": settings.get("max_steps", DEFAULT_MAX_STEPS),
            "model_params": settings.get("model_params", {}),
        },
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
