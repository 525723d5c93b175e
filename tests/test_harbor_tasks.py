"""Harbor task directories: parsing (pure), rewards, and the usage errors of malformed ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import inprocess

from pytest_harnessbench.harbor import (HarborTaskError, RewardError, content_hash, load_task, parse_rewards,
                                        parse_size_mb, passed, resolve_env, strip_canary)

CURRENT = """\
schema_version = "1.4"
[agent]
timeout_sec = 300
[verifier]
timeout_sec = 120
env = { MODE = "strict" }
[environment]
cpus = 2
memory_mb = 512
storage_mb = 1024
build_timeout_sec = 60
workdir = "/app"
network_mode = "no-network"
env = { TOKEN = "${HB_TEST_TOKEN:-none}" }
"""

LEGACY = """\
version = "1.0"
[verifier]
timeout_sec = 900.0
[agent]
timeout_sec = 900.0
[environment]
build_timeout_sec = 600.0
cpus = 1
memory = "2G"
storage = "10G"
"""


def make_task(root: Path, toml: str | None = CURRENT, *, name: str = "demo", dockerfile: bool = True,
              test_sh: bool = True, solve_sh: bool = True, instruction: str = "Do it.\n") -> Path:
    task = root / name
    (task / "environment").mkdir(parents=True)
    (task / "tests").mkdir()
    (task / "solution").mkdir()
    if toml is not None:
        (task / "task.toml").write_text(toml)
    if dockerfile:
        (task / "environment" / "Dockerfile").write_text("FROM harnessbench/python:3.11\nWORKDIR /app\n")
    if test_sh:
        (task / "tests" / "test.sh").write_text("echo 1 > /logs/verifier/reward.txt\n")
    if solve_sh:
        (task / "solution" / "solve.sh").write_text("true\n")
    (task / "instruction.md").write_text(instruction)
    return task


def test_current_keys(tmp_path, monkeypatch):
    monkeypatch.delenv("HB_TEST_TOKEN", raising=False)
    task = load_task(make_task(tmp_path))
    assert task.name == "demo"
    assert (task.spec.cpus, task.spec.memory_bytes, task.spec.timeout_s) == (2.0, 512 * 2**20, 300.0)
    assert (task.workdir, task.network, task.docker_image) == ("/app", False, None)
    assert (task.build_timeout_s, task.verifier_timeout_s) == (60.0, 120.0)
    assert task.spec.verify_timeout_s == 120.0  # [verifier] timeout_sec is the verify phase's budget
    assert task.verifier_env == {"MODE": "strict"}
    assert resolve_env(task.env, {}) == {"TOKEN": "none"}
    assert task.declared["storage_mb"] == 1024


def test_legacy_terminal_bench_keys(tmp_path):
    """Terminal-Bench 2.0's task.toml: version, memory = "2G", storage = "10G" (G = 1024 MB)."""
    task = load_task(make_task(tmp_path, LEGACY) / "task.toml")
    assert task.spec.memory_bytes == 2048 * 2**20
    assert task.declared == {"cpus": 1, "memory_mb": 2048, "storage_mb": 10240, "schema_version": "1.0"}
    assert task.network is True  # Harbor's default network_mode is public
    assert task.workdir is None  # the image's own WORKDIR


def test_defaults_agent_timeout_absent_is_no_limit(tmp_path):
    task = load_task(make_task(tmp_path, "[environment]\nmemory_mb = 256\n"))
    assert task.spec.timeout_s is None
    assert task.verifier_timeout_s == 600.0 and task.build_timeout_s == 600.0


def test_legacy_sizes_as_harbor_parses_them():
    assert parse_size_mb("2G") == 2048 and parse_size_mb("512m") == 512 and parse_size_mb("2048K") == 2
    with pytest.raises(ValueError):
        parse_size_mb("2Gi")


def test_canary_lines_stripped():
    text = "<!-- BENCHMARK DATA. canary GUID 1234 -->\n# terminal-bench-canary GUID 5678\n\nSort the file.\n# not canary? kept\n"
    assert strip_canary(text) == "Sort the file.\n# not canary? kept\n"
    assert strip_canary("No canary here.\n") == "No canary here.\n"


def test_docker_image_instead_of_dockerfile(tmp_path):
    task = load_task(make_task(tmp_path, '[environment]\ndocker_image = "harnessbench/python:3.11"\n', dockerfile=False))
    assert task.docker_image == "harnessbench/python:3.11"


@pytest.mark.parametrize("toml, kwargs, names", [
    (None, {}, ["task.toml", "missing"]),
    ("[environment\nmemory_mb = 1", {}, ["task.toml", "not valid TOML"]),
    ('[environment]\nmemory = "2Q"\n', {}, ["task.toml", "[environment] memory", "unknown unit"]),
    ('[environment]\nmemory = "2G"\nmemory_mb = 1024\n', {}, ["[environment] memory", "conflicts with memory_mb"]),
    ('[environment]\ncpus = "two"\n', {}, ["[environment] cpus"]),
    ('[agent]\ntimeout_sec = -1\n', {}, ["[agent] timeout_sec"]),
    ('[environment]\nnetwork_mode = "allowlist"\n', {}, ["[environment] network_mode"]),
    (CURRENT, {"test_sh": False}, ["tests/test.sh", "missing"]),
    (CURRENT, {"dockerfile": False}, ["environment/Dockerfile", "docker_image"]),
])
def test_malformed_directories_name_file_and_field(tmp_path, toml, kwargs, names):
    with pytest.raises(HarborTaskError) as info:
        load_task(make_task(tmp_path, toml, **kwargs))
    message = str(info.value)
    assert "\n" not in message
    for name in names:
        assert name in message


def test_content_hash_follows_the_files(tmp_path):
    env = make_task(tmp_path) / "environment"
    first = content_hash(env)
    assert content_hash(env) == first
    (env / "data.txt").write_text("x")
    assert content_hash(env) != first


def test_rewards():
    assert parse_rewards(None, "1\n") == {"reward": 1.0}
    assert parse_rewards('{"build": 1, "tests": 0.5}', "1") == {"build": 1, "tests": 0.5}  # json wins
    assert passed({"build": 1, "tests": 1.0}) and not passed({"build": 1, "tests": 0.5}) and not passed({})
    for json_text, txt in [(None, None), ("", None), (None, " "), ('{"a": "x"}', None), (None, "nan"),
                           ("[1", None)]:
        with pytest.raises(RewardError):
            parse_rewards(json_text, txt)


def test_env_reference_without_value_or_default():
    with pytest.raises(HarborTaskError, match="HB_UNSET_VAR"):
        resolve_env({"X": "${HB_UNSET_VAR}"}, {})
    assert resolve_env({"X": "a-${V}-b"}, {"V": "1"}) == {"X": "a-1-b"}


# ---------------------------------------------------------------- collection, through the plugin

pytest_plugins = ["pytester"]

MARKER_TASK = """
import pytest

@pytest.mark.task(cpus=1, memory="64Mi", timeout=30, solutions="echo done > out.txt")
def test_marker(trial):
    trial.run_agent("write out.txt")
    assert trial.sandbox.read_file("out.txt").strip() == "done"
"""


def test_harbor_tasks_mix_with_marker_tasks_and_skip_on_local(pytester):
    """Same models × multipliers × samples and id scheme; the local backend skips Harbor tasks with a reason."""
    make_task(pytester.path, CURRENT, name="demo-task")
    (pytester.path / "demo-task" / "tests" / "test_outputs.py").write_text("import not_installed_here\n")
    pytester.makepyfile(test_marker=MARKER_TASK)
    result = inprocess.run(pytester, "-p", "no:cacheprovider", "--co", "-q", "--models", "oracle,nop",
                           "--multipliers", "1,3", "--samples", "2")
    result.stdout.fnmatch_lines(["demo-task/task.toml::demo-task[oracle@1x#1]", "demo-task/task.toml::demo-task[nop@3x#2]",
                                 "test_marker.py::test_marker[nop@3x#2]", "16 tests collected*"])
    assert "test_outputs" not in result.stdout.str()  # a task's own tests/ are not pytest's to collect
    result = inprocess.run(pytester, "-p", "no:cacheprovider", "-rs", "--models", "oracle", "--hb-out", "run")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*Harbor task: its environment is a container image; run it with --hb-backend docker*"])


MALFORMED = [
    (None, {}, "*bad/task.toml: missing*"),
    ('[environment]\nmemory = "2Q"\n', {}, "*bad/task.toml: [[]environment[]] memory: unknown unit*"),
    (CURRENT, {"test_sh": False}, "*bad/tests/test.sh: missing*"),
    ("[agent\n", {}, "*bad/task.toml: not valid TOML*"),
    (CURRENT, {"solve_sh": False}, "*bad/solution/solve.sh is missing*"),
]


def assert_usage_error(pytester, toml, kwargs, expected, *xdist):
    make_task(pytester.path, toml, name="bad", **kwargs)
    (pytester.path / "bad" / "tests" / "test_outputs.py").write_text("import not_installed_here\n")
    args = ["-p", "no:cacheprovider", "--models", "oracle", *xdist]
    result = pytester.runpytest_subprocess(*args) if xdist else inprocess.run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {expected}"])


@pytest.mark.parametrize("toml, kwargs, expected", MALFORMED)
def test_malformed_task_directory_is_a_usage_error(pytester, toml, kwargs, expected):
    assert_usage_error(pytester, toml, kwargs, expected)


@pytest.mark.e2e
@pytest.mark.parametrize("toml, kwargs, expected", [MALFORMED[0], MALFORMED[3]])  # a file check, a parse error
def test_malformed_task_directory_is_a_usage_error_under_xdist(pytester, toml, kwargs, expected):
    """Where workers collect (and tests/test_outputs.py is never imported), the error is relayed as it is: every
    check raises the same error type from the same collector, so two of them stand for all (3 s of CPU each)."""
    assert_usage_error(pytester, toml, kwargs, expected, "-n", "1")


def _record(task_id, model, mult, peak, declared=64 * 2**20, rewards=None):
    return {"task_id": task_id, "model": model, "multiplier": mult, "rewards": rewards,
            "allocation": {"guarantee": {"memory_bytes": declared}}, "resources": {"peak_memory_bytes": peak}}


def test_summary_lists_harbor_tasks_over_their_declared_memory_and_reward_keys():
    from pytest_harnessbench import report
    from pytest_harnessbench.records import TrialRecord
    from pytest_harnessbench.summary import summarize

    def over_declared_lines(records):
        return report.over_declared_lines(summarize([TrialRecord.from_dict(r) for r in records]))

    def reward_key_lines(records, models, multipliers):
        typed = [TrialRecord.from_dict(r) for r in records]
        return report.reward_key_lines(summarize(typed, models=models, multipliers=multipliers))

    records = [_record("suite/hungry/task.toml::hungry", "oracle", "1x", 64 * 2**20),
               _record("suite/hungry/task.toml::hungry", "oracle", "3x", 120 * 2**20),
               _record("suite/lean/task.toml::lean", "oracle", "3x", 10 * 2**20),
               _record("test_x.py::test_marker", "oracle", "3x", 200 * 2**20)]  # a marker task: not listed
    lines = over_declared_lines(records)
    assert len(lines) == 2
    assert "suite/hungry/task.toml::hungry  declared 64Mi, peak 120Mi (1.88×), over in 1/2 trials" in lines[1]
    assert reward_key_lines(records, ["oracle"], ["1x", "3x"]) == []
    records += [_record("m/task.toml::m", "oracle", "1x", 1, rewards={"parses": 1, "correct": 0}),
                _record("m/task.toml::m", "oracle", "3x", 1, rewards={"parses": 1, "correct": 1})]
    assert reward_key_lines(records, ["oracle"], ["1x", "3x"])[1:] == ["  oracle@1x: correct 0/1, parses 1/1",
                                                                      "  oracle@3x: correct 1/1, parses 1/1"]
