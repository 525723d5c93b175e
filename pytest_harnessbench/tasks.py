"""The task registry: which tasks this session collected, their trials' keys, and the problems of bad ones.

A task's marker (or Harbor task directory) is parsed once; a bad one raises ConfigError (the plugin
gathers them and reports them all at once, as one usage error). Task ids are relative to the suite's
root (trial.SuiteRoot), so earlier runs that this one reads (resume, compare, replay) are matched by them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .errors import EnforcementUnavailable
from .options import ConfigError
from .resources import SpecError
from .store import RunDir
from .trial import Case, SuiteRoot, Task, TrialKey, make_cases

if TYPE_CHECKING:
    from .config import Config
    from .sandbox.base import Backend


def match_task_ids(source: str, there: set[str], here: set[str]) -> str | None:
    """How an earlier run's task ids (``source``: the option that names it) match the ones collected here.

    Returns a line for a partial match, None for a full one (or nothing to match).

    Raises:
        ConfigError: none match: a run of another suite, or of this one under other task ids.
    """
    if not there or not here:
        return None
    matched, new = here & there, here - there
    if not matched:
        raise ConfigError(f"{source}: none of its {len(there)} task id(s) match the {len(here)} collected here "
                          f"(there: {_some(there)}; here: {_some(here)}); run the suite that run was made with")
    if not new:
        return None
    return f"{source}: {len(matched)} of {len(here)} collected task(s) match that run's, {len(new)} new: {_some(new)}"


def _some(ids: set[str], shown: int = 2) -> str:
    first = sorted(ids)[:shown]
    return ", ".join(first) + (f", ... ({len(ids) - shown} more)" if len(ids) > shown else "")


class TaskRegistry:
    """The collected tasks and the cases every one of them runs (models × multipliers × samples).

    ``capacity``: the host capacity a task's guarantee must fit (None: the backend admits elsewhere).
    """

    def __init__(self, config: Config, backend: Backend, suite: SuiteRoot, capacity=None):
        self.config = config
        self.backend = backend
        self.suite = suite  # what task ids are relative to
        self.capacity = capacity
        self.cases: list[Case] = make_cases(config.models, config.multipliers, config.samples)
        self._case_by_id = {case.id: case for case in self.cases}
        self.tasks: dict[str, Task] = {}
        self._images_checked: set[str | None] = set()

    def task(self, nodeid: str, name: str, marker_kwargs: dict, harbor_task=None, uses_trial: bool = True) -> Task:
        """Parse a task's marker (or take a Harbor task directory) once. ``nodeid``: the test function's, as
        pytest has it.

        Raises:
            ConfigError: a bad marker or task directory, or a marked test that does not use the ``trial``
                fixture (it would run as one plain test, silently left out of the bake-off).
        """
        try:
            task_id = self.suite.node_id(nodeid)
        except SpecError as exc:
            raise ConfigError(str(exc)) from None
        if not uses_trial:
            raise ConfigError(f"{task_id}: @pytest.mark.task on a test without the `trial` fixture: add `trial` "
                              "to its arguments, or remove the marker")
        if task_id not in self.tasks:
            try:
                task = Task.from_marker(task_id, name, marker_kwargs) if harbor_task is None else \
                    Task.from_harbor(task_id, harbor_task)
                task.check(self.config.models, self.capacity)
                if harbor_task is None or (task.image is not None and self.backend.runs_images):
                    self._check_image(task.image)
            except (SpecError, ValueError, EnforcementUnavailable) as exc:
                where = "@pytest.mark.task" if harbor_task is None else "task.toml"
                raise ConfigError(f"{task_id}: {where}: {exc}") from None
            self.tasks[task_id] = task
        return self.tasks[task_id]

    def _check_image(self, image: str | None) -> None:
        """A task's image must exist before any trial starts (a typo would make every trial infra)."""
        if image not in self._images_checked:
            self.backend.check_image(image)
            self._images_checked.add(image)

    def key_of(self, nodeid: str) -> TrialKey | None:
        """The key of a trial from its node id alone (xdist's controller has no items), or None for other tests."""
        try:
            return TrialKey.find(nodeid, self._case_by_id, self.suite)
        except SpecError:  # two test files share a task id: the workers report it as a usage error
            return None

    def earlier_task_ids(self) -> dict[str, set[str]]:
        """The task ids of every earlier run this session reads trials from, by the option that names it."""
        sources = {}
        if self.config.resume is not None:
            sources[f"--hb-resume {self.config.resume}"] = (self.config.resume, None)
        if self.config.compare is not None:
            sources[f"--hb-compare {self.config.compare}"] = (self.config.compare, self.config.gate)
        for model in self.config.models:
            if model.kind == "replay":
                run_dir, _, named = model.argument.partition("::")
                sources[f"--models {model.text}"] = (Path(run_dir), named or None)
        return {source: {r.task_id for r in RunDir(path).latest() if model in (None, r.model)}
                for source, (path, model) in sources.items()}

    def check_task_ids(self, collected: set[str]) -> list[str]:
        """Lines for earlier runs whose tasks match the collected ones only in part (issue 27).

        Raises:
            ConfigError: an earlier run none of whose task ids were collected here.
        """
        lines = (match_task_ids(source, there, collected) for source, there in self.earlier_task_ids().items())
        return [line for line in lines if line]

    def key(self, nodeid: str, case: Case) -> TrialKey:
        """The key of a collected trial (its task, parsed by :meth:`task`, already has its id)."""
        return TrialKey.of(nodeid, case, self.suite)
