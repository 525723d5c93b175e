"""Built-in models: chat models that go through the same agent loop as real ones.

``oracle[:variant]`` asks for the task's reference solution as ``bash`` tool
calls, ``nop`` answers without acting, ``replay:RUN_DIR`` re-issues the tool
calls an earlier run recorded. They check a suite end to end without a
provider, and measure the resource configuration with the model held fixed.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult


def _no_usage() -> dict:
    return {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}


class ScriptedToolModel(BaseChatModel):
    """Issues ``calls`` (tool name, arguments) one per turn, then answers ``final``."""

    calls: list[tuple[str, dict]] = []
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
        if turn < len(self.calls):
            name, args = self.calls[turn]
            message = AIMessage(content="", usage_metadata=_no_usage(),
                                tool_calls=[{"name": name, "args": args, "id": f"call_{turn}", "type": "tool_call"}])
        else:
            message = AIMessage(content=self.final, usage_metadata=_no_usage())
        return ChatResult(generations=[ChatGeneration(message=message)])


def scripted(calls: list[tuple[str, dict]], final: str, label: str) -> ScriptedToolModel:
    return ScriptedToolModel(calls=list(calls), final=final, label=label)
