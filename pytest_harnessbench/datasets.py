"""Tasks read from a LangSmith dataset: ``--hb-dataset langsmith:NAME[@VERSION_OR_TAG]``, or a file pulled from one.

One task per example, run under the same models × multipliers × samples as
marker and Harbor tasks (items ``langsmith/NAME::EXAMPLE[model@mult#k]``, the
same from LangSmith and from a pulled file, so a run can be resumed or compared
either way). What an example gives:

- ``inputs.instruction`` (or ``input``, ``question``): the instruction to the
  agent; ``inputs.files`` (``{path: text}``): files placed in the sandbox first;
- reference outputs: ``tools`` (or ``reference_tools``), the reference tool path
  as ``[{"name": ..., "args": {...}}, ...]`` or names, scored by
  ``trajectory_match``; ``answer`` (or ``output``), the expected answer;
- ``metadata.spec``: the task's resources as the marker takes them (``cpus``,
  ``memory``, ``timeout``, ``pids``; default :data:`DEFAULT_SPEC`);
  ``metadata.name``: the item's name (default ``example_<first 8 of its id>``);
  ``metadata.criterion``: the pass criterion (below).

The pass criterion is declared, never guessed from the outcome: ``answer`` (the
expected answer appears in the agent's final reply, case and spacing aside),
``trajectory[:T]`` (``trajectory_match`` ≥ T, default 1), or ``judge[:T]``
(the ``--hb-judge`` score ≥ T, default 0.5). ``--hb-dataset-criterion`` sets it
for every example; otherwise ``metadata.criterion``, else ``answer`` when the
reference has one, else ``trajectory`` when it has a tool path; an example with
neither is a usage error. The criterion is named in the harness card.

``oracle`` replays the reference tool path, call for call, and answers with
the reference answer; ``nop`` does nothing. ``harnessbench dataset pull``
writes a dataset to a file that runs offline; a dataset that cannot be read is
a usage error naming it, before any trial.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping

from .options import ConfigError

PREFIX = "langsmith:"
FORMAT = "harnessbench-dataset/1"
DEFAULT_SPEC = {"cpus": 1, "memory": "512Mi", "timeout": 600}
CRITERIA = ("answer", "trajectory", "judge")
DEFAULT_THRESHOLD = {"trajectory": 1.0, "judge": 0.5}
READ_TIMEOUT_S = 30.0


class DatasetError(ConfigError):
    """A dataset that cannot be read, or an example that does not make a task: a usage error naming it."""


@dataclass(frozen=True)
class Source:
    """``langsmith:NAME[@VERSION_OR_TAG]`` or a pulled file's path."""

    text: str
    name: str | None = None  # a LangSmith dataset
    version: str | None = None  # its version tag or timestamp; None: the latest
    path: Path | None = None  # a pulled file

    @classmethod
    def parse(cls, text: str) -> Source:
        text = text.strip()
        if text.startswith(PREFIX):
            name, _, version = text[len(PREFIX):].partition("@")
            if not name.strip():
                raise DatasetError(f"--hb-dataset {text!r}: name the dataset, e.g. langsmith:my-cases@prod")
            return cls(text, name=name.strip(), version=version.strip() or None)
        if text.endswith(".json"):
            return cls(text, path=Path(text))
        raise DatasetError(f"--hb-dataset {text!r}: expected langsmith:NAME[@VERSION_OR_TAG] or a file written by "
                           "'harnessbench dataset pull' (.json)")


def parse_criterion(text: str, where: str) -> tuple[str, float | None]:
    """``answer``, ``trajectory[:T]`` or ``judge[:T]``. Raises DatasetError naming ``where``."""
    kind, _, threshold = str(text).strip().partition(":")
    if kind not in CRITERIA or (kind == "answer" and threshold):
        raise DatasetError(f"{where}: criterion {text!r} is not one of answer, trajectory[:T], judge[:T]")
    if kind == "answer":
        return kind, None
    try:
        value = float(threshold) if threshold else DEFAULT_THRESHOLD[kind]
    except ValueError:
        raise DatasetError(f"{where}: criterion {text!r}: the threshold must be a number") from None
    return kind, value


# ---------------------------------------------------------------- reading


def pull(name: str, version: str | None = None, *, client=None, env: Mapping[str, str] | None = None,
         timeout_s: float = READ_TIMEOUT_S) -> dict:
    """The dataset's examples through the SDK, as a document :func:`write` stores. Raises DatasetError."""
    from .export.langsmith import _env_get, _short, endpoint, make_client

    env = os.environ if env is None else env
    where = f"langsmith:{name}" + (f"@{version}" if version else "")
    try:
        client = client or make_client(env, timeout_s=timeout_s)
        dataset = client.read_dataset(dataset_name=name)
        examples = list(client.list_examples(dataset_id=dataset.id, as_of=version))
    except Exception as exc:
        hint = "" if _env_get(env, "LANGSMITH_API_KEY", "LANGCHAIN_API_KEY") else " (LANGSMITH_API_KEY is not set)"
        raise DatasetError(f"--hb-dataset {where}: cannot read it from {endpoint(env)}: {_short(exc)}{hint}; "
                           "offline, run from a file written by 'harnessbench dataset pull'") from None
    return {"format": FORMAT, "dataset": name, "version": version, "dataset_id": str(dataset.id),
            "pulled_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "examples": sorted(({"id": str(e.id), "inputs": e.inputs or {}, "outputs": e.outputs or {},
                                 "metadata": e.metadata or {}} for e in examples), key=lambda e: e["id"])}


def write(document: dict, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(document, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)
    return path


def read(source: Source, env: Mapping[str, str] | None = None) -> dict:
    """The document of a source: pulled now from LangSmith, or read from its file. Raises DatasetError."""
    if source.path is None:
        return pull(source.name, source.version, env=env)
    try:
        document = json.loads(source.path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"--hb-dataset {source.text}: cannot read it: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT or not isinstance(
            document.get("examples"), list):
        raise DatasetError(f"--hb-dataset {source.text}: not a file written by 'harnessbench dataset pull'")
    return document


# ---------------------------------------------------------------- examples as tasks


@dataclass(frozen=True)
class DatasetTask:
    name: str
    example_id: str
    instruction: str
    marker: dict  # @pytest.mark.task keyword arguments: spec, solutions, reference_tools, gate_on
    criterion: str
    answer: str | None = None
    files: dict = field(default_factory=dict)


def _first(mapping: Mapping, *keys: str):
    return next((mapping[k] for k in keys if mapping.get(k) not in (None, "", [])), None)


def _reference(tools, where: str) -> list:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise DatasetError(f"{where}: reference tools must be a list of names or {{name, args}} objects")
    path = []
    for entry in tools:
        if isinstance(entry, str):
            path.append(entry)
        elif isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
            path.append((entry["name"], dict(entry.get("args") or {})))
        else:
            raise DatasetError(f"{where}: reference tool {entry!r}: expected a name or {{name, args}}")
    return path


def _name(example: Mapping, used: set[str]) -> str:
    given = (example.get("metadata") or {}).get("name")
    base = re.sub(r"[^A-Za-z0-9_]+", "_", str(given)).strip("_") if given else f"example_{example['id'][:8]}"
    name, n = base or f"example_{example['id'][:8]}", 1
    while name in used:
        n += 1
        name = f"{base}_{n}"
    used.add(name)
    return name


def tasks(document: dict, source: str, criterion: str | None = None) -> list[DatasetTask]:
    """One task per example, in the order of their ids. Raises DatasetError naming the example."""
    used: set[str] = set()
    found = []
    for example in document["examples"]:
        where = f"--hb-dataset {source}: example {example.get('id')}"
        inputs, outputs = example.get("inputs") or {}, example.get("outputs") or {}
        metadata = example.get("metadata") or {}
        instruction = _first(inputs, "instruction", "input", "question")
        if not isinstance(instruction, str):
            raise DatasetError(f"{where}: inputs have no instruction (inputs.instruction, .input or .question)")
        files = inputs.get("files") or {}
        if not isinstance(files, Mapping) or not all(isinstance(v, str) for v in files.values()):
            raise DatasetError(f"{where}: inputs.files must map paths to text")
        reference = _reference(_first(outputs, "tools", "reference_tools"), where)
        answer = _first(outputs, "answer", "output")
        declared = criterion or metadata.get("criterion") or \
            ("answer" if answer is not None else "trajectory" if reference else None)
        if declared is None:
            raise DatasetError(f"{where}: no pass criterion: its reference outputs have neither an answer nor a "
                               "tool path; declare one (metadata.criterion or --hb-dataset-criterion)")
        kind, threshold = parse_criterion(declared, where)
        if kind == "answer" and answer is None:
            raise DatasetError(f"{where}: criterion answer, but its reference outputs have no answer")
        if kind == "trajectory" and not reference:
            raise DatasetError(f"{where}: criterion trajectory, but its reference outputs have no tool path")
        spec = {**DEFAULT_SPEC, **(metadata.get("spec") or {})}
        marker = {**{k: spec[k] for k in ("cpus", "memory", "timeout", "pids", "verify_timeout") if k in spec},
                  "reference_tools": reference,
                  "reference_answer": None if answer is None else str(answer)}
        if kind != "answer":
            marker["gate_on"] = {"trajectory_match" if kind == "trajectory" else "judge": threshold}
        found.append(DatasetTask(_name(example, used), str(example["id"]), instruction, marker,
                                 declared if kind == "answer" else f"{kind}:{threshold:g}",
                                 None if answer is None else str(answer), dict(files)))
    return found


def _normal(text: str) -> str:
    return " ".join(str(text).split()).casefold()


def run(trial, task: DatasetTask) -> None:
    """The body of a dataset task: place its files, run the agent, check the declared criterion.

    ``answer``: the expected answer must appear in the final reply (an AssertionError: the model failed).
    ``trajectory`` and ``judge`` are decided by the trial's metrics (``gate_on``) once the body passed.
    """
    for path, text in task.files.items():
        trial.sandbox.write_file(path, text)
    trajectory = trial.run_agent(task.instruction)
    if task.criterion == "answer":
        final = next((m.get("data", {}).get("content", "") for m in reversed(trajectory.messages)
                      if m.get("type") == "ai"), "")
        final = final if isinstance(final, str) else json.dumps(final)
        assert _normal(task.answer) in _normal(final), \
            f"criterion answer: expected {task.answer!r} in the final reply, got {final[:200]!r}"


def load(sources: tuple[str, ...], criterion: str | None, *, has_judge: bool, env: Mapping[str, str] | None = None
         ) -> list[tuple[str, list[DatasetTask]]]:
    """(dataset name, its tasks) per source; read once per process. Raises DatasetError."""
    if criterion:
        parse_criterion(criterion, "--hb-dataset-criterion")
    loaded = []
    for text in sources:
        source = Source.parse(text)
        document = read(source, env)
        found = tasks(document, text, criterion)
        if not has_judge and any(t.criterion.startswith("judge") for t in found):
            raise DatasetError(f"--hb-dataset {text}: criterion judge needs a judge model: --hb-judge PROVIDER:MODEL")
        loaded.append((str(document.get("dataset") or source.name), found))
    return loaded
