"""Model strings: which are built-ins, which go to a provider, and how to build each.

Parsing is pure and cheap (no LangChain import); building a chat model imports
lazily. Provider strings are whatever ``init_chat_model`` accepts
(``provider:model``).
"""

from __future__ import annotations

from dataclasses import dataclass

BUILTINS = ("oracle", "nop")
BUILTIN_HELP = "built-ins: oracle, oracle:VARIANT, nop; provider models look like provider:model (e.g. openai:gpt-5.1)"


class ModelSpecError(ValueError):
    """A model string that names nothing we can run."""


@dataclass(frozen=True)
class ModelRef:
    """A parsed ``--models`` entry."""

    text: str
    kind: str  # "oracle" | "nop" | "provider"
    argument: str | None = None  # oracle variant, or the provider's model string

    @property
    def is_builtin(self) -> bool:
        return self.kind != "provider"


def parse_model(text: str) -> ModelRef:
    """Classify one model string.

    Raises:
        ModelSpecError: an unknown built-in or a malformed string.
    """
    text = text.strip()
    head, sep, rest = text.partition(":")
    if head == "oracle":
        if sep and not rest:
            raise ModelSpecError(f"model {text!r}: oracle variant is empty; use oracle or oracle:VARIANT")
        return ModelRef(text, "oracle", rest or None)
    if head == "nop":
        if sep:
            raise ModelSpecError(f"model {text!r}: nop takes no argument; use nop")
        return ModelRef(text, "nop")
    if sep and head and rest:
        return ModelRef(text, "provider", text)
    raise ModelSpecError(f"unknown built-in model {text!r}; {BUILTIN_HELP}")


def oracle_commands(solutions: dict[str, str | list[str]], variant: str | None) -> tuple[str, list[str]]:
    """The reference solution a task declares for ``variant``.

    Without a variant: ``default`` if declared, else the first one.

    Raises:
        KeyError: the task has no such solution (message lists what it has).
    """
    if not solutions:
        raise KeyError("the task declares no solutions= for the oracle")
    name = variant or ("default" if "default" in solutions else next(iter(solutions)))
    if name not in solutions:
        raise KeyError(f"no solution {name!r} (the task has: {', '.join(solutions)})")
    commands = solutions[name]
    return name, [commands] if isinstance(commands, str) else list(commands)


def make_chat_model(ref: ModelRef, solutions: dict[str, str | list[str]]):
    """Build the chat model for one trial (imports LangChain)."""
    from . import builtin

    if ref.kind == "oracle":
        variant, commands = oracle_commands(solutions, ref.argument)
        return builtin.oracle(commands, variant)
    if ref.kind == "nop":
        return builtin.nop()
    from langchain.chat_models import init_chat_model

    return init_chat_model(ref.argument)
