"""How the agent worked, beside whether the end state passed: per-trial metrics (name -> number).

Pure functions over a trial document (what ``trials/<trial_id>.json`` holds:
``{"trajectories": [Trajectory.to_dict(), ...]}``, one trajectory per
``run_agent`` call). Built-in metrics need no model; trajectory match compares
the recorded tool-call path with a reference through ``agentevals``
(imported lazily). A metric never changes a trial's outcome unless the task
asks for it with ``gate_on`` (:func:`gate_verdict`).
"""

from __future__ import annotations

import json
import math
from typing import Mapping, Sequence

from .outcomes import FAILED, PASSED, Verdict

BUILTIN = ("steps", "tool_calls", "failed_tool_calls", "tokens", "wall_s")
#: costs: fewer is better. Every other metric (match scores, judges) is a score: higher is better.
LOWER_IS_BETTER = frozenset(BUILTIN)
MATCH_MODES = ("strict", "unordered", "subset", "superset")
ARGS_MODES = ("given", "exact", "ignore")
JUDGE = "judge"  # the LLM-as-judge metric (--hb-judge): 1.0 if the judge found the task completed
GATE_CAUSE = "trajectory"  # failed/trajectory: verification held, the path the task gates on did not


class MetricError(ValueError):
    """A metric asked for in a way that cannot be computed (bad mode, bad reference)."""


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def metric_range(metric: str) -> tuple[float, float]:
    """The values a metric can take: costs (counts, tokens, seconds) are ≥ 0, scores lie in [0, 1]."""
    return (0.0, math.inf) if metric in LOWER_IS_BETTER else (0.0, 1.0)


def builtin_metrics(document: Mapping) -> dict[str, float]:
    """steps (model calls), tool calls, failed tool calls (non-zero exit), tokens, wall_s (agent loop).

    Empty when the agent never ran: a trial that ended before ``run_agent`` measured no path.
    """
    runs = document.get("trajectories") or []
    if not runs:
        return {}
    calls = [c for run in runs for c in run.get("tool_calls") or []]
    usage = [run.get("usage") or {} for run in runs]
    return {
        "steps": sum(u.get("model_calls", 0) for u in usage),
        "tool_calls": len(calls),
        "failed_tool_calls": sum(1 for c in calls if c.get("exit_code") not in (None, 0)),
        "tokens": sum(u.get("input_tokens", 0) + u.get("output_tokens", 0) for u in usage),
        "wall_s": round(sum(run.get("duration_s", 0.0) for run in runs), 3),
    }


def openai_messages(document: Mapping) -> list[dict]:
    """A trial document's tool-call path as OpenAI-style chat messages, what agentevals reads.

    Each recorded tool call becomes its own assistant turn followed by its
    result, whether or not the model batched calls into one turn: "strict"
    then compares the sequence of calls, not how the model grouped them. A
    reference (:func:`reference_document`) goes through the same function, so
    both sides have one shape.
    """
    messages: list[dict] = []
    calls = [c for run in document.get("trajectories") or [] for c in run.get("tool_calls") or []]
    for i, c in enumerate(calls):
        call_id = f"call_{i}"
        messages.append({"role": "assistant", "content": "", "tool_calls": [
            {"id": call_id, "type": "function",
             "function": {"name": c["name"], "arguments": json.dumps(c.get("args") or {}, sort_keys=True)}}]})
        messages.append({"role": "tool", "content": c.get("output", ""), "tool_call_id": call_id})
    return messages


def reference_document(reference_tools: Sequence) -> dict:
    """``reference_tools=["bash", ("write_file", {"path": "out.txt"}), ...]`` as a trial document.

    A name alone matches any arguments; arguments given must appear in the
    call with the same values. Raises MetricError naming the bad entry.
    """
    if isinstance(reference_tools, (str, bytes)) or not isinstance(reference_tools, Sequence):
        raise MetricError(f"reference_tools={reference_tools!r} must be a list of tool names or (name, args)")
    calls = []
    for entry in reference_tools:
        if isinstance(entry, str):
            entry = (entry, {})
        if not (isinstance(entry, (tuple, list)) and len(entry) == 2 and isinstance(entry[0], str)
                and isinstance(entry[1], dict)):
            raise MetricError(f"reference_tools entry {entry!r}: expected a tool name or (name, {{arg: value}})")
        calls.append({"name": entry[0], "args": dict(entry[1]), "output": ""})
    return {"trajectories": [{"tool_calls": calls}]}


def _given_arguments_agree(one: dict, other: dict) -> bool:
    """Arguments both calls give have equal values: a reference's bare name agrees with any call.

    Symmetric on purpose: agentevals swaps the two sides for "subset" and
    "unordered", so its one-sided "superset" argument mode would make a bare
    reference name reject every call there.
    """
    return all(one[key] == other[key] for key in one.keys() & other.keys())


def recorded_reference(document: Mapping) -> list[tuple[str, dict]]:
    """A recorded trial's tool-call path as ``reference_tools`` entries (``harnessbench reference``)."""
    return [(c["name"], dict(c.get("args") or {}))
            for run in document.get("trajectories") or [] for c in run.get("tool_calls") or []]


def trajectory_match(document: Mapping, reference: Mapping, mode: str = "strict", args: str = "given") -> float:
    """1.0 if the trial's tool-call path matches ``reference`` in ``mode``, else 0.0 (agentevals).

    ``mode``: strict (same calls, same order), unordered (same calls), subset
    (no call outside the reference), superset (every reference call made).
    ``args``: how a call's arguments are compared with the reference's:
    "given" (the default) checks the arguments the reference gives, "exact"
    all of them, "ignore" none.
    """
    if mode not in MATCH_MODES:
        raise MetricError(f"trajectory match mode {mode!r}: expected one of {', '.join(MATCH_MODES)}")
    if args not in ARGS_MODES:
        raise MetricError(f"tool args match mode {args!r}: expected one of {', '.join(ARGS_MODES)}")
    from agentevals.trajectory.match import create_trajectory_match_evaluator
    from langsmith import tracing_context

    if args == "given":
        names = {c["name"] for doc in (document, reference) for run in doc.get("trajectories") or []
                 for c in run.get("tool_calls") or []}
        evaluator = create_trajectory_match_evaluator(
            trajectory_match_mode=mode, tool_args_match_overrides=dict.fromkeys(names, _given_arguments_agree))
    else:
        evaluator = create_trajectory_match_evaluator(trajectory_match_mode=mode, tool_args_match_mode=args)
    with tracing_context(enabled=False):  # evaluators are @traceable; runs are exported from the run directory
        result = evaluator(outputs=openai_messages(document), reference_outputs=openai_messages(reference))
    return float(bool(result["score"]))


def conversation(document: Mapping) -> list[dict]:
    """The whole exchange as OpenAI-style messages: each instruction, its tool calls and results, the final answer."""
    messages: list[dict] = []
    for run in document.get("trajectories") or []:
        messages.append({"role": "user", "content": run.get("instruction", "")})
        messages += openai_messages({"trajectories": [run]})
        answers = [m.get("data", {}).get("content") for m in run.get("messages") or [] if m.get("type") == "ai"]
        if answers and isinstance(answers[-1], str) and answers[-1]:
            messages.append({"role": "assistant", "content": answers[-1]})
    return messages


def judge_outcome(chat_model, document: Mapping) -> float:
    """1.0 if the judge model finds every request of the conversation completed, else 0.0 (openevals).

    Uses openevals' task-completion rubric on :func:`conversation`. Provider
    faults propagate: the caller records the metric as missing, never as 0.
    """
    from langsmith import tracing_context
    from openevals.llm import create_llm_as_judge
    from openevals.prompts import TASK_COMPLETION_PROMPT

    evaluator = create_llm_as_judge(prompt=TASK_COMPLETION_PROMPT, judge=chat_model, feedback_key=JUDGE)
    with tracing_context(enabled=False):
        result = evaluator(outputs=conversation(document))
    return float(bool(result["score"]))


def gate_verdict(verdict: Verdict, metrics: Mapping[str, float], gate_on: Mapping[str, float],
                 missing: Mapping[str, str] | None = None) -> Verdict:
    """A passed trial whose gated metric misses its threshold is failed/trajectory; nothing else changes.

    The threshold is a floor for scores and a ceiling for costs (``steps: 10``
    allows at most 10). A gated metric that could not be computed fails too,
    with its cause: no evidence is not a pass.
    """
    if verdict.outcome != PASSED:
        return verdict
    misses = []
    for name, threshold in gate_on.items():
        value = metrics.get(name)
        if value is None:
            misses.append(f"{name} missing ({(missing or {}).get(name, 'not computed')})")
        elif higher_is_better(name) and value < threshold:
            misses.append(f"{name} {value:g} < {threshold:g}")
        elif not higher_is_better(name) and value > threshold:
            misses.append(f"{name} {value:g} > {threshold:g}")
    if not misses:
        return verdict
    return Verdict(FAILED, GATE_CAUSE, "; ".join(misses) + " (gate_on)")
