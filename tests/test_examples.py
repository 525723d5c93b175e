"""The examples under examples/ parse, and every pytest and harnessbench command in them is one the CLI takes.

A GitHub Actions workflow (a matrix of shards, then a merge-and-gate job) and a
Kubernetes Indexed Job (shards as indexes, then a merge Job): the YAML is read,
the shell scripts in it are cut into commands, and each command is checked
against the real option parsers (pytest's ``--help`` with this plugin loaded;
the ``harnessbench`` argparse parser); values of the bake-off's own options are
parsed by the plugin's parsers; the shard count agrees everywhere it is written.
"""

import itertools
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pytest_harnessbench.__main__ import _parser
from pytest_harnessbench.config import parse_models, parse_multipliers
from pytest_harnessbench.shard import parse as parse_shard

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
GITHUB = EXAMPLES / "github-actions-shards.yml"
INDEXED_JOB = EXAMPLES / "kubernetes" / "indexed-job.yaml"
MERGE_JOB = EXAMPLES / "kubernetes" / "merge-job.yaml"

pytestmark = pytest.mark.e2e  # pytest --help in a subprocess gives every option pytest takes here


@pytest.fixture(scope="module")
def pytest_options():
    """Every option pytest accepts here, with this plugin and xdist loaded: read from ``pytest --help``."""
    text = subprocess.run([sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"], capture_output=True,
                          text=True, check=True).stdout
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", text))


def documents(path):
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def scripts_of_workflow(workflow) -> list[str]:
    return [step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]


def scripts_of_manifests(docs) -> list[tuple[str, dict]]:
    """(shell script, the container's environment) of every container of every Job."""
    found = []
    for doc in docs:
        if doc["kind"] != "Job":
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            assert container["command"] == ["sh", "-c"], container["command"]
            env = {e["name"]: e["value"] for e in container.get("env", [])}
            found += [(script, env) for script in container["args"]]
    return found


def commands(script: str, variables: dict[str, list[str]]) -> list[list[str]]:
    """Simple commands of a POSIX shell script, with ``$NAME`` expanded to each value it is given in the script
    (``NAME=...`` assignments, one per branch) or in ``variables``."""
    script = script.replace("${{ matrix.shard }}", "1").replace("\\\n", " ")
    values = {name: list(v) for name, v in variables.items()}
    out = []
    for line in script.splitlines():
        for assignment in re.findall(r'(?:^|;|then|else)\s*([A-Z_]+)=("[^"]*"|\S+)', line):
            name, value = assignment
            for expanded in _expand(value.strip('"'), values):
                values.setdefault(name, []).append(expanded)
        for part in re.split(r"\|\||&&|;|\|", line):
            part = part.strip()
            if not part or re.match(r"^(if|then|else|fi|\[|[A-Z_]+=)", part):
                continue
            out += [shlex.split(text) for text in _expand(part, values)]
    return out


def _expand(text: str, values: dict[str, list[str]]) -> list[str]:
    names = re.findall(r"\$\{?([A-Za-z_]+)\}?", text)
    if not names:
        return [text]
    for name in names:
        assert name in values, f"${name} has no value in the example (set it there or in the test's variables)"
    results = []
    for choice in itertools.product(*(values[n] for n in names)):
        expanded = text
        for name, value in zip(names, choice):
            expanded = re.sub(rf"\$\{{?{name}\}}?", value, expanded)
        results.append(expanded.replace('"', ""))
    return results


def check_pytest(argv: list[str], known: set[str], environ: dict[str, str]) -> None:
    for token in argv:
        if token.startswith("-") and token != "-":
            assert token.split("=")[0] in known, f"pytest has no option {token}: {shlex.join(argv)}"
    value = dict(zip(argv, argv[1:]))
    parse_models(value["--models"])
    parse_multipliers(value["--multipliers"])
    int(value["--samples"])
    assert parse_shard(value["--hb-shard"], environ) is not None


def check_harnessbench(argv: list[str]) -> None:
    try:
        _parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"harnessbench {shlex.join(argv)}: not accepted by the CLI (exit {exc.code})")


def run_commands(scripts, known, environ, variables):
    seen = {"pytest": [], "harnessbench": []}
    for script in scripts:
        for argv in commands(script, variables):
            if argv[0] == "pytest" or argv[:3] == [sys.executable, "-m", "pytest"]:
                check_pytest(argv[1:], known, environ)
                seen["pytest"].append(argv)
            elif argv[0] == "harnessbench":
                check_harnessbench(argv[1:])
                seen["harnessbench"].append(argv)
    return seen


def test_github_actions_workflow(pytest_options):
    workflow = documents(GITHUB)[0]
    matrix = workflow["jobs"]["shard"]["strategy"]["matrix"]["shard"]
    seen = run_commands(scripts_of_workflow(workflow), pytest_options, {}, {})
    assert len(seen["pytest"]) == 1 and {argv[0] for argv in seen["harnessbench"]} == {"harnessbench"}
    total = int(dict(zip(seen["pytest"][0], seen["pytest"][0][1:]))["--hb-shard"].split("/")[1])
    assert matrix == list(range(1, total + 1))  # the matrix and the N of K/N agree
    merge = next(argv for argv in seen["harnessbench"] if argv[1] == "merge")
    assert merge[3:] == [f"runs/shard-{k}" for k in matrix]  # every shard's artifact is merged
    assert {argv[1] for argv in seen["harnessbench"]} >= {"merge", "summary", "gate", "report"}
    assert workflow["jobs"]["merge-and-gate"]["needs"] == "shard"
    assert workflow["jobs"]["merge-and-gate"]["if"] == "always()"  # a failed shard is reported by the merge


def test_kubernetes_indexed_job(pytest_options):
    docs = documents(INDEXED_JOB)
    job = next(doc for doc in docs if doc["kind"] == "Job")
    assert job["spec"]["completionMode"] == "Indexed"
    completions = job["spec"]["completions"]
    (script, env), = scripts_of_manifests(docs)
    assert int(env["HARNESSBENCH_SHARD_TOTAL"]) == completions  # auto's total is the Job's completions
    checked = []
    for index in range(completions):
        environ = {**env, "JOB_COMPLETION_INDEX": str(index)}
        seen = run_commands([script], pytest_options, environ, {"JOB_COMPLETION_INDEX": [str(index)]})
        assert len(seen["pytest"]) == 2  # a new run directory, or a retried index resuming its own
        assert parse_shard("auto", environ).index == index + 1
        checked += seen["pytest"]
    assert any("--hb-resume" in argv for argv in checked) and any("--hb-out" in argv for argv in checked)
    claim = next(doc for doc in docs if doc["kind"] == "PersistentVolumeClaim")["metadata"]["name"]
    assert job["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim

    merge_docs = documents(MERGE_JOB)
    (merge_script, _), = scripts_of_manifests(merge_docs)
    seen = run_commands([merge_script], pytest_options, {}, {})
    merge = next(argv for argv in seen["harnessbench"] if argv[1] == "merge")
    assert merge[3:] == [f"/runs/shard-{k}" for k in range(completions)]  # the index's directories, 0-based
    assert {argv[1] for argv in seen["harnessbench"]} >= {"merge", "summary", "gate", "report"}


def test_the_checker_catches_a_wrong_option(pytest_options):
    """The checks above can fail: an option pytest does not know, a harnessbench command that is not one."""
    with pytest.raises(AssertionError, match="no option --hb-shards"):
        check_pytest(["x", "--models", "nop", "--multipliers", "1", "--samples", "1", "--hb-shards", "1/2"],
                     pytest_options, {})
    with pytest.raises(pytest.fail.Exception, match="not accepted"):
        check_harnessbench(["gate", "merged"])  # --baseline is required
