"""Options and ini keys → one validated, immutable :class:`Config`.

Every option has an ini key (``--models`` ↔ ``hb_models``, ``--hb-backend`` ↔
``hb_backend``); the command line wins. The options here are the common ones; each
backend declares and parses its own (``Backend.options``), kept in
``Config.backend_options``. Bad values raise :class:`ConfigError`
naming the value and what is accepted; the plugin turns it into a usage error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from .models import ModelRef, ModelSpecError, parse_model, parse_model_param
from .options import BackendOptions, ConfigError, Option, comma_list, parse_bool, parse_choice, parse_number
from .outcomes import FAILED, INFRA
from .resources import DEFAULT_SCALE, SCALABLE, Multiplier, SpecError
from .sandbox import registry

OOM_AS = (INFRA, FAILED)


OPTIONS = (
    Option("models", "--models", "hb_models", "oracle",
           "comma list of models: provider:model strings, or built-ins oracle[:VARIANT], nop, replay:RUN_DIR[::MODEL]"),
    Option("multipliers", "--multipliers", "hb_multipliers", "1",
           "comma list of kill-threshold multipliers ≥ 1 (1, 1.5, 3x) or 'uncapped'"),
    Option("samples", "--samples", "hb_samples", "1", "repeats per task × model × multiplier"),
    Option("backend", "--hb-backend", "hb_backend", "local", "sandbox backend"),  # its help lists the registered
    Option("scale", "--hb-scale", "hb_scale", ",".join(sorted(DEFAULT_SCALE)),
           f"what the multiplier scales: comma list of {', '.join(SCALABLE)}"),
    Option("out", "--hb-out", "hb_out", "", "run directory (default .harnessbench/runs/RUN_ID under the rootdir)"),
    Option("oom_as", "--hb-oom-as", "hb_oom_as", INFRA,
           "count a non-passing trial with a kernel OOM kill, a fork refused at its pids limit, or a timeout "
           "while thrashing at its memory limit, as 'infra' (default) or 'failed'"),
    Option("max_steps", "--hb-max-steps", "hb_max_steps", "30",
           "model calls allowed per trial (the last one's tool calls still run)"),
    Option("model_params", "--hb-model-param", "hb_model_params", "",
           "MODEL:KEY=VALUE passed to the model's constructor (repeatable; '*' for every provider model), "
           "e.g. openai:gpt-5.1:temperature=0 or openai:local:base_url=http://127.0.0.1:8000/v1", repeated=True),
    Option("judge", "--hb-judge", "hb_judge", "",
           "LLM-as-judge (openevals task completion) of every trial, recorded as metric 'judge': a provider:model "
           "string, preflighted like --models"),
    Option("preflight_call", "--hb-preflight-call", "hb_preflight_call", "false",
           "before any trial, make one tiny request to every provider model", flag_only=True),
    Option("provider_retries", "--hb-provider-retries", "hb_provider_retries", "2",
           "retries of a failing model call (rate limit, 5xx, connection, timeout) before the trial is infra/provider"),
    Option("provider_backoff", "--hb-provider-backoff", "hb_provider_backoff", "1.0",
           "seconds before the first provider retry (doubling after each)"),
    Option("prices", "--hb-prices", "hb_prices", "",
           "JSON price table for cost estimates: {MODEL: {input_per_1m: USD, output_per_1m: USD}}"),
    Option("max_tokens", "--hb-max-tokens", "hb_max_tokens", "",
           "token cap per trial (input + output, every model alike): the agent stops between model calls once it "
           "is reached, verification runs, a trial that did not pass is failed/budget; '--hb-scale budget' scales it"),
    Option("max_cost", "--hb-max-cost", "hb_max_cost", "",
           "cost cap per trial in USD (needs --hb-prices for every provider model); enforced as --hb-max-tokens"),
    Option("max_spend", "--hb-max-spend", "hb_max_spend", "",
           "spend cap for this session in USD (needs --hb-prices): past it no new trial starts and the session ends "
           "as a PARTIAL RUN with the command that finishes it"),
    Option("rate_limit", "--hb-rate-limit", "hb_rate_limit", "",
           "provider rate limits shared by every worker on this host: KEY=LIMIT comma list, KEY a provider or a "
           "model, LIMIT requests or tokens per window, e.g. openai=500rpm,openai:gpt-5.1=30000tpm,openai:x=3/5s"),
    Option("capacity", "--hb-capacity", "hb_capacity", "",
           "admission control: host capacity shared by concurrent trials, e.g. cpus=2,memory=20Gi (default: this machine)"),
    Option("progress", "--hb-progress", "hb_progress", "30",
           "seconds between progress lines (trials done per model × multiplier, infra so far); 0 turns them off"),
    Option("reap", "--hb-reap", "hb_reap", "false",
           "remove sandboxes (cgroups, directories, containers) left by sessions that died, then exit", flag_only=True),
    Option("shard", "--hb-shard", "hb_shard", "",
           "run only share K of N of the trials (K/N, 1-based; deterministic from the trial keys, so N machines "
           "split one bake-off without talking), or 'auto' from CI_NODE_INDEX/CI_NODE_TOTAL (GitLab), "
           "BUILDKITE_PARALLEL_JOB/_COUNT, JOB_COMPLETION_INDEX + HARNESSBENCH_SHARD_TOTAL (Kubernetes Indexed Job); "
           "merge the run directories with `harnessbench merge`"),
    Option("resume", "--hb-resume", "hb_resume", "",
           "continue an interrupted run: skip trials RUN_DIR already holds with a final outcome, append to it"),
    Option("retry_infra", "--hb-retry-infra", "hb_retry_infra", "0",
           "run a trial that ended in infra again, up to N more times (every attempt stays recorded)"),
    Option("resume_retry", "--hb-resume-retry", "hb_resume_retry", "",
           "with --hb-resume: 'infra' also re-runs trials that ended in infra (every attempt stays recorded)"),
    Option("dataset", "--hb-dataset", "hb_dataset", "",
           "tasks from a LangSmith dataset, one per example: langsmith:NAME[@VERSION_OR_TAG], or a file written by "
           "'harnessbench dataset pull' (may be given several times)", repeated=True),
    Option("dataset_criterion", "--hb-dataset-criterion", "hb_dataset_criterion", "",
           "pass criterion of every dataset example: answer, trajectory[:T] or judge[:T] (default: the example's "
           "metadata.criterion, else answer if its reference has one, else trajectory)"),
    Option("langsmith", "--hb-langsmith", "hb_langsmith", "false",
           "upload the run to LangSmith at the end (on by default when LANGSMITH_API_KEY or LANGSMITH_TRACING is set)",
           flag_only=True),
    Option("langsmith_project", "--hb-langsmith-project", "hb_langsmith_project", "",
           "LangSmith project for this run (default harnessbench-RUN_ID)"),
    Option("langsmith_mode", "--hb-langsmith-mode", "hb_langsmith_mode", "",
           "experiments: the suite as a dataset, one experiment per model × multiplier, trials sent as they finish "
           "(the default); project: one tracing project per run (the default when --hb-langsmith-project is given)"),
    Option("langsmith_dataset", "--hb-langsmith-dataset", "hb_langsmith_dataset", "",
           "LangSmith dataset of the suite's tasks for the experiments (default harnessbench-<suite root's name>)"),
    Option("langsmith_timeout", "--hb-langsmith-timeout", "hb_langsmith_timeout", "30",
           "seconds the end-of-run upload may take; what does not make it stays in the run directory"),
    Option("gate", "--hb-gate", "hb_gate", "",
           "baseline model: gate every other model against it, paired by task; the exit status is the gate's"),
    Option("gate_at", "--hb-gate-at", "hb_gate_at", "", "gate at this multiplier only (default: every multiplier)"),
    Option("gate_margin", "--hb-gate-margin", "hb_gate_margin", "score:3pt",
           "allowed worsening per metric, e.g. score:3pt,infra_rate:2pt (metrics: score = passed/all trials, "
           "pass_rate excludes infra, infra_rate, pass^K = all K samples pass, pass@K = one of K passes) or a trial "
           "metric in its own units, e.g. steps:+2, "
           "trajectory_match:-0.1"),
    Option("gate_alpha", "--hb-gate-alpha", "hb_gate_alpha", "0.05", "gate significance level (two-sided interval at 1-alpha)"),
    Option("gate_strict", "--hb-gate-strict", "hb_gate_strict", "false",
           "an inconclusive gate fails the run (exit status 6); the default where the CI variable is set",
           flag_only=True),
    Option("gate_accept_inconclusive", "--hb-gate-accept-inconclusive", "hb_gate_accept_inconclusive", "false",
           "an inconclusive gate exits 0 even where the CI variable is set", flag_only=True),
    Option("gate_sequential", "--hb-gate-sequential", "hb_gate_sequential", "false",
           "run tasks in a seeded random order and decide the gate after each finished task (a fail at any look, "
           "with an interval valid however often it is looked at; a pass only after the last task); once every "
           "comparison is decided, skip the remaining trials",
           flag_only=True),
    Option("compare", "--hb-compare", "hb_compare", "",
           "gate against the baseline model's records in this earlier run directory instead of this run's"),
    Option("report", "--hb-report", "hb_report", "",
           "write a self-contained HTML report (plots, calibration, trials and their trajectories) to this .html file"),
    Option("calibrate", "--hb-calibrate", "hb_calibrate", "false",
           "recommend the kill threshold from this sweep of multipliers (needs 1x and one more) and the memory "
           "headroom per task; writes calibration.json to the run directory", flag_only=True),
)


BACKEND_OPTION = next(opt for opt in OPTIONS if opt.name == "backend")


@dataclass(frozen=True)
class Config:
    models: tuple[ModelRef, ...]
    multipliers: tuple[Multiplier, ...]
    samples: int
    backend: str
    scale: frozenset[str]
    out: Path | None
    oom_as: str
    max_steps: int
    #: The chosen backend's own options, parsed by it (sandbox.base.BackendOptions)
    backend_options: BackendOptions = field(default_factory=BackendOptions)
    capacity: object = None  # admission.Capacity
    model_params: dict = field(default_factory=dict)  # model text (or "*") -> {key: value}
    judge: ModelRef | None = None  # --hb-judge: scores every trial, never part of the outcome unless gated on
    preflight_call: bool = False
    provider_retries: int = 2
    provider_backoff: float = 1.0
    prices: dict = field(default_factory=dict)
    max_tokens: int | None = None  # per trial (budget.py)
    max_cost: float | None = None  # per trial, USD
    max_spend: float | None = None  # per session, USD
    rate_limits: tuple = ()  # ratelimit.Limit
    reap: bool = False
    progress_s: float = 30.0
    resume: Path | None = None
    shard: object = None  # shard.Shard: this session runs one share of the trials (--hb-shard)
    langsmith: bool = False
    langsmith_project: str | None = None
    langsmith_timeout: float = 30.0
    datasets: tuple[str, ...] = ()  # --hb-dataset sources (datasets.py)
    dataset_criterion: str | None = None
    langsmith_mode: str = "experiments"  # or "project" (export/langsmith.py)
    langsmith_dataset: str | None = None
    resume_retry: frozenset[str] = frozenset()
    retry_infra: int = 0
    gate: str | None = None
    gate_at: Multiplier | None = None
    gate_margins: tuple = ()
    gate_alpha: float = 0.05
    gate_strict: bool = False  # an inconclusive verdict blocks: --hb-gate-strict, or CI set; gate_strict_why says which
    # (or, not blocking in CI, that --hb-gate-accept-inconclusive was given)
    gate_strict_why: str = ""
    gate_sequential: bool = False  # --hb-gate-sequential (sequential.py)
    compare: Path | None = None
    report: Path | None = None
    calibrate: bool = False

    def to_dict(self) -> dict:
        return {
            "models": [m.text for m in self.models],
            "multipliers": [m.label for m in self.multipliers],
            "samples": self.samples,
            "backend": self.backend,
            "scale": sorted(self.scale),
            "oom_as": self.oom_as,
            **self.backend_options.settings(),
            "max_steps": self.max_steps,
            "capacity": str(self.capacity),
            "model_params": self.model_params,
            "provider_retries": self.provider_retries,
            "provider_backoff_s": self.provider_backoff,
            "retry_infra": self.retry_infra,
            "shard": self.shard and self.shard.label,
            "datasets": list(self.datasets),
            "dataset_criterion": self.dataset_criterion or ("per example: metadata.criterion, else answer if its "
                                                            "reference has one, else trajectory:1")
            if self.datasets else None,
            "prices": self.prices,
            "budget": {"tokens": self.max_tokens, "cost_usd": self.max_cost, "scaled": "budget" in self.scale,
                       "session_spend_usd": self.max_spend},
            "rate_limits": [str(limit) for limit in self.rate_limits],
            "gate": None if self.gate is None else {
                "baseline": self.gate, "at": self.gate_at and self.gate_at.label,
                "margins": [str(m) for m in self.gate_margins], "alpha": self.gate_alpha,
                "strict": self.gate_strict, "strict_why": self.gate_strict_why, "sequential": self.gate_sequential,
                "compare": self.compare and str(self.compare)},
        }


def _no_duplicates(flag: str, values: list, labels: list[str]) -> None:
    seen: dict = {}
    for value, label in zip(values, labels):
        if value in seen:
            raise ConfigError(f"{flag}: {label!r} repeats {seen[value]!r}; list each value once")
        seen[value] = label


def parse_models(text: str) -> tuple[ModelRef, ...]:
    items = comma_list("--models", text)
    try:
        models = [parse_model(item) for item in items]
    except ModelSpecError as exc:
        raise ConfigError(f"--models: {exc}") from None
    _no_duplicates("--models", [m.text for m in models], items)
    return tuple(models)


def parse_multipliers(text: str) -> tuple[Multiplier, ...]:
    items = comma_list("--multipliers", text)
    try:
        multipliers = [Multiplier.parse(item) for item in items]
    except SpecError as exc:
        raise ConfigError(f"--multipliers: {exc}") from None
    _no_duplicates("--multipliers", multipliers, items)
    return tuple(multipliers)


def parse_scale(text: str) -> frozenset[str]:
    items = [item.lower() for item in comma_list("--hb-scale", text)]
    unknown = [item for item in items if item not in SCALABLE]
    if unknown:
        raise ConfigError(f"--hb-scale: {unknown[0]!r} is not one of: {', '.join(SCALABLE)}")
    return frozenset(items)


def parse_judge(text: str) -> ModelRef | None:
    if not text.strip():
        return None
    try:
        judge = parse_model(text)
    except ModelSpecError as exc:
        raise ConfigError(f"--hb-judge: {exc}") from None
    if judge.kind != "provider":
        raise ConfigError(f"--hb-judge {text.strip()!r}: a judge is a provider model, e.g. openai:gpt-5.1")
    return judge


def parse_model_params(text: str, models: tuple[ModelRef, ...]) -> dict:
    params: dict[str, dict] = {}
    known = {m.text for m in models if m.kind == "provider"}
    for line in (line.strip() for line in text.splitlines()):
        if not line:
            continue
        try:
            model, key, value = parse_model_param(line)
        except ModelSpecError as exc:
            raise ConfigError(str(exc)) from None
        if model != "*" and model not in known:
            raise ConfigError(f"--hb-model-param {line!r}: {model!r} is not a provider model of --models "
                              f"({', '.join(sorted(known)) or 'none'}); use one of them or '*'")
        params.setdefault(model, {})[key] = value
    return params


def parse_prices(text: str) -> dict:
    if not text.strip():
        return {}
    import json

    try:
        table = json.loads(Path(text).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--hb-prices {text}: cannot read a JSON price table ({exc})") from None
    for model, price in (table.items() if isinstance(table, dict) else [("?", None)]):
        if not (isinstance(price, dict) and all(isinstance(price.get(k), (int, float)) for k in ("input_per_1m", "output_per_1m"))):
            raise ConfigError(f"--hb-prices {text}: entry {model!r} needs numbers input_per_1m and output_per_1m "
                              '(USD per million tokens), e.g. {"openai:gpt-5.1": {"input_per_1m": 1.25, "output_per_1m": 10}}')
    return table


def parse_budget(raw: dict, models: tuple[ModelRef, ...], prices: dict) -> dict:
    """Token and cost caps per trial, the session's spend cap, the providers' rate limits."""
    from .budget import missing_prices
    from .ratelimit import parse as parse_limits

    def optional(name: str, flag: str, kind: type):
        text = raw[name].strip()
        return None if not text else parse_number(flag, text, kind=kind, minimum=1 if kind is int else 1e-9)

    values = {"max_tokens": optional("max_tokens", "--hb-max-tokens", int),
              "max_cost": optional("max_cost", "--hb-max-cost", float),
              "max_spend": optional("max_spend", "--hb-max-spend", float)}
    for name, flag in (("max_cost", "--hb-max-cost"), ("max_spend", "--hb-max-spend")):
        unpriced = missing_prices(models, prices)
        if values[name] is not None and unpriced:
            raise ConfigError(f"{flag} needs a price for every provider model: --hb-prices has none for "
                              f"{', '.join(unpriced)}")
    try:
        values["rate_limits"] = parse_limits(raw["rate_limit"])
    except ValueError as exc:
        raise ConfigError(f"--hb-rate-limit: {exc}") from None
    return values


def parse_capacity_option(text: str):
    from .admission import parse_capacity

    try:
        return parse_capacity(text)
    except ValueError as exc:
        raise ConfigError(f"--hb-capacity {text!r}: {exc}") from None


def parse_resume(raw: dict) -> dict:
    retry = frozenset(comma_list("--hb-resume-retry", raw["resume_retry"])) if raw["resume_retry"].strip() else frozenset()
    unknown = retry - {INFRA}
    if unknown:
        raise ConfigError(f"--hb-resume-retry {raw['resume_retry']!r}: only 'infra' can be retried")
    if not raw["resume"].strip():
        if retry:
            raise ConfigError("--hb-resume-retry needs --hb-resume RUN_DIR")
        return {}
    from .store import RESULTS, RunDir

    resume = Path(raw["resume"])
    if not RunDir(resume).has_results:
        raise ConfigError(f"--hb-resume {resume}: no {RESULTS} there; name the run directory to continue")
    if raw["out"].strip() and Path(raw["out"].strip()).resolve() != resume.resolve():
        raise ConfigError(f"--hb-resume {resume} appends to the run directory it names; drop --hb-out "
                          f"{raw['out'].strip()} (or name the same directory)")
    return {"resume": resume, "resume_retry": retry}


def parse_gate(raw: dict, models: tuple[ModelRef, ...], multipliers: tuple[Multiplier, ...]) -> dict:
    """Gate settings; every gate option is checked even without --hb-gate (a typo must not pass silently)."""
    from .gate import parse_margins

    try:
        margins = tuple(parse_margins(raw["gate_margin"]))
    except ValueError as exc:
        raise ConfigError(f"--hb-gate-margin: {exc}") from None
    alpha = parse_number("--hb-gate-alpha", raw["gate_alpha"], kind=float, minimum=1e-9, below=0.5,
                         example="; use e.g. 0.05")
    strict, why = _inconclusive_blocks(parse_bool("--hb-gate-strict", raw["gate_strict"]),
                                       parse_bool("--hb-gate-accept-inconclusive", raw["gate_accept_inconclusive"]))
    gate_at = None
    if raw["gate_at"].strip():
        at = parse_multipliers(raw["gate_at"])
        if len(at) != 1 or at[0] not in multipliers:
            raise ConfigError(f"--hb-gate-at {raw['gate_at']!r}: name one of --multipliers "
                              f"({', '.join(m.label for m in multipliers)})")
        gate_at = at[0]
    compare = Path(raw["compare"]) if raw["compare"].strip() else None
    baseline = raw["gate"].strip() or None
    sequential = parse_bool("--hb-gate-sequential", raw["gate_sequential"])
    _check_pass_k_margins(margins, parse_number("--samples", raw["samples"], minimum=1))
    if baseline is None:
        if compare is not None or gate_at is not None:
            raise ConfigError("--hb-compare and --hb-gate-at need --hb-gate BASELINE_MODEL")
        if sequential:
            raise ConfigError("--hb-gate-sequential needs --hb-gate BASELINE_MODEL")
        return {}
    if compare is not None:
        _check_compare_run(compare, baseline)
    elif baseline not in [m.text for m in models]:
        raise ConfigError(f"--hb-gate {baseline!r} is not one of --models ({', '.join(m.text for m in models)})")
    return {"gate": baseline, "gate_at": gate_at, "gate_margins": margins, "gate_alpha": alpha,
            "gate_strict": strict, "gate_strict_why": why, "compare": compare, "gate_sequential": sequential}


def _check_pass_k_margins(margins, samples: int) -> None:
    """A pass@K / pass^K margin needs K ≤ --samples (no task could have an estimate otherwise)."""
    from .reliability import parse_pass_k

    for margin in margins:
        k = (parse_pass_k(margin.metric) or (None, 0))[1]
        if k > samples:
            raise ConfigError(f"--hb-gate-margin {margin}: {margin.metric} needs at least {k} samples per task; "
                              f"--samples is {samples}")


def in_ci(environ=os.environ) -> bool:
    """The ``CI`` variable is set, as GitHub Actions, GitLab, Buildkite, Jenkins (via plugins) and others set it."""
    return environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _inconclusive_blocks(strict: bool, accept: bool) -> tuple[bool, str]:
    """Whether an inconclusive gate fails the run, and why: in CI nobody reads a verdict line, only the status."""
    if strict and accept:
        raise ConfigError("--hb-gate-strict and --hb-gate-accept-inconclusive contradict each other: give one")
    if strict:
        return True, "--hb-gate-strict"
    if in_ci():
        return (False, "--hb-gate-accept-inconclusive") if accept else (True, "CI is set")
    return False, ""


def _check_compare_run(compare: Path, baseline: str) -> None:
    from .store import RESULTS, RunDir

    run = RunDir(compare)
    if not run.has_results:
        raise ConfigError(f"--hb-compare {compare}: no {RESULTS} there; name an earlier run directory")
    there = sorted({r.model for r in run.records()})
    if baseline not in there:
        raise ConfigError(f"--hb-compare {compare}: holds no records of --hb-gate {baseline!r} "
                          f"(it has: {', '.join(there) or 'none'})")


def parse_report(text: str) -> Path | None:
    if not text.strip():
        return None
    path = Path(text.strip())
    if path.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"--hb-report {text!r}: name an .html file, e.g. --hb-report report.html")
    if path.is_dir():
        raise ConfigError(f"--hb-report {text!r} is a directory; name an .html file in it")
    return path


def parse_shard_option(text: str):
    from .shard import ShardError, parse

    try:
        return parse(text)
    except ShardError as exc:
        raise ConfigError(str(exc)) from None


def declared_options() -> list[Option]:
    """Every option: the common ones, then each registered backend's own (all of them appear in ``--help``).

    Raises:
        ConfigError: a backend cannot be loaded, or declares an option whose name or flag is taken.
    """
    names = registry.names()
    declared = [replace(opt, help=f"{opt.help}: {', '.join(names)} (their own options follow)")
                if opt is BACKEND_OPTION else opt for opt in OPTIONS]
    taken: dict[str, str] = {}
    for opt in OPTIONS:
        taken[opt.name] = taken[opt.flag] = "harnessbench"
    for name in names:
        for opt in registry.load(name).options:
            for key in (opt.name, opt.flag):
                if key in taken:
                    raise ConfigError(f"backend {name!r}: option {key} is taken by {taken[key]}; rename it")
                taken[key] = f"backend {name!r}"
            declared.append(opt)
    return declared


def parse_backend(value: Callable[[Option], str]) -> tuple[str, BackendOptions]:
    """``--hb-backend`` and that backend's own options, parsed by the backend (others' are not read)."""
    name = parse_choice("--hb-backend", value(BACKEND_OPTION), registry.names())
    backend = registry.load(name)
    return name, backend.parse_options({opt.name: value(opt) for opt in backend.options})


def parse_datasets(text: str) -> tuple[str, ...]:
    """The --hb-dataset sources, syntax checked (reading them is the session's: datasets.load)."""
    from .datasets import Source

    return tuple(Source.parse(line).text for line in text.splitlines() if line.strip())


def build(value: Callable[[Option], str]) -> Config:
    """Build the Config; ``value(option)`` gives the raw text (CLI, else ini, else default) of any option
    :func:`declared_options` lists."""
    raw = {opt.name: value(opt) for opt in OPTIONS}
    models, multipliers = parse_models(raw["models"]), parse_multipliers(raw["multipliers"])
    judge = parse_judge(raw["judge"])
    backend, backend_options = parse_backend(value)
    return Config(
        models=models,
        multipliers=multipliers,
        samples=parse_number("--samples", raw["samples"], minimum=1),
        backend=backend,
        backend_options=backend_options,
        scale=parse_scale(raw["scale"]),
        out=Path(raw["out"]) if raw["out"].strip() else None,
        oom_as=parse_choice("--hb-oom-as", raw["oom_as"], OOM_AS),
        max_steps=parse_number("--hb-max-steps", raw["max_steps"], minimum=1),
        capacity=parse_capacity_option(raw["capacity"]),
        model_params=parse_model_params(raw["model_params"], models + ((judge,) if judge else ())),
        judge=judge,
        preflight_call=parse_bool("--hb-preflight-call", raw["preflight_call"]),
        provider_retries=parse_number("--hb-provider-retries", raw["provider_retries"]),
        provider_backoff=parse_number("--hb-provider-backoff", raw["provider_backoff"], kind=float),
        prices=(prices := parse_prices(raw["prices"])),
        **parse_budget(raw, models, prices),
        reap=parse_bool("--hb-reap", raw["reap"]),
        progress_s=parse_number("--hb-progress", raw["progress"], kind=float),
        retry_infra=parse_number("--hb-retry-infra", raw["retry_infra"]),
        **parse_resume(raw),
        shard=parse_shard_option(raw["shard"]),
        langsmith=parse_bool("--hb-langsmith", raw["langsmith"]),
        langsmith_project=raw["langsmith_project"].strip() or None,
        langsmith_timeout=parse_number("--hb-langsmith-timeout", raw["langsmith_timeout"], kind=float, minimum=1),
        langsmith_mode=parse_choice("--hb-langsmith-mode", raw["langsmith_mode"].strip() or
                                    ("project" if raw["langsmith_project"].strip() else "experiments"),
                                    ("experiments", "project")),
        langsmith_dataset=raw["langsmith_dataset"].strip() or None,
        datasets=parse_datasets(raw["dataset"]),
        dataset_criterion=raw["dataset_criterion"].strip() or None,
        **parse_gate(raw, models, multipliers),
        report=parse_report(raw["report"]),
        calibrate=parse_bool("--hb-calibrate", raw["calibrate"]),
    )
