"""Kubernetes backend: one pod per trial, through the official ``kubernetes`` client (no kubectl).

Mapping of an :class:`~pytest_harnessbench.resources.Allocation` (docs/design.md §Resources):

=====================  ==========================================================
guarantee cpus/memory  container ``resources.requests`` (what the scheduler reserves)
limit cpus/memory      container ``resources.limits`` (CFS quota, memory cgroup limit)
uncapped               requests only (QoS ``Burstable``); 1x gives ``Guaranteed``
limit pids             not applied: Kubernetes has none per container (recorded)
network off            a default-deny NetworkPolicy selecting only the pod
=====================  ==========================================================

Admission is the cluster scheduler's (no host ledger): a pod that stays
``Pending`` past ``--hb-k8s-schedule-timeout`` is ``infra/sandbox_start``.
Commands run through the exec stream API (WebSocket); files go by tar over exec.
Evidence: the container's cgroup read through exec (an exec'd process the kernel
OOM-kills leaves the container running) plus ``OOMKilled`` in the container's
state or last state. Pods and policies carry :data:`~.manifests.LABEL_RUN`,
:data:`~.manifests.LABEL_OWNER` and the owner annotation, so :meth:`reap` removes
exactly the leftovers of sessions that died.
"""

from .backend import KubernetesBackend
from .sandbox import KubernetesSandbox

__all__ = ["KubernetesBackend", "KubernetesSandbox"]
