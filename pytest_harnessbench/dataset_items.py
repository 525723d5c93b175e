"""LangSmith dataset examples as pytest items, beside marker and Harbor tasks (see datasets.py).

A dataset has no file in the suite, so its items are added at the start of
``pytest_collection_modifyitems`` (before ``-k``/``-m`` deselect): one module
per dataset at the virtual path ``<rootdir>/langsmith/<NAME>``, holding one
generated test function per example marked ``task`` like a marker task, which
the plugin parametrizes over models × multipliers × samples. Every process
(each xdist worker too) reads the dataset itself, at configure time.
"""

from __future__ import annotations

import types

import pytest

from .compat import GeneratedModule
from .datasets import DatasetTask, run


class DatasetModule(GeneratedModule):
    """One dataset's examples as test functions."""

    def __init__(self, *args, tasks: list[DatasetTask], **kwargs):
        super().__init__(*args, **kwargs)
        self.tasks = tasks
        self.prefix = f"harnessbench_dataset_{self.path.name}_"  # the module's name: one per dataset

    def build(self, module: types.ModuleType) -> None:
        for task in self.tasks:
            setattr(module, task.name, _body(task))

    def istestfunction(self, obj, name: str) -> bool:
        return getattr(obj, "dataset_task", None) is not None


def _body(task: DatasetTask):
    def body(trial) -> None:
        run(trial, task)

    body.__name__ = body.__qualname__ = task.name
    body.dataset_task = task
    body.pytestmark = [pytest.mark.task(**task.marker)]
    return body


class DatasetCollector:
    """Registered as a plugin when ``--hb-dataset`` is given."""

    def __init__(self, loaded: list[tuple[str, list[DatasetTask]]]):
        self.loaded = loaded

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config, items: list) -> None:
        for name, tasks in self.loaded:
            module = DatasetModule.from_parent(session, path=config.rootpath / "langsmith" / name, tasks=tasks)
            items.extend(_items(module))


def _items(collector) -> list[pytest.Item]:
    found = []
    for node in collector.collect():
        if isinstance(node, pytest.Item):
            found.append(node)
        else:
            found.extend(_items(node))
    return found
