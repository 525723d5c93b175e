"""A stand-in Kubernetes API server (a TEST DOUBLE): just enough of core/v1 for the real ``kubernetes`` client.

There is no cluster on this machine and none can be installed, so the
kubernetes backend's own API traffic is proven against this: the official
client builds every request, parses every answer. It serves

- ``GET /version``; ``GET /api/v1/nodes`` (one node); runtime classes: 403, as for a namespaced user;
- pods: create (``POST``, **422** for what the real server rejects: names and label
  values that break DNS-1123/label syntax, a container without name or image,
  requests above limits, malformed quantities), get, list (``labelSelector``:
  ``key`` or ``key=value``), delete; events (``fieldSelector=involvedObject.name=``);
- NetworkPolicies: create, list, delete.

- exec, only with ``exec_pods=True``: the WebSocket upgrade and the v5 channel
  protocol (stdout 1, stderr 2, the exit ``Status`` on 3, stdin 0 and its close
  signal), each command run on this host under bubblewrap with a per-pod
  directory as ``/task`` (a read-only view of the host's ``/usr``, ``/etc`` and
  ``/sys`` around it). That proves the client side of exec (the stream loop,
  timeouts and the in-pod kill, tar over exec, exit codes, the output cap) —
  not a kubelet's or container runtime's behaviour. Without it an exec request
  is refused with 400, as a server without that subresource would.

What it does NOT prove: scheduling, limits, QoS enforcement, eviction and OOM
kills, NetworkPolicy enforcement, a container's own cgroup (the bwrap "pod"
sees the host's). Those need a real cluster (tests/test_k8s_backend.py's
``real_cluster`` tests).

``mode`` decides what a new pod does: ``running`` (scheduled, container running
at once) or ``unschedulable`` (Pending with ``PodScheduled=False`` and a
``FailedScheduling`` event, forever).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import struct
import subprocess
import tempfile
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
FACTORS = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
UNSCHEDULABLE = "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are available."
NOW = "2026-12-02T10:00:00Z"


def quantity(text: str) -> float | None:
    match = QUANTITY.match(str(text))
    return None if match is None else float(match.group(1)) * FACTORS[match.group(2) or ""]


def invalid(pod: dict) -> list[str]:
    """The causes the real API server would give for rejecting this pod (a subset of its validation)."""
    causes = []
    meta = pod.get("metadata") or {}
    name = meta.get("name", "")
    if not (DNS_LABEL.match(name) and len(name) <= 63):
        causes.append(f"metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 label must consist of ...")
    for key, value in (meta.get("labels") or {}).items():
        if not (isinstance(value, str) and LABEL_VALUE.match(value) and len(value) <= 63):
            causes.append(f"metadata.labels: Invalid value: {value!r}: a valid label must be ... (for {key})")
    containers = (pod.get("spec") or {}).get("containers") or []
    if not containers:
        causes.append("spec.containers: Required value")
    for i, container in enumerate(containers):
        if not container.get("name") or not container.get("image"):
            causes.append(f"spec.containers[{i}]: Required value: name and image")
        resources = container.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        for kind, values in (("requests", requests), ("limits", limits)):
            for resource, value in values.items():
                if quantity(value) is None:
                    causes.append(f"spec.containers[{i}].resources.{kind}[{resource}]: Invalid value: {value!r}")
        for resource, value in requests.items():
            if resource in limits and None not in (quantity(value), quantity(limits[resource])) \
                    and quantity(value) > quantity(limits[resource]):
                causes.append(f"spec.containers[{i}].resources.requests: Invalid value: {value!r}: must be less "
                              f"than or equal to {resource} limit of {limits[resource]}")
    return causes


def qos_class(pod: dict) -> str:
    resources = [c.get("resources") or {} for c in pod["spec"]["containers"]]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(all(name in (r.get("limits") or {}) and
                         quantity((r.get("requests") or {}).get(name, r["limits"][name])) == quantity(r["limits"][name])
                         for name in ("cpu", "memory")) for r in resources)
    return "Guaranteed" if guaranteed else "Burstable"


def status(code: int, reason: str, message: str, causes: list[str] = ()) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code, "details": {"causes": [{"message": c} for c in causes]}}


def selected(obj: dict, selector: str) -> bool:
    labels = obj["metadata"].get("labels") or {}
    for term in filter(None, selector.split(",")):
        key, eq, value = term.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


class StandInCluster:
    """The server and its state; ``with StandInCluster() as cluster:`` serves on a free port."""

    def __init__(self, mode: str = "running", exec_pods: bool = False) -> None:
        self.mode = mode
        self.exec_pods = exec_pods
        # How an exec stream ends once the command has: "linger" reads the client's frames to its close
        # first; "at_once" drops the connection under them, as an API server may (the client must cope).
        self.exec_close = "linger"
        self.pod_dirs: dict[str, str] = {}  # pod name -> its /task on this host (exec_pods)
        self.pods: dict[tuple[str, str], dict] = {}
        self.policies: dict[tuple[str, str], dict] = {}
        self.created: list[dict] = []  # every pod body as received, in order
        self.created_in: list[str] = []  # ... and the namespace it went to
        self.deleted: list[str] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> StandInCluster:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        for directory in self.pod_dirs.values():
            shutil.rmtree(directory, ignore_errors=True)

    def kubeconfig(self, path: Path, namespace: str = "bench") -> Path:
        """A kubeconfig whose current context points at this server (plain HTTP, a dummy token)."""
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "standin",
            "clusters": [{"name": "standin", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "standin-token"}}],
            "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "tester",
                                                         "namespace": namespace}}],
        }))
        return path

    # -- objects ------------------------------------------------------------------------

    def _pod_status(self, pod: dict) -> dict:
        if self.mode == "unschedulable":
            return {"phase": "Pending", "qosClass": qos_class(pod), "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": UNSCHEDULABLE}]}
        return {"phase": "Running", "qosClass": qos_class(pod), "conditions": [
            {"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": c["name"], "image": c["image"], "imageID": "", "ready": True,
                                   "restartCount": 0, "state": {"running": {"startedAt": NOW}}}
                                  for c in pod["spec"]["containers"]]}

    def _events(self, namespace: str, name: str) -> list[dict]:
        if self.mode != "unschedulable" or (namespace, name) not in self.pods:
            return []
        return [{"metadata": {"name": f"{name}.1", "namespace": namespace}, "reason": "FailedScheduling",
                 "message": UNSCHEDULABLE, "type": "Warning", "lastTimestamp": NOW,
                 "involvedObject": {"kind": "Pod", "name": name, "namespace": namespace}}]

    # -- HTTP ---------------------------------------------------------------------------

    def _handler(self):
        cluster = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: every answer has a Content-Length
            def log_message(self, *args) -> None:
                pass

            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                url = urllib.parse.urlsplit(self.path)
                if cluster.exec_pods and url.path.endswith("/exec") and \
                        self.headers.get("Upgrade", "").lower() == "websocket":
                    name = url.path.strip("/").split("/")[-2]
                    with cluster.lock:
                        directory = cluster.pod_dirs.get(name)
                    if directory is not None:
                        ExecSession(self, directory, urllib.parse.parse_qs(url.query), cluster.exec_close).run()
                        self.close_connection = True
                        return
                query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
                parts = url.path.strip("/").split("/")
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0) or 0)) or b"{}")
                with cluster.lock:
                    code, answer = cluster.answer(method, parts, query, body, self.headers)
                self._send(code, answer)

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_DELETE(self) -> None:
                self._route("DELETE")

        return Handler

    def answer(self, method: str, parts: list[str], query: dict, body: dict | None, headers) -> tuple[int, dict]:
        if parts == ["version"]:
            return 200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0-standin", "gitCommit": "0",
                         "gitTreeState": "clean", "buildDate": NOW, "goVersion": "go1.22", "compiler": "gc",
                         "platform": "linux/amd64"}
        if parts == ["api", "v1", "nodes"]:
            return 200, {"kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": [{
                "metadata": {"name": "standin-node", "labels": {"node.kubernetes.io/instance-type": "standin.small"}},
                "status": {"allocatable": {"cpu": "2", "memory": "4Gi"}, "nodeInfo": {
                    "architecture": "amd64", "bootID": "b", "containerRuntimeVersion": "containerd://1.7.0",
                    "kernelVersion": "6.1.0", "kubeProxyVersion": "v1.31.0", "kubeletVersion": "v1.31.0",
                    "machineID": "m", "operatingSystem": "linux", "osImage": "Debian", "systemUUID": "u"}}}]}
        if parts[:2] == ["apis", "node.k8s.io"]:
            return 403, status(403, "Forbidden", "runtimeclasses.node.k8s.io is forbidden: User cannot list")
        if parts[:3] == ["api", "v1", "namespaces"] or parts[:4] == ["apis", "networking.k8s.io", "v1", "namespaces"]:
            return self._namespaced(method, parts, query, body, headers)
        return 404, status(404, "NotFound", f"the stand-in does not serve /{'/'.join(parts)}")

    def _namespaced(self, method, parts, query, body, headers) -> tuple[int, dict]:
        base = 3 if parts[0] == "apis" else 2  # index of "namespaces"
        namespace, kind, rest = parts[base + 1], parts[base + 2], parts[base + 3:]
        if kind == "events":
            name = query.get("fieldSelector", "").partition("involvedObject.name=")[2]
            return 200, {"kind": "EventList", "apiVersion": "v1", "metadata": {}, "items": self._events(namespace, name)}
        store = {"pods": self.pods, "networkpolicies": self.policies}.get(kind)
        if store is None:
            return 404, status(404, "NotFound", f"the stand-in does not serve {kind}")
        if rest[1:] == ["exec"]:
            return 400, status(400, "BadRequest", "the stand-in API server does not speak the exec WebSocket protocol")
        if method == "POST" and not rest:
            causes = invalid(body) if kind == "pods" else []
            name = body["metadata"]["name"]
            if causes:
                return 422, status(422, "Invalid", f'Pod "{name}" is invalid: {"; ".join(causes)}', causes)
            if (namespace, name) in store:
                return 409, status(409, "AlreadyExists", f'{kind} "{name}" already exists')
            obj = json.loads(json.dumps(body))
            obj["metadata"].update(namespace=namespace, uid=f"uid-{len(self.created)}", creationTimestamp=NOW)
            if kind == "pods":
                if self.exec_pods and self.mode == "running":
                    self.pod_dirs[name] = tempfile.mkdtemp(prefix=f"standin-{name}-")
                self.created.append(json.loads(json.dumps(body)))
                self.created_in.append(namespace)
                obj["status"] = self._pod_status(obj)
            store[(namespace, name)] = obj
            return 201, obj
        if method == "GET" and not rest:
            items = [o for (ns, _), o in store.items() if ns == namespace and selected(o, query.get("labelSelector", ""))]
            list_kind = "PodList" if kind == "pods" else "NetworkPolicyList"
            return 200, {"kind": list_kind, "apiVersion": "v1", "metadata": {}, "items": items}
        key = (namespace, rest[0]) if rest else None
        if key not in store:
            return 404, status(404, "NotFound", f'{kind} "{rest[0] if rest else ""}" not found')
        if method == "GET":
            return 200, store[key]
        if method == "DELETE":
            if kind == "pods":
                self.deleted.append(rest[0])
            return 200, store.pop(key)
        return 405, status(405, "MethodNotAllowed", method)


WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
V5 = "v5.channel.k8s.io"
CLOSE_SIGNAL = 255  # v5: [255, channel] closes that channel


def bwrap_argv(directory: str, command: list[str]) -> list[str]:
    """Run ``command`` with ``directory`` as /task (its working directory) in a small read-only view of the host."""
    return ["bwrap", "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
            "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/sbin", "/sbin", "--ro-bind", "/etc", "/etc",
            "--proc", "/proc", "--dev", "/dev", "--ro-bind", "/sys", "/sys", "--bind", directory, "/task",
            "--chdir", "/task", "--die-with-parent", *command]


def close_quietly(pipe) -> None:
    """Close a pipe whose reader may be gone (closing flushes, and the flush may hit a broken pipe)."""
    try:
        pipe.close()
    except OSError:
        pass


class ExecSession:
    """One exec request as a WebSocket speaking the v5 channel protocol, over a bwrap'd local process."""

    def __init__(self, handler, directory: str, query: dict, close: str = "linger") -> None:
        self.handler, self.sock = handler, handler.connection
        self.linger = close == "linger"
        self.command = query.get("command", [])
        self.stdin = query.get("stdin", ["false"])[0] == "true"
        self.directory = directory
        self.send_lock = threading.Lock()

    def run(self) -> None:
        key = self.handler.headers["Sec-WebSocket-Key"]
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.handler.send_response(101, "Switching Protocols")
        for header, value in (("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept),
                              ("Sec-WebSocket-Protocol", V5)):
            self.handler.send_header(header, value)
        self.handler.end_headers()
        self.handler.wfile.flush()
        proc = subprocess.Popen(bwrap_argv(self.directory, self.command), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        feed = threading.Thread(target=self._feed, args=(proc,), daemon=True)
        if not self.stdin:
            proc.stdin.close()
        else:
            feed.start()
        pumps = [threading.Thread(target=self._pump, args=(stream, channel), daemon=True)
                 for stream, channel in ((proc.stdout, 1), (proc.stderr, 2))]
        for pump in pumps:
            pump.start()
        for pump in pumps:
            pump.join()
        code = proc.wait()
        if self.linger and feed.is_alive():  # read the client's frames to its close first: closing a
            feed.join(timeout=5)  # socket with unread data sends a reset under the client's writes
        status = {"metadata": {}, "status": "Success"} if code == 0 else {
            "metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
            "message": f"command terminated with non-zero exit code: exit code {code}",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code if code > 0 else 128 - code)}]}}
        try:
            self._send(3, json.dumps(status).encode())
            self._frame(0x8, b"")  # close
        except OSError:
            pass  # the client went away (a timed-out command)

    def _pump(self, stream, channel: int) -> None:
        try:
            for chunk in iter(lambda: stream.read1(65536), b""):
                self._send(channel, chunk)
        except OSError:
            pass

    def _feed(self, proc) -> None:
        """Client frames: data for stdin (channel 0), v5's close signal, or the connection's close."""
        try:
            while True:
                opcode, payload = self._read_frame()
                if opcode == 0x8:
                    break
                if payload[:2] == bytes([CLOSE_SIGNAL, 0]):
                    break
                if payload[:1] == b"\x00" and not proc.stdin.closed:
                    try:
                        proc.stdin.write(payload[1:])
                        proc.stdin.flush()
                    except OSError:  # the command stopped reading: drop the rest, keep reading frames
                        close_quietly(proc.stdin)
        except (OSError, ValueError):
            pass
        finally:
            close_quietly(proc.stdin)

    def _send(self, channel: int, data: bytes) -> None:
        self._frame(0x2, bytes([channel]) + data)

    def _frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        header = bytes([0x80 | opcode]) + (bytes([n]) if n < 126 else
                                           bytes([126]) + struct.pack(">H", n) if n < 1 << 16 else
                                           bytes([127]) + struct.pack(">Q", n))
        with self.send_lock:
            self.sock.sendall(header + payload)

    def _recv(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ValueError("connection closed")
            data += chunk
        return data

    def _read_frame(self) -> tuple[int, bytes]:
        b0, b1 = self._recv(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", self._recv(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._recv(8))[0]
        mask = self._recv(4) if b1 & 0x80 else b"\0\0\0\0"
        payload = self._recv(n)
        return b0 & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
