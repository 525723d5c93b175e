"""Kernel resource groups for the local backend: cgroup v2 and v1 behind one shape.

Each trial gets one group (v2) or one group per controller hierarchy (v1).
A command joins by writing ``0`` (itself) to every group's join file before it
execs, so every child it spawns is inside from the start. On v1 that file is
``tasks``: it moves the writing thread alone, which recent kernels do without
the global threadgroup lock that a write to ``cgroup.procs`` takes, and whose
taking waits for an RCU grace period when no move happened just before (7-13 ms
per command measured on this project's host, Linux 6.18; an older kernel takes
the lock either way). The shell that writes is single-threaded, so its thread
is the whole process. On v2 it is ``cgroup.procs`` (``cgroup.threads`` is for
threaded groups only). Evidence comes from
the kernel's own counters, read before the group is removed:

==========  ===================================  ===============================
version     limit / guarantee                    evidence
==========  ===================================  ===============================
v2          memory.max (+swap.max=0), cpu.max,   memory.events oom_kill and max,
            pids.max / memory.low, cpu.weight    memory.peak (polled memory.current
                                                 before 5.19), cpu.stat usage_usec,
                                                 pids.events max, memory.stat,
                                                 memory.pressure (PSI)
v1          memory.limit_in_bytes (+memsw),      memory.oom_control oom_kill,
            cpu.cfs_quota_us, pids.max /         memory.max_usage_in_bytes,
            memory.soft_limit_in_bytes,          cpuacct.usage, pids.events max,
            cpu.shares                           memory.stat (total_*)
==========  ===================================  ===============================
"""

from __future__ import annotations

import errno
import os
import re
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..procs import cgroup_mounts, cgroup_paths, owner_token, read_file, token_alive
from .base import EnforcementUnavailable, Evidence

CGROUP_MOUNT = Path("/sys/fs/cgroup")
CFS_PERIOD_US = 100_000
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids")
V2_CONTROLLERS = ("memory", "cpu", "pids")
PARENT_NAME = "harnessbench"
ROOT_ENV = "HARNESSBENCH_CGROUP_ROOT"
DELEGATE_COMMAND = "systemd-run --user --scope -p Delegate=yes pytest ..."
# A v2 session leaf: where a session moves the processes of its delegated subtree so that the subtree
# may enable controllers for trial groups (the no-internal-process rule). Named after its owner, like
# the trial groups (see local.py), so that only the owner, or anyone once the owner is dead, removes it.
_SESSION_LEAF = re.compile(r"session-(?P<owner>\d+-\d+)\Z")
PEAK_POLL_S = 0.05
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# v1 has no count of limit hits that works (memory.failcnt stays 0): a peak this close to the limit reached it.
AT_LIMIT_MARGIN = 1 << 20


def _write(path: Path, value: object) -> None:
    """Write a control file, with os-level calls as procs.read_file reads one."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, str(value).encode())
    finally:
        os.close(fd)


def _read_int(path: Path) -> int | None:
    try:
        return int(read_file(path).split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _read_keyed(path: Path, key: str) -> int | None:
    """Value of ``key N`` in a flat-keyed file such as memory.events."""
    try:
        for line in read_file(path).splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        return None
    return None


def _read_flat(path: Path) -> dict[str, int]:
    """Every ``key N`` line of a flat-keyed file such as memory.stat; empty if it cannot be read."""
    try:
        lines = read_file(path).splitlines()
    except OSError:
        return {}
    pairs = (line.split() for line in lines)
    return {p[0]: int(p[1]) for p in pairs if len(p) == 2 and p[1].isdigit()}


def _psi_total_s(path: Path) -> float | None:
    """Seconds some task of the group waited for memory (``some ... total=USEC`` in memory.pressure), if PSI is on."""
    try:
        first = read_file(path).splitlines()[0]
    except (OSError, IndexError):
        return None
    fields = dict(f.split("=", 1) for f in first.split()[1:] if "=" in f)
    return int(fields["total"]) / 1e6 if fields.get("total", "").isdigit() else None


def _remove_dir(path: Path, attempts: int = 50) -> None:
    """rmdir a group; the kernel may report EBUSY for a moment after its last process dies."""
    for _ in range(attempts):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                raise
            time.sleep(0.02)
    path.rmdir()


def kill(pids: list[int]) -> None:
    """SIGKILL each process; ones already gone are fine."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _kill_procs(procs_file: Path, timeout_s: float = 5.0) -> None:
    """SIGKILL every process listed in a group until it is empty."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            pids = [int(p) for p in read_file(procs_file).split()]
        except FileNotFoundError:
            return
        if not pids:
            return
        kill(pids)
        time.sleep(0.01)


class _PeakPoller:
    """The highest ``memory.current`` seen, sampled every :data:`PEAK_POLL_S` seconds.

    For v2 kernels older than 5.19, which have no ``memory.peak``: a peak shorter
    than the interval can be missed, so the value is a lower bound.
    """

    def __init__(self, current_file: Path):
        self.current_file = current_file
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"peak {current_file.parent.name}", daemon=True)
        self._thread.start()

    def sample(self) -> None:
        value = _read_int(self.current_file)
        if value is not None:
            self.peak = max(self.peak, value)

    def _run(self) -> None:
        while not self._stop.wait(PEAK_POLL_S):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def cpu_shares(cpus: float) -> int:
    """A CPU guarantee as cgroup v1's ``cpu.shares`` (and Docker's ``cpu_shares``): 1024 per CPU."""
    return max(2, round(1024 * cpus))


def cpu_weight(cpus: float) -> int:
    """A CPU guarantee as cgroup v2's ``cpu.weight``: 100 per CPU (the default weight is one CPU's)."""
    return max(1, min(10_000, round(100 * cpus)))


@dataclass
class Group:
    """One trial's group; a command joins it by writing ``0`` to each of ``join_files`` (see the module's doc)."""

    version: str
    dirs: dict[str, Path]  # controller -> directory (v2: one directory under every key)
    poller: _PeakPoller | None = field(default=None, repr=False)  # v2 without memory.peak

    def poll_peak(self) -> None:
        """Track the peak by polling ``memory.current`` (kernels without ``memory.peak``)."""
        self.poller = _PeakPoller(self.dirs["memory"] / "memory.current")

    @property
    def join_files(self) -> list[str]:
        name = "tasks" if self.version == "v1" else "cgroup.procs"
        return sorted({str(d / name) for d in self.dirs.values()})

    def evidence(self) -> Evidence:
        if self.version == "v2":
            d = self.dirs["memory"]
            usage_usec = _read_keyed(d / "cpu.stat", "usage_usec")
            if self.poller is not None:
                self.poller.sample()
            evidence = Evidence(
                peak_memory_bytes=_read_int(d / "memory.peak") if self.poller is None else self.poller.peak,
                cpu_seconds=None if usage_usec is None else usage_usec / 1e6,
                oom_kills=_read_keyed(d / "memory.events", "oom_kill") or 0,
                oom_source="memory.events",
                pids_limit_hits=self._pids_limit_hits(),
                memory_at_limit=(_read_keyed(d / "memory.events", "max") or 0) > 0,
                memory_stall_s=_psi_total_s(d / "memory.pressure"),
            )
        else:
            usage_ns = _read_int(self.dirs["cpuacct"] / "cpuacct.usage") if "cpuacct" in self.dirs else None
            peak, limit = (_read_int(self.dirs["memory"] / name) for name in ("memory.max_usage_in_bytes",
                                                                              "memory.limit_in_bytes"))
            evidence = Evidence(
                peak_memory_bytes=peak,
                cpu_seconds=None if usage_ns is None else usage_ns / 1e9,
                oom_kills=_read_keyed(self.dirs["memory"] / "memory.oom_control", "oom_kill") or 0,
                oom_source="memory.oom_control",
                pids_limit_hits=self._pids_limit_hits(),
                # v1's memory.failcnt stays 0 here even at an OOM kill (kernel 6.18): the peak tells instead
                memory_at_limit=peak is not None and limit is not None and peak >= limit - AT_LIMIT_MARGIN,
            )
        self._add_reclaim_counters(evidence)
        return evidence

    def _add_reclaim_counters(self, evidence: Evidence) -> None:
        """Major faults and refaulted file pages from ``memory.stat`` (v1: the hierarchical ``total_`` keys)."""
        stat = _read_flat(self.dirs["memory"] / "memory.stat")
        prefix = "" if self.version == "v2" else "total_"
        refaults = stat.get(f"{prefix}workingset_refault_file")
        evidence.file_refault_bytes = None if refaults is None else refaults * PAGE_SIZE
        evidence.major_faults = stat.get(f"{prefix}pgmajfault")

    def _pids_limit_hits(self) -> int:
        """Forks refused at this group's ``pids.max``: ``max N`` in ``pids.events`` (v1 and v2 alike)."""
        pids = self.dirs.get("pids")
        return (_read_keyed(pids / "pids.events", "max") or 0) if pids is not None else 0

    def applied(self) -> dict[str, int | str]:
        """The limits as the kernel holds them, read back from the group's files (numbers as int)."""
        if self.version == "v2":
            names = {"memory": ("memory.max", "memory.low", "memory.swap.max", "cpu.max", "cpu.weight", "pids.max")}
        else:
            names = {"memory": ("memory.limit_in_bytes", "memory.soft_limit_in_bytes", "memory.memsw.limit_in_bytes"),
                     "cpu": ("cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.shares"), "pids": ("pids.max",)}
        applied = {}
        for ctrl, files in names.items():
            for name in files:
                try:
                    text = read_file(self.dirs[ctrl] / name).strip()
                except (OSError, KeyError):
                    continue
                applied[name] = int(text) if text.lstrip("-").isdigit() else text
        return applied

    def kill_all(self) -> None:
        first = next(iter(self.dirs.values()))
        kill_file = first / "cgroup.kill"
        if self.version == "v2" and kill_file.exists():
            _write(kill_file, 1)
        _kill_procs(first / "cgroup.procs")

    def remove(self) -> None:
        if self.poller is not None:
            self.poller.stop()
        self.kill_all()
        for d in sorted(set(self.dirs.values()), reverse=True):
            _remove_dir(d)


class Cgroups:
    """Creates trial groups under a parent this process may write to."""

    def __init__(self, version: str, parents: dict[str, Path], session: _SessionLeaf | None = None):
        self.version = version
        self.parents = parents  # controller -> parent dir
        self.session = session  # v2: the leaf this process moved its delegated subtree's processes into

    def close(self) -> None:
        """Undo the session leaf, if this process made one (trial groups must be gone already)."""
        if self.session is not None:
            self.session.undo()
            self.session = None

    @property
    def enforcement(self) -> str:
        return f"cgroup-{self.version}"

    def create(self, name: str, *, guarantee_memory: int, limit_memory: int | None,
               guarantee_cpus: float, limit_cpus: float | None, pids: int | None) -> Group:
        dirs = {ctrl: parent / name for ctrl, parent in self.parents.items()}
        group = Group(self.version, dirs)
        try:
            for d in set(dirs.values()):
                d.mkdir()
            if self.version == "v2":
                self._configure_v2(dirs["memory"], guarantee_memory, limit_memory, guarantee_cpus, limit_cpus, pids)
                if not (dirs["memory"] / "memory.peak").exists():
                    group.poll_peak()
            else:
                self._configure_v1(dirs, guarantee_memory, limit_memory, guarantee_cpus, limit_cpus, pids)
        except BaseException:
            for d in set(dirs.values()):
                try:
                    d.rmdir()
                except OSError:
                    pass
            raise
        return group

    @staticmethod
    def _configure_v2(d: Path, g_mem: int, l_mem: int | None, g_cpu: float, l_cpu: float | None, pids: int | None) -> None:
        _write(d / "memory.low", g_mem)
        if l_mem is not None:
            _write(d / "memory.max", l_mem)
            if (d / "memory.swap.max").exists():
                _write(d / "memory.swap.max", 0)
        _write(d / "cpu.weight", cpu_weight(g_cpu))
        quota = "max" if l_cpu is None else str(max(1000, round(l_cpu * CFS_PERIOD_US)))
        _write(d / "cpu.max", f"{quota} {CFS_PERIOD_US}")
        if pids is not None:
            _write(d / "pids.max", pids)

    @staticmethod
    def _configure_v1(dirs: dict[str, Path], g_mem: int, l_mem: int | None, g_cpu: float, l_cpu: float | None, pids: int | None) -> None:
        mem = dirs["memory"]
        _write(mem / "memory.soft_limit_in_bytes", g_mem)
        if l_mem is not None:
            _write(mem / "memory.limit_in_bytes", l_mem)
            if (mem / "memory.memsw.limit_in_bytes").exists():
                _write(mem / "memory.memsw.limit_in_bytes", l_mem)
        try:
            _write(mem / "memory.swappiness", 0)
        except OSError:
            pass  # not writable in some hierarchies; memsw above is the real guard
        cpu = dirs["cpu"]
        _write(cpu / "cpu.shares", cpu_shares(g_cpu))
        _write(cpu / "cpu.cfs_period_us", CFS_PERIOD_US)
        _write(cpu / "cpu.cfs_quota_us", -1 if l_cpu is None else max(1000, round(l_cpu * CFS_PERIOD_US)))
        if pids is not None:
            _write(dirs["pids"] / "pids.max", pids)


def _v1_mounts() -> dict[str, Path]:
    """Mount point of each v1 controller hierarchy we use."""
    return {ctrl: path for ctrl, path in cgroup_mounts().items() if ctrl in V1_CONTROLLERS}


def _ensure_dir(path: Path) -> Path:
    path.mkdir(exist_ok=True)
    return path


def _procs(group: Path) -> list[int]:
    return [int(pid) for pid in read_file(group / "cgroup.procs").split()]


def _move_procs(src: Path, dst: Path) -> None:
    """Move every process of ``src`` into ``dst``, also ones forked meanwhile; exited ones are fine."""
    while pids := _procs(src):
        for pid in pids:
            try:
                _write(dst / "cgroup.procs", pid)
            except ProcessLookupError:
                pass


class _SessionLeaf:
    """``PARENT/session-PID-START``: holds the processes that were in PARENT, this session's among them.

    A v2 group that holds processes cannot enable controllers for its children
    (EBUSY, the no-internal-process rule), and a delegated subtree such as
    ``systemd-run --user --scope -p Delegate=yes`` holds the session that runs in
    it. So the session moves the subtree's processes into this leaf, enables the
    controllers, and creates trial groups beside the leaf. :meth:`undo` reverses
    that; xdist workers, born inside the leaf, leave it to its owner.
    """

    def __init__(self, parent: Path, enabled: list[str]):
        self.parent = parent
        self.path = parent / f"session-{owner_token()}"
        self.enabled = enabled  # the controllers this session enabled in the parent
        self.path.mkdir()
        try:
            _move_procs(parent, self.path)
            _write(parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in enabled))
        except BaseException:
            _move_procs(self.path, parent)
            self.path.rmdir()
            raise

    def undo(self) -> None:
        """Disable the controllers again, move the processes back, remove the leaf.

        Only when nothing else lives beside the leaf: another session's groups or
        leaf need the controllers (then the leaf stays, and the first session to
        see its owner dead and the leaf empty removes it).
        """
        if any(d.is_dir() and d != self.path for d in self.parent.iterdir()):
            return
        _write(self.parent / "cgroup.subtree_control", " ".join(f"-{c}" for c in self.enabled))
        _move_procs(self.path, self.parent)
        _remove_dir(self.path)


def _reap_session_leaves(parent: Path) -> None:
    """Remove empty session leaves whose owner died (one that still holds processes stays)."""
    for leaf in parent.iterdir():
        match = _SESSION_LEAF.match(leaf.name)
        if match and leaf.is_dir() and not token_alive(match["owner"]):
            try:
                leaf.rmdir()
            except OSError:
                pass


def _delegated(group: Path) -> bool:
    """This user may create groups in ``group``, move processes and enable our controllers there."""
    files_writable = all(os.access(group / name, os.W_OK) for name in ("cgroup.procs", "cgroup.subtree_control"))
    available = set(read_file(group / "cgroup.controllers").split())
    return os.access(group, os.W_OK) and files_writable and set(V2_CONTROLLERS) <= available


def _own_v2_group() -> Path:
    """This process's v2 group; for a process born in a session leaf (an xdist worker), the leaf's parent."""
    own = CGROUP_MOUNT / cgroup_paths()[""].lstrip("/")
    return own.parent if _SESSION_LEAF.match(own.name) else own


def _enable_controllers(parent: Path, own: Path) -> _SessionLeaf | None:
    """Enable memory, cpu and pids for ``parent``'s children; a session leaf first if ``parent`` is ours and busy."""
    missing = set(V2_CONTROLLERS) - set(read_file(parent / "cgroup.controllers").split())
    if missing:
        raise OSError(f"{parent} has no {' '.join(sorted(missing))} controller(s) to give its children")
    enabled = [c for c in V2_CONTROLLERS if c not in read_file(parent / "cgroup.subtree_control").split()]
    if not enabled:
        return None
    try:
        _write(parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in enabled))
        return None
    except OSError as exc:
        if exc.errno != errno.EBUSY or parent.resolve() != own.resolve():
            raise
    return _SessionLeaf(parent, enabled)


def _v2_setup() -> Cgroups:
    """Trial groups go under a v2 group whose children may use the memory, cpu and pids controllers.

    That group is ``$HARNESSBENCH_CGROUP_ROOT`` if set; else, as root,
    ``/sys/fs/cgroup/harnessbench``; else this process's own group if it is
    delegated to this user (``systemd-run --user --scope -p Delegate=yes``).
    """
    own = _own_v2_group()
    override = os.environ.get(ROOT_ENV)
    if override:
        parent = Path(override)
    elif os.geteuid() == 0:
        _write(CGROUP_MOUNT / "cgroup.subtree_control", " ".join(f"+{c}" for c in V2_CONTROLLERS))
        parent = _ensure_dir(CGROUP_MOUNT / PARENT_NAME)
    elif _delegated(own):
        parent = own
    else:
        raise OSError(f"this process's group {own} is not delegated to uid {os.geteuid()} with the "
                      f"{' '.join(V2_CONTROLLERS)} controllers")
    _reap_session_leaves(parent)
    session = _enable_controllers(parent, own)
    return Cgroups("v2", {c: parent for c in V2_CONTROLLERS + ("cpuacct",)}, session)


def _v1_parents() -> dict[str, Path]:
    """Under this process's own group in each hierarchy, so outer limits still apply."""
    mounts, own = _v1_mounts(), cgroup_paths()
    missing = [c for c in V1_CONTROLLERS if c not in mounts]
    if missing:
        raise OSError(f"cgroup v1 controllers not mounted: {', '.join(missing)}")
    parents: dict[str, Path] = {}
    for ctrl in V1_CONTROLLERS:
        base = mounts[ctrl] / own.get(ctrl, "/").lstrip("/")
        parents[ctrl] = _ensure_dir(base / PARENT_NAME)
    return parents


def detect() -> Cgroups:
    """Find a writable cgroup hierarchy on this machine.

    Raises:
        EnforcementUnavailable: neither v2 nor v1 groups can be created here.
    """
    if (CGROUP_MOUNT / "cgroup.controllers").exists():
        try:
            return _v2_setup()
        except OSError as exc:
            raise EnforcementUnavailable(
                f"cannot create cgroups here (cgroup v2: {exc}); run the session in a delegated subtree: "
                f"`{DELEGATE_COMMAND}` (or set {ROOT_ENV} to one), or as root, "
                "or pass --hb-enforcement=rlimit for weaker limits") from None
    try:
        return Cgroups("v1", _v1_parents())
    except OSError as exc:
        raise EnforcementUnavailable(f"cannot create cgroups here (cgroup v1: {exc}); run as root, "
                                     "or pass --hb-enforcement=rlimit for weaker limits") from None


# --------------------------------------------------------------------------- containers

@dataclass(frozen=True)
class ContainerCgroup:
    """Where one container's cgroup files are, as seen from this process.

    Reading them is :class:`cgroups.Group`'s job, shared with the local backend.
    """

    version: int
    dirs: dict[str, str]  # controller ("memory", "cpuacct", "cpu", "pids") -> directory; v2: all the same

    @property
    def group(self) -> Group:
        return Group(f"v{self.version}", {controller: Path(d) for controller, d in self.dirs.items()})

    def read(self) -> Evidence | None:
        """Current counters, or None once the cgroup is gone (container stopped)."""
        if not os.path.isdir(self.dirs["memory"]):
            return None
        return self.group.evidence()

    def procs(self) -> list[int]:
        with open(f"{self.dirs['memory']}/cgroup.procs") as f:
            return [int(line) for line in f if line.strip()]

    def limits(self) -> dict[str, int | str]:
        """The limits as the kernel holds them (proof that the engine applied them)."""
        return self.group.applied()


class HostCgroups:
    """The host's cgroup mounts, and where the engine puts a container's group."""

    def __init__(self, version: int, driver: str) -> None:
        self.version = version
        self.driver = driver
        self.mounts = self._mounts(version)

    @staticmethod
    def _mounts(version: int) -> dict[str, str]:
        """controller -> mount point (v1), or {"unified": mount point} (v2)."""
        mounts = cgroup_mounts()
        if version == 2:
            return {"unified": str(mounts[""])} if "" in mounts else {}
        return {c: str(mounts[c]) for c in ("memory", "cpu", "cpuacct", "pids") if c in mounts}

    @property
    def visible(self) -> bool:
        return ("memory" in self.mounts) if self.version == 1 else ("unified" in self.mounts)

    def _group(self, relpaths: dict[str, str]) -> ContainerCgroup | None:
        if self.version == 1:
            dirs = {c: self.mounts[c] + relpaths.get(c, relpaths.get("*", "")) for c in ("memory", "cpu", "cpuacct", "pids") if c in self.mounts}
        elif "*" in relpaths:
            dirs = {c: self.mounts["unified"] + relpaths["*"] for c in ("memory", "cpu", "cpuacct", "pids")}
        else:
            return None
        if "memory" not in dirs or not os.path.isdir(dirs["memory"]):
            return None
        return ContainerCgroup(self.version, dirs)

    def locate(self, container_id: str, host_pid: Callable[[], int | None]) -> ContainerCgroup | None:
        """The container's group: the engine's usual paths first, else via its main pid."""
        if not self.visible:
            return None
        guesses = (
            [f"/system.slice/docker-{container_id}.scope", f"/docker/{container_id}"]
            if self.driver == "systemd"
            else [f"/docker/{container_id}", f"/system.slice/docker-{container_id}.scope"]
        )
        for rel in guesses:
            group = self._group({"*": rel})
            if group is not None:
                return group
        pid = host_pid()  # e.g. a custom --cgroup-parent: ask the kernel where the process is
        if not pid:
            return None
        paths = cgroup_paths(pid)
        rel = {"*": paths[""]} if self.version == 2 and "" in paths else paths
        return self._group(rel) if rel else None
