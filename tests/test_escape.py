"""The escape suite: what a model's command can read, reach, signal or write, asserted from the host side.

One suite for every backend that runs model-written commands (STYLE.md: one backend test suite): the local
backend confined, as every trial of a session with a provider or replay model is (sandbox/confine.py), and the
docker backend. Here they run as root; tests/test_cgroup_v2_guest.py runs the ``local`` cases again as uid 1000
in a cgroup v2 guest. The kubernetes backend's security context is checked in tests/test_k8s_manifests.py.

Each probe is a shell command run in the sandbox; each assertion is made from outside it: a canary secret
absent from the output, a host file not written, a host process still alive, a listening socket that counted
no connection, limits read back unchanged.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from support.docker_probe import unavailable

from pytest_harnessbench.paths import state_root
from pytest_harnessbench.resources import Allocation, Multiplier, Spec
from pytest_harnessbench.sandbox import confine
from pytest_harnessbench.sandbox.local import LocalBackend

pytestmark = pytest.mark.trials  # real sandboxes, attacked from inside

BACKENDS = ["local", "docker"]
CAP_SYS_ADMIN = 21


def _backend(name: str):
    run_id = f"escape-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    if name == "local":
        reason = confine.unavailable_reason()
        if reason:
            pytest.skip(f"commands cannot be confined here: {reason}")
        if os.geteuid() != 0 and not Path("/sys/fs/cgroup/cgroup.controllers").exists():
            # A normal user on cgroup v1 has no delegated group: such a user runs with rlimit enforcement.
            return LocalBackend(run_id, enforcement="rlimit", confined=True)
        return LocalBackend(run_id, confined=True)
    reason = unavailable()
    if reason:
        pytest.skip(f"no usable Docker engine: {reason}")
    from pytest_harnessbench.sandbox.docker import DockerBackend
    return DockerBackend(run_id)


@pytest.fixture(params=BACKENDS)
def backend(request):
    b = _backend(request.param)
    yield b
    b.close()


@pytest.fixture
def box(backend):
    sandbox = backend.provision(Allocation.of(Spec.from_marker(memory="128Mi", pids=64), Multiplier.parse("1")),
                                "escape")
    yield sandbox
    sandbox.close()


@pytest.fixture
def host_process():
    """A host process holding a canary secret in its environment, as the controller holds API keys."""
    canary = f"sk-canary-{secrets.token_hex(8)}"
    proc = subprocess.Popen(["sleep", "300"], env={"PATH": os.environ["PATH"], "OPENAI_API_KEY": canary})
    yield proc, canary
    proc.kill()
    proc.wait()


def test_cannot_read_a_host_process_environment(box, host_process):
    proc, canary = host_process
    result = box.exec(f"cat /proc/{proc.pid}/environ; cat /proc/{os.getpid()}/environ; "
                      "cat /proc/*/environ; cat /proc/1/environ", timeout=30)
    assert canary not in result.stdout + result.stderr


def test_cannot_read_files_outside_its_work_dir(box, tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    key = home / ".ssh" / "id_ed25519"
    key.parent.mkdir()
    canary = f"PRIVATE-{secrets.token_hex(8)}"
    key.write_text(canary)
    key.chmod(0o600)
    elsewhere = Path(tempfile.mkdtemp(dir="/var/tmp")) / "results.jsonl"  # e.g. a run directory outside /tmp
    elsewhere.write_text(canary)
    try:
        result = box.exec(f"cat {key}; ls -la {home}/.ssh; cat {elsewhere}; cat /etc/shadow; ls /root /home",
                          timeout=30)
    finally:
        shutil.rmtree(elsewhere.parent)
    assert canary not in result.stdout
    assert "id_ed25519" not in result.stdout
    shadow = Path("/etc/shadow")
    if os.access(shadow, os.R_OK):
        host_lines = [line for line in shadow.read_text().splitlines() if line]
        assert not set(host_lines) <= set(result.stdout.splitlines()), "the host's /etc/shadow was read"


def test_cannot_read_another_trials_work_dir(backend, box):
    other = backend.provision(Allocation.of(Spec.from_marker(memory="64Mi"), Multiplier.parse("1")), "other")
    marker = f"other-trial-{secrets.token_hex(6)}"
    try:
        other.write_file(f"{marker}.txt", "secret answer")
        where = f"cat {other.workdir}/{marker}.txt; " if hasattr(other, "workdir") else ""
        result = box.exec(f"{where}find / -path /proc -prune -o -name '{marker}*' -print 2>/dev/null", timeout=60)
    finally:
        other.close()
    assert marker not in result.stdout and "secret answer" not in result.stdout


class _Listener:
    """A listening socket on the host that counts the connections it accepts."""

    def __init__(self, family: int, address):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind(address)
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> int:
        self._stop.set()
        self._thread.join()
        self.sock.close()
        return self.accepted


CONNECT = ("python3 -c \"import socket, sys; s = socket.socket(socket.{family}); s.settimeout(3); "
           "s.connect({address!r}); print('CONNECTED')\"")


def test_cannot_reach_host_sockets(box):
    tmp = tempfile.gettempdir()
    unix_path = f"{tmp if len(tmp) < 60 else '/tmp'}/hb-escape-{secrets.token_hex(4)}.sock"  # 108-byte limit
    unix = _Listener(socket.AF_UNIX, unix_path)
    tcp = _Listener(socket.AF_INET, ("127.0.0.1", 0))
    port = tcp.sock.getsockname()[1]
    probes = [CONNECT.format(family="AF_UNIX", address=unix_path),
              CONNECT.format(family="AF_INET", address=("127.0.0.1", port))]
    if Path("/var/run/docker.sock").exists():
        probes.append(CONNECT.format(family="AF_UNIX", address="/var/run/docker.sock"))
    try:
        result = box.exec("; ".join(probes), timeout=60)
    finally:
        counts = unix.close(), tcp.close()
        os.unlink(unix_path)
    assert counts == (0, 0)
    assert "CONNECTED" not in result.stdout  # the Docker daemon's socket included


def test_holds_no_admin_capability_and_cannot_write_the_host(box):
    name = f"hb-escape-{secrets.token_hex(4)}"
    targets = [Path("/") / name, Path("/usr") / name, Path("/etc") / name]
    result = box.exec("grep CapEff /proc/self/status; mount -o remount,bind,rw / 2>&1; mount -o remount,rw /usr "
                      f"2>&1; {'; '.join(f'touch {t}' for t in targets)}", timeout=30)
    try:
        assert not any(t.exists() for t in targets), result.stdout + result.stderr
    finally:
        for t in targets:
            t.unlink(missing_ok=True)
    cap_eff = int(result.stdout.split("CapEff:")[1].split()[0], 16)
    assert not cap_eff & (1 << CAP_SYS_ADMIN)


def test_cannot_signal_host_processes(box, host_process):
    proc, _ = host_process
    result = box.exec(f"kill -9 {proc.pid}; kill -0 {os.getpid()} && echo SIGNALLED-THE-CONTROLLER", timeout=30)
    time.sleep(0.2)
    assert proc.poll() is None, "a host process was killed from the sandbox"
    assert "SIGNALLED-THE-CONTROLLER" not in result.stdout


def test_cannot_raise_its_own_limits(box):
    before = box.applied_limits()
    box.exec("for f in $(find /sys/fs/cgroup -name 'memory.max' -o -name 'memory.limit_in_bytes' "
             "-o -name 'pids.max' 2>/dev/null); do echo max > $f; echo -1 > $f; done; "
             "cd /sys/fs/cgroup 2>/dev/null && echo $$ > cgroup.procs; ulimit -v unlimited", timeout=60)
    assert box.applied_limits() == before


def test_a_fork_bomb_is_contained(box):
    if box.enforcement == "rlimit":
        pytest.skip("rlimit enforcement has no pids limit: a fork bomb is bounded only by the command's timeout")
    result = box.exec("bomb() { bomb | bomb & }; bomb; sleep 3", timeout=20)
    assert result.duration_s < 20 + 10, result  # the call came back: the bomb neither hung the command nor the host
    for _ in range(10):  # the bomb's last processes may hold the pids limit for a moment after the kill
        after = box.exec("echo alive", timeout=30)
        if after.stdout.strip() == "alive":
            break
        time.sleep(1)
    assert after.stdout.strip() == "alive", after


def test_leaves_no_root_or_setuid_root_file_on_the_host():
    """What a command makes in its work directory is never host root's, setuid or not (checked with lstat).

    Under a root session bubblewrap started as root would map uid 1000 inside onto host root: ``chmod u+s`` on
    a copy of a shell would leave a setuid-root binary. The work directory sits below the private state root.
    Local backend only: a docker trial's files live in the container's own filesystem.
    """
    backend = _backend("local")
    box = backend.provision(Allocation.of(Spec.from_marker(memory="64Mi"), Multiplier.parse("1")), "setuid")
    try:
        result = box.exec("cp /bin/sh sh-copy; chmod u+s,g+s sh-copy; touch f; chown 0:0 f; chmod 6777 f; "
                          "mkdir d; chmod 7777 d; cp /bin/sh d/sh2; chmod 4755 d/sh2; chmod 0777 .; id -u", timeout=30)
        made = []
        for where, dirs, files in os.walk(box.workdir):
            made += [Path(where, name) for name in dirs + files]
        owners = {path.name: os.lstat(path).st_uid for path in made}
        setuid = {path.name for path in made if os.lstat(path).st_mode & stat.S_ISUID}
        root = state_root()
        root_mode = stat.S_IMODE(os.lstat(root).st_mode)
        inside_root = root in box.workdir.parents
    finally:
        box.close()
        backend.close()
    assert result.stdout.split()[-1] == "1000", result
    assert "sh-copy" in setuid and "sh2" in setuid, (result, setuid)  # the attempts themselves worked ...
    assert all(uid != 0 for uid in owners.values()), owners  # ... on files that are not root's
    if os.geteuid() == 0:
        assert set(owners.values()) == {confine.ROOT_SESSION_UID}, owners
    assert inside_root and root_mode == 0o700, (root, oct(root_mode))


# --- the file tools, which run in the controller's process (local backend) ---------------------------------


def _exchange(a: Path, b: Path) -> None:
    """Swap two names atomically (renameat2 RENAME_EXCHANGE): a directory and a link, with no gap between."""
    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd, rename_exchange = -100, 2
    if libc.renameat2(at_fdcwd, bytes(a), at_fdcwd, bytes(b), rename_exchange) != 0:
        raise OSError(ctypes.get_errno(), "renameat2")


def test_file_tools_cannot_be_raced_out_of_the_work_dir(tmp_path):
    """A process swaps a directory for a link to ``/`` while the controller reads and writes through it.

    The attacker runs on the host side here (a thread), as a background process of an unconfined sandbox
    would: the file tools must hold even then.
    """
    backend = LocalBackend(f"race-{os.getpid()}", enforcement="rlimit")
    box = backend.provision(Allocation.of(Spec.from_marker(memory="64Mi"), Multiplier.parse("1")), "race")
    target = Path("/etc/hostname") if Path("/etc/hostname").exists() else Path("/etc/passwd")
    host_text = target.read_text()
    escape_name = f"hb-race-{secrets.token_hex(4)}"
    work = box.workdir
    (work / "d" / target.parent.name).mkdir(parents=True)
    (work / "d" / target.relative_to("/")).write_text("inside")
    (work / "link").symlink_to("/")
    stop = threading.Event()

    def swap():
        while not stop.is_set():
            _exchange(work / "d", work / "link")

    attacker = threading.Thread(target=swap, daemon=True)
    attacker.start()
    leaked = written = 0
    try:
        for _ in range(3000):
            try:
                if box.read_file(f"d/{target.relative_to('/')}") == host_text:
                    leaked += 1
            except OSError:
                pass
            try:
                box.write_file(f"d/{escape_name}", "x")
            except OSError:
                pass
            if Path("/", escape_name).exists():
                written += 1
    finally:
        stop.set()
        attacker.join()
        Path("/", escape_name).unlink(missing_ok=True)
        box.close()
        backend.close()
    assert (leaked, written) == (0, 0)


def test_file_tools_refuse_links_fifos_and_paths_out(tmp_path):
    backend = LocalBackend(f"paths-{os.getpid()}", enforcement="rlimit")
    box = backend.provision(Allocation.of(Spec.from_marker(memory="64Mi"), Multiplier.parse("1")), "paths")
    try:
        (box.workdir / "out").symlink_to("/etc/passwd")
        os.mkfifo(box.workdir / "fifo")
        for path in ("out", "fifo", "../x", "/etc/passwd", "a/../../x"):
            with pytest.raises(PermissionError):
                box.read_file(path)
        with pytest.raises(PermissionError):
            box.write_file("out", "overwritten")
        assert Path("/etc/passwd").read_text() != "overwritten"
        box.write_file("a/b/../c.txt", "ok")
        assert box.read_file(str(box.workdir / "a" / "c.txt")) == "ok"
    finally:
        box.close()
        backend.close()


# --- the same suite as a normal user -------------------------------------------------------------------------

USER_ID = 1000


def _expose(paths: list[Path]) -> str:
    """Shell lines that make each path below a parent others cannot enter (pyenv's /root/.pyenv) reachable.

    The parent becomes an empty tmpfs holding only the children needed. Run in a mount namespace of the
    test's own: the host's mounts are untouched.
    """
    hidden: dict[Path, set[str]] = {}
    for path in paths:
        for parent in reversed(path.parents):
            if parent != Path("/") and not parent.stat().st_mode & 0o001:
                hidden.setdefault(parent, set()).add(path.relative_to(parent).parts[0])
                break
    lines = []
    for parent, children in hidden.items():
        lines.append(f"mkdir -p /mnt/hidden{parent} && mount --bind {parent} /mnt/hidden{parent} && "
                     f"mount -t tmpfs -o mode=0755 tmpfs {parent}")
        lines += [f"mkdir -p {parent}/{child} && mount --bind /mnt/hidden{parent}/{child} {parent}/{child}"
                  for child in sorted(children)]
    return "\n".join(lines)


@pytest.mark.e2e  # a pytest of uid 1000, started through a shell script
@pytest.mark.docker
@pytest.mark.skipif(os.geteuid() != 0, reason="switching to a normal user needs root")
def test_the_suite_holds_as_a_normal_user():
    """The local and docker cases again as uid 1000 (in the docker group), from a pytest of that user.

    As a normal user on this cgroup v1 host the local backend runs with rlimit enforcement (nothing is
    delegated); the cgroup v2 guest (tests/test_cgroup_v2_guest.py) runs the local cases as a delegated user.
    """
    import grp
    import sys

    repo = Path(__file__).resolve().parent.parent
    try:
        groups = f"--groups={grp.getgrnam('docker').gr_gid}"
    except KeyError:
        groups = "--clear-groups"
    home = Path(tempfile.mkdtemp(prefix="hb-user-", dir="/tmp"))  # pytest keeps its own tmp dirs 0700
    os.chown(home, USER_ID, USER_ID)
    script = home / "as-user.sh"
    script.write_text(f"""set -e
mount --make-rprivate /
{_expose([Path(sys.executable), Path(sys.prefix), Path(sys.base_prefix), repo])}
cd {repo}
exec setpriv --reuid={USER_ID} --regid={USER_ID} {groups} env -u PYTEST_XDIST_WORKER TMPDIR={home} HOME={home} \\
    PYTHONPATH={repo} {sys.executable} -m pytest -p no:cacheprovider -p no:xdist -q -rA --junitxml={home}/junit.xml \\
    tests/test_escape.py -k "(local or docker or file_tools) and not normal_user"
""")
    try:
        result = subprocess.run(["unshare", "-m", "sh", str(script)], capture_output=True, text=True, timeout=600)
        junit = (home / "junit.xml").read_text() if (home / "junit.xml").exists() else "<testsuite/>"
    finally:
        shutil.rmtree(home)
    tail = (result.stdout + result.stderr)[-4000:]
    assert result.returncode == 0, (result.stdout + result.stderr)
    import xml.etree.ElementTree as ET

    cases = {case.get("name"): [child.tag for child in case] for case in ET.fromstring(junit).iter("testcase")}
    passed = {name for name, children in cases.items() if not children}
    assert {f"test_cannot_read_a_host_process_environment[{b}]" for b in BACKENDS} <= passed, tail
    assert len(passed) >= 2 * 8 + 2 - 1, tail  # every case but the fork bomb under rlimit
