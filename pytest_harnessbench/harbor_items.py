"""Harbor task directories as pytest items, beside marker tasks.

A ``task.toml`` is collected as a module holding one generated test function,
named after its task directory and marked ``task``: the plugin parametrizes it
over models × multipliers × samples exactly like a marker task, so its items
read ``DIR/task.toml::NAME[model@mult#k]`` and share the trial fixture, the
records and the summary. Its body is :func:`harbor.run`.
"""

from __future__ import annotations

import types

import pytest

from .compat import GeneratedModule
from .harbor import CONFIG, HarborTaskError, load_task
from .usage import UsageProblems

SKIP_REASON = "Harbor task: its environment is a container image; run it with --hb-backend docker"


def _is_task_dir(directory) -> bool:
    """Holds task.toml, or looks like a task directory that lacks it (instruction.md and tests/test.sh)."""
    return (directory / CONFIG).is_file() or (
        (directory / "instruction.md").is_file() and (directory / "tests" / "test.sh").is_file())


def in_task_dir(path) -> bool:
    """A path inside a Harbor task directory other than its task.toml (tests/, solution/, environment/, ...):
    never collected by pytest itself (Terminal-Bench's tests/test_outputs.py would be)."""
    return path.name not in (CONFIG, "instruction.md") and _is_task_dir(path.parent)


def collect(file_path, parent: pytest.Collector, bench, usage: UsageProblems):
    """The collector of a ``task.toml``; a task directory without one is a usage error; None for other files."""
    if file_path.name == "instruction.md" and not (file_path.parent / CONFIG).exists() \
            and _is_task_dir(file_path.parent):
        usage.add(f"{file_path.parent / CONFIG}: missing (a Harbor task directory needs one)")
        return None
    if file_path.name != CONFIG:
        return None
    return HarborTaskModule.from_parent(parent, path=file_path, bench=bench, usage=usage)


class HarborTaskModule(GeneratedModule):
    """One ``task.toml``; a malformed directory is a usage error naming file and field (reported after collection)."""

    prefix = "harbor_task_"

    def __init__(self, *args, bench, usage: UsageProblems, **kwargs):
        super().__init__(*args, **kwargs)
        self.bench = bench
        self.usage = usage

    def build(self, module: types.ModuleType) -> None:
        try:
            task = load_task(self.path)
        except HarborTaskError as exc:
            self.usage.add(str(exc))
            return

        def body(trial) -> None:
            from .harbor import run

            run(trial, task)

        body.__name__ = body.__qualname__ = task.name
        body.harbor_task = task
        body.pytestmark = [pytest.mark.task()]
        if not self.bench.backend.runs_images:
            body.pytestmark.append(pytest.mark.skip(reason=SKIP_REASON))
        setattr(module, task.name, body)

    def istestfunction(self, obj, name: str) -> bool:
        return getattr(obj, "harbor_task", None) is not None
