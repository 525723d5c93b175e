"""Built-in models: chat models that go through the same agent loop as real ones.

``oracle[:variant]`` asks for the task's reference solution as ``bash`` tool
calls (one per command), then says it is done; ``nop`` answers without acting.
They exist so a suite can be checked end to end without a provider, and so the
resource configuration's effect can be measured with the model held fixed.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult


def _no_usage() -> dict:
    return {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}


class ScriptedToolModel(BaseChatModel):
    """Issues ``commands`` as bash tool calls one per turn, then ``final``."""

    commands: list[str] = []
    final: str = "Done."
    label: str = "scripted"

    @property
    def _llm_type(self) -> str:
        return f"harnessbench-{self.label}"

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedToolModel:
        return self  # the script already knows its tools

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        turn = sum(1 for m in messages if m.type == "ai")
        if turn < len(self.commands):
            message = AIMessage(content="", usage_metadata=_no_usage(), tool_calls=[
                {"name": "bash", "args": {"command": self.commands[turn]}, "id": f"call_{turn}", "type": "tool_call"}])
        else:
            message = AIMessage(content=self.final, usage_metadata=_no_usage())
        return ChatResult(generations=[ChatGeneration(message=message)])


def oracle(commands: list[str], variant: str) -> ScriptedToolModel:
    return ScriptedToolModel(commands=commands, final=f"Ran the reference solution '{variant}'.",
                             label=f"oracle-{variant}")


def nop() -> ScriptedToolModel:
    return ScriptedToolModel(commands=[], final="I will not do anything.", label="nop")
