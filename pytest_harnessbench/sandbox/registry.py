"""Which sandbox backends exist: the built-ins and those other packages register through an entry point.

A backend is a :class:`~.base.Backend` subclass named by an entry point of the group :data:`GROUP`,
as pytest finds plugins through ``pytest11``. A package that brings one declares, in its pyproject::

    [project.entry-points."pytest_harnessbench.backends"]
    podman = "my_package.podman:PodmanBackend"

and ``--hb-backend podman`` chooses it; its options (``PodmanBackend.options``) appear in ``--help``.
The built-ins are entry points of the same group, listed here rather than in this project's pyproject:
an editable install's metadata is written when it is installed, so a checkout would not see a backend
added since (and a missing ``local`` backend would stop every session).

The core never names a backend: it asks this module for :func:`names` and :func:`load`.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

from ..options import ConfigError

if TYPE_CHECKING:
    from .base import Backend

GROUP = "pytest_harnessbench.backends"

BUILTIN = tuple(EntryPoint(name, value, GROUP) for name, value in (
    ("local", "pytest_harnessbench.sandbox.local:LocalBackend"),
    ("docker", "pytest_harnessbench.sandbox.docker:DockerBackend"),
    ("kubernetes", "pytest_harnessbench.sandbox.kubernetes:KubernetesBackend"),
))


@cache
def _entries() -> dict[str, EntryPoint]:
    """Name -> entry point: the built-ins in their order, then the installed ones by name.

    Raises:
        ConfigError: an installed backend takes a built-in's name, or two installed ones share a name.
    """
    found = {ep.name: ep for ep in BUILTIN}
    for ep in sorted(entry_points(group=GROUP), key=lambda ep: (ep.name, ep.value)):
        if ep.name in found and found[ep.name].value != ep.value:  # the same one seen twice is no clash
            raise ConfigError(f"sandbox backend {ep.name!r}: registered by {ep.value} and by {found[ep.name].value} "
                              f"(entry point group {GROUP}); uninstall one of them")
        found[ep.name] = ep
    return found


def names() -> tuple[str, ...]:
    """Every backend ``--hb-backend`` accepts."""
    return tuple(_entries())


@cache
def load(name: str) -> type[Backend]:
    """The backend class registered as ``name`` (its module is imported now).

    Raises:
        ConfigError: no such backend, or its entry point does not load or is not a Backend subclass.
    """
    from .base import Backend

    entry = _entries().get(name)
    if entry is None:
        raise ConfigError(f"--hb-backend {name!r} is not one of: {', '.join(names())}")
    try:
        cls = entry.load()
    except Exception as exc:  # a third party's import error must name the entry point, not crash pytest
        raise ConfigError(f"sandbox backend {name!r} ({entry.value}) cannot be loaded: "
                          f"{type(exc).__name__}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise ConfigError(f"sandbox backend {name!r} ({entry.value}) is not a "
                          "pytest_harnessbench.sandbox.base.Backend subclass")
    return cls
