"""The agent's tools, bound to one trial's sandbox; every call is recorded."""

from __future__ import annotations

import inspect
import time
from typing import Callable

from langchain_core.tools import BaseTool, StructuredTool
from langchain_core.tools.base import create_schema_from_function

from ..errors import SandboxError, SandboxLostError, SandboxStartError
from ..sandbox.base import Sandbox, decode_text
from .defaults import TOOL_DESCRIPTIONS, TOOL_OUTPUT_LIMIT
from .trajectory import ToolCall


# A file operation the model got wrong (a directory, a path outside the sandbox, no
# permission) is shown to the model as an error; a vanished sandbox is not its mistake.
_MODEL_MISTAKES = (OSError, SandboxError)


def _model_mistake(exc: BaseException) -> bool:
    return not isinstance(exc, (SandboxLostError, SandboxStartError))


def _clip(text: str) -> str:
    if len(text) <= TOOL_OUTPUT_LIMIT:
        return text
    half = TOOL_OUTPUT_LIMIT // 2
    return f"{text[:half]}\n... [{len(text) - TOOL_OUTPUT_LIMIT} characters cut] ...\n{text[-half:]}"


def _head(data: bytes) -> str:
    """What the read_file tool shows: at most TOOL_OUTPUT_LIMIT bytes from the file's start (the rest is not read)."""
    if len(data) <= TOOL_OUTPUT_LIMIT:
        return decode_text(data)
    return (f"{decode_text(data[:TOOL_OUTPUT_LIMIT])}\n[file cut: its first {TOOL_OUTPUT_LIMIT} bytes shown; "
            "read the rest with bash (tail, sed -n, grep)]")


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
            output = _head(sandbox.read_file(path, text=False, limit=TOOL_OUTPUT_LIMIT + 1))
        except _MODEL_MISTAKES as exc:
            if not _model_mistake(exc):
                raise
            output = f"error: {exc}"
        record(ToolCall("read_file", {"path": path}, output, time.monotonic() - start))
        return output

    def write_file(path: str, content: str) -> str:
        start = time.monotonic()
        try:
            sandbox.write_file(path, content)
            output = f"wrote {len(content.encode())} bytes to {path}"
        except _MODEL_MISTAKES as exc:
            if not _model_mistake(exc):
                raise
            output = f"error: {exc}"
        record(ToolCall("write_file", {"path": path, "content": content}, output, time.monotonic() - start))
        return output

    return [StructuredTool.from_function(fn, name=fn.__name__, description=TOOL_DESCRIPTIONS[fn.__name__],
                                         args_schema=_args_schema(fn))
            for fn in (bash, read_file, write_file)]


_SCHEMAS: dict[tuple[str, str], type] = {}  # (tool name, signature) -> pydantic model of its arguments


def _args_schema(fn: Callable) -> type:
    """The argument model ``from_function`` would infer for ``fn``, built once per name and signature.

    Inferring it per trial builds three pydantic models every time (several ms of
    each trial); the tools' signatures never change between trials, their
    closures (one per trial) do, so the key is name and signature.
    """
    key = (fn.__name__, str(inspect.signature(fn)))
    if key not in _SCHEMAS:
        _SCHEMAS[key] = create_schema_from_function(fn.__name__, fn)
    return _SCHEMAS[key]
