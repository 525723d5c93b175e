"""The kubernetes backend through the real ``kubernetes`` client.

Against the stand-in API server (tests/support/k8s_standin.py, a test double: there is
no cluster on this machine): the manifests the client sends, QoS read back,
the Pending -> infra/sandbox_start path with its waiting time, 422s, reaping;
with its bwrap'd "pods", the client side of exec (stream, timeout kill, output
cap, tar over exec) and a whole bake-off.
Against a real cluster (``KUBECONFIG`` pointing at one, e.g. kind or k3d, with
the base image loaded): OOM at 1x and recovery uncapped, timeouts, files, reaping.
"""

from __future__ import annotations

import os

import pytest

from support.k8s_standin import StandInCluster
from pytest_harnessbench.resources import Allocation, Multiplier, Spec
from pytest_harnessbench.sandbox.base import EnforcementUnavailable, SandboxError, SandboxStartError
from pytest_harnessbench.sandbox.kubernetes import KubernetesBackend
from pytest_harnessbench.sandbox.kubernetes import manifests as m
from pytest_harnessbench.store import RunDir

pytest_plugins = ["pytester"]
# Bake-offs against the stand-in run in a subprocess (e2e): the client fixes its default KUBECONFIG path
# when it is first imported, so runs in one process could not each have their own.
pytestmark = pytest.mark.kubernetes
MI = 1024**2
SPEC = Spec(cpus=0.5, memory_bytes=128 * MI)
TASK = """
import pytest

@pytest.mark.task(cpus=0.5, memory="128Mi", timeout=30)
def test_t(trial):
    limits = trial.sandbox.applied_limits()
    assert limits["qos_class"] == limits["expected_qos_class"]
"""


@pytest.fixture
def standin(tmp_path, monkeypatch):
    with StandInCluster() as cluster:
        monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig(tmp_path / "kubeconfig")))
        yield cluster


def core():
    """The real client's CoreV1Api for the current KUBECONFIG (its default path is fixed at its first import)."""
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(config_file=os.environ["KUBECONFIG"]))


def allocation(mult: str) -> Allocation:
    return Allocation.of(SPEC, Multiplier.parse(mult))


def run(pytester, *args):
    pytester.makepyfile(test_task=TASK)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--hb-backend", "kubernetes", "--models", "nop",
                                           "--hb-out", str(pytester.path / "run"), *args)
    return result, [r.to_dict() for r in RunDir(pytester.path / "run").records()]


@pytest.mark.e2e
def test_pods_are_created_as_specified_and_qos_read_back(standin, pytester):
    result, records = run(pytester, "--multipliers", "1,3,uncapped")
    result.assert_outcomes(passed=3)
    by_mult = {r["multiplier"]: r for r in records}
    assert {k: r["allocation"]["applied"]["qos_class"] for k, r in by_mult.items()} == {
        "1x": "Guaranteed", "3x": "Burstable", "uncapped": "Burstable"}
    assert by_mult["3x"]["allocation"]["applied"]["resources"] == {
        "requests": {"cpu": "500m", "memory": str(128 * MI)}, "limits": {"cpu": "1500m", "memory": str(384 * MI)}}
    assert by_mult["uncapped"]["allocation"]["applied"]["resources"] == {
        "requests": {"cpu": "500m", "memory": str(128 * MI)}}
    assert all(r["backend"] == "kubernetes" and r["enforcement"] == "kubernetes-requests-limits" for r in records)
    for pod in standin.created:  # the bodies the client sent: the pure manifests, exactly
        trial_id = pod["metadata"]["annotations"][m.ANNOTATION_TRIAL]
        record = next(r for r in records if r["trial_id"] == trial_id)
        owner = pod["metadata"]["annotations"][m.ANNOTATION_OWNER]
        assert pod == m.pod_manifest(name=pod["metadata"]["name"], allocation=allocation(record["multiplier"]),
                                     image=None, run_id=record["run_id"], trial_id=trial_id, owner=owner,
                                     owner_token=owner.rpartition(":")[2])
        assert pod["metadata"]["labels"][m.LABEL_RUN] == record["run_id"]
    assert standin.pods == {} and standin.policies == {}  # every pod and policy deleted
    applied = by_mult["1x"]["allocation"]["applied"]
    pod_1x = next(p for p in standin.created if p["metadata"]["annotations"][m.ANNOTATION_TRIAL] == by_mult["1x"]["trial_id"])
    assert applied["network_policy"]["name"] == pod_1x["metadata"]["name"]  # network off: its own deny-all policy
    assert applied["network_policy"]["enforced"] is None  # the stand-in cannot exec: the probe could not run
    assert "error" in applied["cgroup"]
    notes = by_mult["1x"]["resources"]["notes"]
    assert m.PIDS_NOTE in notes and any("cgroup counters could not be read" in n for n in notes)
    card = RunDir(pytester.path / "run").card()["backend"]
    assert card["server_version"] == "v1.31.0-standin" and card["namespace"] == "bench"
    assert card["nodes"][0]["container_runtime"] == "containerd://1.7.0"
    assert card["runtime_classes"].startswith("not visible (403")


@pytest.mark.e2e
def test_an_unschedulable_pod_is_infra_sandbox_start_with_its_waiting_time(pytester, tmp_path, monkeypatch):
    with StandInCluster(mode="unschedulable") as cluster:
        monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig(tmp_path / "kubeconfig")))
        result, records = run(pytester, "--hb-k8s-schedule-timeout", "1.5")
        assert (cluster.pods, cluster.policies) == ({}, {})
    assert result.ret == 1
    [record] = records
    assert (record["outcome"], record["cause"]) == ("infra", "sandbox_start")
    assert "pod still Pending after" in record["message"] and "--hb-k8s-schedule-timeout 1.5" in record["message"]
    assert "Insufficient memory" in record["message"]
    assert 1.5 <= record["timing"]["provision_s"] < 10


@pytest.mark.e2e
def test_the_namespace_option_wins_over_the_context(standin, pytester):
    result, _ = run(pytester, "--hb-k8s-namespace", "other-ns")
    result.assert_outcomes(passed=1)
    assert standin.created_in == ["other-ns"] and standin.pods == {}


@pytest.mark.e2e
def test_no_cluster_configured_is_a_usage_error(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    result, _ = run(pytester)
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*no Kubernetes cluster configured*KUBECONFIG*"])


def test_the_standin_rejects_what_the_api_server_rejects(standin):
    from kubernetes import client

    pod = m.pod_manifest(name="hb-x", allocation=allocation("1"), image=None, run_id="r", trial_id="t",
                         owner="h:1-2", owner_token="1-2")
    pod["spec"]["containers"][0]["resources"]["requests"]["memory"] = str(999 * MI)  # above the limit
    with pytest.raises(client.exceptions.ApiException) as info:
        core().create_namespaced_pod("bench", pod)
    assert info.value.status == 422 and "must be less than or equal to memory limit" in info.value.body


def test_a_rejected_pod_is_a_start_error(standin, monkeypatch):
    backend = KubernetesBackend("run-1")
    monkeypatch.setattr(m, "pod_name", lambda trial_id, nonce: "Not_A_Name")  # what the server must reject
    monkeypatch.setattr("pytest_harnessbench.sandbox.kubernetes.backend.pod_name", m.pod_name)
    with pytest.raises(SandboxStartError, match="refused pod Not_A_Name: 422"):
        backend.provision(allocation("1"), "t[x@1x#1]-aa")
    assert standin.pods == {} and standin.policies == {}
    backend.close()


def test_reap_removes_dead_owners_pods_and_keeps_live_ones(standin):
    mine = KubernetesBackend("run-live")
    mine.provision(allocation("1"), "live[a@1x#1]-aa")
    dead = m.pod_manifest(name="hb-dead", allocation=allocation("1"), image=None, run_id="run-dead", trial_id="d",
                          owner=f"{os.uname().nodename}:999999999-1", owner_token="999999999-1")
    core().create_namespaced_pod("bench", dead)
    other = KubernetesBackend("run-other")  # another session: removes only the dead one
    assert other.reap() == 1
    assert sorted(name for _, name in standin.pods) == [p["metadata"]["name"] for p in standin.created[:1]]
    other.close()
    mine.close()  # its own pods go at close
    assert standin.pods == {} and standin.policies == {}


@pytest.mark.e2e
def test_hb_reap_removes_a_dead_sessions_pods(standin, pytester):
    dead = m.pod_manifest(name="hb-dead", allocation=allocation("1"), image=None, run_id="run-dead", trial_id="d",
                          owner=f"{os.uname().nodename}:999999999-1", owner_token="999999999-1")
    core().create_namespaced_pod("bench", dead)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--hb-backend", "kubernetes", "--hb-reap")
    assert result.ret == 0
    result.stderr.fnmatch_lines(["*kubernetes backend: removed 1 sandbox(es) left by sessions that died*"])
    assert standin.pods == {}


def test_exec_against_the_standin_is_a_sandbox_error_not_lost(standin):
    backend = KubernetesBackend("run-x")
    sandbox = backend.provision(allocation("1"), "t[x@1x#1]-aa", network=True)
    with pytest.raises(SandboxError, match="exec request failed") as info:
        sandbox.exec("true")
    assert type(info.value) is SandboxError
    sandbox.close()
    backend.close()


# -- exec through the real client's WebSocket stream, against the stand-in's bwrap'd "pods" -------------------


@pytest.fixture
def exec_standin(tmp_path, monkeypatch):
    with StandInCluster(exec_pods=True) as cluster:
        monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig(tmp_path / "kubeconfig")))
        yield cluster


@pytest.fixture
def pod(exec_standin):
    backend = KubernetesBackend("run-exec")
    sandbox = backend.provision(allocation("1"), "t[x@1x#1]-aa", network=True)
    yield sandbox
    sandbox.close()
    backend.close()


def test_exec_streams_output_and_exit_codes(pod):
    result = pod.exec("echo out; echo err >&2; pwd; exit 3", timeout=20)
    assert (result.exit_code, result.stdout, result.stderr, result.timed_out) == (3, "out\n/task\n", "err\n", False)
    assert pod.exec("true").exit_code == 0


def test_exec_timeout_kills_every_process_of_the_command(pod):
    result = pod.exec("sleep 40 & sleep 40; echo never", timeout=1)
    assert result.timed_out and result.exit_code == 124 and result.duration_s < 5
    assert pod.exec("ps -eo args | grep -c '^sleep 40' || true", timeout=20).stdout.strip() == "0"


def test_exec_output_is_capped(pod):
    from pytest_harnessbench.sandbox.base import CAPTURE_LIMIT

    result = pod.exec(f"head -c {CAPTURE_LIMIT + 1000} /dev/zero | tr '\\0' a", timeout=60)
    assert result.exit_code == 0 and result.stdout.startswith("a" * 1000)
    assert result.stdout.endswith(f"[output cut at {CAPTURE_LIMIT} bytes]") and len(result.stdout) < CAPTURE_LIMIT + 100


def test_files_go_by_tar_over_exec(pod):
    data = bytes(range(256)) * 5000
    pod.write_file("sub/data.bin", data)
    assert pod.read_file("sub/data.bin", text=False) == data
    assert pod.exec("sha256sum sub/data.bin", timeout=20).stdout.split()[0] == __import__("hashlib").sha256(data).hexdigest()
    pod.write_file("note.txt", "héllo")
    assert pod.read_file("note.txt") == "héllo"
    pod.write_file("raw.txt", b"ok\xff\xfe")  # model output that is not UTF-8 (issue 21.5)
    assert pod.read_file("raw.txt") == "ok\ufffd\ufffd" and pod.read_file("raw.txt", text=False) == b"ok\xff\xfe"
    with pytest.raises(FileNotFoundError):
        pod.read_file("missing.txt")
    with pytest.raises(IsADirectoryError):
        pod.read_file("sub")


@pytest.mark.parametrize("server_close", ["linger", "at_once"])
def test_a_command_that_stops_reading_stdin_early_is_no_failure(exec_standin, pod, server_close):
    """tar stops at its end-of-archive blocks, and a server may drop the stream under our last writes
    and under our reply to its close: the status it sent first still counts (a CI flake, stop 32)."""
    exec_standin.exec_close = server_close
    code, out, _, timed_out = pod._run(["head", "-c", "3"], 20, stdin_data=b"x" * (3 << 20))
    assert (code, out, timed_out) == (0, b"xxx", False)


def test_evidence_reads_the_cgroup_through_exec(pod):
    evidence = pod.evidence()  # the stand-in's "pod" sees the host's root group: the source, not the numbers
    assert evidence.oom_source.startswith("memory.") and evidence.peak_memory_bytes


TASK_WITH_FILES = """
import pytest

@pytest.mark.task(cpus=0.5, memory="128Mi", timeout=60, solutions={"lean": "sort -n data.txt > sorted.txt"})
def test_sort(trial):
    trial.sandbox.write_file("data.txt", "3\\n1\\n2\\n")
    trial.run_agent("Sort the integers in data.txt ascending, one per line, into sorted.txt.")
    assert trial.sandbox.read_file("sorted.txt") == "1\\n2\\n3\\n"
"""


@pytest.mark.e2e
def test_a_bake_off_through_exec(exec_standin, pytester):
    pytester.makepyfile(test_task=TASK_WITH_FILES)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--hb-backend", "kubernetes", "--models",
                                           "oracle:lean,nop", "--hb-out", str(pytester.path / "run"))
    result.assert_outcomes(passed=1, failed=1)
    records = {r.model: r.to_dict() for r in RunDir(pytester.path / "run").records()}
    assert (records["oracle:lean"]["outcome"], records["nop"]["outcome"], records["nop"]["cause"]) == (
        "passed", "failed", "assertion")  # nop wrote no sorted.txt: a missing output is the model's failure
    assert exec_standin.pods == {}


# -- a real cluster: KUBECONFIG pointing at one, the base image available to its nodes -----------------------

IMAGE = os.environ.get("HB_K8S_TEST_IMAGE", m.DEFAULT_IMAGE)
NAMESPACE = os.environ.get("HB_K8S_TEST_NAMESPACE")
HOG = "python3 -c \"x = b'x' * (200 * 1024 * 1024)\""  # touches every page of 200 MiB


@pytest.fixture
def cluster():
    backend = KubernetesBackend("itest", namespace=NAMESPACE, schedule_timeout_s=120)
    try:
        backend.check()
    except EnforcementUnavailable as exc:
        pytest.skip(f"no Kubernetes cluster on this machine: {exc}")
    yield backend
    backend.close()


@pytest.mark.may_skip("no Kubernetes cluster on this machine")
def test_real_cluster_oom_at_1x_and_recovery_uncapped(cluster):
    spec = Spec(cpus=0.5, memory_bytes=96 * MI)
    strict = cluster.provision(Allocation.of(spec, Multiplier.parse("1")), "oom[a@1x#1]-aa", image=IMAGE, network=True)
    try:
        assert strict.exec(HOG, timeout=60).exit_code == 137  # an exec'd process: the container keeps running
        evidence = strict.evidence()
        assert evidence.oom_kills >= 1 and evidence.oom_source.startswith("memory.")
        assert strict.applied_limits()["qos_class"] == "Guaranteed"
    finally:
        strict.close()
    loose = cluster.provision(Allocation.of(spec, Multiplier(None)), "oom[a@uncapped#1]-aa", image=IMAGE, network=True)
    try:
        assert loose.exec(HOG, timeout=60).exit_code == 0
        assert loose.evidence().oom_kills == 0
        assert loose.applied_limits()["qos_class"] == "Burstable"
    finally:
        loose.close()


@pytest.mark.may_skip("no Kubernetes cluster on this machine")
def test_real_cluster_timeout_kills_the_command_and_files_round_trip(cluster):
    sandbox = cluster.provision(allocation("1"), "t[a@1x#1]-aa", image=IMAGE, network=True)
    try:
        result = sandbox.exec("sleep 30 & sleep 30; echo never", timeout=2)
        assert result.timed_out and result.exit_code == 124 and result.duration_s < 15
        assert sandbox.exec("ps -eo args | grep -c '^sleep 30' || true", timeout=10).stdout.strip() == "0"
        data = bytes(range(256)) * 5000
        sandbox.write_file("sub/data.bin", data)
        assert sandbox.read_file("sub/data.bin", text=False) == data
        with pytest.raises(FileNotFoundError):
            sandbox.read_file("missing.txt")
    finally:
        sandbox.close()


@pytest.mark.may_skip("no Kubernetes cluster on this machine")
def test_real_cluster_network_off_policy_recorded_and_pods_reaped(cluster):
    sandbox = cluster.provision(allocation("1"), "n[a@1x#1]-aa", image=IMAGE, network=False)
    assert sandbox.applied_limits()["network_policy"]["enforced"] in (True, False)  # the CNI decides; recorded
    other = KubernetesBackend("itest-other", namespace=NAMESPACE)
    assert other.reap() == 0  # the pod's owner, this process, is alive
    other.close()
    cluster.close()  # its own pods go at close
    assert sandbox._read() is None or sandbox._read().metadata.deletion_timestamp is not None
