"""One way to report a usage problem (a bad option, marker or task directory) from any process.

pytest turns a ``UsageError`` into one ``ERROR:`` line and exit status 4. An xdist worker cannot raise one
(xdist would crash), but a collection error reaches the controller: so on a worker a problem becomes a
collection error whose text starts with :data:`PREFIX`, and the controller turns those back into one usage
error (:func:`relayed`). Problems found while collecting are gathered and said together after collection.
"""

from __future__ import annotations

import pytest

PREFIX = "harnessbench usage error: "


class UsageProblems:
    """The usage problems of this process; ``on_worker``: it is an xdist worker."""

    def __init__(self, on_worker: bool):
        self.on_worker = on_worker
        self.found: list[str] = []

    def add(self, message: str) -> None:
        """While a collector collects: on a worker, fail that collector now (the controller relays it); else
        keep it for :meth:`raise_found`, so that every bad marker is named at once."""
        self.found.append(message)
        if self.on_worker:
            pytest.fail(f"{PREFIX}{message}", pytrace=False)

    def raise_found(self) -> None:
        """After collection, in the process that runs the session: the gathered problems as one UsageError."""
        if self.found and not self.on_worker:
            raise pytest.UsageError("\n".join(self.found))

    def now(self, message: str, session: pytest.Session | None = None) -> None:
        """Outside a collector: a UsageError, or on a worker the session's collection error (the caller then
        collects nothing: the controller exits 4)."""
        if not self.on_worker or session is None:
            raise pytest.UsageError(message)
        self.found.append(message)
        report = pytest.CollectReport(session.nodeid, "failed", f"{PREFIX}{message}", [])
        session.ihook.pytest_collectreport(report=report)


def relayed(report: pytest.CollectReport) -> str | None:
    """On the controller: the usage problem a worker's failed collection report carries, or None."""
    text = str(report.longrepr)
    if report.failed and PREFIX in text:
        return text.split(PREFIX, 1)[1].strip()
    return None
