"""Every touch of pytest's and pytest-xdist's private parts, in one place.

The plugin needs four things neither publishes: running one item's protocol with its reports held back
(``_pytest.runner.runtestprotocol``, what pytest-rerunfailures uses too), the terminal writer's line state
and width (``TerminalReporter._tw``), a module collector whose Python object is built rather than
imported (``pytest.Module._getobj``), and xdist's controller-side stop flag (``DSession.shouldstop``).
A pytest or xdist release that moves one of them breaks only this file.
"""

from __future__ import annotations

import types

import pytest
from _pytest.runner import runtestprotocol  # noqa: F401  (re-exported: no public equivalent)

__all__ = ["GeneratedModule", "line_started", "runtestprotocol", "stop_session", "stop_reason", "terminal_width"]


def terminal_width(reporter) -> int:
    """The terminal's full width, as pytest's own summary lines use it."""
    return reporter._tw.fullwidth


def line_started(reporter) -> bool:
    """Something is written on the current terminal line (e.g. a row of progress letters)."""
    return bool(reporter._tw.width_of_current_line)


def _dsession(session: pytest.Session):
    return session.config.pluginmanager.get_plugin("dsession")


def stop_session(session: pytest.Session, reason: str) -> None:
    """Stop after the running tests, serially or under xdist (whose controller keeps its own flag)."""
    session.shouldstop = session.shouldstop or reason
    dsession = _dsession(session)
    if dsession is not None and not dsession.shouldstop:
        dsession.shouldstop = reason


def stop_reason(session: pytest.Session) -> str | None:
    """Why the session was stopped early (by us, -x or --maxfail, an xdist worker), or None."""
    dsession = _dsession(session)
    return str(session.shouldstop or session.shouldfail or (dsession is not None and dsession.shouldstop) or "") or None


class GeneratedModule(pytest.Module):
    """A module collector whose module is built by :meth:`build` instead of imported from its path."""

    prefix = "generated_"  # the module is named PREFIX + its directory's name

    def build(self, module: types.ModuleType) -> None:
        """Fill ``module`` (named after the path's directory, ``__file__`` set) with its test functions."""
        raise NotImplementedError

    def _getobj(self):  # pytest.Module would import the path as Python
        module = types.ModuleType(f"{self.prefix}{self.path.parent.name}")
        module.__file__ = str(self.path)
        self.build(module)
        return module
