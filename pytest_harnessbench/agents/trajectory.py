"""What an agent did in one trial: messages, tool calls, usage, why it stopped."""

from __future__ import annotations

from dataclasses import dataclass, field

# Why the agent loop ended.
COMPLETED = "completed"  # the model answered without asking for more tools
STEP_LIMIT = "step_limit"  # the model-call budget ran out
TIMEOUT = "timeout"  # the task's wall-clock budget ran out
ERROR = "error"  # an exception ended the loop (kept on the trajectory, re-raised)
GAVE_UP = "gave_up"  # the model refused
BUDGET = "budget"  # a token or cost cap was reached (budget.py)


@dataclass
class ToolCall:
    name: str
    args: dict
    output: str
    duration_s: float
    exit_code: int | None = None
    timed_out: bool = False


@dataclass
class Usage:
    model_calls: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    provider_errors: int = 0  # failed model-call attempts
    provider_retries: int = 0  # of those, the ones retried


@dataclass
class Trajectory:
    model: str
    instruction: str
    messages: list[dict] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    stop_reason: str = COMPLETED
    duration_s: float = 0.0
    error: str | None = None
    harness: dict = field(default_factory=dict)  # factory, system-prompt and tool-set hashes as the model saw them
    budget_reached: str | None = None  # "tokens" or "cost": the cap that stopped the loop (stop_reason "budget")
    model_call_s: list[float] = field(default_factory=list)  # each model call's latency, failed attempts too
    rate_wait_s: float = 0.0  # waited for the provider's rate limit (ratelimit.py); not part of duration_s

    def to_dict(self) -> dict:
        """JSON-ready, sharing the message list rather than deep-copying it (it is only read or dumped)."""
        return {**vars(self), "tool_calls": [dict(vars(c)) for c in self.tool_calls], "usage": dict(vars(self.usage))}
