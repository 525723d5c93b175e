"""One trial's pod: commands through the exec stream API, files by tar over exec, evidence from the pod and its cgroup."""

from __future__ import annotations

import json
import posixpath
import time
import uuid
from typing import Any

from ..base import (CAPTURE_LIMIT, TIMEOUT_EXIT_CODE, Evidence, ExecResult, OutputMissingError, SandboxError,
                    SandboxLostError, decode_text)
from ..container import EXEC_TOKEN_VAR, KILL_SCRIPT, one_file_tar
from .client import API_TIMEOUT_S, Cluster, api_error, explain, transport_errors
from .manifests import CONTAINER, PIDS_NOTE, WORKDIR, expected_qos
from .states import PodReading, read_pod

KILL_WAIT_S = 10.0  # how long the in-pod kill of a timed-out command may take
STDIN_CHUNK = 1 << 20

# The container's own cgroup as the container sees it (cgroup v2 namespace, or v1's per-container mounts).
# Bash builtins only: any image with bash can answer. One "key value" line each; missing files print nothing.
CGROUP_SCRIPT = r"""
g=/sys/fs/cgroup
field() { while read -r k v; do [ "$k" = "$2" ] && { echo "$3 $v"; return; }; done < "$1"; } 2>/dev/null
show() { [ -r "$1" ] && echo "$2 $(< "$1")"; } 2>/dev/null
if [ -r $g/memory.events ]; then
  echo "version 2"; field $g/memory.events oom_kill oom_kill; show $g/memory.peak peak
  field $g/cpu.stat usage_usec cpu_usec; show $g/memory.max memory_max; show $g/cpu.max cpu_max
elif [ -r $g/memory/memory.oom_control ]; then
  echo "version 1"; field $g/memory/memory.oom_control oom_kill oom_kill
  show $g/memory/memory.max_usage_in_bytes peak; show $g/cpuacct/cpuacct.usage cpu_nsec
  show $g/memory/memory.limit_in_bytes memory_max; show $g/cpu/cpu.cfs_quota_us cpu_quota_us
fi
"""
READ_SCRIPT = ('if [ -d "$1" ]; then exit 21; elif [ ! -e "$1" ]; then exit 2; fi; '
               'if [ -n "$2" ]; then exec head -c "$2" -- "$1"; fi; exec cat -- "$1"')
# Egress to the API server's own service: a default-deny policy that is enforced blocks it.
NETWORK_PROBE = '[ -n "$KUBERNETES_SERVICE_HOST" ] || exit 3; exec 3<>"/dev/tcp/$KUBERNETES_SERVICE_HOST/$KUBERNETES_SERVICE_PORT"'


def parse_counters(text: str) -> dict:
    """The CGROUP_SCRIPT's lines as numbers (``max`` and other words kept as text)."""
    values: dict = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key:
            values[key] = int(value) if value.lstrip("-").isdigit() else value
    return values


def counters_evidence(values: dict) -> Evidence | None:
    if "version" not in values:
        return None
    cpu = values.get("cpu_usec", 0) / 1e6 if "cpu_usec" in values else values.get("cpu_nsec", 0) / 1e9
    source = "memory.events" if values["version"] == 2 else "memory.oom_control"
    return Evidence(peak_memory_bytes=values.get("peak"), cpu_seconds=cpu or None,
                    oom_kills=int(values.get("oom_kill", 0)), oom_source=source)


def exit_status(error_channel: bytes | str) -> int | None:
    """The exit code from the exec stream's error channel (a ``Status`` object); None if it holds none."""
    try:
        status = json.loads(error_channel or "null")
    except ValueError:
        return None
    if not isinstance(status, dict):
        return None
    if status.get("status") == "Success":
        return 0
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            return int(cause.get("message", -1))
    return None


def send_stdin(ws: Any, data: bytes) -> None:
    """Write ``data`` to the command's stdin, then EOF (v5 protocol's close signal).

    A command may end before it has read everything (tar stops at its
    end-of-archive blocks), and the server then closes the stream under our
    writes: that is no failure of its own. The status read after it says how the
    command ended, and a lost status fails the exec there.
    """
    import websocket

    try:
        for start in range(0, len(data), STDIN_CHUNK):
            ws.write_stdin(data[start:start + STDIN_CHUNK])
        ws.close_channel(0)
    except (BrokenPipeError, ConnectionResetError, websocket.WebSocketConnectionClosedException):
        pass


class KubernetesSandbox:
    """One trial's pod; implements the :class:`~.base.Sandbox` protocol."""

    def __init__(self, cluster: Cluster, name: str, image: str, enforcement: str, *, qos_class: str | None,
                 network_policy: str | None, network_enforced: Any, notes: list[str]) -> None:
        self.cluster = cluster
        self.name = name
        self.namespace = cluster.namespace
        self.image = image
        self.enforcement = enforcement
        self.workdir = WORKDIR
        self.qos_class = qos_class
        self.network_policy = network_policy
        self._network_enforced = network_enforced  # callable: asks the backend, which probes once per session
        self._notes = list(notes) + [PIDS_NOTE]
        self._last: Evidence | None = None  # last cgroup reading, survives the pod
        self._last_pod: PodReading | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"KubernetesSandbox({self.namespace}/{self.name}, {self.image})"

    # -- the pod ------------------------------------------------------------------------

    def _read(self) -> Any | None:
        """The V1Pod, or None if it no longer exists."""
        try:
            return self.cluster.core.read_namespaced_pod(self.name, self.namespace, _request_timeout=API_TIMEOUT_S)
        except api_error() as exc:
            if exc.status == 404:
                return None
            raise SandboxLostError(f"the API server stopped answering about pod {self.name}: {explain(exc)}") from None
        except transport_errors() as exc:
            raise SandboxLostError(f"the API server stopped answering about pod {self.name}: {exc}") from None

    def _reading(self) -> PodReading | None:
        pod = self._read()
        if pod is not None:
            self._last_pod = read_pod(pod)
        return None if pod is None else self._last_pod

    def _failure(self, cause: BaseException | str) -> SandboxError:
        """A request failed: lost if the pod is (gone, evicted, OOM-killed...), else the refusal itself."""
        reading = self._reading()
        if reading is None:
            self._last_pod = PodReading("Gone", False, getattr(self._last_pod, "oom_kills", 0), 0,
                                        "pod no longer exists (deleted outside the harness?)", None)
            return SandboxLostError(f"pod {self.name} no longer exists (deleted outside the harness?)")
        if reading.lost:
            return SandboxLostError(f"pod {self.name}: {reading.lost}")
        text = explain(cause) if isinstance(cause, BaseException) else cause
        return SandboxError(f"pod {self.name} is running but the exec request failed: {text}")

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"sandbox {self.name} is closed")

    # -- exec ---------------------------------------------------------------------------

    def _open(self, argv: list[str], stdin: bool = False) -> Any:
        import websocket

        from kubernetes.stream import stream

        try:
            return stream(self.cluster.core.connect_get_namespaced_pod_exec, self.name, self.namespace,
                          command=argv, container=CONTAINER, stdin=stdin, stdout=True, stderr=True, tty=False,
                          _preload_content=False, binary=True)
        except (api_error(), websocket.WebSocketException, *transport_errors()) as exc:
            raise self._failure(exc) from None

    def _run(self, argv: list[str], timeout: float | None, *, stdin_data: bytes | None = None,
             limit: int | None = CAPTURE_LIMIT) -> tuple[int | None, bytes, bytes, bool]:
        """(exit code, stdout, stderr, timed out) of one exec; output kept up to ``limit`` bytes."""
        import websocket

        ws = self._open(argv, stdin=stdin_data is not None)
        out, err, status = bytearray(), bytearray(), bytearray()  # status: the error channel's Status object
        cut: set[int] = set()  # channels whose output went over the limit

        def take(channel: int, buffer: bytearray) -> None:
            chunk = ws.read_channel(channel)
            room = len(chunk) if limit is None or channel == 3 else max(0, limit - len(buffer))
            if len(chunk) > room:
                cut.add(channel)
            buffer.extend(chunk[:room])

        channels = ((1, out), (2, err), (3, status))

        def drain() -> None:
            for channel, buffer in channels:
                take(channel, buffer)

        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        timed_out = False
        try:
            if stdin_data is not None:
                send_stdin(ws, stdin_data)
            while ws.is_open():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    timed_out = True
                    return None, bytes(out), bytes(err), True
                ws.update(timeout=1.0 if remaining is None else min(remaining, 1.0))
                drain()
            drain()
            code = exit_status(bytes(status))
        except (websocket.WebSocketException, *transport_errors()) as exc:
            # The server sends the status after the command's last output, then may drop the
            # connection at once: our reply to its close then fails, and the command still ended.
            for channel, buffer in channels:  # what the client holds already (it polls only for a channel it lacks)
                try:
                    take(channel, buffer)
                except (websocket.WebSocketException, *transport_errors()):
                    pass
            code = exit_status(bytes(status))
            if code is None:
                raise self._failure(exc) from None
        finally:  # a timed-out command's stream is still busy: drop it without waiting for the server's close
            ws.close(timeout=0 if timed_out else 3)
        for channel, buffer in ((1, out), (2, err)):
            if channel in cut:
                buffer.extend(f"\n[output cut at {limit} bytes]".encode())  # as the docker backend says it
        return code, bytes(out), bytes(err), False

    def exec(self, command: str, timeout: float | None = None) -> ExecResult:
        """Run ``command`` with ``bash -c`` in /task (the container's working directory).

        On timeout every process the command started (found by a token in its
        inherited environment) is killed from inside the pod with SIGKILL, and the
        result has exit code 124 and ``timed_out=True``.

        Raises:
            SandboxLostError: the pod is gone, evicted, or its container stopped.
        """
        self._check_open()
        token = uuid.uuid4().hex
        started = time.monotonic()
        code, out, err, timed_out = self._run(["env", f"{EXEC_TOKEN_VAR}={token}", "bash", "-c", command], timeout)
        duration = time.monotonic() - started
        stdout, stderr = decode_text(out), decode_text(err)
        if timed_out:
            self._kill(token)
            return ExecResult(TIMEOUT_EXIT_CODE, stdout, stderr, duration, timed_out=True)
        if code is None or code == 137:  # SIGKILL: the OOM killer (see evidence) -- or the pod died under us
            self._snapshot()
            reading = self._reading()
            if reading is None or reading.lost:
                raise self._failure("the command's stream ended without an exit code")
        return ExecResult(-1 if code is None else code, stdout, stderr, duration)

    def _kill(self, token: str) -> None:
        try:
            self._run(["bash", "-c", KILL_SCRIPT, "hb-kill", token], KILL_WAIT_S)
        except SandboxError as exc:
            self._notes.append(f"could not kill a timed-out command: {exc}")

    # -- files --------------------------------------------------------------------------

    def _path(self, path: str) -> str:
        return posixpath.normpath(posixpath.join(self.workdir, path))

    def write_file(self, path: str, content: str | bytes) -> None:
        """Write a file (relative paths are under /task; missing directories are created): ``tar -x`` over exec."""
        self._check_open()
        data = content.encode() if isinstance(content, str) else bytes(content)
        target = self._path(path)
        code, _, err, timed_out = self._run(["tar", "-x", "-C", "/", "-f", "-"], API_TIMEOUT_S,
                                            stdin_data=one_file_tar(target, data))
        if timed_out or code != 0:
            raise self._failure(f"tar -x of {target} ended with {code}: {decode_text(err)[:200]}")

    def read_file(self, path: str, text: bool = True, limit: int | None = None) -> str | bytes:
        """Read a file (symlinks are followed).

        Raises:
            OutputMissingError: the file does not exist.
            IsADirectoryError: the path is a directory.
            SandboxLostError: the pod is gone.
        """
        self._check_open()
        target = self._path(path)
        code, out, err, timed_out = self._run(["bash", "-c", READ_SCRIPT, "hb-read", target,
                                               "" if limit is None else str(limit)], API_TIMEOUT_S,
                                              limit=None)
        if code == 2:
            raise OutputMissingError(f"{path}: no such file in the sandbox ({target})")
        if code == 21:
            raise IsADirectoryError(f"{path} is a directory in the sandbox, not a file")
        if timed_out or code != 0:
            raise self._failure(f"reading {target} ended with {code}: {decode_text(err)[:200]}")
        return decode_text(out) if text else out

    # -- evidence -----------------------------------------------------------------------

    def _snapshot(self) -> Evidence | None:
        """The container's cgroup counters now (kept: the pod may die later); None if they cannot be read."""
        if self._closed:
            return None
        try:
            code, out, _, _ = self._run(["bash", "-c", CGROUP_SCRIPT], API_TIMEOUT_S)
        except SandboxError:
            return None
        reading = counters_evidence(parse_counters(decode_text(out))) if code == 0 else None
        if reading is not None:
            self._last = reading
        return reading

    def evidence(self) -> Evidence:
        """OOM kills from the cgroup (an exec'd process the kernel killed) and from the pod's state (the main one)."""
        evidence = Evidence(notes=list(self._notes))
        counters = self._snapshot() or self._last
        sources: list[str] = []
        if counters is not None:
            evidence.peak_memory_bytes, evidence.cpu_seconds = counters.peak_memory_bytes, counters.cpu_seconds
            evidence.oom_kills = counters.oom_kills
            sources.append(counters.oom_source)
        else:
            evidence.notes.append("the container's cgroup counters could not be read through exec")
        pod = self._last_pod if self._closed else (self._reading() or self._last_pod)
        if pod is not None:
            if pod.oom_kills:
                evidence.oom_kills = max(evidence.oom_kills, pod.oom_kills)
                sources.append("OOMKilled")
            evidence.notes.extend(pod.notes)
        evidence.oom_source = "+".join(sources)
        return evidence

    def applied_limits(self) -> dict:
        """Resources and QoS class as the API server holds them, and the limits as the container's cgroup shows."""
        self._check_open()
        pod = self._read()
        if pod is None:
            raise self._failure("the pod is gone")
        container = next(c for c in pod.spec.containers if c.name == CONTAINER)
        resources = self.cluster.api_client.sanitize_for_serialization(container.resources) or {}
        limits = {
            "resources": resources,
            "qos_class": pod.status.qos_class,
            "expected_qos_class": expected_qos(resources),
            "node": pod.spec.node_name,
            "security_context": self.cluster.api_client.sanitize_for_serialization(container.security_context),
            "automount_service_account_token": pod.spec.automount_service_account_token,
            "pids": PIDS_NOTE,
        }
        if self.network_policy is not None:
            limits["network_policy"] = {"name": self.network_policy, "enforced": self._network_enforced(self)}
        try:
            code, out, _, _ = self._run(["bash", "-c", CGROUP_SCRIPT], API_TIMEOUT_S)
            values = parse_counters(decode_text(out)) if code == 0 else {}
            limits["cgroup"] = {k: v for k, v in values.items() if k in ("version", "memory_max", "cpu_max", "cpu_quota_us")}
        except SandboxError as exc:
            limits["cgroup"] = {"error": str(exc)}
        return limits

    def probe_network(self) -> bool | None:
        """Whether egress is blocked (True: the policy is enforced); None if the probe could not run."""
        try:
            code, _, _, timed_out = self._run(["bash", "-c", NETWORK_PROBE], 5.0)
        except SandboxError:
            return None
        return None if code == 3 else (timed_out or code != 0)

    def close(self) -> None:
        """Delete the pod (and its NetworkPolicy) at once; safe to call twice.

        Raises:
            SandboxError: the API server refused (``--hb-reap`` removes leftovers later).
        """
        if self._closed:
            return
        self._closed = True
        errors = []
        deletions = [(self.cluster.core.delete_namespaced_pod, self.name)]
        if self.network_policy is not None:
            deletions.append((self.cluster.networking.delete_namespaced_network_policy, self.network_policy))
        for delete, name in deletions:
            try:
                delete(name, self.namespace, grace_period_seconds=0, _request_timeout=API_TIMEOUT_S)
            except api_error() as exc:
                if exc.status != 404:
                    errors.append(explain(exc))
            except transport_errors() as exc:
                errors.append(str(exc))
        if errors:
            raise SandboxError(f"could not delete pod {self.name}: {'; '.join(errors)}; --hb-reap removes leftovers")

