"""Resource specs, multipliers and the guarantee/limit pair they produce.

A task declares a :class:`Spec`. For a multiplier *m* every scaled resource
gets a **guarantee** equal to the spec and a **limit** (the kill threshold)
equal to spec × m; ``uncapped`` means no limit at all (docs/design.md §Resources).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

SCALABLE = ("cpu", "memory", "pids", "time")
DEFAULT_SCALE = frozenset({"cpu", "memory"})
DEFAULT_PIDS = 1024
DEFAULT_VERIFY_TIMEOUT_S = 600.0  # for a task with neither verify_timeout nor timeout (Harbor's verifier default)

_SIZE_UNITS = {
    "": 1,
    "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4,
    "ki": 1024, "mi": 1024**2, "gi": 1024**3, "ti": 1024**4,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?)?b?\s*$", re.IGNORECASE)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$", re.IGNORECASE)
_MULTIPLIER_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*x?\s*$", re.IGNORECASE)


class SpecError(ValueError):
    """A resource value the user wrote cannot be understood."""


def parse_size(value: int | str) -> int:
    """Bytes from ``256Mi``, ``1Gi``, ``512M``, ``100K`` or a plain integer.

    ``Ki/Mi/Gi`` are powers of 1024, ``K/M/G`` powers of 1000, as in Kubernetes.
    """
    if isinstance(value, bool):
        raise SpecError(f"memory size {value!r} is not a size; use e.g. 256Mi, 1Gi, 512M")
    if isinstance(value, int):
        if value <= 0:
            raise SpecError(f"memory size {value!r} must be positive")
        return value
    match = _SIZE_RE.match(str(value))
    if not match:
        raise SpecError(
            f"memory size {value!r} is not understood; use a number with Ki/Mi/Gi/K/M/G, e.g. 256Mi"
        )
    number, unit = float(match.group(1)), (match.group(2) or "").lower()
    size = int(number * _SIZE_UNITS[unit])
    if size <= 0:
        raise SpecError(f"memory size {value!r} must be positive")
    return size


def parse_duration(value: int | float | str) -> float:
    """Seconds from ``120``, ``90s``, ``10m`` or ``1h``."""
    if isinstance(value, bool):
        raise SpecError(f"duration {value!r} is not a duration; use seconds or e.g. 10m")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION_RE.match(str(value))
        if not match:
            raise SpecError(f"duration {value!r} is not understood; use seconds or 90s, 10m, 1h")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
    if not seconds > 0 or math.isinf(seconds):
        raise SpecError(f"duration {value!r} must be a positive number of seconds")
    return seconds


def format_size(n: int | None) -> str:
    """Human size in binary units (``256Mi``); ``-`` for none."""
    if n is None:
        return "-"
    for unit, factor in (("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if n >= factor:
            value = n / factor
            return f"{value:.0f}{unit}" if value == int(value) else f"{value:.1f}{unit}"
    return f"{n}B"


@dataclass(frozen=True)
class Spec:
    """What a task declares it needs (the ``task`` marker)."""

    cpus: float = 1.0
    memory_bytes: int = 512 * 1024**2
    timeout_s: float | None = 120.0  # None: no time limit (a Harbor task without [agent] timeout_sec)
    pids: int = DEFAULT_PIDS
    verify_timeout_s: float | None = None  # None: as long as timeout_s (see verify_budget_s)

    @property
    def verify_budget_s(self) -> float:
        """Seconds the test body may spend outside the agent: ``verify_timeout``, by default the ``timeout``."""
        return self.verify_timeout_s or self.timeout_s or DEFAULT_VERIFY_TIMEOUT_S

    @classmethod
    def from_marker(cls, **kwargs) -> Spec:
        """Parse the keyword arguments of ``@pytest.mark.task``; unknown keys are ignored here."""
        cpus = kwargs.get("cpus", cls.cpus)
        if isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or not cpus > 0:
            raise SpecError(f"cpus={cpus!r} must be a positive number, e.g. cpus=1 or cpus=0.5")
        pids = kwargs.get("pids", cls.pids)
        if isinstance(pids, bool) or not isinstance(pids, int) or pids <= 0:
            raise SpecError(f"pids={pids!r} must be a positive integer")
        return cls(
            cpus=float(cpus),
            memory_bytes=parse_size(kwargs.get("memory", cls.memory_bytes)),
            timeout_s=parse_duration(kwargs.get("timeout", cls.timeout_s)),
            pids=pids,
            verify_timeout_s=None if kwargs.get("verify_timeout") is None else parse_duration(kwargs["verify_timeout"]),
        )


@dataclass(frozen=True, order=True)
class Multiplier:
    """A kill-threshold multiplier: a number ≥ 1, or ``uncapped`` (factor None)."""

    # Sort key first: uncapped ranks above every number.
    rank: float = field(init=False, repr=False)
    factor: float | None = None

    def __post_init__(self) -> None:
        if self.factor is not None and not (self.factor >= 1 and math.isfinite(self.factor)):
            raise SpecError(f"multiplier {self.factor!r} must be ≥ 1 or 'uncapped'")
        object.__setattr__(self, "rank", math.inf if self.factor is None else self.factor)

    @classmethod
    def parse(cls, text: str) -> Multiplier:
        text = str(text).strip()
        if text.lower() in ("uncapped", "inf", "none"):
            return cls(None)
        match = _MULTIPLIER_RE.match(text)
        if not match:
            raise SpecError(f"multiplier {text!r} is not understood; use numbers ≥ 1 (1, 1.5, 3x) or 'uncapped'")
        factor = float(match.group(1))
        if factor < 1:
            raise SpecError(f"multiplier {text!r} is below 1; limits below the guarantee make no sense (use ≥ 1 or 'uncapped')")
        return cls(factor)

    @property
    def label(self) -> str:
        if self.factor is None:
            return "uncapped"
        return f"{self.factor:g}x"

    def scale(self, value: float) -> float | None:
        return None if self.factor is None else value * self.factor

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True)
class Resources:
    """One side of an allocation; None means "not set" (no limit)."""

    cpus: float | None
    memory_bytes: int | None
    pids: int | None = None

    def to_dict(self) -> dict:
        return {"cpus": self.cpus, "memory_bytes": self.memory_bytes, "pids": self.pids}


@dataclass(frozen=True)
class Allocation:
    """Guarantee (= spec) and kill threshold (= spec × m) for one trial."""

    spec: Spec
    multiplier: Multiplier
    guarantee: Resources
    limit: Resources
    timeout_s: float | None
    verify_timeout_s: float | None = DEFAULT_VERIFY_TIMEOUT_S  # None: uncapped with time scaled

    @classmethod
    def of(cls, spec: Spec, multiplier: Multiplier, scale: frozenset[str] = DEFAULT_SCALE) -> Allocation:
        def limit(name: str, value: float) -> float | None:
            return multiplier.scale(value) if name in scale else value

        memory = limit("memory", spec.memory_bytes)
        pids = limit("pids", spec.pids)
        return cls(
            spec=spec,
            multiplier=multiplier,
            guarantee=Resources(cpus=spec.cpus, memory_bytes=spec.memory_bytes),
            limit=Resources(
                cpus=limit("cpu", spec.cpus),
                memory_bytes=None if memory is None else int(memory),
                pids=None if pids is None else int(pids),
            ),
            timeout_s=None if spec.timeout_s is None else limit("time", spec.timeout_s),
            verify_timeout_s=limit("time", spec.verify_budget_s),
        )

    def to_dict(self) -> dict:
        return {
            "guarantee": self.guarantee.to_dict(),
            "limit": self.limit.to_dict(),
            "timeout_s": self.timeout_s,
            "verify_timeout_s": self.verify_timeout_s,
        }
