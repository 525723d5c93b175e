"""The sandbox protocol every backend implements, and its typed failures.

What a command did is data (:class:`ExecResult`, a non-zero exit code is not an
exception). A sandbox that cannot be started or that disappears is an
exception (:class:`SandboxStartError`, :class:`SandboxLostError`): the
environment ended the trial, not the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar, Protocol

# Re-exported: a backend imports its whole contract from this module.
from ..errors import (EnforcementUnavailable, OutputMissingError, SandboxError, SandboxLostError,
                      SandboxPathError, SandboxStartError)
from ..evidence import Evidence
from ..options import BackendOptions, Option

if TYPE_CHECKING:
    from ..resources import Allocation

__all__ = ["CAPTURE_LIMIT", "TIMEOUT_EXIT_CODE", "Backend", "EnforcementUnavailable", "Evidence", "ExecResult",
           "OutputMissingError", "Sandbox", "SandboxError", "SandboxLostError", "SandboxPathError",
           "SandboxStartError", "decode_text"]

TIMEOUT_EXIT_CODE = 124  # what coreutils `timeout` returns; we use it for killed-on-timeout
CAPTURE_LIMIT = 8 * 1024 * 1024  # bytes of stdout (and of stderr) kept per command


def decode_text(data: bytes) -> str:
    """Bytes from a sandbox as text: UTF-8, each byte that is not valid UTF-8 replaced by U+FFFD.

    What a model wrote is data, never the task's bug: a verifier reading a file
    with stray bytes must see a wrong output (a model failure), not a
    ``UnicodeDecodeError`` (which would be ``error/harness``).
    """
    return data.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class ExecResult:
    """The result of one command inside a sandbox."""

    exit_code: int
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class Sandbox(Protocol):
    """One trial's isolated, resource-limited environment."""

    enforcement: str

    def exec(self, command: str, timeout: float | None = None) -> ExecResult:
        """Run ``command`` with ``bash -c`` in the sandbox's working directory.

        On timeout every process of the command is killed and the result has
        ``timed_out=True`` and exit code 124.

        Raises:
            SandboxLostError: the sandbox is gone.
        """

    def write_file(self, path: str, content: str | bytes) -> None:
        """Write a file (relative paths are inside the working directory)."""

    def read_file(self, path: str, text: bool = True, limit: int | None = None) -> str | bytes:
        """Read a file: as text (:func:`decode_text`, never a decoding error) or, with ``text=False``, as bytes.

        ``limit``: at most this many bytes from its start, the rest never read
        (the agent's ``read_file`` tool: a model may point it at a huge, even
        sparse, file).

        Raises:
            OutputMissingError: the file does not exist.
        """

    def evidence(self) -> Evidence:
        """Peak memory, CPU time and OOM kills so far, from the kernel's counters."""

    def applied_limits(self) -> dict:
        """The limits as the kernel or engine holds them, read back (never echoed from the request)."""

    def close(self) -> None:
        """Kill everything left and remove every trace; safe to call twice."""


class Backend:
    """Creates sandboxes of one kind (``local``, ``docker``, ...): the whole lifecycle the session uses.

    A new backend is one module with a subclass, registered under a name through an entry point
    (sandbox/registry.py; README, "Writing a backend"). It declares its own options (:attr:`options`,
    parsed by :meth:`parse_options`) and is made by :meth:`create`. Every sandbox it makes is named or
    labelled after its creating process, so that :meth:`reap` removes exactly its own leftovers and
    nothing else, also from another process (:meth:`reaper_args`, :meth:`for_reaping`).
    """

    name: str  # its registered name
    run_id: str  # the run its sandboxes belong to (their names or labels carry it)
    runs_images: bool = False  # whether tasks that bring their own container image (Harbor tasks) can run here
    #: Whether the session's host ledger (admission.py) admits this backend's trials. A backend whose
    #: sandboxes run elsewhere (a cluster, with its own scheduler) sets it False.
    host_admission: bool = True
    #: This backend's own options (flag ``--hb-...``, ini key ``hb_...``): every registered backend's appear in
    #: ``--help``; only the chosen backend's are parsed.
    options: ClassVar[tuple[Option, ...]] = ()

    @classmethod
    def parse_options(cls, raw: Mapping[str, str]) -> BackendOptions:
        """This backend's options from their text (``raw``: each of :attr:`options` by name: the command line,
        else the ini file, else the default).

        Raises:
            ConfigError: a bad value, naming the flag and what is accepted.
        """
        return BackendOptions()

    @classmethod
    def create(cls, options: BackendOptions, run_id: str, *, untrusted: Sequence[str] = ()) -> Backend:
        """The backend for a session.

        ``untrusted``: the models of the session whose commands are model-written (provider models, replays
        of them), by name; empty when every command comes from the task's author. A backend that runs
        commands where the author's trust matters (the host) must confine them, or refuse.

        Raises:
            EnforcementUnavailable: the settings ask for something this backend cannot do here.
        """
        return cls(run_id)

    def reaper_args(self) -> dict:
        """What another process needs to rebuild this backend for :meth:`reap` (JSON-able; the watchdog gets it).

        :meth:`for_reaping` turns it back into a backend; the default is the constructor's keyword arguments.
        """
        return {}

    @classmethod
    def for_reaping(cls, run_id: str, args: Mapping[str, object]) -> Backend:
        """A backend that can :meth:`reap` the sandboxes of one made elsewhere (``args``: its :meth:`reaper_args`)."""
        return cls(run_id, **args)

    def check(self) -> str:
        """Return the enforcement method this backend will use, or raise EnforcementUnavailable."""
        raise NotImplementedError

    def check_image(self, image: str | None) -> None:
        """Raise EnforcementUnavailable if a task's image cannot be used (backends without images: nothing to do)."""

    def provision(self, allocation: Allocation, trial_id: str, image: str | None = None, network: bool = False,
                  workdir: str | None = None, env: dict[str, str] | None = None) -> Sandbox:
        """Create a sandbox for one trial.

        ``workdir`` (where commands run) and ``env`` (variables every command
        sees) are for tasks that bring an image: None keeps the backend's own.

        Raises:
            SandboxStartError: it could not be created.
        """
        raise NotImplementedError

    def build_image(self, context: str, tag: str, timeout_s: float) -> None:
        """Build ``context``'s Dockerfile as ``tag`` unless an image of that tag exists (the tag is the cache key).

        Raises:
            SandboxStartError: the build failed or ran past ``timeout_s`` (the message ends with the build log's tail).
        """
        raise SandboxStartError(f"the {self.name} backend builds no images")

    def image_workdir(self, image: str) -> str:
        """The image's own WORKDIR (``/`` when it sets none)."""
        raise SandboxStartError(f"the {self.name} backend runs no images")

    def describe(self) -> dict:
        """Facts about the backend for the harness card (versions, cgroup version, ...)."""
        raise NotImplementedError

    def warnings(self) -> list[str]:
        """What the user must know about this backend's isolation, printed under the summary (none by default)."""
        return []

    def reap(self) -> int:
        """Remove the sandboxes of creators that died (crashed sessions, killed workers); returns how many."""
        raise NotImplementedError

    def close(self) -> None:
        """At session end: remove whatever of this process's own is left (after an interrupt), free resources."""
