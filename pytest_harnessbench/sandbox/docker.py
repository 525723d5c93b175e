"""Docker backend: one container per trial, limits set by the engine, evidence from the kernel.

Mapping of an :class:`~pytest_harnessbench.resources.Allocation` (DESIGN.md §2):

=====================  ==========================================================
guarantee memory       ``mem_reservation`` (cgroup v1 soft limit / v2 memory.low)
limit memory           ``mem_limit`` = ``memswap_limit`` (no hidden swap headroom)
guarantee cpus         ``cpu_shares`` = round(cpus × 1024)
limit cpus             ``nano_cpus`` = cpus × 1e9 (CFS quota)
limit pids             ``pids_limit``
uncapped (limit None)  that limit is not set at all
=====================  ==========================================================

The container's main process idles (``sleep infinity`` under docker-init); every
command is a ``docker exec`` of ``bash -c`` in ``/task``. The engine's
``State.OOMKilled`` only reports a kill of the *main* process: a command started
with ``exec`` that the kernel OOM-kills exits 137 while ``OOMKilled`` stays false.
The truth is in the container's cgroup (``memory.oom_control`` ``oom_kill`` and
``memory.max_usage_in_bytes`` on v1, ``memory.events`` and ``memory.peak`` on
v2), read from the host while the container exists and snapshotted after every
command, so a container that dies mid-trial still leaves its last counters.

Every container carries the labels :data:`LABEL_RUN`, :data:`LABEL_TRIAL` and
:data:`LABEL_OWNER` (host:pid:start-time of the creating process), so that
:meth:`DockerBackend.reap` can remove what a crashed session left behind without
touching the containers of sessions that are still alive (e.g. xdist siblings).
"""

from __future__ import annotations

import io
import os
import posixpath
import re
import socket
import tarfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..procs import cgroup_mounts, owner_token, token_alive
from . import watchdog
from .cgroups import Group, kill
from .base import (
    Backend,
    CAPTURE_LIMIT,
    TIMEOUT_EXIT_CODE,
    EnforcementUnavailable,
    Evidence,
    ExecResult,
    OutputMissingError,
    SandboxError,
    SandboxLostError,
    SandboxStartError,
)

if TYPE_CHECKING:
    from ..resources import Allocation

DEFAULT_IMAGE = "harnessbench/python:3.11"
BUILD_HINT = "build it with scripts/build-base-image.sh (or .ci/docker-setup.sh)"
WORKDIR = "/task"
LABEL_RUN = "harnessbench.run_id"
LABEL_TRIAL = "harnessbench.trial_id"
LABEL_OWNER = "harnessbench.owner"
EXEC_TOKEN_VAR = "HARNESSBENCH_EXEC"  # marks every process a command started (inherited env)
KILL_GRACE_S = 2.0  # after killing a timed-out command, how long its output stream may take to close
API_TIMEOUT_S = 120.0  # for ordinary API calls; command output streams have none

# Capabilities kept after cap_drop=ALL: what ordinary work as root inside the
# container needs (installing packages, unpacking archives, fixing permissions).
# Dropped from Docker's default set: MKNOD, NET_RAW, NET_BIND_SERVICE, AUDIT_WRITE,
# SETFCAP, SETPCAP, SYS_CHROOT, FSETID.
CAP_ADD = (
    "CHOWN",  # chown files: tar -x / cp -a / pip and apt keep or set owners
    "DAC_OVERRIDE",  # root reads and writes files whatever their mode bits (e.g. a 0444 file)
    "FOWNER",  # chmod/utime on files root does not own (unpacked with their owner's uid)
    "SETUID",  # switch user: apt's _apt sandbox, runuser/su to test as an unprivileged user
    "SETGID",  # ... and its groups (setgroups/setresgid go with SETUID)
    "KILL",  # root may signal the processes it started under another uid
)

# Kills, from inside the container, every process carrying the command's token in
# its environment (children inherit it, even ones that left the process group).
# Pure bash plus /proc: works in any image that has bash. $1 is the token.
_KILL_SCRIPT = r"""
tok="HARNESSBENCH_EXEC=$1"
for round in 1 2 3 4 5; do
  found=
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" = "$$" ] && continue
    while IFS= read -r -d '' e; do
      if [ "$e" = "$tok" ]; then kill -9 "$p" 2>/dev/null && found=1; break; fi
    done < "$d/environ" 2>/dev/null
  done
  [ -z "$found" ] && break
done
"""

# docker info flags that must be true for the limits we set to be enforced.
_REQUIRED_FEATURES = (
    ("MemoryLimit", "memory limits"),
    ("SwapLimit", "swap limits (memswap_limit = mem_limit)"),
    ("CpuCfsQuota", "CPU quotas"),
    ("CPUShares", "CPU shares"),
    ("PidsLimit", "pids limits"),
)


def _docker():
    """The docker SDK, imported on first use (it costs ~0.1 s)."""
    try:
        import docker
    except ImportError:  # pragma: no cover - it is a declared dependency
        raise EnforcementUnavailable("the docker SDK is not installed: pip install 'docker>=7'") from None
    return docker


def _explain(exc: BaseException) -> str:
    text = getattr(exc, "explanation", None) or str(exc)
    return " ".join(str(text).split())


# --------------------------------------------------------------------------- cgroups


@dataclass(frozen=True)
class _ContainerCgroup:
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


class _HostCgroups:
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

    def _group(self, relpaths: dict[str, str]) -> _ContainerCgroup | None:
        if self.version == 1:
            dirs = {c: self.mounts[c] + relpaths.get(c, relpaths.get("*", "")) for c in ("memory", "cpu", "cpuacct", "pids") if c in self.mounts}
        elif "*" in relpaths:
            dirs = {c: self.mounts["unified"] + relpaths["*"] for c in ("memory", "cpu", "cpuacct", "pids")}
        else:
            return None
        if "memory" not in dirs or not os.path.isdir(dirs["memory"]):
            return None
        return _ContainerCgroup(self.version, dirs)

    def locate(self, container_id: str, host_pid: Callable[[], int | None]) -> _ContainerCgroup | None:
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
        try:
            with open(f"/proc/{pid}/cgroup") as f:
                entries = [line.rstrip("\n").split(":", 2) for line in f]
        except OSError:
            return None
        rel: dict[str, str] = {}
        for _, controllers, path in (e for e in entries if len(e) == 3):
            if self.version == 2 and controllers == "":
                rel["*"] = path
            for c in controllers.split(","):
                rel[c] = path
        return self._group(rel) if rel else None


# --------------------------------------------------------------------------- ownership


def _owner_label() -> str:
    return f"{socket.gethostname()}:{owner_token()}"


def _owner_alive(owner: str) -> bool:
    """Whether the process that created a container still runs (unknown hosts count as alive)."""
    host, sep, token = owner.rpartition(":")
    if not sep:
        return False  # no owner recorded: nothing protects it
    if host != socket.gethostname():
        return True  # another machine's session: we cannot tell, leave it alone
    return token_alive(token)


def _sanitize(text: str, limit: int) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", text).strip("-.")[:limit] or "x"


# --------------------------------------------------------------------------- backend


class DockerBackend(Backend):
    """Creates one container per trial on a Docker engine (``--hb-backend docker``)."""

    name = "docker"

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._owner = _owner_label()
        self._api: Any = None  # docker.APIClient for ordinary calls (bounded timeout)
        self._stream_api: Any = None  # docker.APIClient for command output (no read timeout)
        self._info: dict = {}
        self._version: dict = {}
        self._enforcement: str | None = None
        self._cgroups: _HostCgroups | None = None
        self._lock = threading.Lock()
        self._watchdog = None  # removes our containers if this process dies without close()

    # -- connection -------------------------------------------------------------------

    def _where(self) -> str:
        return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"

    def _connect(self) -> Any:
        if self._api is not None:
            return self._api
        docker = _docker()
        kwargs = docker.utils.kwargs_from_env()
        try:
            api = docker.APIClient(version="auto", timeout=API_TIMEOUT_S, **kwargs)
        except docker.errors.DockerException as exc:
            raise EnforcementUnavailable(
                f"Docker engine not reachable at {self._where()} ({_explain(exc)[:120]}): "
                "start it with `dockerd &` (or .ci/docker-setup.sh) or set DOCKER_HOST"
            ) from None
        self._stream_api = docker.APIClient(version=api.api_version, timeout=None, **kwargs)
        self._api = api
        return api

    def check(self) -> str:
        """Connect and verify the engine can enforce every limit we set.

        Returns the enforcement method, e.g. ``cgroup-v1`` (the engine applies the limits through it).

        Raises:
            EnforcementUnavailable: the engine is unreachable, or its kernel lacks a
                controller we need (a limit would silently not apply).
        """
        with self._lock:
            if self._enforcement is not None:
                return self._enforcement
            api = self._connect()
            try:
                info, version = api.info(), api.version()
            except _docker().errors.DockerException as exc:
                raise EnforcementUnavailable(f"Docker engine at {self._where()} did not answer `info`: {_explain(exc)}") from None
            missing = [what for key, what in _REQUIRED_FEATURES if not info.get(key, False)]
            if missing:
                raise EnforcementUnavailable(
                    f"Docker engine at {self._where()} cannot enforce {', '.join(missing)} on this kernel: "
                    "enable the cgroup controllers (e.g. boot with swapaccount=1) or use --hb-backend local"
                )
            cgroup_version = int(info.get("CgroupVersion") or 1)
            self._info, self._version = info, version
            self._cgroups = _HostCgroups(cgroup_version, str(info.get("CgroupDriver", "cgroupfs")))
            self._enforcement = f"cgroup-v{cgroup_version}"
        return self._enforcement

    def describe(self) -> dict:
        """Engine facts for the harness card."""
        enforcement = self.check()
        info, version = self._info, self._version
        return {
            "backend": self.name,
            "enforcement": enforcement,
            "engine_version": version.get("Version"),
            "api_version": version.get("ApiVersion"),
            "sdk_version": _docker().__version__,
            "host": self._where(),
            "storage_driver": info.get("Driver"),
            "cgroup_version": int(info.get("CgroupVersion") or 1),
            "cgroup_driver": info.get("CgroupDriver"),
            "kernel_counters": "host cgroupfs" if self._cgroups and self._cgroups.visible else "not visible (remote engine?)",
            "runtime": info.get("DefaultRuntime"),
            "kernel_version": info.get("KernelVersion"),
            "operating_system": info.get("OperatingSystem"),
            "host_cpus": info.get("NCPU"),
            "host_memory_bytes": info.get("MemTotal"),
            "security_options": info.get("SecurityOptions"),
            "cap_add": list(CAP_ADD),
        }

    # -- sandboxes --------------------------------------------------------------------

    def _host_config(self, allocation: Allocation, network: bool) -> tuple[dict, list[str]]:
        guarantee, limit = allocation.guarantee, allocation.limit
        notes: list[str] = []
        config: dict[str, Any] = {
            "network_mode": "bridge" if network else "none",
            "cap_drop": ["ALL"],
            "cap_add": list(CAP_ADD),
            "security_opt": ["no-new-privileges"],
            "privileged": False,
            "init": True,  # docker-init as pid 1 reaps orphans of killed commands
        }
        if guarantee.memory_bytes is not None:
            config["mem_reservation"] = int(guarantee.memory_bytes)
        if limit.memory_bytes is not None:
            config["mem_limit"] = config["memswap_limit"] = int(limit.memory_bytes)
        if guarantee.cpus is not None:
            config["cpu_shares"] = max(2, round(guarantee.cpus * 1024))
        if limit.cpus is not None:
            host_cpus = int(self._info.get("NCPU") or os.cpu_count() or 1)
            cpus = limit.cpus
            if cpus > host_cpus:
                # The engine refuses a quota above the host's CPU count; such a limit
                # cannot bind anyway, so the host's count is the same constraint.
                notes.append(f"cpu limit {cpus:g} clamped to the host's {host_cpus} CPUs (non-binding either way)")
                cpus = host_cpus
            config["nano_cpus"] = round(cpus * 1e9)
        if limit.pids is not None:
            config["pids_limit"] = int(limit.pids)
        return config, notes

    def check_image(self, image: str | None) -> None:
        """The image is here (nothing is pulled). Raises EnforcementUnavailable naming how to get it."""
        image = image or DEFAULT_IMAGE
        self.check()
        try:
            self._api.inspect_image(image)
        except _docker().errors.ImageNotFound:
            hint = BUILD_HINT if image == DEFAULT_IMAGE else "build or `docker load` it first (nothing is pulled)"
            raise EnforcementUnavailable(f"image {image} is not in the Docker engine: {hint}") from None

    def provision(self, allocation: Allocation, trial_id: str, image: str | None = None, network: bool = False) -> DockerSandbox:
        """Create and start the trial's container (nothing is ever pulled).

        Raises:
            SandboxStartError: the image is missing, or the engine could not create or
                start the container, or it warned that a limit was not applied.
        """
        enforcement = self.check()
        if self._watchdog is None:  # from now on this process has containers that must go with it
            self._watchdog = watchdog.start(self.name, self.run_id)
        docker = _docker()
        api = self._api
        image = image or DEFAULT_IMAGE
        config, notes = self._host_config(allocation, network)
        name = f"hb-{_sanitize(self.run_id, 20)}-{_sanitize(trial_id, 60)}-{uuid.uuid4().hex[:6]}"
        labels = {LABEL_RUN: self.run_id, LABEL_TRIAL: trial_id, LABEL_OWNER: self._owner}
        try:
            created = api.create_container(
                image,
                entrypoint=["sleep", "infinity"],  # replaces the image's entrypoint and CMD
                working_dir=WORKDIR,
                labels=labels,
                name=name,
                host_config=api.create_host_config(**config),
            )
        except docker.errors.ImageNotFound:
            hint = BUILD_HINT if image == DEFAULT_IMAGE else "build or `docker load` it first (nothing is pulled)"
            raise SandboxStartError(f"image {image!r} is not in the Docker engine at {self._where()}: {hint}") from None
        except docker.errors.DockerException as exc:
            raise SandboxStartError(f"could not create a container from {image!r}: {_explain(exc)}") from None
        container_id = created["Id"]
        warnings = [w for w in created.get("Warnings") or [] if w]
        try:
            if warnings:  # e.g. "Memory limited without swap": a limit silently not applied
                raise SandboxStartError(f"the engine did not apply the requested limits to {name}: {'; '.join(warnings)}")
            try:
                api.start(container_id)
            except docker.errors.DockerException as exc:
                raise SandboxStartError(f"could not start container {name} from {image!r}: {_explain(exc)}") from None
        except BaseException:  # also an interrupt (Ctrl-C) between create and start
            try:
                api.remove_container(container_id, force=True)
            except docker.errors.DockerException:
                pass  # reap() removes it later
            raise
        return DockerSandbox(self, container_id, name, image, enforcement, notes)

    def reap(self, all_runs: bool = True, *, include_live: bool = False) -> int:
        """Remove containers carrying our labels; returns how many.

        ``all_runs=False`` limits it to this run. Containers whose creating process
        still runs (on this host; other hosts count as running) belong to a live
        session, e.g. an xdist sibling, and are left alone unless ``include_live`` --
        except this backend's own (same run, same process).
        """
        api = self._connect()
        docker = _docker()
        label = LABEL_RUN if all_runs else f"{LABEL_RUN}={self.run_id}"
        removed = 0
        for container in api.containers(all=True, filters={"label": label}):
            labels = container.get("Labels") or {}
            own = labels.get(LABEL_RUN) == self.run_id and labels.get(LABEL_OWNER) == self._owner
            if not (own or include_live) and _owner_alive(labels.get(LABEL_OWNER, "")):
                continue
            try:
                api.remove_container(container["Id"], force=True, v=True)
                removed += 1
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if "already in progress" not in _explain(exc):
                    raise SandboxError(f"could not remove leftover container {container['Id'][:12]}: {_explain(exc)}") from None
        return removed

    def close(self) -> None:
        """Remove any of our containers an interrupt left behind, close the connections to the engine."""
        if self._api is not None:
            try:
                self.reap(all_runs=False)
            except (SandboxError, _docker().errors.DockerException):
                pass  # the engine went away: the next session's reaper removes them
        watchdog.stop(self._watchdog)
        self._watchdog = None
        for api in (self._api, self._stream_api):
            if api is not None:
                api.close()
        self._api = self._stream_api = None
        self._enforcement = None


# --------------------------------------------------------------------------- sandbox


class _Capture:
    """A command's output stream, kept up to CAPTURE_LIMIT bytes (the local backend's cap)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.cut = False

    def add(self, chunk: bytes | None) -> None:
        if not chunk:
            return
        room = CAPTURE_LIMIT - self.size
        if len(chunk) > room:
            chunk, self.cut = chunk[:max(room, 0)], True
        self.chunks.append(chunk)
        self.size += len(chunk)

    def text(self) -> str:
        data = b"".join(self.chunks).decode("utf-8", errors="replace")
        return data + (f"\n[output cut at {CAPTURE_LIMIT} bytes]" if self.cut else "")


def _requests_error() -> type[BaseException]:
    """The HTTP library's base error: an engine that stops answering raises it, not a DockerException."""
    import requests

    return requests.RequestException


class DockerSandbox:
    """One trial's container; implements the :class:`~.base.Sandbox` protocol."""

    def __init__(self, backend: DockerBackend, container_id: str, name: str, image: str, enforcement: str, notes: list[str]) -> None:
        self.backend = backend
        self.id = container_id
        self.name = name
        self.image = image
        self.enforcement = enforcement
        self.workdir = WORKDIR
        self._api = backend._api
        self._stream_api = backend._stream_api
        self._notes = list(notes)
        self._cgroup: _ContainerCgroup | None = None
        self._cgroup_resolved = False
        self._last: Evidence | None = None  # last reading, survives the cgroup's removal
        self._lost_state: dict | None = None  # State of the container when found dead
        self._sigkilled = 0  # commands that ended by SIGKILL (137) without a timeout
        self._closed = False

    def __repr__(self) -> str:
        return f"DockerSandbox({self.name}, {self.image}, {self.enforcement})"

    # -- kernel counters --------------------------------------------------------------

    def _cgroup_files(self) -> _ContainerCgroup | None:
        if not self._cgroup_resolved:
            self._cgroup_resolved = True
            cgroups = self.backend._cgroups
            if cgroups is not None:
                self._cgroup = cgroups.locate(self.id, self._host_pid)
            if self._cgroup is None:
                self._notes.append(
                    "the container's cgroup is not visible from this process (remote engine?): OOM kills of "
                    "commands are inferred from exit code 137, State.OOMKilled only covers the main process"
                )
        return self._cgroup

    def _host_pid(self) -> int | None:
        state = self._state()
        return state.get("Pid") if state else None

    def _snapshot(self) -> Evidence | None:
        """Read the counters now; keep the reading in case the container dies later."""
        group = self._cgroup_files()
        reading = group.read() if group is not None else None
        if reading is not None:
            self._last = reading
        return reading

    def _state(self) -> dict | None:
        """The engine's ``State`` of the container, or None if it no longer exists."""
        try:
            return self._api.inspect_container(self.id)["State"]
        except _docker().errors.NotFound:
            return None
        except (_docker().errors.DockerException, _requests_error()) as exc:
            raise SandboxLostError(f"the Docker engine stopped answering about {self.name}: {_explain(exc)}") from None

    # -- failures ---------------------------------------------------------------------

    def _lost(self, cause: BaseException | None = None) -> SandboxLostError:
        self._snapshot()
        state = self._state()
        if state is None:
            message = f"container {self.name} no longer exists (removed outside the harness?)"
            self._lost_state = {"Status": "removed"}
        elif state.get("Running"):
            message = f"container {self.name} is running but refused the request: {_explain(cause) if cause else '?'}"
        else:
            self._lost_state = state
            detail = f"exit code {state.get('ExitCode')}, OOMKilled={state.get('OOMKilled')}"
            if state.get("Error"):
                detail += f", {state['Error']}"
            message = f"container {self.name} stopped mid-trial ({detail})"
        return SandboxLostError(message)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"sandbox {self.name} is closed")

    # -- Sandbox protocol -------------------------------------------------------------

    def exec(self, command: str, timeout: float | None = None) -> ExecResult:
        """Run ``command`` with ``bash -c`` in /task.

        On timeout every process the command started (found by a token in its
        inherited environment, so also ones that left its process group) is killed
        with SIGKILL, and the result has exit code 124 and ``timed_out=True``.

        Raises:
            SandboxLostError: the container is gone or stopped.
        """
        self._check_open()
        docker = _docker()
        token = uuid.uuid4().hex
        started = time.monotonic()
        try:
            exec_id = self._api.exec_create(
                self.id, ["bash", "-c", command], workdir=self.workdir, environment={EXEC_TOKEN_VAR: token}
            )["Id"]
        except (docker.errors.DockerException, _requests_error()) as exc:
            raise self._lost(exc) from None
        out, err = _Capture(), _Capture()
        failure: list[BaseException] = []

        def pump() -> None:
            try:
                for chunk_out, chunk_err in self._stream_api.exec_start(exec_id, stream=True, demux=True):
                    out.add(chunk_out)
                    err.add(chunk_err)
            except Exception as exc:  # noqa: BLE001 - handed to the calling thread
                failure.append(exc)

        timed_out = False
        if timeout is None:
            pump()
        else:
            worker = threading.Thread(target=pump, name=f"hb-exec-{self.name}", daemon=True)
            worker.start()
            worker.join(max(timeout, 0.0))
            if worker.is_alive():
                timed_out = True
                self._kill_command(token)
                worker.join(KILL_GRACE_S)
        duration = time.monotonic() - started
        stdout, stderr = out.text(), err.text()
        self._snapshot()
        if timed_out:
            return ExecResult(TIMEOUT_EXIT_CODE, stdout, stderr, duration, timed_out=True)
        if failure:
            raise self._lost(failure[0]) from None
        code = self._exit_code(exec_id)
        if code is None or code < 0 or code == 137:
            # 137 = SIGKILL: the OOM killer (see evidence) -- or the container died under us.
            state = self._state()
            if state is None or not state.get("Running"):
                raise self._lost()
            self._sigkilled += code == 137
        return ExecResult(-1 if code is None else code, stdout, stderr, duration)

    def _exit_code(self, exec_id: str) -> int | None:
        """The command's exit code; the engine may record it a moment after the output closes."""
        deadline = time.monotonic() + KILL_GRACE_S
        for attempt in range(10_000):
            try:
                inspected = self._api.exec_inspect(exec_id)
            except _docker().errors.APIError as exc:
                raise self._lost(exc) from None
            if not inspected.get("Running") or time.monotonic() > deadline:
                break
            if attempt == 0:
                note = "the engine closed a command's output before the command exited (its output may be cut short)"
                if note not in self._notes:
                    self._notes.append(note)
            time.sleep(0.01)
        return inspected.get("ExitCode")

    def _kill_command(self, token: str) -> None:
        """SIGKILL every process carrying the command's token: from the host if we can, else from inside."""
        needle = f"{EXEC_TOKEN_VAR}={token}".encode()
        group = self._cgroup_files()
        if group is not None:
            try:
                for _ in range(5):  # repeat: a process may fork while we kill
                    victims = []
                    for pid in group.procs():
                        try:
                            with open(f"/proc/{pid}/environ", "rb") as f:
                                if needle in f.read().split(b"\0"):
                                    victims.append(pid)
                        except (FileNotFoundError, ProcessLookupError):
                            continue
                    if not victims:
                        return
                    kill(victims)
                return
            except PermissionError:
                pass  # not root on the engine's host: ask the container
        try:
            exec_id = self._api.exec_create(self.id, ["bash", "-c", _KILL_SCRIPT, "hb-kill", token])["Id"]
            self._api.exec_start(exec_id)
        except _docker().errors.APIError as exc:
            self._notes.append(f"could not kill a timed-out command: {_explain(exc)}")

    def _path(self, path: str) -> str:
        return posixpath.normpath(posixpath.join(self.workdir, path))

    def write_file(self, path: str, content: str | bytes) -> None:
        """Write a file (relative paths are under /task; missing directories are created)."""
        self._check_open()
        data = content.encode() if isinstance(content, str) else bytes(content)
        target = self._path(path)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            member = tarfile.TarInfo(target.lstrip("/"))
            member.size, member.mode, member.mtime = len(data), 0o644, int(time.time())
            tar.addfile(member, io.BytesIO(data))
        try:
            if not self._api.put_archive(self.id, "/", buffer.getvalue()):
                raise SandboxError(f"the engine did not write {target} in {self.name}")
        except _docker().errors.NotFound as exc:
            raise self._lost(exc) from None
        except _docker().errors.APIError as exc:
            raise SandboxError(f"could not write {target} in {self.name}: {_explain(exc)}") from None
        except (_docker().errors.DockerException, _requests_error()) as exc:
            raise self._lost(exc) from None

    def read_file(self, path: str, text: bool = True) -> str | bytes:
        """Read a file (symlinks are followed).

        Raises:
            OutputMissingError: the file does not exist.
            IsADirectoryError: the path is a directory.
            SandboxLostError: the container is gone.
        """
        self._check_open()
        docker = _docker()
        target = self._path(path)
        for _ in range(8):
            try:
                stream, _stat = self._api.get_archive(self.id, target)
                data = b"".join(stream)
            except docker.errors.NotFound as exc:
                if "no such container" in _explain(exc).lower():
                    raise self._lost(exc) from None
                raise OutputMissingError(f"{path}: no such file in the sandbox ({target})") from None
            except (docker.errors.DockerException, _requests_error()) as exc:
                raise self._lost(exc) from None
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                member = tar.next()
                if member is None:
                    raise OutputMissingError(f"{path}: no such file in the sandbox ({target})")
                if member.issym():
                    target = posixpath.normpath(posixpath.join(posixpath.dirname(target), member.linkname))
                    continue
                if member.isdir():
                    raise IsADirectoryError(f"{path} is a directory in the sandbox, not a file")
                handle = tar.extractfile(member)
                content = handle.read() if handle is not None else b""
            return content.decode("utf-8", errors="replace") if text else content
        raise OutputMissingError(f"{path}: too many levels of symbolic links in the sandbox")

    def evidence(self) -> Evidence:
        """Peak memory, CPU seconds and OOM kills from the container's cgroup, plus ``State.OOMKilled``."""
        evidence = Evidence(notes=list(self._notes))
        fresh = self._snapshot() if not self._closed else None
        counters = fresh or self._last
        sources: list[str] = []
        if counters is not None:
            evidence.peak_memory_bytes = counters.peak_memory_bytes
            evidence.cpu_seconds = counters.cpu_seconds
            evidence.oom_kills = counters.oom_kills
            sources.append(counters.oom_source)
            if fresh is None:
                evidence.notes.append("counters as of the last command: the container's cgroup is gone")
        elif self._cgroup is None and self._sigkilled:
            evidence.oom_kills = self._sigkilled
            sources.append("heuristic")
        state = self._lost_state if self._closed else (self._state() or self._lost_state)
        if state is not None:
            if state.get("OOMKilled"):
                evidence.oom_kills = max(evidence.oom_kills, 1)
                sources.append("State.OOMKilled")
            if state is self._lost_state or not state.get("Running", True):
                evidence.notes.append(
                    f"container stopped mid-trial: status {state.get('Status')}, exit code {state.get('ExitCode')}, "
                    f"OOMKilled={state.get('OOMKilled')}"
                )
        evidence.oom_source = "+".join(sources)
        return evidence

    def applied_limits(self) -> dict:
        """The limits as the engine recorded them (``inspect``) and, where visible, as the kernel holds them."""
        self._check_open()
        try:
            host = self._api.inspect_container(self.id)["HostConfig"]
        except (_docker().errors.DockerException, _requests_error()) as exc:
            raise self._lost(exc) from None
        keys = ("Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "PidsLimit",
                "NetworkMode", "CapDrop", "CapAdd", "SecurityOpt", "Privileged", "Init", "Binds", "Mounts")
        limits = {key: host.get(key) for key in keys}
        group = self._cgroup_files()
        if group is not None:
            limits["cgroup"] = group.limits()
        return limits

    def close(self) -> None:
        """Remove the container (killing whatever runs); safe to call twice.

        Raises:
            SandboxError: the engine refused to remove it (``reap`` will retry later).
        """
        if self._closed:
            return
        docker = _docker()
        group = self._cgroup if self._cgroup_resolved else None
        if group is not None:
            # SIGKILL from the host first: the engine's own kill goes daemon -> containerd ->
            # shim -> a `runc kill` process, ~15 ms slower; removal then only reaps the exit.
            try:
                kill(group.procs())
            except OSError:
                pass  # gone already, or not ours to signal: the engine kills it below
        try:
            self._api.remove_container(self.id, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if "already in progress" not in _explain(exc):
                raise SandboxError(f"could not remove container {self.name}: {_explain(exc)}; --hb-reap removes leftovers") from None
        self._closed = True
