"""Options: their declaration and the parsers of their values, shared by the core (config.py) and the backends.

At the bottom of the import graph, so that a backend declares and parses its own options
(``Backend.options``, ``Backend.parse_options``) without importing the core's :class:`~.config.Config`.
"""

from __future__ import annotations

from dataclasses import dataclass


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
    flag_only: bool = False  # a switch (store_true); its ini key takes true/false
    repeated: bool = False  # may be given several times; its ini key takes one value per line


def comma_list(flag: str, text: str) -> list[str]:
    items = [part.strip() for part in text.split(",")]
    if not text.strip() or any(not part for part in items):
        raise ConfigError(f"{flag} {text!r}: empty entry in the comma list")
    return items


def parse_number(flag: str, text: str, *, kind: type = int, minimum: float = 0, below: float | None = None,
                 example: str = "") -> int | float:
    """A whole number (``kind=int``) or a float, ≥ ``minimum`` and < ``below``; ConfigError naming the value."""
    what = "a whole number" if kind is int else "a number"
    try:
        value = kind(str(text).strip())
    except ValueError:
        raise ConfigError(f"{flag} {text!r} is not {what}{example}") from None
    if value < minimum or (below is not None and value >= below) or value != value:
        limits = f"≥ {minimum:g}" + ("" if below is None else f" and < {below:g}")
        raise ConfigError(f"{flag} {text!r} must be {limits}{example}")
    return value


def parse_choice(flag: str, text: str, choices: tuple[str, ...]) -> str:
    value = str(text).strip().lower()
    if value not in choices:
        raise ConfigError(f"{flag} {text!r} is not one of: {', '.join(choices)}")
    return value


def parse_bool(flag: str, text: str) -> bool:
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{flag} {text!r} is not true or false")


@dataclass(frozen=True)
class BackendOptions:
    """A backend's own parsed options (``Backend.parse_options`` returns a subclass; this one holds none)."""

    def settings(self) -> dict:
        """Those of the options that define the experiment: written to the card's settings; ``--hb-resume``
        refuses a run whose value differs."""
        return {}
