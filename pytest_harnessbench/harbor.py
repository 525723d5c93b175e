"""Harbor / Terminal-Bench task directories, read unmodified, run as harnessbench tasks.

A task directory holds ``task.toml``, ``instruction.md``, ``environment/``
(a ``Dockerfile`` unless ``[environment] docker_image`` names an image),
``tests/test.sh`` and, for the oracle, ``solution/solve.sh``. The rules below
are Harbor's own (``harbor==0.25.0``), each with the file it comes from:

- ``models/task/config.py``: ``TaskConfig`` renames a top-level ``version`` to
  ``schema_version``; ``EnvironmentConfig`` maps the legacy ``memory``/``storage``
  strings (``"2G"``, ``"512M"``, ``"100K"``: G = 1024 MB, K = 1/1024 MB) onto
  ``memory_mb``/``storage_mb`` and refuses a conflict between the two;
  ``build_timeout_sec`` defaults to 600, ``[agent] timeout_sec`` to none (no
  limit), ``[verifier] timeout_sec`` to 600 (our ``verify_timeout``: the
  verify phase's budget); ``network_mode`` defaults to
  ``public`` (the legacy ``allow_internet`` maps onto it).
- ``models/task/task.py``: ``strip_canary`` drops leading ``<!-- ...canary... -->``
  or ``# ...canary...`` lines of ``instruction.md`` and the blank lines after them.
- ``models/task/paths.py`` / ``models/trial/paths.py``: ``tests/`` goes to
  ``/tests``, ``solution/`` to ``/solution``; rewards are read from
  ``/logs/verifier/reward.json``, else ``/logs/verifier/reward.txt``.
- ``verifier/verifier.py``: the test script is made executable and run in the
  task's workdir; its exit status is ignored; a reward file that is missing,
  empty or not numbers is the verifier's failure.
- ``agents/oracle.py``: the oracle uploads ``solution/`` to ``/solution`` and
  runs ``solve.sh`` (``DEBIAN_FRONTEND=noninteractive``, exit status ignored).
- ``environments/docker/docker.py``: commands run as ``bash -c`` with ``-w``
  the task's ``workdir``, else the image's own WORKDIR; a script without a
  ``#!`` line is therefore run by bash.

Parsing is pure (no pytest, no docker): :func:`load_task` raises
:class:`HarborTaskError` naming the file and field.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .resources import Spec

CONFIG = "task.toml"
TESTS_DIR, SOLUTION_DIR, VERIFIER_DIR, AGENT_LOG_DIR = "/tests", "/solution", "/logs/verifier", "/logs/agent"
REWARD_JSON, REWARD_TXT = f"{VERIFIER_DIR}/reward.json", f"{VERIFIER_DIR}/reward.txt"
IMAGE_REPOSITORY = "harnessbench-task"  # images built from task Dockerfiles: harnessbench-task/NAME:CONTENT_HASH
DEFAULT_BUILD_TIMEOUT_S = 600.0
DEFAULT_VERIFIER_TIMEOUT_S = 600.0
NETWORK_MODES = ("no-network", "public")  # "allowlist" needs an egress proxy this plugin does not have

# models/task/task.py: _CANARY_LINE_RE
_CANARY_LINE = re.compile(r"^(<!--.*canary.*-->|#.*canary.*)$", re.IGNORECASE)
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class HarborTaskError(ValueError):
    """A task directory that cannot be run: the message names the file and the field."""


@dataclass(frozen=True)
class HarborTask:
    """One Harbor task directory, parsed."""

    path: Path
    name: str
    instruction: str
    spec: Spec
    docker_image: str | None  # a prebuilt image; else environment/Dockerfile is built
    workdir: str | None  # None: the image's own WORKDIR
    network: bool
    env: dict[str, str] = field(default_factory=dict)  # [environment] env, ${VAR} references unresolved
    verifier_env: dict[str, str] = field(default_factory=dict)
    solution_env: dict[str, str] = field(default_factory=dict)
    build_timeout_s: float = DEFAULT_BUILD_TIMEOUT_S
    verifier_timeout_s: float = DEFAULT_VERIFIER_TIMEOUT_S
    declared: dict = field(default_factory=dict)  # the resources as task.toml states them, for the record

    @property
    def environment_dir(self) -> Path:
        return self.path / "environment"

    @property
    def tests_dir(self) -> Path:
        return self.path / "tests"

    @property
    def solution_dir(self) -> Path:
        return self.path / "solution"

    @property
    def has_solution(self) -> bool:
        return (self.solution_dir / "solve.sh").is_file()

    def image_tag(self) -> str:
        """``harnessbench-task/NAME:HASH``, HASH over every file of ``environment/`` (names, modes, bytes)."""
        return f"{IMAGE_REPOSITORY}/{_docker_name(self.name)}:{content_hash(self.environment_dir)}"


def is_task_id(task_id: str) -> bool:
    """Whether a record's task is a Harbor task directory (collected as ``DIR/task.toml::NAME``)."""
    function_id = task_id.split("[", 1)[0]
    return function_id.rpartition("::")[0].rsplit("/", 1)[-1] == CONFIG


def strip_canary(text: str) -> str:
    """Leading canary comment lines and the blank lines after them, removed (Harbor's ``strip_canary``)."""
    lines = text.split("\n")
    i = 0
    while i < len(lines) and _CANARY_LINE.match(lines[i].strip()):
        i += 1
    while i < len(lines) and lines[i].strip() == "":
        i += 1
    return "\n".join(lines[i:])


def parse_size_mb(value: str) -> int:
    """Harbor's legacy size strings in MB (``EnvironmentConfig._parse_size_to_mb``): G×1024, M, K÷1024."""
    text = value.strip().upper()
    factors = {"G": 1024, "M": 1, "K": 1 / 1024}
    if not text or text[-1] not in factors:
        raise ValueError(f"{value!r} is not a size; use e.g. '2G', '512M'")
    try:
        return int(float(text[:-1]) * factors[text[-1]])
    except ValueError:
        raise ValueError(f"{value!r} is not a size; use e.g. '2G', '512M'") from None


def content_hash(directory: Path) -> str:
    """A stable digest of a directory's files (relative names, modes, contents): the image cache key."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(directory).as_posix()}\0{path.stat().st_mode & 0o777:o}\0".encode())
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def resolve_env(values: dict[str, str], environ: dict[str, str] | None = None) -> dict[str, str]:
    """``${VAR}`` and ``${VAR:-default}`` from the host's environment (Harbor's ``resolve_env_vars``).

    Raises:
        HarborTaskError: a referenced variable is unset and has no default.
    """
    environ = os.environ if environ is None else environ

    def one(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise HarborTaskError(f"environment variable {name} is not set (a task's env refers to it)")

    return {key: _ENV_REF.sub(one, str(value)) for key, value in values.items()}


def load_task(path: Path) -> HarborTask:
    """Parse a task directory (or its ``task.toml``).

    Raises:
        HarborTaskError: a missing file, bad TOML, an unknown unit, a value of the wrong type;
            the message starts with the file and names the field.
    """
    path = Path(path)
    task_dir = path.parent if path.name == CONFIG else path
    config_path = task_dir / CONFIG
    data = _read_toml(config_path)
    environment = _table(data, "environment", config_path)
    agent = _table(data, "agent", config_path)
    verifier = _table(data, "verifier", config_path)
    solution = _table(data, "solution", config_path)
    where = lambda key: f"{config_path}: [environment] {key}"  # noqa: E731

    memory_mb = _size_mb(environment, "memory_mb", "memory", where)
    storage_mb = _size_mb(environment, "storage_mb", "storage", where)
    cpus = _number(environment, "cpus", where, default=Spec.cpus)
    agent_timeout = _number(agent, "timeout_sec", lambda k: f"{config_path}: [agent] {k}", default=None)
    network_mode = environment.get("network_mode")
    if network_mode is None and "allow_internet" in environment:  # deprecated spelling
        network_mode = "public" if environment["allow_internet"] else "no-network"
    network_mode = network_mode or "public"
    if network_mode not in NETWORK_MODES:
        raise HarborTaskError(f"{where('network_mode')} = {network_mode!r}: this plugin runs "
                              f"{' or '.join(map(repr, NETWORK_MODES))}")
    docker_image = environment.get("docker_image")
    if docker_image is None and not (task_dir / "environment" / "Dockerfile").is_file():
        raise HarborTaskError(f"{task_dir / 'environment' / 'Dockerfile'}: missing (and no [environment] docker_image "
                              f"in {config_path})")
    if not (task_dir / "tests" / "test.sh").is_file():
        raise HarborTaskError(f"{task_dir / 'tests' / 'test.sh'}: missing (the verifier; Harbor runs it after the agent)")
    instruction_path = task_dir / "instruction.md"
    if not instruction_path.is_file():
        raise HarborTaskError(f"{instruction_path}: missing (the instruction given to the agent)")
    verifier_timeout = float(_number(verifier, "timeout_sec", lambda k: f"{config_path}: [verifier] {k}",
                                     default=DEFAULT_VERIFIER_TIMEOUT_S))
    spec = Spec(cpus=float(cpus), memory_bytes=(memory_mb or Spec.memory_bytes // 2**20) * 2**20,
                timeout_s=None if agent_timeout is None else float(agent_timeout), verify_timeout_s=verifier_timeout)
    return HarborTask(
        path=task_dir, name=task_dir.name, instruction=strip_canary(instruction_path.read_text()), spec=spec,
        docker_image=docker_image, workdir=environment.get("workdir"), network=network_mode == "public",
        env=_string_table(environment, "env", where), solution_env=_string_table(solution, "env", where),
        verifier_env=_string_table(verifier, "env", lambda k: f"{config_path}: [verifier] {k}"),
        build_timeout_s=float(_number(environment, "build_timeout_sec", where, default=DEFAULT_BUILD_TIMEOUT_S)),
        verifier_timeout_s=verifier_timeout,
        declared={"cpus": cpus if "cpus" in environment else None, "memory_mb": memory_mb, "storage_mb": storage_mb,
                  "schema_version": str(data.get("schema_version", data.get("version", "")))},
    )


def _read_toml(config_path: Path) -> dict:
    if not config_path.is_file():
        raise HarborTaskError(f"{config_path}: missing (a Harbor task directory needs one)")
    try:
        return tomllib.loads(config_path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise HarborTaskError(f"{config_path}: not valid TOML ({exc})") from None


def _table(data: dict, name: str, config_path: Path) -> dict:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise HarborTaskError(f"{config_path}: {name} must be a table ([{name}]), not {value!r}")
    return value


def _number(table: dict, key: str, where, default):
    value = table.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
        raise HarborTaskError(f"{where(key)} = {value!r}: must be a positive number")
    return value


def _size_mb(table: dict, key: str, legacy: str, where) -> int | None:
    """``memory_mb`` (current) or ``memory = "2G"`` (legacy, Terminal-Bench 2.0); both must agree."""
    current = _number(table, key, where, default=None)
    if current is not None and not isinstance(current, int):
        raise HarborTaskError(f"{where(key)} = {current!r}: must be a whole number of MB")
    if legacy not in table:
        return current
    raw = table[legacy]
    if not isinstance(raw, str):
        raise HarborTaskError(f"{where(legacy)} = {raw!r}: must be a string such as '2G' or '512M'")
    try:
        mb = parse_size_mb(raw)
    except ValueError as exc:
        raise HarborTaskError(f"{where(legacy)}: unknown unit: {exc}") from None
    if current is not None and current != mb:
        raise HarborTaskError(f"{where(legacy)} = {raw!r} ({mb} MB) conflicts with {key} = {current}")
    return mb


def _string_table(table: dict, key: str, where) -> dict[str, str]:
    value = table.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(v, (str, int, float)) for v in value.values()):
        raise HarborTaskError(f"{where(key)}: must be a table of strings")
    return {k: str(v) for k, v in value.items()}


def _docker_name(text: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-.") or "task"


# -- rewards ------------------------------------------------------------------------------


class RewardError(Exception):
    """The verifier left no usable reward (missing, empty, not numbers): the verifier's failure."""


def parse_rewards(json_text: str | None, txt_text: str | None) -> dict[str, float]:
    """The verifier's rewards: ``reward.json`` (a flat object of numbers) if present, else ``reward.txt``.

    Raises:
        RewardError: neither file, an empty one, or values that are not finite numbers.
    """
    if json_text is not None:
        if not json_text.strip():
            raise RewardError(f"{REWARD_JSON} is empty")
        try:
            rewards = json.loads(json_text)
        except ValueError:
            raise RewardError(f"{REWARD_JSON} is not JSON: {json_text[:80]!r}") from None
        if not isinstance(rewards, dict):
            rewards = {"reward": rewards}
        for key, value in rewards.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise RewardError(f"{REWARD_JSON}: {key} = {value!r} is not a finite number")
        return dict(rewards)
    if txt_text is not None:
        if not txt_text.strip():
            raise RewardError(f"{REWARD_TXT} is empty")
        try:
            value = float(txt_text)
        except ValueError:
            raise RewardError(f"{REWARD_TXT} is not a number: {txt_text[:80]!r}") from None
        if not math.isfinite(value):
            raise RewardError(f"{REWARD_TXT}: {value!r} is not a finite number")
        return {"reward": value}
    raise RewardError(f"the verifier wrote neither {REWARD_JSON} nor {REWARD_TXT}")


def passed(rewards: dict[str, float]) -> bool:
    """A trial passes when every reward key is at least 1."""
    return bool(rewards) and all(value >= 1 for value in rewards.values())


# -- commands run in the sandbox -------------------------------------------------------------


def script_command(script: str, env: dict[str, str] | None = None, log: str | None = None) -> str:
    """Harbor's way to run a task script: made executable, executed from bash (no ``#!``: bash runs it)."""
    exports = "".join(f"export {k}={shlex.quote(v)}; " for k, v in (env or {}).items())
    run = f"{exports}{shlex.quote(script)}"
    if log:
        run = f"({run}) > {shlex.quote(log)} 2>&1"
    return f"chmod +x {shlex.quote(script)} && {run}"


def oracle_command(task: HarborTask) -> str:
    """What the oracle runs once ``solution/`` is at ``/solution`` (Harbor's OracleAgent)."""
    env = {"DEBIAN_FRONTEND": "noninteractive", **task.solution_env}
    return script_command(f"{SOLUTION_DIR}/solve.sh", env)


# -- a trial of a Harbor task (duck-typed: ``trial`` is a trial.Trial, ``backend`` a sandbox.base.Backend) ----------


def prepare(backend, task: HarborTask) -> tuple[str, str, dict[str, str]]:
    """The image to run (``docker_image``, else ``environment/Dockerfile`` built and cached by content hash),
    the workdir (the task's, else the image's own) and the environment variables.

    Raises:
        SandboxStartError: the build failed or ran past ``build_timeout_sec`` (an infra outcome).
    """
    image = task.docker_image
    if image is None:
        image = task.image_tag()
        backend.build_image(str(task.environment_dir), image, task.build_timeout_s)
    return image, task.workdir or backend.image_workdir(image), resolve_env(task.env)


def upload(sandbox, source: Path, target: str) -> None:
    """Copy a task directory's files into the sandbox under ``target`` (absolute)."""
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        sandbox.write_file(f"{target}/{path.relative_to(source).as_posix()}", path.read_bytes())


def run(trial, task: HarborTask) -> None:
    """The body of a Harbor task's trial: agent phase, then ``tests/`` in, ``tests/test.sh``, its reward.

    ``solution/`` goes in only for the oracle, ``tests/`` only after the agent
    phase, so no model can read either. Sets ``trial.rewards``.

    Raises:
        AssertionError: a reward key below 1 (failed/assertion).
        VerifierFailed: the verifier timed out, or left no usable reward.
    """
    from .outcomes import VerifierFailed

    sandbox = trial.sandbox
    sandbox.exec(f"mkdir -p {AGENT_LOG_DIR} {VERIFIER_DIR}")
    if trial.case.model.kind == "oracle":
        upload(sandbox, task.solution_dir, SOLUTION_DIR)
    trial.run_agent(task.instruction)
    upload(sandbox, task.tests_dir, TESTS_DIR)
    sandbox.exec(f"rm -f {REWARD_JSON} {REWARD_TXT}")
    result = sandbox.exec(script_command(f"{TESTS_DIR}/test.sh", resolve_env(task.verifier_env),
                                         log=f"{VERIFIER_DIR}/test-stdout.txt"), timeout=task.verifier_timeout_s)
    if result.timed_out:
        raise VerifierFailed("timeout", f"tests/test.sh ran past [verifier] timeout_sec = {task.verifier_timeout_s:g} s")
    try:
        rewards = parse_rewards(_read_or_none(sandbox, REWARD_JSON), _read_or_none(sandbox, REWARD_TXT))
    except RewardError as exc:
        raise VerifierFailed("verifier", f"{exc} (tests/test.sh exited {result.exit_code})") from None
    trial.rewards = rewards
    assert passed(rewards), f"reward {json.dumps(rewards)}: every key must be ≥ 1"


def _read_or_none(sandbox, path: str) -> str | None:
    try:
        return sandbox.read_file(path)
    except FileNotFoundError:
        return None
