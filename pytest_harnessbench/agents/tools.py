"""The agent's tools: built once per process, acting on the sandbox of the trial that calls them.

An agent built once and shared by every trial (agents/harness.py) holds these
tools; :func:`acting_on` says, for the current context only, which sandbox they
act on and where their calls are recorded. A context variable, not a global:
each thread (and each task LangGraph runs, which copies its caller's context)
sees the trial it serves, so two trials running at once never share a sandbox.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Callable, TypeVar

from langchain_core.tools import BaseTool, StructuredTool

from ..errors import SandboxError, SandboxLostError, SandboxStartError
from ..sandbox.base import Sandbox, decode_text
from .defaults import TOOL_DESCRIPTIONS, TOOL_OUTPUT_LIMIT
from .trajectory import ToolCall


# A file operation the model got wrong (a directory, a path outside the sandbox, no
# permission) is shown to the model as an error; a vanished sandbox is not its mistake.
_MODEL_MISTAKES = (OSError, SandboxError)
T = TypeVar("T")


@dataclass(frozen=True)
class Workspace:
    """What the tools act on for one trial: its sandbox, its recorder, its time left (bounds each command)."""

    sandbox: Sandbox
    record: Callable[[ToolCall], None]
    remaining: Callable[[], float | None]


_workspace: ContextVar[Workspace] = ContextVar("harnessbench_workspace")


@contextlib.contextmanager
def scoped(var: ContextVar[T], value: T) -> Iterator[None]:
    """``var`` holds ``value`` within the block, in this context only (this thread, the tasks it starts)."""
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


def trial_value(var: ContextVar[T], caller: str, setter: str) -> T:
    """``var``'s value for the trial being served; a clear error where no ``setter(...)`` block set it."""
    try:
        return var.get()
    except LookupError:
        raise RuntimeError(f"{caller} was called outside a trial (no {setter}(...) in this context)") from None


def acting_on(sandbox: Sandbox, record: Callable[[ToolCall], None],
              remaining: Callable[[], float | None]) -> contextlib.AbstractContextManager[None]:
    """Within the block (this context only), the tools act on ``sandbox``; ``remaining()`` bounds each command."""
    return scoped(_workspace, Workspace(sandbox, record, remaining))


def _current() -> Workspace:
    return trial_value(_workspace, "a harness tool", "acting_on")


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


def bash(command: str) -> str:
    work = _current()
    start = time.monotonic()
    result = work.sandbox.exec(command, timeout=work.remaining())
    note = "\n[command killed: time budget exhausted]" if result.timed_out else ""
    output = _clip(f"exit code: {result.exit_code}{note}\n--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}")
    work.record(ToolCall("bash", {"command": command}, output, time.monotonic() - start,
                         result.exit_code, result.timed_out))
    return output


def read_file(path: str) -> str:
    work = _current()
    start = time.monotonic()
    try:
        output = _head(work.sandbox.read_file(path, text=False, limit=TOOL_OUTPUT_LIMIT + 1))
    except _MODEL_MISTAKES as exc:
        if not _model_mistake(exc):
            raise
        output = f"error: {exc}"
    work.record(ToolCall("read_file", {"path": path}, output, time.monotonic() - start))
    return output


def write_file(path: str, content: str) -> str:
    work = _current()
    start = time.monotonic()
    try:
        work.sandbox.write_file(path, content)
        output = f"wrote {len(content.encode())} bytes to {path}"
    except _MODEL_MISTAKES as exc:
        if not _model_mistake(exc):
            raise
        output = f"error: {exc}"
    work.record(ToolCall("write_file", {"path": path, "content": content}, output, time.monotonic() - start))
    return output


# bash, read_file, write_file: one set for the process (their argument schemas are pydantic models, several ms to build).
TOOLS: list[BaseTool] = [StructuredTool.from_function(fn, name=fn.__name__, description=TOOL_DESCRIPTIONS[fn.__name__])
                         for fn in (bash, read_file, write_file)]
