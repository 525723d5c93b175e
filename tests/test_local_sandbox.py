"""The local backend against the real kernel: limits are enforced, evidence is the kernel's."""

import contextlib
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest

from pytest_harnessbench import procs
from pytest_harnessbench.resources import Allocation, Multiplier, Spec
from pytest_harnessbench.sandbox import cgroups
from pytest_harnessbench.sandbox.base import OutputMissingError
from pytest_harnessbench.sandbox.local import LocalBackend
from support import inprocess
from support.workloads import thrash
from support.rundir import results

pytestmark = pytest.mark.trials  # real local sandboxes: cgroups, bwrap, kernel OOM kills

HOG = "python3 -c 'x = bytearray(200 * 1024 * 1024); x[::4096] = b\"1\" * len(x[::4096])'"


@pytest.fixture
def backend(tmp_path, monkeypatch):
    b = LocalBackend(f"test-{os.getpid()}")
    if os.environ.get("CI") is None:
        try:
            b.check()
        except Exception as exc:  # a developer machine without cgroup access
            pytest.skip(f"no cgroup access here: {exc}")
    yield b
    b.close()


@pytest.fixture
def rlimit_backend():
    b = LocalBackend(f"test-rlimit-{os.getpid()}", enforcement="rlimit")
    yield b
    b.close()  # its watchdog process too


def sandbox(backend, mult="1", **spec):
    spec.setdefault("memory", "64Mi")
    return backend.provision(Allocation.of(Spec.from_marker(**spec), Multiplier.parse(mult)), "t")


def test_hog_is_killed_at_1x_and_the_kernel_counts_it(backend):
    box = sandbox(backend)
    try:
        result = box.exec(HOG)
        evidence = box.evidence()
    finally:
        box.close()
    assert result.exit_code == 137
    assert evidence.oom_kills >= 1
    assert 60 * 1024**2 <= evidence.peak_memory_bytes <= 64 * 1024**2 + 4096


def test_same_hog_survives_uncapped(backend):
    box = sandbox(backend, "uncapped")
    try:
        result = box.exec(HOG)
        evidence = box.evidence()
    finally:
        box.close()
    assert result.exit_code == 0
    assert evidence.oom_kills == 0 and evidence.peak_memory_bytes >= 200 * 1024**2


def test_cpu_limit_throttles_a_busy_loop(backend):
    box = sandbox(backend, cpus=0.25)
    try:
        result = box.exec("timeout 1 sh -c 'while :; do :; done'")
        cpu = box.evidence().cpu_seconds
    finally:
        box.close()
    # A quarter of a core over the command's wall time, not a whole one. The ratio, not the CPU seconds
    # alone: on a slow or loaded kernel (the v2 guest) starting the command takes longer than the 1 s loop.
    assert 0.1 < cpu / result.duration_s < 0.45


def test_pids_limit(backend):
    box = sandbox(backend, pids=8)
    try:
        assert box.evidence().pids_limit_hits == 0
        # dash, not bash: bash retries a fork that fails with EAGAIN for 15 s; close() ends the sleeps
        result = box.exec("sh -c 'for i in $(seq 20); do sleep 60 & done'")
        evidence = box.evidence()
    finally:
        box.close()
    assert "fork" in result.stderr or "Resource temporarily unavailable" in result.stderr
    assert evidence.pids_limit_hits >= 1  # the kernel's pids.events (issue 21.6: there was no evidence)


@pytest.mark.parametrize("mult", ["1", "uncapped"])
def test_thrashing_at_the_memory_limit_is_no_oom_kill_but_the_counters_say_so(backend, mult):
    """Issue 21.7: a process at its limit lives on by re-reading its own evicted file pages."""
    from pytest_harnessbench.outcomes import thrashed

    box = sandbox(backend, mult)
    try:
        result = box.exec(thrash(2))
        evidence = box.evidence()
    finally:
        box.close()
    assert result.exit_code == 0 and evidence.oom_kills == 0, result.stderr  # it lived on
    at_limit = mult == "1"
    assert evidence.memory_at_limit is at_limit and evidence.major_faults is not None
    assert (evidence.file_refault_bytes > 64 * 1024**2) is at_limit  # re-read more than its whole limit
    assert thrashed(evidence, 64 * 1024**2 if at_limit else None) is at_limit


def test_timeout_kills_the_whole_command(backend, tmp_path):
    box = sandbox(backend)
    try:
        start = time.monotonic()
        result = box.exec("sleep 30 & sleep 30; echo never", timeout=1)
        elapsed = time.monotonic() - start
        time.sleep(0.1)
        left = Path(box.group.join_files[0]).read_text().split()
    finally:
        box.close()
    assert result.timed_out and result.exit_code == 124 and elapsed < 3
    assert left == []  # the background sleep went too


def test_a_command_and_what_it_leaves_running_are_in_every_one_of_the_trials_groups(backend):
    """The shell joins by writing 0 (itself) to each group's join file (v1: ``tasks``, its one thread): the whole
    process moves before it execs, so what the command starts is born inside, in every hierarchy."""
    box = sandbox(backend)
    try:
        result = box.exec("sleep 30 & echo $!", timeout=30)
        left_running = result.stdout.strip()
        members = {path: Path(path).read_text().split() for path in box.group.join_files}
    finally:
        box.close()
    assert result.exit_code == 0 and left_running.isdigit()
    assert len(members) == (1 if box.group.version == "v2" else 4)
    assert all(left_running in pids for pids in members.values()), members


def test_files_round_trip_and_missing_file_is_output_missing(backend):
    box = sandbox(backend)
    try:
        box.write_file("sub/a.txt", "hello")
        box.write_file("b.bin", b"\x00\x01")
        assert box.exec("cat sub/a.txt").stdout == "hello"
        assert box.read_file("b.bin", text=False) == b"\x00\x01"
        with pytest.raises(FileNotFoundError):
            box.read_file("nothing.txt")
        with pytest.raises(OutputMissingError):
            box.read_file("sub")
    finally:
        box.close()


def test_a_file_with_bytes_that_are_not_utf8_reads_as_text_with_replacement(backend):
    """Issue 21.5: model output the verifier reads is never a harness error (it was UnicodeDecodeError)."""
    box = sandbox(backend)
    try:
        box.exec("printf 'ok\\xff\\xfe\\n' > out.txt")
        assert box.read_file("out.txt") == "ok\ufffd\ufffd\n"
        assert box.read_file("out.txt", text=False) == b"ok\xff\xfe\n"
    finally:
        box.close()


def test_no_network_interfaces_but_loopback(backend):
    box = sandbox(backend)
    try:
        devices = box.exec("tail -n +3 /proc/net/dev | cut -d: -f1").stdout.split()
    finally:
        box.close()
    assert devices == ["lo"]


def test_commands_of_one_sandbox_share_one_network_namespace_of_their_own(backend):
    """One namespace per sandbox, held by a thread (sandbox/netns.py): not the host's, not another sandbox's.
    Where the process cannot create one (no CAP_SYS_ADMIN) the card says so and commands share the host's."""
    first, second = sandbox(backend), sandbox(backend)
    try:
        namespaces = [box.exec("readlink /proc/self/ns/net").stdout.strip() for box in (first, first, second)]
    finally:
        first.close()
        second.close()
    host = os.readlink("/proc/self/ns/net")
    if backend.describe()["network_isolation"] == "none":
        assert namespaces == [host] * 3
    else:
        assert namespaces[0] == namespaces[1] != namespaces[2] and host not in namespaces


SERVER = """python3 -c 'import os, socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
if os.fork() == 0:
    c, _ = s.accept()
    c.sendall(b"hello")
'"""


def test_a_server_one_command_starts_answers_the_next_and_no_other_sandbox_or_host_reaches_it(backend):
    """The sandbox's loopback is up, as a container's: its own commands meet on 127.0.0.1; another sandbox's
    127.0.0.1 and the host's are other namespaces."""
    import socket

    if backend.describe()["network_isolation"] == "none":
        pytest.skip("no network namespace here (root only): commands use the host's loopback")
    first, second = sandbox(backend), sandbox(backend)
    with socket.create_server(("127.0.0.1", 0)) as host_server:
        try:
            port = first.exec(SERVER, timeout=30).stdout.strip()
            connect = "exec 3<>/dev/tcp/127.0.0.1/{}; cat <&3"
            own, other = first.exec(connect.format(port), timeout=30), second.exec(connect.format(port), timeout=30)
            host = first.exec(connect.format(host_server.getsockname()[1]), timeout=30)
        finally:
            first.close()
            second.close()
    assert port.isdigit() and (own.exit_code, own.stdout) == (0, "hello"), own
    assert other.exit_code != 0 and "refused" in other.stderr, other
    assert host.exit_code != 0 and "refused" in host.stderr, host


@contextlib.contextmanager
def ctrl_c_after(seconds: float):
    """A real signal, ``seconds`` into the block, whose handler raises KeyboardInterrupt in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers run in the main thread only")

    def ctrl_c(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGUSR1, ctrl_c)
    interrupt = threading.Timer(seconds, signal.pthread_kill, (threading.main_thread().ident, signal.SIGUSR1))
    interrupt.start()
    try:
        yield
    finally:
        interrupt.cancel()
        signal.signal(signal.SIGUSR1, previous)


@pytest.mark.parametrize("enforcement", ["cgroup", "rlimit"])
def test_a_ctrl_c_while_a_command_runs_kills_it_before_exec_returns(backend, rlimit_backend, enforcement):
    """An interrupted exec() takes its command with it at once: left running until close(), a command whose shell
    had not yet joined its groups could join after close()'s sweep (then rmdir fails), and under rlimit only
    its process group, which close() may no longer safely signal, holds it."""
    box = sandbox(backend if enforcement == "cgroup" else rlimit_backend)
    try:
        with ctrl_c_after(0.5), pytest.raises(KeyboardInterrupt):
            box.exec("echo $$ > pid; exec sleep 30", timeout=60)
        pid = int((box.workdir / "pid").read_text())
        alive = procs.read_text(f"/proc/{pid}/stat")  # a zombie would still show: exec() reaps it too
    finally:
        box.close()
    assert alive is None


def test_a_ctrl_c_while_the_namespace_thread_is_busy_starts_nothing_later(backend):
    """Ctrl-C while a command waits for the sandbox's thread to start it: exec() unwinds and closes the descriptors
    the command was to get, so the thread must not start it afterwards, when their numbers may name other files
    (its limits pipe's number reused by the /dev/null of its stdin: the command ran outside its groups)."""
    from pytest_harnessbench.sandbox import netns

    if backend.describe()["network_isolation"] == "none":
        pytest.skip("no network namespace here (root only)")
    namespace, gate = netns.NetworkNamespace(), threading.Event()
    busy = namespace._thread.submit(gate.wait)  # e.g. still starting this sandbox's previous command
    marker = ["sleep", "29.25"]  # no other process of this test run has this command line
    try:
        with ctrl_c_after(0.2), pytest.raises(KeyboardInterrupt):
            namespace.popen(marker)
    finally:
        gate.set()
        busy.result()
        namespace.close()  # runs whatever was still queued
    started = [pid for pid in procs.children(os.getpid())
               if (procs.read_text(f"/proc/{pid}/cmdline") or "").split("\0")[:-1] == marker]
    for pid in started:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert started == []


def test_the_command_sees_neither_its_limits_pipe_nor_bash_env(backend):
    """bash read its limits through BASH_ENV, a pipe: both are gone before the command runs (no descriptor to
    inherit or write to, nothing for a nested bash to source again)."""
    box = sandbox(backend)
    try:
        result = box.exec('ls /proc/$$/fd; echo "BASH_ENV=${BASH_ENV-unset}"')
    finally:
        box.close()
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split() == ["0", "1", "2", "BASH_ENV=unset"]


@pytest.mark.parametrize("variable", ["POSIXLY_CORRECT", "SHELLOPTS", "BASH_ENV"])
def test_under_a_posix_mode_or_bash_env_environment_commands_still_join_every_group(backend, monkeypatch, tmp_path,
                                                                                   variable):
    """bash in POSIX mode ignores BASH_ENV, and the host's own BASH_ENV must still be sourced: those commands enter
    their groups in a sh prologue, and keep the variable."""
    value = {"POSIXLY_CORRECT": "1", "SHELLOPTS": "posix", "BASH_ENV": str(tmp_path / "env.sh")}[variable]
    (tmp_path / "env.sh").write_text("HOST_BASH_ENV=sourced\n")
    monkeypatch.setenv(variable, value)
    box = sandbox(backend)
    try:
        result = box.exec(f'sleep 30 & echo $!; echo "${{{variable}}}"; echo "${{HOST_BASH_ENV-}}"', timeout=30)
        left_running, seen, sourced = result.stdout.split("\n")[:3]
        members = {path: Path(path).read_text().split() for path in box.group.join_files}
    finally:
        box.close()
    assert result.exit_code == 0, result.stderr
    assert all(left_running in pids for pids in members.values()), members
    assert value in seen and sourced == ("sourced" if variable == "BASH_ENV" else "")


SHADOWS = {f"BASH_FUNC_{name}%%": "() { :; }" for name in ("echo", "ulimit", "unset", "exec", "exit")}


def test_exported_functions_named_like_the_limits_commands_do_not_replace_them(backend, monkeypatch):
    """bash defines the functions of its environment (``BASH_FUNC_echo%%``) before it reads BASH_ENV: a no-op echo
    would have skipped the join (and unset, exec left BASH_ENV and the pipe to the command)."""
    for name, value in SHADOWS.items():
        monkeypatch.setenv(name, value)
    box = sandbox(backend)
    try:
        result = box.exec('sleep 30 & ls /proc/$$/fd; printf "%s\\n" $! "${BASH_ENV-unset}"', timeout=30)
        *fds, left_running, seen = result.stdout.split()
        members = {path: Path(path).read_text().split() for path in box.group.join_files}
    finally:
        box.close()
    assert result.exit_code == 0, result.stderr
    assert all(left_running in pids for pids in members.values()), members
    assert seen == "unset" and fds == ["0", "1", "2"]


def test_exported_functions_named_like_the_limits_commands_do_not_lift_the_rlimit(rlimit_backend, monkeypatch):
    for name, value in SHADOWS.items():
        monkeypatch.setenv(name, value)
    box = sandbox(rlimit_backend, memory="64Mi")
    try:
        result = box.exec("grep 'Max address space' /proc/$$/limits")
    finally:
        box.close()
    assert result.stdout.split()[3:5] == [str(64 * 1024**2)] * 2, result.stdout


def test_a_shell_that_did_not_read_its_limits_is_a_lost_sandbox(backend):
    """Defence in depth: if bash ever skipped BASH_ENV (here: POSIX mode slipped into the environment after the
    sandbox chose how to apply its limits), the command ran without them, and the run must not count."""
    from pytest_harnessbench.sandbox.base import SandboxLostError

    box = sandbox(backend)
    try:
        box._env["POSIXLY_CORRECT"] = "1"
        with pytest.raises(SandboxLostError, match="did not read the trial's limits"):
            box.exec("true")
        with pytest.raises(SandboxLostError, match="did not read the trial's limits"):  # not a model's timeout
            box.exec("sleep 30", timeout=0.5)
    finally:
        box.close()


def test_close_removes_group_and_directory_also_with_running_processes(backend):
    box = sandbox(backend)
    box.exec("(sleep 60 &) ; true")
    group_dirs = list(box.group.dirs.values())
    workdir = box.workdir
    box.close()
    assert not workdir.exists()
    assert not any(d.exists() for d in group_dirs)


def test_no_cgroup_access_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(cgroups, "CGROUP_MOUNT", Path("/nonexistent"))
    monkeypatch.setattr(cgroups, "_v1_mounts", lambda: {})
    with pytest.raises(cgroups.EnforcementUnavailable, match="--hb-enforcement=rlimit"):
        cgroups.detect()


def test_rlimit_fallback_caps_address_space(tmp_path, monkeypatch):
    b = LocalBackend("rl", enforcement="rlimit")
    assert b.check() == "rlimit"
    box = sandbox(b, memory="64Mi")
    try:
        result = box.exec(HOG)
        evidence = box.evidence()
    finally:
        box.close()
    assert result.exit_code != 0 and "MemoryError" in result.stderr
    assert evidence.oom_kills == 1 and evidence.oom_source == "heuristic"


def test_file_access_is_confined_to_the_work_dir(backend, tmp_path):
    from pytest_harnessbench.sandbox.base import SandboxPathError

    box = sandbox(backend)
    outside = tmp_path / "outside.txt"
    outside.write_text("host")
    try:
        (box.workdir / "link").symlink_to(outside)
        for path in (str(outside), "../outside.txt", "link", "/etc/hostname"):
            with pytest.raises(SandboxPathError):
                box.read_file(path)
        with pytest.raises(SandboxPathError):
            box.write_file("../../escaped.txt", "x")
        box.write_file("sub/../inside.txt", "ok")  # '..' that stays inside is fine
        assert box.read_file("inside.txt") == "ok"
    finally:
        box.close()
    assert outside.read_text() == "host" and not (tmp_path.parent / "escaped.txt").exists()


def test_rlimit_close_kills_what_commands_left_running(tmp_path, monkeypatch):
    box = sandbox(LocalBackend("rl2", enforcement="rlimit"))
    pid = int(box.exec("sleep 300 > /dev/null 2>&1 & echo $!").stdout)
    box.close()
    time.sleep(0.1)
    state = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}/stat").exists() else "gone"
    assert state in ("gone", "Z")


def test_reap_ignores_stray_files_in_the_work_root(backend):
    from pytest_harnessbench.sandbox.local import work_root

    work_root().mkdir(parents=True, exist_ok=True)
    (work_root() / "stray.txt").write_text("x")
    assert backend.reap() == 0


def test_a_state_root_removed_mid_run_is_made_again_private_and_trials_go_on(backend):
    import shutil
    import stat

    from pytest_harnessbench.paths import state_root

    sandbox(backend).close()  # the work root is checked once, by the first trial
    root = state_root()
    shutil.rmtree(root)  # e.g. a cleaner of /tmp, or another session's reaper of the run directory
    box = sandbox(backend)
    try:
        assert box.workdir.is_dir() and box.workdir.is_relative_to(root)
        assert stat.S_IMODE(root.stat().st_mode) == 0o700  # made again through state_root(), not by mkdir -p
    finally:
        box.close()


def test_an_interrupt_during_provisioning_leaves_nothing_behind(backend, monkeypatch):
    from pytest_harnessbench.sandbox.local import work_root

    def interrupted(*args, **kwargs):  # Ctrl-C arriving while the group is being set up
        raise KeyboardInterrupt

    backend.check()  # finds the cgroup hierarchy whose create() is interrupted below
    monkeypatch.setattr(backend._cgroups, "create", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sandbox(backend)
    assert not any(work_root().glob("*/*"))


def test_closing_the_backend_removes_sandboxes_its_own_process_left_open(backend):
    box = sandbox(backend)  # as if an interrupt had skipped this sandbox's close()
    box.exec("(sleep 60 &) ; true")
    group_dirs = list(box.group.dirs.values())
    backend.close()
    assert not box.workdir.exists() and not any(d.exists() for d in group_dirs)


def test_a_command_that_cannot_enter_the_cgroup_is_a_lost_sandbox_not_an_unlimited_run(backend):
    from pytest_harnessbench.sandbox.base import SandboxLostError

    box = sandbox(backend)
    try:
        box.group.remove()  # gone under us, e.g. removed by hand
        with pytest.raises(SandboxLostError, match="could not enter the trial's cgroup"):
            box.exec("echo ran > ran.txt")
        assert not (box.workdir / "ran.txt").exists()
    finally:
        box.close()


def test_the_backend_leaves_the_admission_ledger_alone_on_a_fresh_machine(fresh_tmpdir):
    """Issue 11: on an empty TMPDIR the backend's first reap removed the ledger's new, empty directory."""
    from pytest_harnessbench.admission import Admission, Capacity

    admission = Admission(Capacity(cpus=1, memory_bytes=1024**3))  # as the session does, before any trial
    backend = LocalBackend("fresh")
    backend.check()
    backend.close()
    assert admission.acquire("t", 1, 1024) >= 0
    assert admission.release("t")


def test_reap_removes_only_names_of_its_own_pattern_and_counts_sandboxes(backend):
    from pytest_harnessbench.sandbox.local import work_root

    backend.check()  # its first reap happens now, not inside sandbox() below (the fixture skips check() under CI)
    dead = "4194305-1"  # above any pid_max: an owner that cannot be alive
    leaked = work_root() / "run-old" / f"{dead}.t.abc"
    strangers = [work_root() / "notours" / f"{dead}.t.abc", work_root() / "run-old" / "notes",
                 work_root().parent / "admission"]
    for path in [leaked, *strangers]:
        path.mkdir(parents=True)
    box = sandbox(backend)  # this process's own: one sandbox, with a group in every hierarchy
    assert backend.reap() == 1  # the dead owner's, not ours (we are alive), nor anything of another pattern
    assert not leaked.exists() and all(path.exists() for path in strangers) and box.workdir.exists()
    assert backend.reap(own=True) == 1
    assert not box.workdir.exists() and not any(d.exists() for d in box.group.dirs.values())


def test_an_unwritable_state_dir_is_one_clear_error(fresh_tmpdir):
    from pytest_harnessbench.paths import StateDirError, writable_dir

    blocker = fresh_tmpdir / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StateDirError, match=r"cannot write the work at .*file/x .*; set TMPDIR to a writable"):
        writable_dir(blocker / "x", "work")


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny tmpfs needs root")
def test_a_full_state_dir_is_one_clear_error(fresh_tmpdir):
    import subprocess

    from pytest_harnessbench.paths import StateDirError, writable_dir

    mount = fresh_tmpdir / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], check=True)
    try:
        subprocess.run(["dd", "if=/dev/zero", f"of={mount}/fill", "bs=4k"], capture_output=True)
        with pytest.raises(StateDirError, match="no free space for the work"):
            writable_dir(mount, "work")
    finally:
        subprocess.run(["umount", str(mount)], check=True)


# cgroup v2: this project's host is v1; tests/test_cgroup_v2_guest.py runs these in a v2 guest, as root
# and as a non-root user in a delegated subtree, and fails if any of them skipped there.
V2 = (cgroups.CGROUP_MOUNT / "cgroup.controllers").exists()


def v2_only(test):
    reason = "cgroup v2 only: tests/test_cgroup_v2_guest.py runs it in a v2 guest"
    return pytest.mark.may_skip(reason)(pytest.mark.skipif(not V2, reason=reason)(test))


def _pids_in(group: Path) -> list[str]:
    return (group / "cgroup.procs").read_text().split()


@pytest.mark.parametrize("found_by", ["variable", "itself"])
@v2_only
def test_v2_a_delegated_group_holding_the_session_gets_a_session_leaf_until_close(monkeypatch, found_by):
    """Issue 18: a group that holds processes cannot enable controllers (EBUSY) until they move into a leaf."""
    from pytest_harnessbench.procs import owner_token

    own = cgroups.CGROUP_MOUNT / Path("/proc/self/cgroup").read_text().strip().split("::", 1)[1].lstrip("/")
    if own == cgroups.CGROUP_MOUNT:
        pytest.skip("this session runs in the root group, which may hold processes")
    if found_by == "itself" and os.geteuid() == 0:
        pytest.skip("root's groups go under /sys/fs/cgroup/harnessbench unless the variable says otherwise")
    if found_by == "variable":
        monkeypatch.setenv(cgroups.ROOT_ENV, str(own))
    before = (own / "cgroup.subtree_control").read_text().split()
    b = LocalBackend("leaf")
    assert b.check() == "cgroup-v2"
    leaf = own / f"session-{owner_token()}"
    assert str(os.getpid()) in _pids_in(leaf) and _pids_in(own) == []
    assert {"memory", "cpu", "pids"} <= set((own / "cgroup.subtree_control").read_text().split())
    box = sandbox(b)
    assert box.group.dirs["memory"].parent == own
    result = box.exec(HOG)
    box.close()
    b.close()
    assert result.exit_code == 137
    assert not leaf.exists() and str(os.getpid()) in _pids_in(own)
    assert (own / "cgroup.subtree_control").read_text().split() == before


@v2_only
def test_v2_limits_as_the_kernel_holds_them(backend):
    box = sandbox(backend, "2", cpus=0.25, memory="64Mi", pids=32)
    try:
        applied = box.applied_limits()
    finally:
        box.close()
    assert applied["memory.max"] == 128 * 1024**2 and applied["memory.low"] == 64 * 1024**2
    assert applied["cpu.max"] == "50000 100000" and applied["cpu.weight"] == 25 and applied["pids.max"] == 32
    assert applied.get("memory.swap.max", 0) == 0  # over the threshold is an OOM kill, not swapping


@v2_only
def test_v2_polled_peak_where_the_kernel_has_no_memory_peak(backend):
    box = sandbox(backend, "uncapped")
    try:
        box.group.poll_peak()  # what create() does on kernels before 5.19
        box.exec("python3 -c 'import time; x = bytearray(150 << 20); x[::4096] = b\"1\" * len(x[::4096]); "
                 "time.sleep(0.5)'")
        polled = box.evidence().peak_memory_bytes
        kernel = int((box.group.dirs["memory"] / "memory.peak").read_text())
    finally:
        box.close()
    assert 150 * 1024**2 <= polled <= kernel


FOUR_TRIALS = '''
import pytest

HOG = "python3 -c 'x = bytearray(220 * 1000 * 1000); x[::4096] = b\\"1\\" * len(x[::4096])'"

@pytest.mark.task(cpus=1, memory="96Mi", timeout=60,
                  solutions={"heavy": HOG + " && echo 42 > answer.txt", "wrong": "echo 41 > answer.txt"})
def test_answer(trial):
    trial.run_agent("Write the answer to answer.txt.")
    assert trial.sandbox.read_file("answer.txt").strip() == "42"
'''


def _group_dirs() -> set[str]:
    """Every cgroup directory on this host (all hierarchies)."""
    from pytest_harnessbench.procs import cgroup_mounts

    return {root for mount in set(cgroup_mounts().values()) for root, _, _ in os.walk(mount)}


@pytest.mark.parametrize("workers", ["0", pytest.param("2", marks=pytest.mark.e2e)])
def test_four_trials_classify_the_same_on_every_cgroup_version(pytester, workers):
    """The issue 18 bake-off: on the v1 host, and (via tests/test_cgroup_v2_guest.py) on v2 as root and as a user.

    Under xdist, on v2 as a user, the workers are born in the controller's session leaf.
    """
    pytester.makepyfile(test_four=FOUR_TRIALS)
    args = ["-p", "no:cacheprovider", "--hb-out", "run", "--models", "oracle:heavy,oracle:wrong", "--multipliers",
            "1,uncapped", "-n", workers]
    result = pytester.runpytest_subprocess(*args) if workers != "0" else inprocess.run(pytester, *args)
    recs = results(pytester.path / "run")
    assert {(r["model"], r["multiplier"]): (r["outcome"], r["cause"]) for r in recs} == {
        ("oracle:heavy", "1x"): ("infra", "oom"), ("oracle:heavy", "uncapped"): ("passed", None),
        ("oracle:wrong", "1x"): ("failed", "assertion"), ("oracle:wrong", "uncapped"): ("failed", "assertion")}, \
        result.outlines[-30:]
    assert {r["enforcement"] for r in recs} == {"cgroup-v2" if V2 else "cgroup-v1"}
    heavy = next(r for r in recs if (r["model"], r["multiplier"]) == ("oracle:heavy", "1x"))
    assert heavy["resources"]["oom_kills"] >= 1 and heavy["resources"]["peak_memory_bytes"] <= 96 * 1024**2 + 4096
    run_id = recs[0]["run_id"]
    assert not [d for d in _group_dirs() if run_id in d or re.search(r"/session-\d+-\d+$", d)]
