"""The fixed parts of the harness: one prompt, one tool set, one step limit for every model.

Kept free of LangChain imports so the harness card can hash them cheaply.
"""

from __future__ import annotations

import hashlib
import json

SYSTEM_PROMPT = """\
You are an autonomous software engineer working in a Linux sandbox.
Your working directory holds the task's files. Use the tools to inspect files and
run commands; commands run with bash in the working directory and share its state.
There is no network. Solve the task completely, verify your result, then reply
with a short summary of what you did. Do not ask questions: nobody will answer.
"""

TOOL_DESCRIPTIONS = {
    "bash": "Run a bash command in the working directory. Returns the exit code, stdout and stderr.",
    "read_file": "Read a text file (path relative to the working directory).",
    "write_file": "Write a text file (path relative to the working directory), replacing it.",
}

DEFAULT_MAX_STEPS = 30  # model calls per trial
TOOL_OUTPUT_LIMIT = 16_000  # characters of tool output shown to the model


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def toolset_hash(descriptions: dict[str, str] = TOOL_DESCRIPTIONS) -> str:
    return sha256(json.dumps(descriptions, sort_keys=True))


def fingerprint(max_steps: int | None = None, model_params: dict | None = None) -> dict:
    """What the harness card records of the harness: hashes of the prompt and the tools, the step limit."""
    return {
        "system_prompt_sha256": sha256(SYSTEM_PROMPT),
        "tools": sorted(TOOL_DESCRIPTIONS),
        "toolset_sha256": toolset_hash(),
        "max_steps": DEFAULT_MAX_STEPS if max_steps is None else max_steps,
        "model_params": model_params or {},
    }
