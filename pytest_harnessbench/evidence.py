"""What the kernel (or engine) says happened inside a sandbox: the classifier's input, the backends' output.

At the bottom of the import graph: ``outcomes`` reads it without importing the sandbox package.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


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
