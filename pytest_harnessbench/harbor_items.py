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

from .harbor import CONFIG, HarborTaskError, load_task

SKIP_REASON = "Harbor task: its environment is a container image; run it with --hb-backend docker"


def _is_task_dir(directory) -> bool:
    """Holds task.toml, or looks like a task directory that lacks it (instruction.md and tests/test.sh)."""
    return (directory / CONFIG).is_file() or (
        (directory / "instruction.md").is_file() and (directory / "tests" / "test.sh").is_file())


def in_task_dir(path) -> bool:
    """A path inside a Harbor task directory other than its task.toml (tests/, solution/, environment/, ...):
    never collected by pytest itself (Terminal-Bench's tests/test_outputs.py would be)."""
    return path.name not in (CONFIG, "instruction.md") and _is_task_dir(path.parent)


def collect(file_path, parent: pytest.Collector, bench, worker_error_prefix: str):
    """The collector of a ``task.toml``; a task directory without one is a usage error; None for other files."""
    if file_path.name == "instruction.md" and not (file_path.parent / CONFIG).exists() \
            and _is_task_dir(file_path.parent):
        message = f"{file_path.parent / CONFIG}: missing (a Harbor task directory needs one)"
        if bench.worker is not None:  # xdist relays a collection error, not a UsageError
            pytest.fail(f"{worker_error_prefix}{message}", pytrace=False)
        bench.problems.append(message)
        return None
    if file_path.name != CONFIG:
        return None
    return HarborTaskModule.from_parent(parent, path=file_path, bench=bench, worker_error_prefix=worker_error_prefix)


class HarborTaskModule(pytest.Module):
    """One ``task.toml``; a malformed directory is a usage error naming file and field (reported after collection)."""

    def __init__(self, *args, bench, worker_error_prefix: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.bench = bench
        self.worker_error_prefix = worker_error_prefix

    def _getobj(self):  # pytest.Module would import the path as Python: build the module instead
        module = types.ModuleType(f"harbor_task_{self.path.parent.name}")
        module.__file__ = str(self.path)
        try:
            task = load_task(self.path)
        except HarborTaskError as exc:
            if self.bench.worker is not None:  # xdist relays a collection error, not a UsageError
                pytest.fail(f"{self.worker_error_prefix}{exc}", pytrace=False)
            self.bench.problems.append(str(exc))
            return module

        def body(trial) -> None:
            from .harbor import run

            run(trial, task)

        body.__name__ = body.__qualname__ = task.name
        body.harbor_task = task
        body.pytestmark = [pytest.mark.task()]
        if not self.bench.backend.runs_images:
            body.pytestmark.append(pytest.mark.skip(reason=SKIP_REASON))
        setattr(module, task.name, body)
        return module

    def istestfunction(self, obj, name: str) -> bool:
        return getattr(obj, "harbor_task", None) is not None
