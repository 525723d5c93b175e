"""Pod manifests of the kubernetes backend: exact for every multiplier, QoS, network and security setting,
and valid as the official client's own model classes read them."""

import json
import re

import pytest

from pytest_harnessbench.resources import Allocation, Multiplier, Spec
from pytest_harnessbench.sandbox.kubernetes import manifests as m

MI = 1024**2
SPEC = Spec(cpus=1.0, memory_bytes=256 * MI)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def allocation(mult: str, scale=frozenset({"cpu", "memory"}), spec=SPEC) -> Allocation:
    return Allocation.of(spec, Multiplier.parse(mult), scale)


def pod(mult="1", image=None, trial_id="test_sort[oracle:lean@1x#1]-abc123", **kw) -> dict:
    return m.pod_manifest(name=m.pod_name(trial_id, "n0nce"), allocation=allocation(mult, **kw), image=image,
                          run_id="20261202T155500Z-abc123", trial_id=trial_id, owner="host-a:123-456",
                          owner_token="123-456")


def as_client_model(manifest: dict, kind: str) -> dict:
    """Round-trip through the client's model class: a misspelt key is dropped, a wrong type raises."""
    from kubernetes.client import ApiClient

    api = ApiClient()
    return api.sanitize_for_serialization(api.deserialize(json.dumps(manifest), kind, "application/json"))


@pytest.mark.parametrize("mult, requests, limits, qos", [
    ("1", {"cpu": "1000m", "memory": str(256 * MI)}, {"cpu": "1000m", "memory": str(256 * MI)}, "Guaranteed"),
    ("1.5", {"cpu": "1000m", "memory": str(256 * MI)}, {"cpu": "1500m", "memory": str(384 * MI)}, "Burstable"),
    ("3", {"cpu": "1000m", "memory": str(256 * MI)}, {"cpu": "3000m", "memory": str(768 * MI)}, "Burstable"),
    ("uncapped", {"cpu": "1000m", "memory": str(256 * MI)}, None, "Burstable"),
])
def test_requests_are_the_guarantee_and_limits_the_kill_threshold(mult, requests, limits, qos):
    resources = pod(mult)["spec"]["containers"][0]["resources"]
    assert resources == ({"requests": requests} if limits is None else {"requests": requests, "limits": limits})
    assert m.expected_qos(resources) == qos


@pytest.mark.parametrize("scale, mult, limits, qos", [
    (frozenset({"time"}), "3", {"cpu": "1000m", "memory": str(256 * MI)}, "Guaranteed"),  # limits stay at the spec
    (frozenset({"memory"}), "2", {"cpu": "1000m", "memory": str(512 * MI)}, "Burstable"),
    (frozenset({"cpu"}), "uncapped", {"memory": str(256 * MI)}, "Burstable"),  # cpu unlimited, memory at the spec
])
def test_the_scale_decides_which_limits_move(scale, mult, limits, qos):
    resources = pod(mult, scale=scale)["spec"]["containers"][0]["resources"]
    assert resources["limits"] == limits
    assert m.expected_qos(resources) == qos


@pytest.mark.parametrize("mult", ["1", "1.001", "1.5", "3", "7.77", "uncapped"])
@pytest.mark.parametrize("cpus, memory", [(0.25, 100_000_001), (1.0, 256 * MI), (3.3, 3 * 1024**3 + 1)])
def test_requests_never_exceed_limits(mult, cpus, memory):
    resources = m.resources(allocation(mult, spec=Spec(cpus=cpus, memory_bytes=memory)))
    for name, limit in resources.get("limits", {}).items():
        request = resources["requests"][name]
        if name == "cpu":
            assert int(request[:-1]) <= int(limit[:-1])
        else:
            assert int(request) <= int(limit)


def test_quantities_are_exact():
    assert m.cpu_quantity(0.5) == "500m" and m.cpu_quantity(1.5) == "1500m" and m.cpu_quantity(0.0001) == "1m"
    assert m.memory_quantity(int(1.5 * 256 * MI)) == "402653184"


def test_best_effort_only_without_any_resources():
    assert m.expected_qos({}) == "BestEffort"
    assert m.expected_qos({"requests": {"cpu": "1"}, "limits": {"cpu": "1"}}) == "Burstable"  # memory unlimited
    assert m.expected_qos({"limits": {"cpu": "1", "memory": "1"}}) == "Guaranteed"  # requests default to limits


def test_security_settings():
    spec = pod()["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert spec["restartPolicy"] == "Never"
    # The escape suite's list (tests/test_escape.py), as a pod spec states it: no host namespace, no host path,
    # no shared process namespace, no cluster credentials.
    assert not {"hostNetwork", "hostPID", "hostIPC", "volumes", "shareProcessNamespace"} & set(spec)
    container = spec["containers"][0]
    assert container["securityContext"] == {
        "privileged": False, "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "KILL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["command"] == ["sleep", "infinity"] and container["workingDir"] == "/task"


def test_image_per_task_and_the_default():
    assert pod(image="registry.local/tasks/sort:3")["spec"]["containers"][0]["image"] == "registry.local/tasks/sort:3"
    assert pod()["spec"]["containers"][0]["image"] == m.DEFAULT_IMAGE


def test_network_off_is_a_default_deny_policy_selecting_only_its_pod():
    name = m.pod_name("t[x@1x#1]-aa", "n0nce")
    policy = m.network_policy_manifest(name=name, run_id="r", trial_id="t[x@1x#1]-aa", owner="h:1-2",
                                       owner_token="1-2")
    assert policy["spec"] == {"podSelector": {"matchLabels": {m.LABEL_POD: name}}, "policyTypes": ["Ingress", "Egress"]}
    assert "ingress" not in policy["spec"] and "egress" not in policy["spec"]  # no rule: nothing allowed
    assert policy["metadata"]["labels"][m.LABEL_POD] == name
    assert as_client_model(policy, "V1NetworkPolicy") == policy


@pytest.mark.parametrize("trial_id", [
    "test_sort_numbers[oracle:lean@3x#2]-9f1c2e",
    "test_x[openai:gpt-5.1@uncapped#10]-000000",
    "T" * 300 + "[a@1x#1]-abcdef",
    "@@@[###]",
    "test_a[b-c]-_",
])
def test_names_and_labels_follow_kubernetes_syntax(trial_id):
    manifest = pod(trial_id=trial_id)
    name = manifest["metadata"]["name"]
    assert DNS_LABEL.match(name) and len(name) <= 63
    assert all(LABEL_VALUE.match(v) and len(v) <= 63 for v in manifest["metadata"]["labels"].values())
    assert manifest["metadata"]["annotations"][m.ANNOTATION_TRIAL] == trial_id  # the readable id, exact


def test_names_keep_a_readable_prefix_and_tell_trials_apart():
    a = m.pod_name("test_sort_numbers[oracle:lean@3x#2]-9f1c2e", "abcde")
    b = m.pod_name("test_sort_numbers[oracle:lean@3x#3]-9f1c2e", "abcde")
    assert a.startswith("hb-test-sort-numbers-oracle-lean-3x-2-") and len(a) == 63 and a != b
    assert m.pod_name("x", "abcde") != m.pod_name("x", "fghij")  # attempts of one trial


def test_labels_carry_run_trial_hash_and_owner():
    labels = pod()["metadata"]["labels"]
    assert labels[m.LABEL_RUN] == "20261202T155500Z-abc123"
    assert labels[m.LABEL_TRIAL] == m.trial_hash("test_sort[oracle:lean@1x#1]-abc123")
    assert labels[m.LABEL_OWNER] == "123-456"
    assert pod()["metadata"]["annotations"][m.ANNOTATION_OWNER] == "host-a:123-456"


@pytest.mark.parametrize("mult", ["1", "1.5", "3", "uncapped"])
def test_the_client_models_read_the_pod_exactly(mult):
    manifest = pod(mult, image="img:1")
    assert as_client_model(manifest, "V1Pod") == manifest
