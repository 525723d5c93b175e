"""The kubernetes backend: one pod per trial, scheduled and limited by the cluster."""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...options import BackendOptions, ConfigError, Option, parse_number
from ..base import Backend, EnforcementUnavailable, SandboxError, SandboxStartError
from ..container import owner_alive, owner_label
from .client import API_TIMEOUT_S, Cluster, api_error, connect, explain, sdk, transport_errors
from .manifests import (ANNOTATION_OWNER, DEFAULT_IMAGE, LABEL_RUN, PIDS_NOTE, label_value,
                        network_policy_manifest, pod_manifest, pod_name)
from .sandbox import KubernetesSandbox
from .states import read_pod, start_failure

if TYPE_CHECKING:
    from ...resources import Allocation

ENFORCEMENT = "kubernetes-requests-limits"
POLL_S = 0.5  # between looks at a starting pod
MAX_PODS_POLL_S = 1.0


@dataclass(frozen=True)
class KubernetesOptions(BackendOptions):
    namespace: str | None = None  # None: the kube context's
    schedule_timeout_s: float = 300.0
    max_pods: int = 0  # 0: no cap


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def parse_namespace(text: str) -> str | None:
    """A Kubernetes namespace name (a DNS-1123 label), or None for the kube context's."""
    name = text.strip()
    if name and not _DNS_LABEL.match(name):
        raise ConfigError(f"--hb-k8s-namespace {text!r} is not a namespace name: lower-case letters, digits and "
                          "'-', at most 63, e.g. harnessbench")
    return name or None


class KubernetesBackend(Backend):
    """One pod per trial in a namespace of the current kube context (``--hb-backend kubernetes``)."""

    name = "kubernetes"
    host_admission = False  # the cluster's scheduler admits pods; concurrency is -n and --hb-k8s-max-pods
    options = (
        Option("k8s_namespace", "--hb-k8s-namespace", "hb_k8s_namespace", "",
               "kubernetes backend: namespace for the trials' pods (default: the kube context's, else 'default')"),
        Option("k8s_schedule_timeout", "--hb-k8s-schedule-timeout", "hb_k8s_schedule_timeout", "300",
               "kubernetes backend: seconds a pod may stay Pending (unschedulable, image pull) before the trial is "
               "infra/sandbox_start"),
        Option("k8s_max_pods", "--hb-k8s-max-pods", "hb_k8s_max_pods", "0",
               "kubernetes backend: at most this many pods of the run at once, across xdist workers (0: no cap)"),
    )

    def __init__(self, run_id: str, namespace: str | None = None, schedule_timeout_s: float = 300.0,
                 max_pods: int = 0) -> None:
        self.run_id = run_id
        self.schedule_timeout_s = schedule_timeout_s
        self.max_pods = max_pods
        self._namespace = namespace
        self._owner = owner_label()
        self._cluster: Cluster | None = None
        self._version: Any = None
        self._network_enforced: bool | None = None
        self._network_probed = False
        self._lock = threading.Lock()

    @classmethod
    def parse_options(cls, raw: Mapping[str, str]) -> KubernetesOptions:
        return KubernetesOptions(
            namespace=parse_namespace(raw["k8s_namespace"]),
            schedule_timeout_s=parse_number("--hb-k8s-schedule-timeout", raw["k8s_schedule_timeout"], kind=float,
                                            minimum=0.1, example="; use seconds, e.g. 300"),
            max_pods=parse_number("--hb-k8s-max-pods", raw["k8s_max_pods"]))

    @classmethod
    def create(cls, options: KubernetesOptions, run_id: str, *, untrusted: Sequence[str] = ()) -> KubernetesBackend:
        return cls(run_id, namespace=options.namespace, schedule_timeout_s=options.schedule_timeout_s,
                   max_pods=options.max_pods)

    def reaper_args(self) -> dict:
        return {"namespace": self._namespace}

    # -- connection ---------------------------------------------------------------------

    def _connect(self) -> Cluster:
        if self._cluster is None:
            self._cluster = connect(self._namespace)
        return self._cluster

    def check(self) -> str:
        """Reach the API server and the namespace (creating, listing and deleting pods there is all we need).

        Raises:
            EnforcementUnavailable: no cluster configured, unreachable, or the namespace is not usable.
        """
        with self._lock:
            if self._version is not None:
                return ENFORCEMENT
            cluster = self._connect()
            kubernetes = sdk()
            try:
                version = kubernetes.client.VersionApi(cluster.api_client).get_code(_request_timeout=API_TIMEOUT_S)
                cluster.core.list_namespaced_pod(cluster.namespace, limit=1, _request_timeout=API_TIMEOUT_S)
            except api_error() as exc:
                raise EnforcementUnavailable(
                    f"Kubernetes API server {cluster.host} (context {cluster.context!r}), namespace "
                    f"{cluster.namespace!r}: {explain(exc)}; choose a namespace you may create pods in "
                    "(--hb-k8s-namespace)") from None
            except transport_errors() as exc:
                raise EnforcementUnavailable(f"Kubernetes API server {cluster.host} not reachable: {exc}") from None
            self._version = version
        return ENFORCEMENT

    def describe(self) -> dict:
        """Server version, nodes (instance types, container runtimes, kubelets), runtime classes, for the card."""
        self.check()
        cluster, version = self._connect(), self._version
        return {
            "backend": self.name,
            "enforcement": ENFORCEMENT,
            "server_version": version.git_version,
            "server_platform": version.platform,
            "client_version": sdk().__version__,
            "api_server": cluster.host,
            "context": cluster.context,
            "namespace": cluster.namespace,
            "nodes": self._nodes(),
            "runtime_classes": self._runtime_classes(),
            "admission": "the cluster's scheduler (no host ledger)",
            "max_pods": self.max_pods or None,
            "schedule_timeout_s": self.schedule_timeout_s,
            "pids": PIDS_NOTE,
            "network_policy_enforced": self._network_enforced if self._network_probed else "not probed (no network-off trial)",
        }

    def _nodes(self) -> Any:
        try:
            nodes = self._connect().core.list_node(_request_timeout=API_TIMEOUT_S).items
        except api_error() as exc:
            return f"not visible ({explain(exc)[:100]})"
        return [{
            "instance_type": (node.metadata.labels or {}).get("node.kubernetes.io/instance-type"),
            "container_runtime": node.status.node_info.container_runtime_version,
            "kubelet": node.status.node_info.kubelet_version,
            "kernel": node.status.node_info.kernel_version,
            "os_image": node.status.node_info.os_image,
            "allocatable": dict(node.status.allocatable or {}),
        } for node in nodes]

    def _runtime_classes(self) -> Any:
        try:
            items = sdk().client.NodeV1Api(self._connect().api_client).list_runtime_class(
                _request_timeout=API_TIMEOUT_S).items
        except api_error() as exc:
            return f"not visible ({explain(exc)[:100]})"
        return [{"name": rc.metadata.name, "handler": rc.handler} for rc in items]

    # -- sandboxes ----------------------------------------------------------------------

    def _wait_for_room(self) -> float:
        """With --hb-k8s-max-pods, wait until this run has fewer pods; returns the seconds waited."""
        if not self.max_pods:
            return 0.0
        cluster, start = self._connect(), time.monotonic()
        selector = f"{LABEL_RUN}={label_value(self.run_id)}"
        while len(cluster.core.list_namespaced_pod(cluster.namespace, label_selector=selector,
                                                   _request_timeout=API_TIMEOUT_S).items) >= self.max_pods:
            time.sleep(MAX_PODS_POLL_S)
        return time.monotonic() - start

    def provision(self, allocation: Allocation, trial_id: str, image: str | None = None, network: bool = False,
                  workdir: str | None = None, env: dict[str, str] | None = None) -> KubernetesSandbox:
        """Create the trial's pod (after its default-deny NetworkPolicy when ``network`` is off) and wait until it runs.

        Raises:
            SandboxStartError: the API server rejected the pod (422, quota), or it was still
                not running after --hb-k8s-schedule-timeout (unschedulable, image pull errors).
        """
        if workdir is not None or env:
            raise SandboxStartError("the kubernetes backend does not run tasks that bring their own workdir or env "
                                    "(Harbor tasks) yet: use --hb-backend docker")
        enforcement = self.check()
        cluster = self._connect()
        notes = []
        try:
            waited = self._wait_for_room()
        except (api_error(), *transport_errors()) as exc:
            raise SandboxStartError(f"could not count this run's pods: {explain(exc)}") from None
        if waited >= 1:
            notes.append(f"waited {waited:.1f} s for a slot under --hb-k8s-max-pods {self.max_pods}")
        name = pod_name(trial_id, secrets.token_hex(3)[:5])
        identity = {"run_id": self.run_id, "trial_id": trial_id, "owner": self._owner,
                    "owner_token": self._owner.rpartition(":")[2]}
        image = image or DEFAULT_IMAGE
        policy = None
        try:
            if not network:
                cluster.networking.create_namespaced_network_policy(
                    cluster.namespace, network_policy_manifest(name=name, **identity), _request_timeout=API_TIMEOUT_S)
                policy = name
            cluster.core.create_namespaced_pod(
                cluster.namespace, pod_manifest(name=name, allocation=allocation, image=image, **identity),
                _request_timeout=API_TIMEOUT_S)
            pod = self._wait_running(name)
        except BaseException as exc:  # also an interrupt (Ctrl-C) while waiting
            self._delete(name, policy)
            if isinstance(exc, api_error()):
                raise SandboxStartError(f"the API server refused pod {name}: {explain(exc)}") from None
            if isinstance(exc, transport_errors()):
                raise SandboxStartError(f"the API server stopped answering while starting {name}: {exc}") from None
            raise
        return KubernetesSandbox(cluster, name, image, enforcement, qos_class=pod.status.qos_class,
                                 network_policy=policy, network_enforced=self._probe_network, notes=notes)

    def _wait_running(self, name: str) -> Any:
        """The pod once its container runs. Raises SandboxStartError with the reason it did not."""
        core, namespace, start = self._connect().core, self._connect().namespace, time.monotonic()
        while True:
            pod = core.read_namespaced_pod(name, namespace, _request_timeout=API_TIMEOUT_S)
            reading = read_pod(pod)
            if reading.running:
                return pod
            waited = time.monotonic() - start
            if reading.waiting and not reading.lost:  # the events say why it waits (FailedScheduling)
                events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}",
                                                    _request_timeout=API_TIMEOUT_S).items
                reading = read_pod(pod, events)
            message = start_failure(reading, waited, self.schedule_timeout_s)
            if message is not None:
                raise SandboxStartError(f"{name}: {message}")
            time.sleep(POLL_S)

    def _probe_network(self, sandbox: KubernetesSandbox) -> bool | None:
        """Whether this cluster enforces NetworkPolicies (its CNI decides), probed once from a network-off pod."""
        with self._lock:
            if not self._network_probed:
                self._network_enforced = sandbox.probe_network()
                self._network_probed = True
            return self._network_enforced

    def _delete(self, name: str, policy: str | None) -> None:
        cluster = self._connect()
        for delete, what in ((cluster.core.delete_namespaced_pod, name),
                             (cluster.networking.delete_namespaced_network_policy, policy)):
            if what is None:
                continue
            try:
                delete(what, cluster.namespace, grace_period_seconds=0, _request_timeout=API_TIMEOUT_S)
            except (api_error(), *transport_errors()):
                pass  # gone already, or the server went away: reap() removes it later

    def reap(self, all_runs: bool = True, *, include_live: bool = False) -> int:
        """Delete pods (and NetworkPolicies) carrying our labels whose creator died; returns how many pods.

        ``all_runs=False`` limits it to this run. Pods of a creator that still runs (on
        this host; other hosts count as running) are left alone unless ``include_live``,
        except this backend's own.
        """
        cluster = self._connect()
        selector = LABEL_RUN if all_runs else f"{LABEL_RUN}={label_value(self.run_id)}"
        removed = 0
        try:
            pods = cluster.core.list_namespaced_pod(cluster.namespace, label_selector=selector,
                                                    _request_timeout=API_TIMEOUT_S).items
            policies = cluster.networking.list_namespaced_network_policy(
                cluster.namespace, label_selector=selector, _request_timeout=API_TIMEOUT_S).items
        except (api_error(), *transport_errors()) as exc:
            raise SandboxError(f"could not list leftover pods in {cluster.namespace}: {explain(exc)}") from None
        for kind, objects in (("pod", pods), ("policy", policies)):
            for obj in objects:
                if not self._reapable(obj.metadata, include_live):
                    continue
                delete = (cluster.core.delete_namespaced_pod if kind == "pod"
                          else cluster.networking.delete_namespaced_network_policy)
                try:
                    delete(obj.metadata.name, cluster.namespace, grace_period_seconds=0, _request_timeout=API_TIMEOUT_S)
                    removed += kind == "pod"
                except api_error() as exc:
                    if exc.status != 404:
                        raise SandboxError(f"could not delete leftover {kind} {obj.metadata.name}: {explain(exc)}") from None
        return removed

    def _reapable(self, metadata: Any, include_live: bool) -> bool:
        labels, owner = metadata.labels or {}, (metadata.annotations or {}).get(ANNOTATION_OWNER, "")
        own = labels.get(LABEL_RUN) == label_value(self.run_id) and owner == self._owner
        return own or include_live or not owner_alive(owner)

    def close(self) -> None:
        """Delete whatever pods of this process an interrupt left behind; close the connection."""
        if self._cluster is not None:
            try:
                self.reap(all_runs=False)
            except SandboxError:
                pass  # the server went away: the next session's reaper removes them
            self._cluster.api_client.close()
        self._cluster = None
        self._version = None
