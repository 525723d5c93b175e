"""The one agent every model runs in: same prompt, tools and limits for all.

The default agent is LangChain's ``create_agent`` with the harness's system
prompt and tools. It is built once per process (per retry setting) and shared
by every trial: building and compiling it took most of a trial's own CPU. What
differs between trials reaches it per invocation, through context variables
that each thread (and each task LangGraph runs) sees separately: the trial's
chat model (swapped in before every model call), its sandbox (agents/tools.py),
its trajectory, deadline and rate limit. A suite may bring its own agent (the
``hb_agent_factory`` fixture), built per trial with the trial's model; the
plugin still supplies the sandbox tools, the retry middleware, the step and
time limits, the recording and the classification. The loop is streamed so the
partial trajectory survives a step limit, a timeout or an exception.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Callable

from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, ModelRetryMiddleware
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import HumanMessage, messages_to_dict
from langgraph.errors import GraphRecursionError
from langsmith import tracing_context

from ..sandbox.base import Sandbox
from .defaults import SYSTEM_PROMPT, sha256
from .tools import TOOLS, acting_on, scoped, trial_value
from .trajectory import BUDGET, COMPLETED, ERROR, GAVE_UP, STEP_LIMIT, TIMEOUT, Trajectory, Usage

AgentFactory = Callable[[Any, list, list], Any]  # (model, tools, middleware) -> a LangGraph agent
BudgetCheck = Callable[[Usage], "str | None"]  # the trial's usage so far -> the cap it reached, or None


class Deadline:
    """The agent's deadline, pushed back by time spent waiting on a provider's rate limit (never the agent's)."""

    def __init__(self, timeout_s: float | None):
        self.at = None if timeout_s is None else time.monotonic() + timeout_s

    def extend(self, seconds: float) -> None:
        if self.at is not None:
            self.at += seconds

    def remaining(self) -> float | None:
        return None if self.at is None else max(0.0, self.at - time.monotonic())

    def passed(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at


@dataclass(frozen=True)
class _Served:
    """What the shared agent needs of the trial it serves, beyond its sandbox (agents/tools.py)."""

    model: Any
    trajectory: Trajectory
    deadline: Deadline
    throttle: Any = None


_serving: ContextVar[_Served] = ContextVar("harnessbench_serving")


def serving(model: Any, trajectory: Trajectory, deadline: Deadline,
            throttle: Any = None) -> contextlib.AbstractContextManager[None]:
    """Within the block (this context only), the shared agent calls ``model`` and the middleware serve this trial."""
    return scoped(_serving, _Served(model, trajectory, deadline, throttle))


def _served() -> _Served:
    return trial_value(_serving, "the shared agent", "serving")


def default_agent_factory(model: Any, tools: list, middleware: list) -> Any:
    """The harness's own agent: one system prompt and tool set for every model."""
    return create_agent(model, tools, system_prompt=SYSTEM_PROMPT, middleware=middleware)


class _Unbound(BaseChatModel):
    """The model the shared agent is compiled with; never called, :class:`_TrialModel` replaces it on every call."""

    @property
    def _llm_type(self) -> str:
        return "harnessbench-unbound"

    def _generate(self, messages: list, stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any):
        raise RuntimeError("the shared agent's placeholder model was called: _TrialModel did not replace it")


class _TrialModel(AgentMiddleware):
    """Every model call of the shared agent goes to the model of the trial it serves (outermost: retries too)."""

    def wrap_model_call(self, request, handler):
        return handler(request.override(model=_served().model))


def retry_middleware(retries: int, backoff_s: float) -> list:
    """Provider retries done by the harness (clients' own are off), so each one is counted.

    Only retryable faults (rate limit, 5xx, connection, timeout) are retried, and
    never past the deadline of the trial being served.
    """
    if retries <= 0:
        return []

    def retry_on(exc: Exception) -> bool:
        served = _serving.get(None)
        in_time = served is None or not served.deadline.passed()
        return bool(getattr(exc, "is_retryable", False)) and in_time

    return [ModelRetryMiddleware(max_retries=retries, retry_on=retry_on, on_failure="error",
                                 initial_delay=backoff_s, backoff_factor=2.0, max_delay=30.0)]


class _Recorder(BaseCallbackHandler):
    """Counts real model calls, tokens and failed attempts; hashes what the model was shown.

    The hashes are of the system prompt and tool schemas the model actually
    received, so they describe whatever agent factory ran.
    """

    def __init__(self, trajectory: Trajectory):
        self.trajectory = trajectory
        self._started: dict[Any, float] = {}  # run id -> when its model call started (its latency's start)

    def on_chat_model_start(self, serialized: Any, messages: list, **kwargs: Any) -> None:
        self._started[kwargs.get("run_id")] = time.monotonic()
        harness = self.trajectory.harness
        if "system_prompt_sha256" in harness:
            return
        system = next((m.content for m in (messages[0] if messages else []) if m.type == "system"), "")
        tools = (kwargs.get("invocation_params") or {}).get("tools") or []
        harness["system_prompt_sha256"] = sha256(system if isinstance(system, str) else json.dumps(system))
        harness["toolset_sha256"] = sha256(json.dumps(tools, sort_keys=True, default=str))

    def _latency(self, run_id: Any) -> None:
        start = self._started.pop(run_id, None)
        if start is not None:
            self.trajectory.model_call_s.append(round(time.monotonic() - start, 4))

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        self._latency(kwargs.get("run_id"))
        usage = self.trajectory.usage
        usage.model_calls += 1
        for generation in (response.generations[0] if response.generations else []):
            meta = getattr(getattr(generation, "message", None), "usage_metadata", None) or {}
            usage.input_tokens += meta.get("input_tokens", 0)
            usage.output_tokens += meta.get("output_tokens", 0)

    def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        self._latency(kwargs.get("run_id"))
        self.trajectory.usage.provider_errors += 1


class _RateLimit(AgentMiddleware):
    """Wait for the provider's rate limit before every model call (retries too: it sits inside the retry middleware).

    The served trial's ``throttle`` (ratelimit.Throttle): ``acquire()`` blocks
    until the shared limit has room and returns the seconds waited;
    ``used(tokens)`` records a call's tokens. The wait is the provider's, not the
    agent's: it moves the agent's deadline back.
    """

    def wrap_model_call(self, request, handler):
        served = _served()
        waited = served.throttle.acquire()
        served.trajectory.rate_wait_s += waited
        served.deadline.extend(waited)
        response = handler(request)
        messages = getattr(response, "result", None) or [response]
        served.throttle.used(sum((getattr(m, "usage_metadata", None) or {}).get("total_tokens", 0) for m in messages))
        return response


def _middleware(retries: int, backoff_s: float, throttled: bool) -> list:
    return retry_middleware(retries, backoff_s) + ([_RateLimit()] if throttled else [])


_agents: dict[tuple, Any] = {}  # (retries, backoff_s, throttled) -> the compiled agent
_agents_lock = threading.Lock()  # trials in two threads build it once, not twice


def shared_agent(retries: int, backoff_s: float, throttled: bool) -> Any:
    """The harness's own agent, compiled once per process and setting; it serves whichever trial calls it.

    Safe for trials in several threads: the compiled graph keeps no state
    between invocations, and what is the trial's (model, sandbox, trajectory,
    deadline, throttle) comes from the caller's context (:func:`serving`, ``tools.acting_on``).
    """
    key = (retries, backoff_s, throttled)
    agent = _agents.get(key)
    if agent is None:
        with _agents_lock:
            agent = _agents.get(key)
            if agent is None:
                agent = _agents[key] = default_agent_factory(
                    _Unbound(), TOOLS, [_TrialModel(), *_middleware(retries, backoff_s, throttled)])
    return agent


def run_agent(model: Any, trajectory: Trajectory, sandbox: Sandbox, *, timeout_s: float | None, max_steps: int,
              factory: AgentFactory | None = None, retries: int = 2, backoff_s: float = 1.0,
              budget: BudgetCheck | None = None, throttle: Any = None) -> Trajectory:
    """Drive ``model`` on ``trajectory.instruction`` in ``sandbox``; limits end it, they never raise.

    ``budget``: asked between model calls (budget.py); ``throttle``: the
    provider's shared rate limit (ratelimit.py), whose waits extend the deadline
    and are kept out of ``duration_s``. Exceptions from the model or a tool
    propagate (for classification); the trajectory passed in keeps everything
    up to that point.
    """
    start = time.monotonic()
    deadline = Deadline(timeout_s)

    def record(call):
        trajectory.tool_calls.append(call)
        trajectory.usage.tool_calls += 1

    factory = factory or default_agent_factory
    trajectory.harness["factory"] = f"{factory.__module__}.{factory.__qualname__}"
    if factory is default_agent_factory:
        agent = shared_agent(retries, backoff_s, throttle is not None)
    else:  # a suite's own agent is given the trial's model: it may call it where no middleware reaches
        agent = factory(model, list(TOOLS), _middleware(retries, backoff_s, throttle is not None))
    config = {"callbacks": [_Recorder(trajectory)], "recursion_limit": 4 * max_steps + 10}
    # LangChain's own live tracing stays off: the run is exported to LangSmith from the
    # run directory at the end (redacted, bounded in time, never blocking a trial).
    with tracing_context(enabled=False), acting_on(sandbox, record, deadline.remaining), \
            serving(model, trajectory, deadline, throttle):
        try:
            _drive(agent, config, trajectory, deadline, max_steps, budget)
        finally:
            trajectory.duration_s = time.monotonic() - start - trajectory.rate_wait_s
    return trajectory


def _drive(agent: Any, config: dict, trajectory: Trajectory, deadline: Deadline, max_steps: int,
           budget: BudgetCheck | None = None) -> None:
    """Stream the agent; stop at the deadline, when the model wants more steps than allowed, or over budget.

    ``max_steps`` counts model calls: the tool calls of the last allowed one
    still run (the model's last action counts), then the loop stops before the
    model would be called again. A budget cap is checked at the same point.
    """
    state: dict = {"messages": [HumanMessage(trajectory.instruction)]}
    try:
        for state in agent.stream({"messages": state["messages"]}, config=config, stream_mode="values"):
            last = state["messages"][-1]
            if deadline.passed():
                trajectory.stop_reason = TIMEOUT
                break
            if last.type == "tool" and trajectory.usage.model_calls >= max_steps:
                trajectory.stop_reason = STEP_LIMIT  # its tool calls ran; no further model call
                break
            reached = budget(trajectory.usage) if budget is not None and last.type == "tool" else None
            if reached:
                trajectory.stop_reason, trajectory.budget_reached = BUDGET, reached
                break
        else:
            last = state["messages"][-1]
            refused = last.type == "ai" and (last.additional_kwargs or {}).get("refusal")
            trajectory.stop_reason = GAVE_UP if refused else COMPLETED
    except GraphRecursionError:
        trajectory.stop_reason = STEP_LIMIT  # an agent with extra graph steps per model call
    except Exception as exc:
        trajectory.error = f"{type(exc).__name__}: {exc}"
        trajectory.usage.provider_retries = max(0, trajectory.usage.provider_errors - 1)  # the last one ended it
        if _out_of_time(exc, deadline):
            trajectory.stop_reason = TIMEOUT
            return
        trajectory.stop_reason = ERROR
        raise
    finally:
        trajectory.messages = messages_to_dict(state["messages"])
    trajectory.usage.provider_retries = trajectory.usage.provider_errors


def _out_of_time(exc: Exception, deadline: Deadline) -> bool:
    """A model call that timed out because the trial's budget ran out (its client timeout is that budget).

    Any other provider fault stays a provider fault, however late it comes.
    """
    from langchain_core.exceptions import ModelTimeoutError

    return deadline.passed() and isinstance(exc, ModelTimeoutError)
