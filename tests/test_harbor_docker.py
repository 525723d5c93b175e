"""Harbor task directories on the docker backend: image builds, the verifier, and nothing left behind.

Needs a running engine and the offline base image (.ci/docker-setup.sh); skipped
without them on a developer machine, failing under CI (like test_docker_backend.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pytest_harnessbench.sandbox.docker import LABEL_RUN

from test_docker_backend import _REASON, IN_CI  # the same probe of the engine and base image
from support.rundir import results

pytest_plugins = ["pytester"]
pytestmark = [pytest.mark.docker, pytest.mark.e2e]  # each test runs a bake-off on docker in a subprocess

if _REASON and not IN_CI:
    pytest.skip(f"no usable Docker engine: {_REASON}", allow_module_level=True)

EXAMPLES = Path(__file__).resolve().parent.parent / "example_suite" / "harbor_tasks"


@pytest.fixture
def api():
    import docker

    client = docker.APIClient(version="auto")
    yield client
    client.close()


def _dangling(api) -> set[str]:
    return {image["Id"] for image in api.images(filters={"dangling": True})}


def _records(path: Path) -> dict[tuple[str, str, str], dict]:
    records = results(path)
    return {(r["task_id"].rsplit("::", 1)[-1], r["model"], r["multiplier"]): r for r in records}


def test_example_harbor_tasks_oracle_and_nop_at_1x_and_3x(pytester, api):
    """The issue's acceptance run: hungry-sort is infra/oom at 1x and passes at 3x; nop fails everything."""
    shutil.copytree(EXAMPLES, pytester.path / "harbor_tasks")
    dangling = _dangling(api)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "harbor_tasks", "--hb-backend", "docker",
                                           "--models", "oracle,nop", "--multipliers", "1,3", "--hb-out", "run")
    result.stdout.fnmatch_lines(["reward keys (*", "  oracle@1x: correct 1/1, parses 1/1, reward 2/3",
                                 "Harbor tasks whose measured peak memory exceeds their declared memory*",
                                 "  hungry-sort/task.toml::hungry-sort  declared 64Mi, peak *, over in 1/4 trials",
                                 "*8 failed, 7 passed, 1 infra*"])
    records = _records(pytester.path / "run")
    assert len(records) == 16
    hungry_1x = records[("hungry-sort", "oracle", "1x")]
    assert (hungry_1x["outcome"], hungry_1x["cause"]) == ("infra", "oom")
    assert records[("hungry-sort", "oracle", "3x")]["outcome"] == "passed"
    for (task, model, mult), record in records.items():
        if model == "nop":
            assert (record["outcome"], record["cause"]) == ("failed", "assertion"), (task, mult)
        elif task != "hungry-sort":
            assert record["outcome"] == "passed", (task, mult, record["message"])
    assert records[("multi-metric", "oracle", "1x")]["rewards"] == {"parses": 1, "correct": 1}
    assert records[("multi-metric", "nop", "1x")]["rewards"] == {"parses": 0, "correct": 0}
    assert not api.containers(all=True, filters={"label": f"{LABEL_RUN}={hungry_1x['run_id']}"})
    assert _dangling(api) <= dangling


BROKEN = {
    "build-fails": ('[environment]\nbuild_timeout_sec = 120\nnetwork_mode = "no-network"\n',
                    "FROM harnessbench/python:3.11\nRUN echo layer > /layer.txt\nRUN echo 'broken step' && false\n"),
    "build-slow": ('[environment]\nbuild_timeout_sec = 2\nnetwork_mode = "no-network"\n',
                   "FROM harnessbench/python:3.11\nRUN sleep 30\n"),
    "verifier-slow": ('[verifier]\ntimeout_sec = 2\n[environment]\ndocker_image = "harnessbench/python:3.11"\n'
                      'network_mode = "no-network"\n', None),
    "no-reward": ('[environment]\ndocker_image = "harnessbench/python:3.11"\nnetwork_mode = "no-network"\n', None),
}
TEST_SH = {"verifier-slow": "sleep 30\necho 1 > /logs/verifier/reward.txt\n", "no-reward": "echo checked; exit 0\n"}


def test_build_failure_timeout_and_verifier_faults(pytester, api):
    """Build failure or timeout: infra/sandbox_start with the build log; verifier timeout: failed/timeout;
    no reward: failed/verifier. No container and no dangling layer stays behind."""
    for name, (toml, dockerfile) in BROKEN.items():
        task = pytester.path / name
        for sub in ("environment", "tests", "solution"):
            (task / sub).mkdir(parents=True)
        (task / "task.toml").write_text(toml)
        (task / "instruction.md").write_text("Nothing to do.\n")
        (task / "tests" / "test.sh").write_text(TEST_SH.get(name, "echo 1 > /logs/verifier/reward.txt\n"))
        if dockerfile:
            (task / "environment" / "Dockerfile").write_text(dockerfile)
    dangling = _dangling(api)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--hb-backend", "docker", "--models", "nop",
                                           "--hb-out", "run")
    result.stdout.fnmatch_lines(["*2 failed, 2 infra*"])
    records = {task: r for (task, _, _), r in _records(pytester.path / "run").items()}
    assert (records["build-fails"]["outcome"], records["build-fails"]["cause"]) == ("infra", "sandbox_start")
    assert "broken step" in records["build-fails"]["message"]  # the build log's tail
    assert (records["build-slow"]["outcome"], records["build-slow"]["cause"]) == ("infra", "sandbox_start")
    assert "build_timeout_sec = 2" in records["build-slow"]["message"]
    assert (records["verifier-slow"]["outcome"], records["verifier-slow"]["cause"]) == ("failed", "timeout")
    assert (records["no-reward"]["outcome"], records["no-reward"]["cause"]) == ("failed", "verifier")
    assert "tests/test.sh exited 0" in records["no-reward"]["message"]
    assert not api.containers(all=True, filters={"label": f"{LABEL_RUN}={records['no-reward']['run_id']}"})
    assert _dangling(api) <= dangling
    assert not [c for c in api.containers(all=True) if c["Image"].startswith("harnessbench/python")
                and "sleep 30" in (c.get("Command") or "")]  # the cancelled build's step container is gone
