"""Pod and NetworkPolicy manifests for one trial: pure functions of the allocation, names and settings.

Kubernetes' own rules, which the other backends do not have:

- Pod names are DNS-1123 labels here (lower-case letters, digits and ``-``, at most
  63 characters), and label values at most 63 characters of ``[A-Za-z0-9_.-]``.
  Trial ids hold ``@``, ``#``, ``[`` and ``:``, so a pod carries a readable but
  lossy prefix plus a hash of the trial id; the exact id is kept in an annotation.
- requests must not exceed limits. Guarantee = requests and kill threshold =
  limits keep that (limit = spec × m with m ≥ 1); ``uncapped`` sets requests only.
- QoS follows: requests = limits for cpu and memory (1x, or a scale that leaves
  both unscaled) is ``Guaranteed``; anything else with requests is ``Burstable``.
- There is no per-container pids limit (only the kubelet's node-wide
  ``podPidsLimit``): the pods limit is not applied, and records say so.
"""

from __future__ import annotations

import hashlib
import re

from ...resources import Allocation
from ..container import CAP_ADD  # the same minimal capability set as the docker backend

DEFAULT_IMAGE = "harnessbench/python:3.11"
WORKDIR = "/task"
CONTAINER = "task"
NAME_LIMIT = 63  # a DNS-1123 label; pod hostnames are at most this long
LABEL_VALUE_LIMIT = 63

PREFIX = "harnessbench.io/"
LABEL_RUN = PREFIX + "run-id"
LABEL_TRIAL = PREFIX + "trial-hash"  # sha1 of the trial id: the id itself is not label syntax
LABEL_OWNER = PREFIX + "owner"  # PID-START of the creating process (its host is in the annotation)
LABEL_POD = PREFIX + "pod"  # the pod's own name: what its NetworkPolicy selects
ANNOTATION_TRIAL = PREFIX + "trial-id"  # the readable trial id
ANNOTATION_OWNER = PREFIX + "owner"  # host:PID-START, what the reaper checks

PIDS_NOTE = ("pids limit not applied: Kubernetes has no per-container pids limit "
             "(only the kubelet's node-wide podPidsLimit)")

_NOT_NAME = re.compile(r"[^a-z0-9]+")
_NOT_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.-]+")


def trial_hash(trial_id: str) -> str:
    """A short, stable, label-safe stand-in for a trial id."""
    return hashlib.sha1(trial_id.encode()).hexdigest()[:12]


def pod_name(trial_id: str, nonce: str) -> str:
    """``hb-<readable>-<trial hash>-<nonce>``: a DNS-1123 label of at most 63 characters.

    The nonce (a few random lower-case hex digits) tells attempts of one trial apart:
    a retried trial's earlier pod may still be terminating under the same name.
    """
    tail = f"-{trial_hash(trial_id)}-{nonce}"
    room = NAME_LIMIT - len("hb-") - len(tail)
    readable = _NOT_NAME.sub("-", trial_id.lower()).strip("-")[:room].strip("-")
    return f"hb-{readable}{tail}" if readable else f"hb{tail}"


def label_value(text: str) -> str:
    """A valid label value: at most 63 of ``[A-Za-z0-9_.-]``, alphanumeric at both ends (or empty)."""
    value = _NOT_LABEL_VALUE.sub("-", text)[:LABEL_VALUE_LIMIT]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


def cpu_quantity(cpus: float) -> str:
    """Millicores, at least 1m (``0.5`` -> ``500m``)."""
    return f"{max(1, round(cpus * 1000))}m"


def memory_quantity(memory_bytes: int) -> str:
    """Plain bytes: exact, whatever the multiplier (``1.5 × 256Mi`` is not a whole Mi)."""
    return str(int(memory_bytes))


def resources(allocation: Allocation) -> dict:
    """requests = guarantee, limits = kill threshold; an unset limit is left out (uncapped)."""
    guarantee, limit = allocation.guarantee, allocation.limit
    requests, limits = {}, {}
    if guarantee.cpus is not None:
        requests["cpu"] = cpu_quantity(guarantee.cpus)
    if guarantee.memory_bytes is not None:
        requests["memory"] = memory_quantity(guarantee.memory_bytes)
    if limit.cpus is not None:
        limits["cpu"] = cpu_quantity(max(limit.cpus, guarantee.cpus or 0))
    if limit.memory_bytes is not None:
        limits["memory"] = memory_quantity(max(limit.memory_bytes, guarantee.memory_bytes or 0))
    out = {"requests": requests}
    if limits:
        out["limits"] = limits
    return out


def expected_qos(container_resources: dict) -> str:
    """The QoS class the API server will assign to a one-container pod with these resources."""
    requests, limits = container_resources.get("requests", {}), container_resources.get("limits", {})
    if not requests and not limits:
        return "BestEffort"
    # An unset request defaults to the limit; Guaranteed needs both cpu and memory limited and equal.
    if all(name in limits and requests.get(name, limits[name]) == limits[name] for name in ("cpu", "memory")):
        return "Guaranteed"
    return "Burstable"


def labels(run_id: str, trial_id: str, owner_token: str, name: str) -> dict:
    return {LABEL_RUN: label_value(run_id), LABEL_TRIAL: trial_hash(trial_id),
            LABEL_OWNER: label_value(owner_token), LABEL_POD: name}


def annotations(trial_id: str, owner: str) -> dict:
    return {ANNOTATION_TRIAL: trial_id, ANNOTATION_OWNER: owner}


def container_security() -> dict:
    """No privilege, no escalation, every capability dropped but docker's minimal set, the runtime's seccomp."""
    return {
        "privileged": False,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"], "add": list(CAP_ADD)},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_manifest(*, name: str, allocation: Allocation, image: str | None, run_id: str, trial_id: str,
                 owner: str, owner_token: str) -> dict:
    """The trial's pod: one idle container (``sleep infinity``) that commands are exec'd into."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels(run_id, trial_id, owner_token, name),
                     "annotations": annotations(trial_id, owner)},
        "spec": {
            "restartPolicy": "Never",  # a container that dies is lost, not silently restarted
            "automountServiceAccountToken": False,  # the agent gets no credentials to the cluster
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": CONTAINER,
                "image": image or DEFAULT_IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "infinity"],
                "workingDir": WORKDIR,
                "resources": resources(allocation),
                "securityContext": container_security(),
            }],
        },
    }


def network_policy_manifest(*, name: str, run_id: str, trial_id: str, owner: str, owner_token: str) -> dict:
    """Default deny, in and out, for the one pod called ``name`` (a task with ``network=False``).

    Created before the pod, so the pod never runs unprotected where the cluster enforces policies.
    """
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "labels": labels(run_id, trial_id, owner_token, name),
                     "annotations": annotations(trial_id, owner)},
        "spec": {"podSelector": {"matchLabels": {LABEL_POD: name}}, "policyTypes": ["Ingress", "Egress"]},
    }
