"""Admission control: never oversubscribe the guarantees of trials on one host.

Why this exists: concurrency is a confounder. A trial at 1x is promised its
spec (say 1 CPU, 512Mi) as a *guarantee*; if eight such trials run at once on
a two-core machine they are not running at their stated allocation, they are
running at a quarter of it, and the bake-off measures the scheduler instead of
the model. Under ``pytest -n N`` (and when several pytest sessions share a
host) a trial therefore starts only when the sum of the guarantees of the
trials already admitted, plus its own, fits the host's :class:`Capacity`;
otherwise it waits. The wait is returned as ``queued_s`` so that it is recorded
and never charged to the agent's time (docs/design.md §Resources, §Data flow; issue 7 item 1).

Coordination is across processes on one host, through files in a state
directory that only this module uses (default :func:`default_state_dir`,
overridable with the ``HARNESSBENCH_ADMISSION_DIR`` environment variable or
the ``state_dir`` argument):

``lock``
    an empty file; every read-modify-write of the ledger holds an exclusive
    ``fcntl.flock`` on it (per open file description, so it also serialises
    threads of one process).
``ledger.jsonl``
    the ledger, kept by statefile.py: a log of whole ledgers, one JSON line
    each, the last complete line current, so a lock-free reader always sees a
    whole ledger::

        {"version": 1, "next_ticket": 42,
         "admitted": [ENTRY, ...],   # trials holding their guarantee now
         "waiting":  [ENTRY, ...]}   # FIFO queue, ordered by "ticket"

    where ENTRY is ``{"ticket", "trial_id", "cpus", "memory_bytes", "pid",
    "start", "boot", "host", "since", "seen"}``: ``pid`` and ``start`` (the
    process start time in clock ticks since boot, field 22 of
    ``/proc/<pid>/stat``) identify the owning process, ``boot`` is the kernel
    boot id and ``host`` the hostname; ``since`` is when the entry was
    created and ``seen`` (waiters only) the waiter's last heartbeat, both
    wall-clock seconds.

Crash safety: whenever a process holds the lock it drops entries whose owner
is gone — no such pid, a zombie, a different start time (the pid was reused),
or a different boot id (the ledger survived a reboot). So a worker killed
with SIGKILL never blocks the others for longer than one poll. Entries written
from another host (a state directory on a shared filesystem) cannot be checked
and are kept. A waiter that stops heartbeating (e.g. its session was
suspended with Ctrl-Z) is dropped from the queue after ``STALE_WAITER_S`` and
re-queues at the back when it resumes; admitted entries are never expired by
age, only by their owner's death.

Fairness: waiters are served in ticket order without overtaking — a waiter is
admitted only if the admitted guarantees, plus those of every waiter ahead of
it, plus its own fit the capacity. Small trials behind a large one thus wait
with it instead of starving it; several waiters that fit together are admitted
together. Each process checks against its own capacity; sessions that share a
state directory should use the same ``--hb-capacity``.

Plain Python, stdlib only; Linux first (``/proc``), degrading to a pid-only
liveness check elsewhere.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import statefile
from .paths import state_root, writable_dir
from .procs import cgroup_mounts, cgroup_paths, identity, owner_alive, physical_memory_bytes, read_text
from .resources import SpecError, format_size, parse_size

ENV_STATE_DIR = "HARNESSBENCH_ADMISSION_DIR"
CAPACITY_FORM = "cpus=N,memory=SIZE (e.g. cpus=2,memory=20Gi; a missing key means the host's own)"
DEFAULT_POLL_S = 0.05
STALE_WAITER_S = 10.0
_HEARTBEAT_S = 1.0
_REAP_EVERY_S = 0.5
_CPU_EPS = 1e-9
_LEDGER_VERSION = 1


# --------------------------------------------------------------------------- capacity

@dataclass(frozen=True)
class Capacity:
    """What a host can guarantee at once: CPUs (may be fractional) and bytes of memory."""

    cpus: float
    memory_bytes: int

    def __post_init__(self) -> None:
        if isinstance(self.cpus, bool) or not (isinstance(self.cpus, (int, float)) and self.cpus > 0
                                               and math.isfinite(self.cpus)):
            raise ValueError(f"capacity cpus={self.cpus!r} must be a positive number")
        if isinstance(self.memory_bytes, bool) or not isinstance(self.memory_bytes, int) or self.memory_bytes <= 0:
            raise ValueError(f"capacity memory_bytes={self.memory_bytes!r} must be a positive integer")
        object.__setattr__(self, "cpus", float(self.cpus))

    @classmethod
    def of_host(cls) -> Capacity:
        """The CPUs this process may run on and the physical memory, lowered by a cgroup limit if any."""
        return cls(cpus=host_cpus(), memory_bytes=host_memory_bytes())

    def fits(self, cpus: float, memory_bytes: int) -> bool:
        return cpus <= self.cpus + _CPU_EPS and memory_bytes <= self.memory_bytes

    def to_dict(self) -> dict:
        return {"cpus": self.cpus, "memory_bytes": self.memory_bytes}

    def __str__(self) -> str:
        return f"cpus={self.cpus:g},memory={format_size(self.memory_bytes)}"


def parse_capacity(text: str | None) -> Capacity:
    """``"cpus=2,memory=20Gi"`` → Capacity; missing keys (or an empty text) take the host's value.

    Raises ValueError naming the bad piece and the accepted form.
    """
    values: dict[str, float | int] = {}
    for piece in (text or "").split(","):
        if not piece.strip():
            continue
        key, sep, raw = piece.partition("=")
        key, raw = key.strip().lower(), raw.strip()
        if not sep or not raw:
            raise ValueError(f"capacity piece {piece.strip()!r} is not key=value; use {CAPACITY_FORM}")
        key = {"cpu": "cpus", "mem": "memory"}.get(key, key)
        if key not in ("cpus", "memory"):
            raise ValueError(f"capacity key {piece.strip()!r} is unknown; use {CAPACITY_FORM}")
        if key in values:
            raise ValueError(f"capacity key {key!r} is given twice in {text!r}; use {CAPACITY_FORM}")
        if key == "cpus":
            try:
                cpus = float(raw)
            except ValueError:
                cpus = math.nan
            if not (cpus > 0 and math.isfinite(cpus)):
                raise ValueError(f"capacity piece {piece.strip()!r}: cpus must be a positive number; "
                                 f"use {CAPACITY_FORM}")
            values["cpus"] = cpus
        else:
            try:
                values["memory"] = parse_size(raw)
            except SpecError:
                raise ValueError(f"capacity piece {piece.strip()!r}: memory must be a size like 512Mi or 20Gi; "
                                 f"use {CAPACITY_FORM}") from None
    cpus = values["cpus"] if "cpus" in values else host_cpus()
    memory = values["memory"] if "memory" in values else host_memory_bytes()
    return Capacity(cpus=float(cpus), memory_bytes=int(memory))


def check_fits(cpus: float | None, memory_bytes: int | None, capacity: Capacity) -> None:
    """Raise ValueError (one line) if a guarantee this large could never be admitted."""
    cpus, memory_bytes = cpus or 0.0, memory_bytes or 0
    if capacity.fits(cpus, memory_bytes):
        return
    too_big = []
    if not capacity.fits(cpus, 0):
        too_big.append(f"cpus={cpus:g} > {capacity.cpus:g}")
    if not capacity.fits(0, memory_bytes):
        too_big.append(f"memory={format_size(memory_bytes)} > {format_size(capacity.memory_bytes)}")
    raise ValueError(f"guarantee can never fit the admission capacity ({', '.join(too_big)}); "
                     f"lower the task's cpus/memory or raise --hb-capacity (now {capacity})")


def host_cpus() -> float:
    """Usable CPUs: the affinity mask (or cpu_count), lowered by a cgroup CPU quota."""
    try:
        cpus: float = float(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        cpus = float(os.cpu_count() or 1)
    quota = _cgroup_cpu_quota()
    if quota is not None and 0 < quota < cpus:
        cpus = quota
    return max(cpus, 0.01)


def host_memory_bytes() -> int:
    """Physical memory, lowered by a cgroup memory limit."""
    memory = physical_memory_bytes() or 0
    limit = _cgroup_memory_limit()
    if limit is not None and 0 < limit < (memory or limit + 1):
        memory = limit
    return memory if memory > 0 else 1024**3


def _cgroup_dirs(controller: str) -> list[Path]:
    """This process's cgroup directory for ``controller`` and its ancestors up to the mount root.

    ``controller`` None-equivalent ``""`` means cgroup v2 (unified).
    """
    mount = cgroup_mounts().get(controller)
    if mount is None:
        return []
    rel = cgroup_paths().get(controller)
    if rel is None:
        return []
    here = mount / rel.lstrip("/")
    if not here.is_dir():  # a cgroup namespace shows "/" relative to a root we cannot see
        here = mount
    dirs = [here]
    while here != mount and mount in here.parents:
        here = here.parent
        dirs.append(here)
    return dirs


def _cgroup_memory_limit() -> int | None:
    best: int | None = None
    for directory, name in [(d, "memory.max") for d in _cgroup_dirs("")] + \
                           [(d, "memory.limit_in_bytes") for d in _cgroup_dirs("memory")]:
        text = read_text(directory / name)
        if text and text.isdigit():
            value = int(text)
            if value < 2**60:  # v1 "unlimited" is a huge page-rounded number
                best = value if best is None else min(best, value)
    return best


def _cgroup_cpu_quota() -> float | None:
    best: float | None = None
    for directory in _cgroup_dirs(""):
        text = read_text(directory / "cpu.max")
        if text:
            quota, _, period = text.partition(" ")
            if quota.isdigit() and period.isdigit() and int(period) > 0:
                value = int(quota) / int(period)
                best = value if best is None else min(best, value)
    for directory in _cgroup_dirs("cpu"):
        quota, period = read_text(directory / "cpu.cfs_quota_us"), read_text(directory / "cpu.cfs_period_us")
        if quota and period and quota.isdigit() and period.isdigit() and int(period) > 0:
            value = int(quota) / int(period)
            best = value if best is None else min(best, value)
    return best


# --------------------------------------------------------------------------- process identity

# --------------------------------------------------------------------------- the ledger

def default_state_dir() -> Path:
    """``$HARNESSBENCH_ADMISSION_DIR``, else ``<tmp>/harnessbench-<uid>/admission`` (see paths.py).

    Per user, so that a directory made by one user never stops another with a
    permission error; point several users at one shared directory through the
    environment variable if they must share a host's capacity.
    """
    env = os.environ.get(ENV_STATE_DIR)
    if env:
        return Path(env)
    return state_root() / "admission"


def _empty_ledger() -> dict:
    return {"version": _LEDGER_VERSION, "next_ticket": 1, "admitted": [], "waiting": []}


def _checked(ledger: dict) -> dict:
    """``ledger`` itself, emptied in place if it is not of the ledger's shape (so a write-back replaces it)."""
    if not isinstance(ledger.get("admitted"), list) or not isinstance(ledger.get("waiting"), list):
        ledger.clear()
        ledger.update(_empty_ledger())
    ledger.setdefault("next_ticket", 1)
    return ledger


def _load(path: Path) -> dict:
    """The ledger at ``path``, read without the lock; a missing or unreadable one counts as empty."""
    return _checked(statefile.load(path, _empty_ledger))


def _sum(entries: list[dict]) -> tuple[float, int]:
    return (sum(float(e.get("cpus") or 0) for e in entries), sum(int(e.get("memory_bytes") or 0) for e in entries))


class Admission:
    """Admit trials so that the guarantees held at once on this host never exceed ``capacity``.

    ``queued_s = adm.acquire(trial_id, cpus, memory_bytes)`` blocks until the
    trial fits and registers it; ``adm.release(trial_id)`` gives its share back.
    ``with adm.admit(trial_id, cpus, memory_bytes) as queued_s: ...`` does both.
    Safe across processes (xdist workers, concurrent sessions) and threads.
    """

    def __init__(self, capacity: Capacity, state_dir: Path | str | None = None):
        self.capacity = capacity
        self.state_dir = writable_dir(Path(state_dir) if state_dir is not None else default_state_dir(),
                                      "admission ledger")
        self.lock_path = self.state_dir / "lock"
        self.ledger_path = self.state_dir / "ledger.jsonl"
        self._identity: tuple[int, dict] | None = None
        self._admitted_with: dict[str, int] = {}  # trial id -> trials holding a guarantee when it was admitted

    # -- public API ---------------------------------------------------------

    def acquire(self, trial_id: str, cpus: float | None, memory_bytes: int | None, *,
                poll_s: float = DEFAULT_POLL_S, timeout_s: float | None = None) -> float:
        """Block until the trial's guarantee fits, register it, return the seconds spent waiting.

        Raises ValueError if the guarantee can never fit (see :func:`check_fits`)
        or this process already holds ``trial_id``; TimeoutError after
        ``timeout_s`` (its place in the queue is given up; so it is on Ctrl-C).
        ``None`` for cpus or memory means nothing is reserved of it. While
        waiting it sleeps ``poll_s`` (at most 1 s) between lock-free looks at
        the ledger and takes the lock only when it may fit, or every 0.5 s to
        reap entries of dead processes.
        """
        cpus, memory_bytes = float(cpus or 0.0), int(memory_bytes or 0)
        check_fits(cpus, memory_bytes, self.capacity)
        poll_s = min(max(poll_s, 0.001), _HEARTBEAT_S)  # a waiter must heartbeat well within STALE_WAITER_S
        start = time.monotonic()
        deadline = None if timeout_s is None else start + timeout_s
        me = self._me()
        entry = {"trial_id": trial_id, "cpus": cpus, "memory_bytes": memory_bytes, **me}
        ticket: int | None = None
        admitted = False
        try:
            with self._ledger() as ledger:
                self._reap(ledger)
                if any(self._mine(e, me) and e["trial_id"] == trial_id for e in ledger["admitted"]):
                    raise ValueError(f"trial {trial_id!r} is already admitted by this process; release it first")
                ticket = self._enqueue(ledger, entry)
                admitted = self._try_admit(ledger, ticket)
            next_full_pass = time.monotonic() + _REAP_EVERY_S
            while not admitted:
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"trial {trial_id!r} was not admitted within {timeout_s:g}s "
                                       f"(capacity {self.capacity})")
                time.sleep(poll_s if deadline is None else max(0.0, min(poll_s, deadline - time.monotonic())))
                now = time.monotonic()
                # Lock-free look first: the last whole line of the log is the ledger (statefile.py).
                if now < next_full_pass and not self._would_admit(_load(self.ledger_path), ticket):
                    continue
                with self._ledger() as ledger:
                    self._reap(ledger)
                    next_full_pass = now + _REAP_EVERY_S
                    if not any(w.get("ticket") == ticket for w in ledger["waiting"]):
                        ticket = self._enqueue(ledger, entry)  # dropped as stale while we slept: queue again
                    admitted = self._try_admit(ledger, ticket)
                    if not admitted:
                        self._heartbeat(ledger, ticket)
            return time.monotonic() - start
        except BaseException:
            self._admitted_with.pop(trial_id, None)
            if ticket is not None:
                with self._ledger() as ledger:
                    ledger["waiting"] = [w for w in ledger["waiting"] if w.get("ticket") != ticket]
                    if admitted:
                        ledger["admitted"] = [a for a in ledger["admitted"] if a.get("ticket") != ticket]
            raise

    def release(self, trial_id: str) -> bool:
        """Give back this process's share for ``trial_id``; False (and no change) if it holds none."""
        me = self._me()
        self._admitted_with.pop(trial_id, None)
        with self._ledger() as ledger:
            for i, entry in enumerate(ledger["admitted"]):
                if entry.get("trial_id") == trial_id and self._mine(entry, me):
                    del ledger["admitted"][i]
                    return True
            return False

    @contextlib.contextmanager
    def admit(self, trial_id: str, cpus: float | None, memory_bytes: int | None, *,
              poll_s: float = DEFAULT_POLL_S, timeout_s: float | None = None) -> Iterator[float]:
        """``with adm.admit(...) as queued_s:`` — acquire, and release on the way out, whatever happens."""
        queued_s = self.acquire(trial_id, cpus, memory_bytes, poll_s=poll_s, timeout_s=timeout_s)
        try:
            yield queued_s
        finally:
            self.release(trial_id)

    def admitted_with(self, trial_id: str) -> int | None:
        """How many trials held a guarantee on this host when ``trial_id`` was admitted, itself included
        (None: this process holds no such trial). Read from the ledger at that moment: no second locked pass."""
        return self._admitted_with.get(trial_id)

    def admitted(self) -> list[dict]:
        """Entries of the trials holding a guarantee now (dead owners' entries dropped)."""
        with self._ledger() as ledger:
            self._reap(ledger)
            return [dict(e) for e in ledger["admitted"]]

    def waiting(self) -> list[dict]:
        """Entries of the trials queued now, in admission order (dead owners' entries dropped)."""
        with self._ledger() as ledger:
            self._reap(ledger)
            return [dict(e) for e in sorted(ledger["waiting"], key=lambda w: w.get("ticket", 0))]

    def in_use(self) -> tuple[float, int]:
        """(cpus, memory_bytes) guaranteed to admitted trials right now."""
        return _sum(self.admitted())

    # -- internals ----------------------------------------------------------

    def _me(self) -> dict:
        pid = os.getpid()
        if self._identity is None or self._identity[0] != pid:  # recomputed after a fork
            self._identity = (pid, identity(pid))
        return self._identity[1]

    @staticmethod
    def _mine(entry: dict, me: dict) -> bool:
        return all(entry.get(k) == me[k] for k in ("pid", "start", "boot", "host"))

    @contextlib.contextmanager
    def _ledger(self) -> Iterator[dict]:
        """Hold the lock, yield the ledger, write it back if the body changed it (statefile.py).

        A fresh descriptor per call, so the flock also serialises threads of one
        process. The ledger is written back on normal exit only; an exception
        leaves the file as it was.
        """
        with statefile.locked(self.ledger_path, _empty_ledger, lock=self.lock_path) as ledger:
            yield _checked(ledger)

    @staticmethod
    def _reap(ledger: dict) -> None:
        now = time.time()
        ledger["admitted"] = [e for e in ledger["admitted"] if owner_alive(e)]
        ledger["waiting"] = [w for w in ledger["waiting"]
                             if owner_alive(w) and now - float(w.get("seen", now)) <= STALE_WAITER_S]

    @staticmethod
    def _enqueue(ledger: dict, entry: dict) -> int:
        ticket = int(ledger.get("next_ticket", 1))
        ledger["next_ticket"] = ticket + 1
        now = time.time()
        ledger["waiting"].append({**entry, "ticket": ticket, "since": now, "seen": now})
        return ticket

    def _would_admit(self, ledger: dict, ticket: int) -> bool:
        """The FIFO rule: admitted + every waiter ahead + me must fit (so nobody is overtaken)."""
        mine = [w for w in ledger["waiting"] if w.get("ticket") == ticket]
        if not mine:
            return True  # dropped from the queue: let the locked pass sort it out
        ahead = [w for w in ledger["waiting"] if w.get("ticket", 0) < ticket]
        cpus, memory = _sum(ledger["admitted"] + ahead + mine)
        return self.capacity.fits(cpus, memory)

    def _try_admit(self, ledger: dict, ticket: int) -> bool:
        if not self._would_admit(ledger, ticket):
            return False
        entry = next(w for w in ledger["waiting"] if w.get("ticket") == ticket)
        ledger["waiting"].remove(entry)
        entry.pop("seen", None)
        entry["since"] = time.time()
        ledger["admitted"].append(entry)
        self._admitted_with[entry["trial_id"]] = len(ledger["admitted"])
        return True

    @staticmethod
    def _heartbeat(ledger: dict, ticket: int) -> None:
        now = time.time()
        for w in ledger["waiting"]:
            if w.get("ticket") == ticket and now - float(w.get("seen", 0)) >= _HEARTBEAT_S:
                w["seen"] = now
