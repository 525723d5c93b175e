"""The sandbox protocol every backend implements, and its typed failures.

What a command did is data (:class:`ExecResult`, a non-zero exit code is not an
exception). A sandbox that cannot be started or that disappears is an
exception (:class:`SandboxStartError`, :class:`SandboxLostError`): the
environment ended the trial, not the model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..config import Config
    from ..resources import Allocation

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


@dataclass
class Evidence:
    """What the kernel (or engine) says happened inside a sandbox.

    ``oom_kills`` comes from the kernel's own counter where there is one;
    ``oom_source`` names it (``memory.oom_control``, ``memory.events``,
    ``State.OOMKilled``, or ``heuristic`` for the rlimit fallback).
    ``pids_limit_hits`` counts the forks the kernel refused at the sandbox's
    pids limit (``max`` in the group's ``pids.events``, v1 and v2).
    ``disk_free_bytes`` and ``disk_full`` describe the filesystem the sandbox
    writes to, read at the end (see ``sandbox/disk.py``); None where a backend
    cannot see it.

    Memory pressure short of an OOM kill (a process at its limit can live on
    by evicting and re-reading its own file pages, see ``outcomes.thrashed``):
    ``memory_at_limit`` (usage reached the limit), ``file_refault_bytes`` (its
    own evicted file pages read back: ``workingset_refault_file``),
    ``major_faults`` and, where cgroup v2 has PSI, ``memory_stall_s`` (time
    some task waited for memory: ``memory.pressure``). None: not readable here.
    """

    peak_memory_bytes: int | None = None
    cpu_seconds: float | None = None
    oom_kills: int = 0
    oom_source: str = ""
    pids_limit_hits: int = 0
    disk_free_bytes: int | None = None
    disk_full: bool = False
    memory_at_limit: bool = False
    file_refault_bytes: int | None = None
    major_faults: int | None = None
    memory_stall_s: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


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

    A new backend is one module with a subclass and one line in ``sandbox.BACKENDS``.
    Every sandbox it makes is named or labelled after its creating process, so
    that :meth:`reap` removes exactly its own leftovers and nothing else.
    """

    name: str
    runs_images: bool = False  # whether tasks that bring their own container image (Harbor tasks) can run here
    #: Whether the session's host ledger (admission.py) admits this backend's trials. A backend whose
    #: sandboxes run elsewhere (a cluster, with its own scheduler) sets it False.
    host_admission: bool = True

    @classmethod
    def from_config(cls, config: Config, run_id: str) -> Backend:
        """The backend for a session's settings.

        Raises:
            EnforcementUnavailable: the settings ask for something this backend cannot do here.
        """
        return cls(run_id)

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
