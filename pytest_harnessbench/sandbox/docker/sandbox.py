"""One trial's container: commands by ``docker exec``, files by tar, evidence from the container's cgroup."""

from __future__ import annotations

import io
import os
import posixpath
import tarfile
import threading
import time
import uuid
from dataclasses import replace
from typing import Any

from .. import disk
from ..base import (CAPTURE_LIMIT, TIMEOUT_EXIT_CODE, Evidence, ExecResult, OutputMissingError, SandboxError,
                    SandboxLostError, decode_text)
from ..cgroups import ContainerCgroup, HostCgroups, kill
from ..container import EXEC_TOKEN_VAR, KILL_SCRIPT, one_file_tar
from .engine import KILL_GRACE_S, WORKDIR, docker_sdk, explain, requests_error

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
        data = decode_text(b"".join(self.chunks))
        return data + (f"\n[output cut at {CAPTURE_LIMIT} bytes]" if self.cut else "")




class _Chunks(io.RawIOBase):
    """The chunks of a streamed response as a file, read only as far as asked."""

    def __init__(self, chunks):
        self._chunks = iter(chunks)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        while not self._buffer:
            self._buffer = next(self._chunks, None)
            if self._buffer is None:
                self._buffer = b""
                return 0
        size = min(len(target), len(self._buffer))
        target[:size], self._buffer = self._buffer[:size], self._buffer[size:]
        return size


def _head_of_archive(chunks, limit: int) -> bytes:
    """A one-member tar of the first member of a streamed archive, its content cut to ``limit`` bytes.

    Reads the stream only that far: the rest of a huge file is never fetched.
    """
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BufferedReader(_Chunks(chunks)), mode="r|") as tar, \
            tarfile.open(fileobj=out, mode="w") as copy:
        member = tar.next()
        if member is not None:
            handle = tar.extractfile(member) if member.isfile() else None
            head = handle.read(limit) if handle is not None else b""
            member.size = len(head)
            copy.addfile(member, io.BytesIO(head))
    chunks.close()
    return out.getvalue()


class DockerSandbox:
    """One trial's container; implements the :class:`~.base.Sandbox` protocol."""

    def __init__(self, api: Any, stream_api: Any, host_cgroups: HostCgroups | None, container_id: str, name: str,
                 image: str, enforcement: str, notes: list[str], workdir: str = WORKDIR) -> None:
        """``api``: the engine client for ordinary calls; ``stream_api``: one without a read timeout, for output;
        ``host_cgroups``: where the engine puts containers' groups (None: not visible from here)."""
        self.id = container_id
        self.name = name
        self.image = image
        self.enforcement = enforcement
        self.workdir = workdir
        self._api = api
        self._stream_api = stream_api
        self._host_cgroups = host_cgroups
        self._notes = list(notes)
        self._cgroup: ContainerCgroup | None = None
        self._cgroup_resolved = False
        self._last: Evidence | None = None  # last reading, survives the cgroup's removal
        self._lost_state: dict | None = None  # State of the container when found dead
        self._sigkilled = 0  # commands that ended by SIGKILL (137) without a timeout
        self._closed = False

    def __repr__(self) -> str:
        return f"DockerSandbox({self.name}, {self.image}, {self.enforcement})"

    # -- kernel counters --------------------------------------------------------------

    def _cgroup_files(self) -> ContainerCgroup | None:
        if not self._cgroup_resolved:
            self._cgroup_resolved = True
            if self._host_cgroups is not None:
                self._cgroup = self._host_cgroups.locate(self.id, self._host_pid)
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
        inspected = self._inspect()
        return None if inspected is None else inspected["State"]

    def _inspect(self) -> dict | None:
        """The engine's ``inspect`` of the container, or None if it no longer exists."""
        try:
            return self._api.inspect_container(self.id)
        except docker_sdk().errors.NotFound:
            return None
        except (docker_sdk().errors.DockerException, requests_error()) as exc:
            raise SandboxLostError(f"the Docker engine stopped answering about {self.name}: {explain(exc)}") from None

    # -- failures ---------------------------------------------------------------------

    def _lost(self, cause: BaseException | None = None) -> SandboxLostError:
        self._snapshot()
        state = self._state()
        if state is None:
            message = f"container {self.name} no longer exists (removed outside the harness?)"
            self._lost_state = {"Status": "removed"}
        elif state.get("Running"):
            message = f"container {self.name} is running but refused the request: {explain(cause) if cause else '?'}"
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
        docker = docker_sdk()
        token = uuid.uuid4().hex
        started = time.monotonic()
        try:
            exec_id = self._api.exec_create(
                self.id, ["bash", "-c", command], workdir=self.workdir, environment={EXEC_TOKEN_VAR: token}
            )["Id"]
        except (docker.errors.DockerException, requests_error()) as exc:
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
            except docker_sdk().errors.APIError as exc:
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
            exec_id = self._api.exec_create(self.id, ["bash", "-c", KILL_SCRIPT, "hb-kill", token])["Id"]
            self._api.exec_start(exec_id)
        except docker_sdk().errors.APIError as exc:
            self._notes.append(f"could not kill a timed-out command: {explain(exc)}")

    def _path(self, path: str) -> str:
        return posixpath.normpath(posixpath.join(self.workdir, path))

    def write_file(self, path: str, content: str | bytes) -> None:
        """Write a file (relative paths are under /task; missing directories are created)."""
        self._check_open()
        data = content.encode() if isinstance(content, str) else bytes(content)
        target = self._path(path)
        try:
            if not self._api.put_archive(self.id, "/", one_file_tar(target, data)):
                raise SandboxError(f"the engine did not write {target} in {self.name}")
        except docker_sdk().errors.NotFound as exc:
            raise self._lost(exc) from None
        except docker_sdk().errors.APIError as exc:
            raise SandboxError(f"could not write {target} in {self.name}: {explain(exc)}") from None
        except (docker_sdk().errors.DockerException, requests_error()) as exc:
            raise self._lost(exc) from None

    def read_file(self, path: str, text: bool = True, limit: int | None = None) -> str | bytes:
        """Read a file (symlinks are followed).

        Raises:
            OutputMissingError: the file does not exist.
            IsADirectoryError: the path is a directory.
            SandboxLostError: the container is gone.
        """
        self._check_open()
        docker = docker_sdk()
        target = self._path(path)
        for _ in range(8):
            try:
                stream, _stat = self._api.get_archive(self.id, target)
                data = b"".join(stream) if limit is None else _head_of_archive(stream, limit)
            except docker.errors.NotFound as exc:
                if "no such container" in explain(exc).lower():
                    raise self._lost(exc) from None
                raise OutputMissingError(f"{path}: no such file in the sandbox ({target})") from None
            except (docker.errors.DockerException, requests_error()) as exc:
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
            return decode_text(content) if text else content
        raise OutputMissingError(f"{path}: too many levels of symbolic links in the sandbox")

    def evidence(self) -> Evidence:
        """The kernel's counters from the container's cgroup (peak memory, CPU seconds, OOM kills, forks refused at
        the pids limit, memory pressure), plus ``State.OOMKilled``; the free space of its writable layer."""
        evidence = Evidence(notes=list(self._notes))
        fresh = self._snapshot() if not self._closed else None
        counters = fresh or self._last
        sources: list[str] = []
        if counters is not None:
            evidence = replace(counters, notes=evidence.notes)
            sources.append(counters.oom_source)
            if fresh is None:
                evidence.notes.append("counters as of the last command: the container's cgroup is gone")
        elif self._cgroup is None and self._sigkilled:
            evidence.oom_kills = self._sigkilled
            sources.append("heuristic")
        inspected = None if self._closed else self._inspect()
        state = (inspected or {}).get("State") or self._lost_state
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
        if inspected is not None:
            self._record_disk(evidence, inspected)
        return evidence

    @staticmethod
    def _record_disk(evidence: Evidence, inspected: dict) -> None:
        """Free space where the container's own writes go (overlay2's ``UpperDir``), read from this host."""
        layer = ((inspected.get("GraphDriver") or {}).get("Data") or {}).get("UpperDir") or ""
        if layer and os.path.isdir(layer):
            disk.record(evidence, layer)
        else:
            evidence.notes.append("the container's writable layer is not visible from this process (remote engine, "
                                  "or a storage driver other than overlay2): no disk evidence")

    def applied_limits(self) -> dict:
        """The limits as the engine recorded them (``inspect``) and, where visible, as the kernel holds them."""
        self._check_open()
        try:
            host = self._api.inspect_container(self.id)["HostConfig"]
        except (docker_sdk().errors.DockerException, requests_error()) as exc:
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
        docker = docker_sdk()
        group = self._cgroup if self._cgroup_resolved else None
        if group is not None:
            # SIGKILL from the host first: the engine's own kill goes daemon -> containerd ->
            # shim -> a `runc kill` process, ~15 ms slower; removal then only reaps the exit.
            try:
                kill(group.procs())
            except OSError:
                pass  # gone already, or not ours to signal: the engine kills it below
        self._remove(docker)
        self._closed = True

    def _remove(self, docker, attempts: int = 3) -> None:
        """Force-remove the container. The engine refuses once in a while with "Could not kill running
        container ..., cannot remove - Container ... is not running" (409) when the container stopped, from
        the host's SIGKILL above, between the engine's look and its kill (seen in CI): then it is removed again."""
        for attempt in range(1, attempts + 1):
            try:
                self._api.remove_container(self.id, force=True, v=True)
                return
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as exc:
                why = explain(exc)
                if "already in progress" in why:
                    return
                if "is not running" not in why or attempt == attempts:
                    raise SandboxError(f"could not remove container {self.name}: {why}; "
                                       "--hb-reap removes leftovers") from None
                time.sleep(0.05 * attempt)
