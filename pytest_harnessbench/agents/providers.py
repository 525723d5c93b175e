"""Model strings: which are built-ins, which go to a provider, and how to build each.

Parsing is pure and cheap (no LangChain import); building a chat model,
preflight and fault translation import lazily. Provider strings are whatever
``init_chat_model`` accepts (``provider:model``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..models import ModelRef

# The environment variable(s) each provider's client reads its key from. A missing
# key otherwise surfaces only at the first call, as a confusing connection error.
CREDENTIALS = {
    "openai": ("OPENAI_API_KEY",), "anthropic": ("ANTHROPIC_API_KEY",),
    "google_genai": ("GOOGLE_API_KEY", "GEMINI_API_KEY"), "mistralai": ("MISTRAL_API_KEY",),
    "groq": ("GROQ_API_KEY",), "fireworks": ("FIREWORKS_API_KEY",), "deepseek": ("DEEPSEEK_API_KEY",),
    "xai": ("XAI_API_KEY",), "cohere": ("COHERE_API_KEY",), "together": ("TOGETHER_API_KEY",),
    "azure_openai": ("AZURE_OPENAI_API_KEY",), "perplexity": ("PPLX_API_KEY",),
}


@dataclass(frozen=True)
class ModelContext:
    """What a built-in model needs to know about the trial it plays."""

    task_id: str
    sample: int
    solutions: dict = field(default_factory=dict)
    answer: str | None = None  # the oracle's final reply, if the task declares one (datasets.py)
    reference_tools: tuple = ()  # a task without solutions: the oracle replays this path


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


def replay_calls(source: str, context: ModelContext) -> list[tuple[str, dict]] | None:
    """The tool calls recorded for this task and sample in an earlier run (None: nothing recorded).

    ``source`` is ``RUN_DIR`` or ``RUN_DIR::MODEL`` (needed when that run had several models).
    """
    from ..store import RunDir

    run_dir, _, model = source.partition("::")
    run = RunDir(run_dir)
    matches = [r for r in run.latest()
               if r.task_id == context.task_id and r.sample == context.sample and (not model or r.model == model)]
    if not matches:
        return None
    document = run.trajectory(matches[-1])
    return [(c["name"], c["args"]) for t in document["trajectories"] for c in t["tool_calls"]]


def provider_kwargs(ref: ModelRef, params: dict[str, dict], timeout_s: float | None, *, own_retries: bool) -> dict:
    """Keyword arguments for ``init_chat_model``: the user's parameters over our defaults.

    With ``own_retries`` the client's built-in retries are off, so the harness's
    retry middleware does them and can count each one.
    """
    kwargs: dict = {}
    if own_retries:
        kwargs["max_retries"] = 0
    if timeout_s is not None:
        kwargs["timeout"] = timeout_s
    kwargs.update(params.get("*", {}))
    kwargs.update(params.get(ref.text, {}))
    return kwargs


def make_chat_model(ref: ModelRef, context: ModelContext, params: dict[str, dict] | None = None,
                    timeout_s: float | None = None):
    """Build the chat model for one trial (imports LangChain). Returns None for a replay with nothing recorded."""
    from . import builtin

    if ref.kind == "oracle" and not context.solutions and context.reference_tools and not ref.argument:
        calls = [(entry, {}) if isinstance(entry, str) else (entry[0], dict(entry[1]))
                 for entry in context.reference_tools]
        return builtin.scripted(calls, context.answer or "Replayed the reference tool path.", "oracle-reference")
    if ref.kind == "oracle":
        variant, commands = oracle_commands(context.solutions, ref.argument)
        return builtin.scripted([("bash", {"command": c}) for c in commands],
                                context.answer or f"Ran the reference solution '{variant}'.", f"oracle-{variant}")
    if ref.kind == "nop":
        return builtin.scripted([], "I will not do anything.", "nop")
    if ref.kind == "replay":
        calls = replay_calls(ref.argument, context)
        return None if calls is None else builtin.scripted(calls, "Replayed the recorded tool calls.", "replay")
    from langchain.chat_models import init_chat_model

    return init_chat_model(ref.argument, **provider_kwargs(ref, params or {}, timeout_s, own_retries=True))


def make_judge_model(ref: ModelRef, params: dict[str, dict], timeout_s: float = 60.0):
    """The LLM-as-judge's chat model: the user's parameters, the client's own retries (nothing counts them)."""
    from langchain.chat_models import init_chat_model

    return init_chat_model(ref.argument, **provider_kwargs(ref, params, timeout_s, own_retries=False))


def preflight(ref: ModelRef, params: dict[str, dict], call: bool = False) -> list[str]:
    """Every reason a provider model cannot run yet, one line each naming the model and the fix (none: ready).

    The provider's package must import and its key must be set (or given as
    ``api_key``); with ``call``, one tiny request must succeed. All of them at
    once: a user should not need one run per missing piece.
    """
    if ref.kind != "provider":
        return []
    problems = []
    kwargs = provider_kwargs(ref, params, 30.0, own_retries=False)
    keys = CREDENTIALS.get(ref.provider, ())
    if keys and "api_key" not in kwargs and not any(os.environ.get(k) for k in keys):
        problems.append(f"model {ref.text}: no credential: set {' or '.join(keys)} "
                        f"(or --hb-model-param {ref.text}:api_key=...)")
    try:
        from langchain.chat_models import init_chat_model

        model = init_chat_model(ref.argument, **kwargs)
    except ImportError as exc:
        return problems + [f"model {ref.text}: its LangChain integration is not installed ({exc}); "
                           f"pip install langchain-{ref.provider.replace('_', '-')}"]
    except Exception as exc:  # unknown provider, bad parameter (or the missing key, already said)
        return problems or [f"model {ref.text}: cannot be built: {type(exc).__name__}: {exc}"]
    if call and not problems:
        try:
            model.invoke("Reply with the single word OK.")
        except Exception as exc:
            problems.append(f"model {ref.text}: the preflight request failed: {fault_text(exc)}; "
                            "check the key, the model name and the base_url")
    return problems


def fault_text(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}" + (f" {status}" if status else "") + (f": {message}" if message else "")


def translate_fault(exc: BaseException) -> BaseException | None:
    """Map a model provider's exception to our outcome exceptions (None: not a provider fault).

    - rate limit, overload, 5xx, connection, timeout (``is_retryable``) → ProviderError (infra)
    - authentication, permission, model not found → ProviderFatal (infra; the session stops)
    - context overflow → ModelGaveUp("context_overflow"): the model's own failure. OpenAI's
      400 ``context_length_exceeded`` arrives as an invalid-request error, told by its code.
    """
    from langchain_core import exceptions as lc

    from ..outcomes import ModelGaveUp, ProviderError, ProviderFatal

    text = fault_text(exc)
    if isinstance(exc, lc.ContextOverflowError) or getattr(exc, "code", None) == "context_length_exceeded":
        return ModelGaveUp("context_overflow", text)
    if isinstance(exc, (lc.ModelAuthenticationError, lc.ModelPermissionDeniedError, lc.ModelNotFoundError)):
        return ProviderFatal(text)
    if isinstance(exc, lc.ModelError) and exc.is_retryable:
        return ProviderError(text)
    return None
