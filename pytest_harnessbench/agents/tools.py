"""The agent's tools, bound to one trial's sandbox; every call is recorded."""

from __future__ import annotations

import time
from typing import Callable

from langchain_core.tools import BaseTool, StructuredTool

from ..sandbox.base import OutputMissingError, Sandbox
from .defaults import TOOL_DESCRIPTIONS, TOOL_OUTPUT_LIMIT
from .trajectory import ToolCall


def _clip(text: str) -> str:
    if len(text) <= TOOL_OUTPUT_LIMIT:
        return text
    half = TOOL_OUTPUT_LIMIT // 2
    return f"{text[:half]}\n... [{len(text) - TOOL_OUTPUT_LIMIT} characters cut] ...\n{text[-half:]}"


def make_tools(sandbox: Sandbox, record: Callable[[ToolCall], None],
               remaining: Callable[[], float | None]) -> list[BaseTool]:
    """bash, read_file, write_file over ``sandbox``; ``remaining()`` bounds each command."""

    def bash(command: str) -> str:
        start = time.monotonic()
        result = sandbox.exec(command, timeout=remaining())
        note = "\n[command killed: time budget exhausted]" if result.timed_out else ""
        output = _clip(f"exit code: {result.exit_code}{note}\n--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}")
        record(ToolCall("bash", {"command": command}, output, time.monotonic() - start,
                        result.exit_code, result.timed_out))
        return output

    def read_file(path: str) -> str:
        start = time.monotonic()
        try:
            output = _clip(sandbox.read_file(path))
        except OutputMissingError as exc:
            output = f"error: {exc}"
        except UnicodeDecodeError:
            output = f"error: {path} is not a text file"
        record(ToolCall("read_file", {"path": path}, output, time.monotonic() - start))
        return output

    def write_file(path: str, content: str) -> str:
        start = time.monotonic()
        sandbox.write_file(path, content)
        output = f"wrote {len(content.encode())} bytes to {path}"
        record(ToolCall("write_file", {"path": path, "content": content}, output, time.monotonic() - start))
        return output

    return [StructuredTool.from_function(fn, name=fn.__name__, description=TOOL_DESCRIPTIONS[fn.__name__])
            for fn in (bash, read_file, write_file)]
