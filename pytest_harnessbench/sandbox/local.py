"""The embedded default backend: a working directory and a kernel cgroup per trial.

No daemon is needed. Commands run with ``bash -c`` on the host, inside the
trial's cgroup(s). When a model that writes its own commands takes part (a
provider model, or a replay of one), every command is confined with bubblewrap
(confine.py: its own user, PID, network and other namespaces, no capabilities,
a seccomp filter, a minimal read-only filesystem with only the trial's work
directory writable); the backend refuses such models where that is impossible
unless the user passed ``--hb-allow-host-exec``. The built-in models run the
task author's own commands: those run unconfined, in a network namespace of
the sandbox's own that has no interfaces when the machine allows it (netns.py).

An unconfined command's own ``bash`` applies the limits before it runs
anything: it reads them from ``BASH_ENV``, a pipe that holds the few lines that
join the cgroups (or set the rlimit), and exits 125 if it cannot. A ``sh``
prologue that did the same and then exec'd ``bash`` cost one exec more (about
0.8 ms here). A shell that cannot join exits 125 before the command runs, as
the prologue did. A shell that never read the pipe (bash ignores ``BASH_ENV``
in POSIX mode) has run the command without its limits: the controller finds
the pipe still full afterwards and raises SandboxLostError, so no result
stands on that run. A host environment with a ``BASH_ENV`` of its own, one
that asks for POSIX mode (``POSIXLY_CORRECT``, ``SHELLOPTS``), or one that
exports bash functions (which bash defines before it reads ``BASH_ENV``: an
``echo`` would replace the one that joins) gets the prologue instead, as
confined commands do (the cgroup must be joined before bubblewrap starts).

Without cgroup access the backend refuses to run unless the user opted into
``rlimit`` enforcement, where RLIMIT_AS caps each command's address space: a
weaker limit (virtual, not resident memory; no CPU cap), reported as such.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..options import BackendOptions, Option, parse_bool, parse_choice
from ..paths import state_root, writable_dir
from ..procs import owner_token, token_alive, wait_exit
from ..redact import looks_secret
from ..resources import Allocation
from . import cgroups, confine, disk, netns, watchdog
from .base import (CAPTURE_LIMIT, Backend, TIMEOUT_EXIT_CODE, EnforcementUnavailable, Evidence, ExecResult, OutputMissingError,
                   SandboxLostError, SandboxStartError, decode_text)
from .beneath import open_beneath


# What this backend names, and so all its reaper may remove: work/run-RUN_ID/SANDBOX and cgroups RUN_ID.SANDBOX,
# where SANDBOX is OWNER.TRIAL.RANDOM and OWNER the creating process's PID-START token.
_RUN_DIR_PREFIX = "run-"
_SANDBOX_NAME = re.compile(r"(?P<owner>\d+-\d+)\.[^/]+\Z")
# Signs, in an rlimit sandbox, that a command hit its address-space cap.
_RLIMIT_OOM_SIGNS = re.compile(rb"MemoryError|Cannot allocate memory|std::bad_alloc|out of memory", re.IGNORECASE)
# Printed by a command's shell when it could not enter the trial's cgroup (then exit 125).
_JOIN_FAILED = "harnessbench: could not enter the trial's cgroup"
# Set in the host environment, these keep the sh prologue (see the module's doc): the host's own BASH_ENV, which
# ours would replace, or a bash started in POSIX mode, which ignores BASH_ENV.
_PROLOGUE_IF_SET = ("BASH_ENV", "POSIXLY_CORRECT", "SHELLOPTS")
# So do exported functions (BASH_FUNC_echo%%): bash defines them before it reads BASH_ENV, and one named like a
# command of the limits (echo, ulimit, unset, exec) would run instead of it, the command then outside its limits.
_EXPORTED_FUNCTION = "BASH_FUNC_"


ENFORCEMENTS = ("cgroup", "rlimit")


@dataclass(frozen=True)
class LocalOptions(BackendOptions):
    enforcement: str = "cgroup"  # or "rlimit"
    allow_host_exec: bool = False  # model-written commands may run unconfined where they cannot be confined

    def settings(self) -> dict:
        return {"enforcement": self.enforcement}


def work_root() -> Path:
    """This backend's own directory of trial directories, ``<tmp>/harnessbench-<uid>/work`` (see paths.py)."""
    return state_root() / "work"


def confine_root() -> Path:
    """This backend's own directory of confined sandboxes' ``/etc`` trees, one per process (see paths.py)."""
    return state_root() / "confine"


def _children(directory: Path) -> list[Path]:
    """Subdirectories of ``directory``; none if it is missing (another reaper may remove it any time)."""
    try:
        return [p for p in directory.iterdir() if p.is_dir()]
    except (FileNotFoundError, NotADirectoryError):
        return []


class LocalBackend(Backend):
    """Creates :class:`LocalSandbox` es; ``enforcement`` is ``cgroup`` (default) or ``rlimit``.

    ``confined``: every command runs under bubblewrap (confine.py); ``host_exec_consent``: a model that
    writes its own commands runs unconfined because the user said so (``--hb-allow-host-exec``).
    """

    name = "local"
    options = (
        Option("enforcement", "--hb-enforcement", "hb_enforcement", "cgroup",
               "local backend: 'cgroup' (kernel limits, default) or 'rlimit' (weaker RLIMIT_AS, no CPU cap)"),
        Option("allow_host_exec", "--hb-allow-host-exec", "hb_allow_host_exec", "false",
               "local backend: let provider and replay models run commands unconfined on this host when they "
               "cannot be confined (no bubblewrap or user namespaces)", flag_only=True),
    )

    def __init__(self, run_id: str, enforcement: str = "cgroup", confined: bool = False,
                 host_exec_consent: bool = False):
        self.run_id = run_id
        self.mode = enforcement
        self.confined = confined
        self.host_exec_consent = host_exec_consent
        self._cgroups: cgroups.Cgroups | None = None
        self._isolate_network: bool | None = None
        self._watchdog = None
        self._etc: Path | None = None  # confined sandboxes' /etc, made on first use (confine.prepare_etc)
        self._stage: confine.Stage | None = None  # a root session's view of them for nobody (confine.Stage)

    @classmethod
    def parse_options(cls, raw: Mapping[str, str]) -> LocalOptions:
        return LocalOptions(enforcement=parse_choice("--hb-enforcement", raw["enforcement"], ENFORCEMENTS),
                            allow_host_exec=parse_bool("--hb-allow-host-exec", raw["allow_host_exec"]))

    @classmethod
    def create(cls, options: LocalOptions, run_id: str, *, untrusted: Sequence[str] = ()) -> LocalBackend:
        """A model that writes its own commands (``untrusted``) gets them confined, or the user must opt out.

        Every trial of such a session is confined, the built-in models' too, so
        that all models of one bake-off meet the same sandbox.

        Raises:
            EnforcementUnavailable: confinement is impossible here and ``--hb-allow-host-exec`` was not given.
        """
        if not untrusted:
            return cls(run_id, options.enforcement)
        reason = confine.unavailable_reason()
        if reason is None:
            return cls(run_id, options.enforcement, confined=True)
        if not options.allow_host_exec:
            raise EnforcementUnavailable(
                f"--models {untrusted[0]}: its commands cannot be confined on this host ({reason}); install "
                "bubblewrap and allow unprivileged user namespaces, use --hb-backend docker, or pass "
                "--hb-allow-host-exec to run them unconfined on this host")
        return cls(run_id, options.enforcement, host_exec_consent=True)

    def reaper_args(self) -> dict:
        return {"enforcement": self.mode}

    def check(self) -> str:
        """The enforcement method.

        Raises:
            EnforcementUnavailable: no cgroup can be created here (and rlimit was not chosen).
            StateDirError: the work root cannot be written (read-only or full TMPDIR).
        """
        if self._isolate_network is None:
            writable_dir(work_root(), "trial working directories")
        if self.mode != "rlimit" and self._cgroups is None:
            self._cgroups = cgroups.detect()
        if self._isolate_network is None:
            # Probed after cgroups.detect(), which on v2 may move this process into a session leaf: the kernel
            # refuses that (EBUSY) while the probe's thread, already ended for Python, has not left its group.
            self._isolate_network = netns.available()
        return "rlimit" if self.mode == "rlimit" else self._cgroups.enforcement

    def provision(self, allocation: Allocation, trial_id: str, image: str | None = None, network: bool = False,
                  workdir: str | None = None, env: dict[str, str] | None = None) -> LocalSandbox:
        if workdir is not None or env:
            raise SandboxStartError("the local backend runs commands in its own work directory, without a task's "
                                    "workdir or env: use --hb-backend docker")
        enforcement = self.check()
        if self._watchdog is None:  # from now on this process has sandboxes that must die with it
            self._watchdog = watchdog.start(self)
        try:
            workdir = _make_workdir(work_root() / f"{_RUN_DIR_PREFIX}{self.run_id}", f"{owner_token()}.{trial_id[:60]}.")
        except OSError as exc:
            raise SandboxStartError(f"cannot create the trial's working directory: {exc}") from exc
        group = None
        try:  # an interrupt (Ctrl-C) anywhere below must not leave the directory or the group behind
            if self._cgroups is not None and self.mode != "rlimit":
                group = self._create_group(f"{self.run_id}.{workdir.name}", allocation)
            return LocalSandbox(workdir, allocation, enforcement, group,
                                isolate_network=bool(self._isolate_network) and not network,
                                confined_etc=self._confined_etc(), network=network, stage=self._root_stage())
        except BaseException:
            if group is not None:
                group.remove()
            shutil.rmtree(workdir, ignore_errors=True)
            raise

    def _confined_etc(self) -> Path | None:
        """The ``/etc`` tree of this process's confined sandboxes (None: not confined), named like a sandbox."""
        if not self.confined:
            return None
        if self._etc is None:
            try:
                confine_root().mkdir(parents=True, exist_ok=True)
                self._etc = confine.prepare_etc(Path(tempfile.mkdtemp(prefix=f"{owner_token()}.etc.",
                                                                      dir=confine_root())))
            except OSError as exc:
                raise SandboxStartError(f"cannot prepare the confined sandboxes' /etc: {exc}") from exc
        return self._etc

    def _root_stage(self) -> confine.Stage | None:
        """A root session's confined sandboxes: the mount namespace where nobody reaches the work and /etc roots."""
        if not self.confined or confine.host_owner() is None:
            return None
        if self._stage is None:
            try:
                for root in (work_root(), confine_root()):  # below the 0700 state root: only the stage shows them
                    root.chmod(0o755)
                self._stage = confine.Stage([work_root(), confine_root()])
            except (OSError, confine.ConfinementUnavailable) as exc:
                raise SandboxStartError(str(exc)) from exc
        return self._stage

    def _create_group(self, name: str, allocation: Allocation) -> cgroups.Group:
        limit, guarantee = allocation.limit, allocation.guarantee
        try:
            return self._cgroups.create(
                name, guarantee_memory=guarantee.memory_bytes, limit_memory=limit.memory_bytes,
                guarantee_cpus=guarantee.cpus, limit_cpus=limit.cpus, pids=limit.pids,
            )
        except OSError as exc:
            raise SandboxStartError(f"cannot create the trial's cgroup: {exc}") from exc

    def describe(self) -> dict:
        info = {"backend": "local", "kernel": platform.release(), "enforcement": self.check(),
                "network_isolation": "netns" if self._isolate_network else "none",
                "filesystem": self._isolation()}
        if self.mode == "rlimit":
            info["weaker_limits"] = "RLIMIT_AS caps virtual memory per command; CPU and pids are not limited"
        return info

    def _isolation(self) -> str:
        if self.confined:
            who = "" if confine.host_owner() is None else f", host uid {confine.ROOT_SESSION_UID} (root session)"
            return (f"bubblewrap: own user (uid 1000{who}), pid, ipc, uts, net, cgroup namespaces, no capabilities, "
                    "seccomp; read-only /usr and /etc basics, private /tmp, only the work dir writable")
        if self.host_exec_consent:
            return "NONE: --hb-allow-host-exec, model-written commands run on this host as this user"
        return "host (built-in models only: the task's own commands, unconfined)"

    def warnings(self) -> list[str]:
        if not self.host_exec_consent:
            return []
        return ["WARNING: --hb-allow-host-exec: model-written commands ran UNCONFINED on this host as this user "
                "(they could read its files and keys); install bubblewrap or use --hb-backend docker"]

    def reap(self, own: bool = False) -> int:
        """Remove sandboxes whose creating process died (a killed worker or session).

        Kills what still runs in their cgroups, removes the groups and working
        directories. Only names of this backend's own pattern are touched (see
        :data:`_SANDBOX_NAME`); sandboxes of live processes (other workers,
        other sessions) are left alone; with ``own``, this process's own are
        removed too (at session end, when none of its trials can still be
        running). Returns how many sandboxes were removed, whatever number of
        groups and directories each had.
        """
        mine = owner_token() if own else None

        def leftover(name: str) -> bool:
            match = _SANDBOX_NAME.match(name)
            return match is not None and (match["owner"] == mine or not token_alive(match["owner"]))

        removed: set[str] = set()
        if self._cgroups is None and self.mode != "rlimit":
            try:
                self._cgroups = cgroups.detect()
            except EnforcementUnavailable:
                pass
        if self._cgroups is not None:
            for parent in set(self._cgroups.parents.values()):
                for group_dir in _children(parent):
                    _, _, sandbox = group_dir.name.partition(".")  # RUN_ID.SANDBOX
                    if leftover(sandbox):
                        try:
                            cgroups.Group(self._cgroups.version, {"memory": group_dir}).remove()
                            removed.add(sandbox)
                        except OSError:
                            pass
        for run_dir in _children(work_root()):
            if not run_dir.name.startswith(_RUN_DIR_PREFIX):
                continue
            for workdir in _children(run_dir):
                if leftover(workdir.name):
                    shutil.rmtree(workdir, ignore_errors=True)
                    removed.add(workdir.name)
            _remove_if_empty(run_dir)
        for etc in _children(confine_root()):  # not sandboxes: not counted
            if leftover(etc.name):
                shutil.rmtree(etc, ignore_errors=True)
        if own:
            self._etc = None
        return len(removed)

    def close(self) -> None:
        """Reap crashed owners' sandboxes, any of ours an interrupt left behind, and the run's directory.

        Then undo what finding the cgroup hierarchy changed (on cgroup v2, the session leaf).
        """
        self.reap(own=True)
        if self._stage is not None:
            self._stage.close()
            self._stage = None
        if self._cgroups is not None:
            self._cgroups.close()
        watchdog.stop(self._watchdog)
        self._watchdog = None


def _make_workdir(run_dir: Path, prefix: str, attempts: int = 5) -> Path:
    """RUN_DIR/OWNER.TRIAL.RANDOM: the owner token lets a later reaper tell a crashed owner's leftovers.

    Another process's reaper removes run directories it finds empty, so ours can
    vanish between creating it and creating the trial's directory in it (seen
    under ``-n 2``); create it again and retry.
    """
    for _ in range(attempts - 1):
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            return Path(tempfile.mkdtemp(prefix=prefix, dir=run_dir))
        except (FileNotFoundError, FileExistsError):  # removed under us, even inside mkdir itself
            continue
    run_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=run_dir))


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass  # not empty: another worker or session still uses it


def _read_captured(file, limit: int = CAPTURE_LIMIT) -> bytes:
    file.seek(0)
    data = file.read(limit + 1)
    if len(data) > limit:
        return data[:limit] + b"\n[output cut at %d bytes]" % limit
    return data


class _LimitsPipe:
    """The limits a command's ``bash`` reads through ``BASH_ENV`` before it runs anything (see the module's doc).

    A pipe, so that nothing on disk can be missing or swapped, and so that the
    controller can tell afterwards that the shell read it: it reads its
    startup file to the end before running the command.
    """

    def __init__(self, script: str):
        self.fd, write = os.pipe()  # neither end is inherited but through pass_fds
        try:
            os.write(write, f"unset BASH_ENV; exec {self.fd}<&-; {script}\n".encode())
        finally:
            os.close(write)

    def __enter__(self) -> _LimitsPipe:
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.fd)

    @property
    def env(self) -> dict[str, str]:
        return {"BASH_ENV": f"/proc/self/fd/{self.fd}"}  # not /dev/fd: a minimal /dev (the UML guests) lacks it

    def unread(self) -> bool:
        """Whether the shell left the limits unread: then it ran its command without them."""
        return os.read(self.fd, 1) != b""  # the write end is closed: never blocks


class LocalSandbox:
    """One trial's working directory and cgroup on this host."""

    def __init__(self, workdir: Path, allocation: Allocation, enforcement: str,
                 group: cgroups.Group | None, isolate_network: bool, confined_etc: Path | None = None,
                 network: bool = False, stage: confine.Stage | None = None):
        self.workdir = workdir
        self.allocation = allocation
        self.enforcement = enforcement
        self.group = group
        self.confined_etc = confined_etc  # confined (every command under bubblewrap) with this /etc, or not
        self.network = network  # the task asked for network access
        self.stage = stage  # a root session's confined sandboxes: where nobody sees the work directory
        self._suspected_ooms = 0
        self._groups: list[int] = []  # process groups of our commands: without a cgroup, close() kills these
        self._closed = False
        # Confined under a root session, commands run as nobody on the host (confine.host_owner): the work
        # directory and what the controller writes into it are nobody's, so that the sandbox can write there.
        self._owner = confine.host_owner() if confined_etc is not None else None
        tmp = workdir / ".tmp"
        tmp.mkdir()
        if self._owner is not None:
            for path in (workdir, tmp):
                os.chown(path, *self._owner)
        self._free_at_start = disk.free_bytes(workdir)  # the disk is TMPDIR's, shared: see evidence()
        if confined_etc is not None:
            self._env = confine.environment(workdir, tmp)
        else:  # the task's own commands see the host environment minus anything that looks like a secret
            host_env = {k: v for k, v in os.environ.items() if not looks_secret(k)}
            self._env = {**host_env, "HOME": str(workdir), "TMPDIR": str(tmp), "PWD": str(workdir)}
        self._limits = self._limits_script()
        # bash applies the limits itself, unless bubblewrap comes first or the host environment changes how bash starts
        self._bash_applies_limits = self._limits is not None and confined_etc is None and \
            not any(name in _PROLOGUE_IF_SET or name.startswith(_EXPORTED_FUNCTION) for name in self._env)
        self._netns = None  # bubblewrap gives a confined command a network namespace of its own
        if isolate_network and confined_etc is None:
            try:
                self._netns = netns.NetworkNamespace()
            except OSError as exc:
                raise SandboxStartError(f"cannot create the sandbox's network namespace: {exc}") from exc

    def exec(self, command: str, timeout: float | None = None) -> ExecResult:
        """Run ``command``; returns when its shell exits, even if it left processes running.

        Output goes to unlinked temporary files, not pipes: a background process
        started by the command (``server &``) would otherwise hold a pipe open and
        hang the call until it exits.
        """
        start = time.monotonic()
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, self._limits_pipe() as pipe:
            with self._confinement() as confinement:
                proc = (self._netns.popen if self._netns else subprocess.Popen)(
                    self._argv(command, confinement), cwd=self.workdir,
                    env={**self._env, **pipe.env} if pipe else self._env,
                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True,
                    pass_fds=confinement.pass_fds if confinement else (pipe.fd,) if pipe else (),
                )
            self._groups.append(proc.pid)
            timed_out = False
            try:
                code = wait_exit(proc, timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                self._kill_group(proc)
                code = TIMEOUT_EXIT_CODE
            except BaseException:  # an interrupt: the command goes with it, before it could join its groups late
                self._kill_group(proc)
                raise
            stdout, stderr = _read_captured(out), _read_captured(err)
            unlimited = pipe is not None and pipe.unread()  # timed out too: its limits cannot be vouched for
        if code < 0:
            code = 128 - code  # killed by a signal: the shell's convention (SIGKILL -> 137)
        if code == 125 and _JOIN_FAILED.encode() in stderr:
            raise SandboxLostError(f"{stderr.decode(errors='replace').strip()} (was it removed?)")
        if unlimited:
            raise SandboxLostError("the command's shell did not read the trial's limits (BASH_ENV; was bash started "
                                   "in POSIX mode?): what it ran, ran without them")
        if self.group is None and not timed_out and (code == 137 or _RLIMIT_OOM_SIGNS.search(stderr)):
            self._suspected_ooms += 1
        return ExecResult(code, stdout.decode(errors="replace"), stderr.decode(errors="replace"),
                          time.monotonic() - start, timed_out)

    def _limits_pipe(self) -> _LimitsPipe | contextlib.nullcontext:
        return _LimitsPipe(self._limits) if self._bash_applies_limits else contextlib.nullcontext()

    def _confinement(self) -> confine.Confinement | contextlib.nullcontext:
        if self.confined_etc is None:
            return contextlib.nullcontext()
        return confine.Confinement(self.workdir, self.confined_etc, network=self.network, stage=self.stage)

    def _argv(self, command: str, confinement: confine.Confinement | None) -> list[str]:
        """``bash -c command``; behind bubblewrap when confined; behind a ``sh`` prologue that applies the limits
        and then execs it when bash cannot apply them itself (see the module's doc).

        The shell, not a ``preexec_fn``, enters the cgroup (or sets the rlimit)
        and before bubblewrap starts, so that the confined command inherits it:
        without a ``preexec_fn`` Python starts the child with vfork, several ms
        cheaper from a large process, and safe while other threads run.
        """
        argv = ["/bin/bash", "-c", command]
        if confinement is not None:
            argv = [*confinement.argv, *argv]
        if self._limits is None or self._bash_applies_limits:
            return argv
        return ["/bin/sh", "-c", f'{self._limits}; exec "$@"', "sh", *argv]

    def _limits_script(self) -> str | None:
        """Shell commands that put the shell running them under the sandbox's limits; None: there are none."""
        if self.group is not None:
            join = " && ".join(f"echo 0 > {shlex.quote(path)}" for path in self.group.join_files)
            return f'if ! {{ {join}; }}; then echo "{_JOIN_FAILED}" >&2; exit 125; fi'
        limit = self.allocation.limit.memory_bytes
        if limit is not None:  # rlimit enforcement; ulimit counts KiB
            return f"ulimit -v {limit // 1024} || exit"
        return None

    @staticmethod
    def _kill_group(proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

    def write_file(self, path: str, content: str | bytes) -> None:
        """Raises: SandboxPathError: the path leaves the working directory or passes a link (beneath.py)."""
        data = content.encode() if isinstance(content, str) else content
        fd = open_beneath(self.workdir, path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, make_parents=True,
                          owner=self._owner)
        with open(fd, "wb") as file:
            file.write(data)

    def read_file(self, path: str, text: bool = True, limit: int | None = None) -> str | bytes:
        """Raises: OutputMissingError: no such file; SandboxPathError: outside, through a link, not a file."""
        try:
            fd = open_beneath(self.workdir, path, os.O_RDONLY)
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise OutputMissingError(f"{path} does not exist in the sandbox") from exc
        with open(fd, "rb") as file:
            data = file.read() if limit is None else file.read(limit)
        return decode_text(data) if text else data

    def applied_limits(self) -> dict:
        """What the kernel enforces for this sandbox (read back, not echoed from the request)."""
        if self.group is not None:
            return self.group.applied()
        return {"RLIMIT_AS": self.allocation.limit.memory_bytes}  # set in each command's child before exec

    def evidence(self) -> Evidence:
        """The cgroup's counters (or the rlimit heuristics); a full disk only if this trial's own files filled it."""
        if self.group is not None:
            return disk.record(self.group.evidence(), self.workdir, self._free_at_start)
        return disk.record(Evidence(oom_kills=self._suspected_ooms, oom_source="heuristic",
                                    notes=["rlimit enforcement: OOM inferred from exit 137 / MemoryError"]),
                           self.workdir, self._free_at_start)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._netns is not None:
            self._netns.close()
        try:
            if self.group is not None:
                self.group.remove()
            else:  # rlimit: what our commands left running (unless it escaped with setsid)
                for pgid in self._groups:
                    try:
                        os.killpg(pgid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
