"""Pod states of the kubernetes backend, read from V1Pod/CoreV1Event objects as the API server returns them,
and what comes back through exec (cgroup counters, exit status)."""

import json

import pytest

from pytest_harnessbench.outcomes import classify
from pytest_harnessbench.sandbox.base import SandboxLostError, SandboxStartError
from pytest_harnessbench.sandbox.kubernetes.sandbox import counters_evidence, exit_status, parse_counters
from pytest_harnessbench.sandbox.kubernetes.states import read_pod, start_failure


def from_api(data: dict, kind: str):
    from kubernetes.client import ApiClient

    return ApiClient().deserialize(json.dumps(data), kind, "application/json")


def pod(phase="Running", *, state=None, last_state=None, restarts=0, conditions=(), reason=None, message=None,
        deleting=False, statuses=True):
    status = {"phase": phase, "qosClass": "Guaranteed", "conditions": list(conditions)}
    if reason:
        status["reason"], status["message"] = reason, message
    if statuses:
        status["containerStatuses"] = [{
            "name": "task", "image": "harnessbench/python:3.11", "imageID": "", "ready": state is not None and "running" in state,
            "restartCount": restarts, "state": state or {"waiting": {"reason": "ContainerCreating"}},
            "lastState": last_state or {}}]
    metadata = {"name": "hb-t-abc", "namespace": "bench", "uid": "u-1"}
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-02T10:00:00Z"
    return from_api({"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
                     "spec": {"containers": [{"name": "task", "image": "harnessbench/python:3.11"}]},
                     "status": status}, "V1Pod")


def event(reason, message):
    return from_api({"metadata": {"name": "hb-t-abc.1", "namespace": "bench"}, "reason": reason, "message": message,
                     "type": "Warning", "involvedObject": {"kind": "Pod", "name": "hb-t-abc"},
                     "lastTimestamp": "2026-12-02T10:00:00Z"}, "CoreV1Event")


RUNNING = {"running": {"startedAt": "2026-12-02T10:00:00Z"}}
OOM = {"terminated": {"reason": "OOMKilled", "exitCode": 137, "startedAt": "2026-12-02T10:00:00Z",
                      "finishedAt": "2026-12-02T10:00:05Z"}}
UNSCHEDULABLE = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "message": "0/3 nodes are available: 3 Insufficient memory."}


def test_a_running_pod_is_fine():
    reading = read_pod(pod(state=RUNNING, conditions=[{"type": "PodScheduled", "status": "True"}]))
    assert reading.running and reading.lost is None and reading.oom_kills == 0 and reading.waiting is None


def test_oom_killed_main_process_in_state_is_lost_with_an_oom_kill():
    reading = read_pod(pod("Failed", state=OOM))
    assert not reading.running and reading.oom_kills == 1
    assert "OOMKilled (exit code 137)" in reading.lost
    assert classify(SandboxLostError(reading.lost), reading.oom_kills).cause == "oom"


def test_oom_killed_in_last_state_and_restarted():
    reading = read_pod(pod(state=RUNNING, last_state=OOM, restarts=1))
    assert reading.oom_kills == 1 and not reading.running
    assert reading.lost == "task container restarted 1 time(s) (last: OOMKilled (exit code 137))"


def test_evicted_is_lost_not_oom():
    reading = read_pod(pod("Failed", reason="Evicted", statuses=False,
                           message="The node was low on resource: memory. Threshold quantity: 100Mi, available: 80Mi."))
    assert reading.lost.startswith("Evicted by the kubelet: The node was low on resource: memory")
    assert reading.oom_kills == 0
    assert classify(SandboxLostError(reading.lost), reading.oom_kills).cause == "sandbox_lost"


@pytest.mark.parametrize("phase, reason", [("Unknown", None), ("Running", "NodeLost")])
def test_node_lost(phase, reason):
    reading = read_pod(pod(phase, state=RUNNING, reason=reason, message="Node worker-2 which was running pod is unresponsive"))
    assert reading.lost.startswith("node lost") and not reading.running


def test_disruption_and_deletion_by_someone_else():
    disrupted = read_pod(pod(state=RUNNING, conditions=[{"type": "DisruptionTarget", "status": "True",
                                                         "reason": "PreemptionByScheduler", "message": "preempted"}]))
    assert disrupted.lost == "disrupted: PreemptionByScheduler: preempted"
    assert "being deleted" in read_pod(pod(state=RUNNING, deleting=True)).lost


def test_unschedulable_pending_waits_then_fails_the_start_with_the_event_reason():
    reading = read_pod(pod("Pending", statuses=False, conditions=[UNSCHEDULABLE]),
                       [event("Scheduled", "ignored"),
                        event("FailedScheduling", "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3")])
    assert reading.waiting == ("not scheduled (Unschedulable): 0/3 nodes are available: 3 Insufficient memory. "
                               "preemption: 0/3")
    assert start_failure(reading, waited_s=5, timeout_s=60) is None
    message = start_failure(reading, waited_s=60.2, timeout_s=60)
    assert message.startswith("pod still Pending after 60 s (--hb-k8s-schedule-timeout 60): not scheduled")
    assert classify(SandboxStartError(message)).cause == "sandbox_start"


def test_unschedulable_without_events_uses_the_condition():
    reading = read_pod(pod("Pending", statuses=False, conditions=[UNSCHEDULABLE]))
    assert reading.waiting == "not scheduled (Unschedulable): 0/3 nodes are available: 3 Insufficient memory."


def test_image_pull_errors_wait_for_the_timeout():
    reading = read_pod(pod("Pending", state={"waiting": {"reason": "ImagePullBackOff",
                                                         "message": 'Back-off pulling image "nope:1"'}},
                           conditions=[{"type": "PodScheduled", "status": "True"}]))
    assert reading.waiting == 'container waiting: ImagePullBackOff: Back-off pulling image "nope:1"'
    assert not reading.hopeless
    assert start_failure(reading, 10, 30) is None and "ImagePullBackOff" in start_failure(reading, 30, 30)


def test_an_invalid_image_name_fails_at_once():
    reading = read_pod(pod("Pending", state={"waiting": {"reason": "InvalidImageName", "message": "bad ref"}}))
    assert reading.hopeless
    assert start_failure(reading, 0.1, 300) == "pod cannot start: container waiting: InvalidImageName: bad ref"


def test_a_pod_that_ended_before_running_fails_the_start():
    reading = read_pod(pod("Failed", state={"terminated": {"reason": "StartError", "exitCode": 128,
                                                           "message": 'exec: "sleep": not found'}}))
    assert start_failure(reading, 1, 300) == ('pod failed before it ran: task container terminated: '
                                              'StartError (exit code 128, exec: "sleep": not found)')


# -- what comes back through exec: the cgroup script's lines and the stream's error channel ------------------


def test_cgroup_v2_counters():
    values = parse_counters("version 2\noom_kill 2\npeak 100663296\ncpu_usec 1500000\nmemory_max 268435456\n"
                            "cpu_max 100000 100000\n")
    assert values["memory_max"] == 268435456 and values["cpu_max"] == "100000 100000"
    evidence = counters_evidence(values)
    assert (evidence.oom_kills, evidence.peak_memory_bytes, evidence.cpu_seconds, evidence.oom_source) == (
        2, 100663296, 1.5, "memory.events")


def test_cgroup_v1_counters_and_unlimited():
    values = parse_counters("version 1\noom_kill 0\npeak 4096\ncpu_nsec 2000000000\nmemory_max max\n")
    evidence = counters_evidence(values)
    assert (evidence.oom_kills, evidence.cpu_seconds, evidence.oom_source) == (0, 2.0, "memory.oom_control")
    assert values["memory_max"] == "max"
    assert counters_evidence(parse_counters("")) is None  # no cgroup visible in the container


@pytest.mark.parametrize("channel, code", [
    (b'{"metadata":{},"status":"Success"}', 0),
    (b'{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing '
     b'command [bash -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode",'
     b'"message":"3"}]}}', 3),
    (b'{"status":"Failure","message":"container not found","reason":"InternalError"}', None),
    (b"", None),
    (b"not json", None),
])
def test_exit_status_from_the_error_channel(channel, code):
    assert exit_status(channel) == code
