"""Model strings (``--models``, ``--hb-judge``, ``--hb-model-param``): which are built-ins, which go to a provider.

Parsing only: pure and cheap, no LangChain import, and nothing from the agent harness, so the options
(config.py) can check them without importing ``agents``. Building a chat model from a :class:`ModelRef` is
``agents/providers.py``'s job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

BUILTIN_HELP = ("built-ins: oracle, oracle:VARIANT, nop, replay:RUN_DIR; "
                "provider models look like provider:model (e.g. openai:gpt-5.1)")


class ModelSpecError(ValueError):
    """A model string or parameter that names nothing we can run."""


@dataclass(frozen=True)
class ModelRef:
    """A parsed ``--models`` entry."""

    text: str
    kind: str  # "oracle" | "nop" | "replay" | "provider"
    argument: str | None = None  # oracle variant, replay source, or the provider's model string

    @property
    def provider(self) -> str | None:
        return self.text.partition(":")[0] if self.kind == "provider" else None

    @property
    def writes_commands(self) -> bool:
        """Its commands are model-written (a provider model, or a replay of one), not the task author's."""
        return self.kind in ("provider", "replay")


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
    if head == "replay":
        _check_replay_source(text, rest)
        return ModelRef(text, "replay", rest)
    if sep and head and rest:
        return ModelRef(text, "provider", text)
    raise ModelSpecError(f"unknown built-in model {text!r}; {BUILTIN_HELP}")


def _check_replay_source(text: str, source: str) -> None:
    """The run exists and names one model (or the one given) recorded at one multiplier.

    One multiplier, because replay re-runs a recording elsewhere: with several
    recordings of a task and sample, which one to replay would be a guess.
    """
    from .store import RESULTS, RunDir

    run_dir, _, model = source.partition("::")
    if not run_dir or not RunDir(run_dir).has_results:
        raise ModelSpecError(f"model {text!r}: replay needs an earlier run directory (with {RESULTS}): "
                             "replay:RUN_DIR or replay:RUN_DIR::MODEL")
    run = RunDir(run_dir)
    try:
        model = run.model(model, f"replay:{run_dir}::MODEL")
    except ValueError as exc:
        raise ModelSpecError(f"model {text!r}: {exc}") from None
    multipliers = sorted({r.multiplier for r in run.latest() if r.model == model})
    if len(multipliers) > 1:
        raise ModelSpecError(f"model {text!r}: {run_dir} recorded it at several multipliers ({', '.join(multipliers)}); "
                             "replay a run recorded at one multiplier")


def parse_model_param(text: str) -> tuple[str, str, object]:
    """``openai:gpt-5.1:temperature=0`` → (model, key, value); values are JSON when they parse.

    ``*:key=value`` applies to every provider model.
    """
    left, eq, raw = text.strip().partition("=")
    model, colon, key = left.rpartition(":")
    if not (eq and colon and model and key.isidentifier()):
        raise ModelSpecError(f"--hb-model-param {text!r}: use MODEL:KEY=VALUE, e.g. openai:gpt-5.1:temperature=0 "
                             "or openai:my-model:base_url=http://127.0.0.1:8000/v1")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return model, key, value
