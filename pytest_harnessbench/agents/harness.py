"""The one agent every model runs in: same prompt, tools and limits for all.

Uses LangChain's ``create_agent``. The loop is streamed so the partial
trajectory survives a step limit, a timeout or an exception.
"""

from __future__ import annotations

import time
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import ModelCallLimitMiddleware
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import HumanMessage, messages_to_dict
from langsmith import tracing_context

from ..sandbox.base import Sandbox
from .defaults import SYSTEM_PROMPT
from .tools import make_tools
from .trajectory import COMPLETED, ERROR, STEP_LIMIT, TIMEOUT, Trajectory, Usage


class _UsageCounter(BaseCallbackHandler):
    """Counts real model calls and their tokens (the step-limit middleware's own
    closing message is not a model call, which is how a step limit is told apart)."""

    def __init__(self, usage: Usage):
        self.usage = usage

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        self.usage.model_calls += 1
        for generation in (response.generations[0] if response.generations else []):
            meta = getattr(getattr(generation, "message", None), "usage_metadata", None) or {}
            self.usage.input_tokens += meta.get("input_tokens", 0)
            self.usage.output_tokens += meta.get("output_tokens", 0)


def run_agent(model: Any, model_name: str, instruction: str, sandbox: Sandbox,
              timeout_s: float | None, max_steps: int) -> Trajectory:
    """Drive ``model`` on ``instruction`` in ``sandbox``; never raises for limits.

    An exception from the model or a tool is recorded on the trajectory
    (``stop_reason="error"``) and re-raised for classification.
    """
    start = time.monotonic()
    deadline = None if timeout_s is None else start + timeout_s
    trajectory = Trajectory(model=model_name, instruction=instruction)

    def remaining() -> float | None:
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    def record(call):
        trajectory.tool_calls.append(call)
        trajectory.usage.tool_calls += 1

    agent = create_agent(model, make_tools(sandbox, record, remaining), system_prompt=SYSTEM_PROMPT,
                         middleware=[ModelCallLimitMiddleware(run_limit=max_steps, exit_behavior="end")])
    config = {"callbacks": [_UsageCounter(trajectory.usage)], "recursion_limit": 4 * max_steps + 10}
    # LangChain's own live tracing stays off: the run is exported to LangSmith from the
    # run directory at the end (redacted, bounded in time, never blocking a trial).
    with tracing_context(enabled=False):
        return _drive(agent, instruction, config, trajectory, deadline, start)


def _drive(agent, instruction: str, config: dict, trajectory: Trajectory, deadline: float | None, start: float) -> Trajectory:
    state: dict = {"messages": [HumanMessage(instruction)]}
    try:
        for state in agent.stream({"messages": [HumanMessage(instruction)]}, config=config, stream_mode="values"):
            if deadline is not None and time.monotonic() >= deadline:
                trajectory.stop_reason = TIMEOUT
                break
        else:
            ai_messages = sum(1 for m in state["messages"] if m.type == "ai")
            trajectory.stop_reason = STEP_LIMIT if ai_messages > trajectory.usage.model_calls else COMPLETED
    except Exception as exc:
        trajectory.stop_reason = ERROR
        trajectory.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        trajectory.messages = messages_to_dict(state["messages"])
        trajectory.duration_s = time.monotonic() - start
    return trajectory
