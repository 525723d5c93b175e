"""The typed failures of a sandbox, at the bottom of the import graph.

A sandbox that cannot be started or that disappears is an exception: the environment ended the trial,
not the model. ``outcomes.classify`` tells them apart by type, so they live here, below both the
classifier and the backends that raise them (``sandbox.base`` re-exports them for backend authors).
"""

from __future__ import annotations


class SandboxError(Exception):
    """Base of all sandbox failures that are the environment's fault."""


class SandboxStartError(SandboxError):
    """The sandbox could not be created or started (classified ``infra/sandbox_start``)."""


class SandboxLostError(SandboxError):
    """The sandbox vanished mid-trial (classified ``infra/sandbox_lost``)."""


class EnforcementUnavailable(SandboxError):
    """The backend cannot enforce the requested limits on this machine.

    Raised by :meth:`Backend.check` before any trial starts; the plugin turns it
    into a usage error, because silently dropping a limit corrupts the experiment.
    """


class SandboxPathError(PermissionError):
    """A file path that leads outside the sandbox (absolute on the host, ``..``, a symlink out)."""


class OutputMissingError(FileNotFoundError):
    """A file the task reads from the sandbox does not exist.

    A subclass of :class:`FileNotFoundError`: an output the agent was to
    produce but did not counts as the model's failure (``failed/assertion``).
    """
