"""Options and ini keys → one validated, immutable :class:`Config`.

Every option has an ini key (``--models`` ↔ ``hb_models``, ``--hb-backend`` ↔
``hb_backend``); the command line wins. Bad values raise :class:`ConfigError`
naming the value and what is accepted; the plugin turns it into a usage error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .agents.providers import ModelRef, ModelSpecError, parse_model
from .resources import DEFAULT_SCALE, SCALABLE, Multiplier, SpecError

BACKENDS = ("local", "docker")
OOM_AS = ("infra", "failed")
ENFORCEMENTS = ("cgroup", "rlimit")


class ConfigError(ValueError):
    """A bad option or ini value."""


@dataclass(frozen=True)
class Option:
    """One setting: its command-line flag, ini key, default and help."""

    name: str
    flag: str
    ini: str
    default: str
    help: str


OPTIONS = (
    Option("models", "--models", "hb_models", "oracle",
           "comma list of models: provider:model strings, or built-ins oracle[:VARIANT], nop"),
    Option("multipliers", "--multipliers", "hb_multipliers", "1",
           "comma list of kill-threshold multipliers ≥ 1 (1, 1.5, 3x) or 'uncapped'"),
    Option("samples", "--samples", "hb_samples", "1", "repeats per task × model × multiplier"),
    Option("backend", "--hb-backend", "hb_backend", "local", f"sandbox backend: {', '.join(BACKENDS)}"),
    Option("scale", "--hb-scale", "hb_scale", ",".join(sorted(DEFAULT_SCALE)),
           f"what the multiplier scales: comma list of {', '.join(SCALABLE)}"),
    Option("out", "--hb-out", "hb_out", "", "run directory (default .harnessbench/runs/RUN_ID under the rootdir)"),
    Option("oom_as", "--hb-oom-as", "hb_oom_as", "infra",
           "count a non-passing trial with a kernel OOM kill as 'infra' (default) or 'failed'"),
    Option("enforcement", "--hb-enforcement", "hb_enforcement", "cgroup",
           "local backend: 'cgroup' (kernel limits, default) or 'rlimit' (weaker RLIMIT_AS, no CPU cap)"),
    Option("max_steps", "--hb-max-steps", "hb_max_steps", "30", "model calls allowed per trial"),
)


@dataclass(frozen=True)
class Config:
    models: tuple[ModelRef, ...]
    multipliers: tuple[Multiplier, ...]
    samples: int
    backend: str
    scale: frozenset[str]
    out: Path | None
    oom_as: str
    enforcement: str
    max_steps: int

    def to_dict(self) -> dict:
        return {
            "models": [m.text for m in self.models],
            "multipliers": [m.label for m in self.multipliers],
            "samples": self.samples,
            "backend": self.backend,
            "scale": sorted(self.scale),
            "oom_as": self.oom_as,
            "enforcement": self.enforcement,
            "max_steps": self.max_steps,
        }


def _items(flag: str, text: str) -> list[str]:
    items = [part.strip() for part in text.split(",")]
    if not text.strip() or any(not part for part in items):
        raise ConfigError(f"{flag} {text!r}: empty entry in the comma list")
    return items


def _no_duplicates(flag: str, values: list, labels: list[str]) -> None:
    seen: dict = {}
    for value, label in zip(values, labels):
        if value in seen:
            raise ConfigError(f"{flag}: {label!r} repeats {seen[value]!r}; list each value once")
        seen[value] = label


def parse_models(text: str) -> tuple[ModelRef, ...]:
    items = _items("--models", text)
    try:
        models = [parse_model(item) for item in items]
    except ModelSpecError as exc:
        raise ConfigError(f"--models: {exc}") from None
    _no_duplicates("--models", [m.text for m in models], items)
    return tuple(models)


def parse_multipliers(text: str) -> tuple[Multiplier, ...]:
    items = _items("--multipliers", text)
    try:
        multipliers = [Multiplier.parse(item) for item in items]
    except SpecError as exc:
        raise ConfigError(f"--multipliers: {exc}") from None
    _no_duplicates("--multipliers", multipliers, items)
    return tuple(multipliers)


def parse_positive_int(flag: str, text: str) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise ConfigError(f"{flag} {text!r} is not a whole number; use an integer ≥ 1") from None
    if value < 1:
        raise ConfigError(f"{flag} {text!r} must be ≥ 1")
    return value


def parse_choice(flag: str, text: str, choices: tuple[str, ...]) -> str:
    value = str(text).strip().lower()
    if value not in choices:
        raise ConfigError(f"{flag} {text!r} is not one of: {', '.join(choices)}")
    return value


def parse_scale(text: str) -> frozenset[str]:
    items = [item.lower() for item in _items("--hb-scale", text)]
    unknown = [item for item in items if item not in SCALABLE]
    if unknown:
        raise ConfigError(f"--hb-scale: {unknown[0]!r} is not one of: {', '.join(SCALABLE)}")
    return frozenset(items)


def build(value: Callable[[Option], str]) -> Config:
    """Build the Config; ``value(option)`` gives the raw text (CLI, else ini, else default)."""
    raw = {opt.name: value(opt) for opt in OPTIONS}
    return Config(
        models=parse_models(raw["models"]),
        multipliers=parse_multipliers(raw["multipliers"]),
        samples=parse_positive_int("--samples", raw["samples"]),
        backend=parse_choice("--hb-backend", raw["backend"], BACKENDS),
        scale=parse_scale(raw["scale"]),
        out=Path(raw["out"]) if raw["out"].strip() else None,
        oom_as=parse_choice("--hb-oom-as", raw["oom_as"], OOM_AS),
        enforcement=parse_choice("--hb-enforcement", raw["enforcement"], ENFORCEMENTS),
        max_steps=parse_positive_int("--hb-max-steps", raw["max_steps"]),
    )
