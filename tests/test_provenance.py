"""Provenance for the card (provenance.py): the CPU model from /proc/cpuinfo, image ids from the engine."""

import os

import pytest

from support.docker_probe import unavailable
from pytest_harnessbench.provenance import cpu_model, facts, image_digests

IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def test_cpu_model_is_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6338\n")
    assert cpu_model(cpuinfo) == "Intel(R) Xeon(R) Gold 6338"


def test_local_backend_runs_no_images_and_kubernetes_resolves_them_at_pull():
    assert image_digests("local", ["python:3.11", None]) == {}
    assert image_digests("kubernetes", ["python:3.11", None]) == {"python:3.11": None}
    card = facts("local", [])
    assert card["host"] and card["kernel"] and card["images"] == {}


@pytest.mark.docker
@pytest.mark.skipif(unavailable() is not None and not IN_CI, reason=str(unavailable()))  # under CI: fails instead
def test_docker_image_is_named_by_its_content_id():
    import docker

    from pytest_harnessbench.sandbox.docker import DEFAULT_IMAGE

    digests = image_digests("docker", [DEFAULT_IMAGE, "harnessbench/no-such-image:0"])
    assert digests[DEFAULT_IMAGE].split(",")[0] == docker.APIClient(version="auto").inspect_image(DEFAULT_IMAGE)["Id"]
    assert digests[DEFAULT_IMAGE].startswith("sha256:")
    assert digests["harnessbench/no-such-image:0"] is None
