"""What a pod's status says about a trial: pure functions of the client's ``V1Pod`` and ``CoreV1Event`` objects.

- **lost** (``infra/sandbox_lost``): the container can no longer run commands: it
  was OOM-killed as the main process (``OOMKilled`` in its state or last state),
  it terminated or restarted, the pod was ``Evicted`` (node pressure), its node
  stopped reporting (phase ``Unknown``, reason ``NodeLost``), or it is being
  deleted or preempted under us (``DisruptionTarget``).
- **waiting** (``infra/sandbox_start`` once ``--hb-k8s-schedule-timeout`` has
  passed): ``Pending`` with ``PodScheduled=False`` (its reason and the last
  ``FailedScheduling`` event say why: insufficient cpu or memory, taints, quota),
  or a container still waiting (``ErrImagePull``, ``ImagePullBackOff``,
  ``ContainerCreating``). A few waiting reasons cannot end well and fail at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from .manifests import CONTAINER

#: Waiting reasons that no amount of waiting resolves: fail the start at once.
HOPELESS = frozenset({"InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError"})
#: Pod-level reasons of a pod whose node failed it.
NODE_REASONS = frozenset({"NodeLost", "NodeShutdown", "Shutdown", "Terminated", "UnexpectedAdmissionError"})


@dataclass(frozen=True)
class PodReading:
    """One look at a trial's pod."""

    phase: str
    running: bool  # the task container runs: commands can be exec'd
    oom_kills: int  # OOMKilled in the task container's state or last state
    restarts: int
    lost: str | None  # why it can no longer run commands (None: fine, or still starting)
    waiting: str | None  # why it is not running yet
    hopeless: bool = False  # the wait cannot end well

    @property
    def notes(self) -> list[str]:
        return [f"pod {self.phase}: {self.lost}"] if self.lost else []


def _task_status(pod: Any) -> Any | None:
    for status in pod.status.container_statuses or []:
        if status.name == CONTAINER:
            return status
    return None


def _terminated(state: Any) -> Any | None:
    return state.terminated if state is not None else None


def _describe_exit(terminated: Any) -> str:
    detail = f"exit code {terminated.exit_code}"
    if terminated.message:
        detail += f", {' '.join(terminated.message.split())[:200]}"
    return f"{terminated.reason or 'terminated'} ({detail})"


def _condition(pod: Any, kind: str) -> Any | None:
    return next((c for c in pod.status.conditions or [] if c.type == kind), None)


def _last_event(events: Iterable[Any], reason: str) -> Any | None:
    found = [e for e in events if e.reason == reason]
    return found[-1] if found else None


def _lost(pod: Any, container: Any) -> str | None:
    status = pod.status
    if status.reason == "Evicted":
        return f"Evicted by the kubelet: {status.message or 'node under resource pressure'}"
    if status.phase == "Unknown" or status.reason in NODE_REASONS:
        return f"node lost ({status.reason or 'phase Unknown'}): {status.message or 'the node stopped reporting'}"
    disruption = _condition(pod, "DisruptionTarget")
    if disruption is not None and disruption.status == "True":
        return f"disrupted: {disruption.reason}: {disruption.message or ''}".rstrip(": ")
    if container is not None:
        terminated = _terminated(container.state)
        if terminated is not None:
            return f"task container terminated: {_describe_exit(terminated)}"
        if container.restart_count:
            last = _terminated(container.last_state)
            why = f" (last: {_describe_exit(last)})" if last is not None else ""
            return f"task container restarted {container.restart_count} time(s){why}"
    if status.phase in ("Failed", "Succeeded"):
        return f"pod {status.phase}: {status.reason or ''} {status.message or ''}".strip()
    if pod.metadata.deletion_timestamp is not None:
        return "pod is being deleted by someone else (a node drain, or kubectl delete)"
    return None


def _waiting(pod: Any, container: Any, events: Iterable[Any]) -> tuple[str | None, bool]:
    scheduled = _condition(pod, "PodScheduled")
    if scheduled is not None and scheduled.status == "False":
        event = _last_event(events, "FailedScheduling")
        message = (event.message if event is not None else None) or scheduled.message or ""
        return f"not scheduled ({scheduled.reason or 'Unschedulable'}): {' '.join(message.split())}".rstrip(": "), False
    waiting = container.state.waiting if container is not None and container.state is not None else None
    if waiting is not None:
        text = f"container waiting: {waiting.reason}" + (f": {' '.join(waiting.message.split())}" if waiting.message else "")
        return text, waiting.reason in HOPELESS
    if pod.status.phase == "Pending":
        return "Pending (not yet scheduled)" if scheduled is None else "Pending (starting)", False
    return None, False


def read_pod(pod: Any, events: Iterable[Any] = ()) -> PodReading:
    """What ``pod`` (a ``V1Pod``) and its events (``CoreV1Event``, oldest first) say."""
    container = _task_status(pod)
    oom_kills = restarts = 0
    running = False
    if container is not None:
        restarts = container.restart_count or 0
        oom_kills = sum(1 for state in (container.state, container.last_state)
                        if (t := _terminated(state)) is not None and t.reason == "OOMKilled")
        running = bool(container.state is not None and container.state.running is not None)
    lost = _lost(pod, container)
    waiting, hopeless = (None, False) if lost or running else _waiting(pod, container, list(events))
    return PodReading(phase=pod.status.phase or "Pending", running=running and lost is None, oom_kills=oom_kills,
                      restarts=restarts, lost=lost, waiting=waiting, hopeless=hopeless)


def start_failure(reading: PodReading, waited_s: float, timeout_s: float) -> str | None:
    """Why provisioning has failed (the ``SandboxStartError`` message), or None to keep waiting."""
    if reading.running:
        return None
    if reading.lost:
        return f"pod failed before it ran: {reading.lost}"
    if reading.hopeless:
        return f"pod cannot start: {reading.waiting}"
    if waited_s >= timeout_s:
        return (f"pod still {reading.phase} after {waited_s:.0f} s (--hb-k8s-schedule-timeout {timeout_s:g}): "
                f"{reading.waiting}")
    return None
