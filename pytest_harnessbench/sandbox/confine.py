"""Confinement of untrusted commands on the local backend: bubblewrap's arguments and a seccomp filter.

A provider model (or a replay of one) writes the commands the local backend
runs on this host. Each such command runs under bubblewrap, as Flatpak runs
applications, with (README, "Safety"):

- its own user namespace, an unprivileged identity inside (uid/gid 1000), every
  capability dropped, no new privileges, and no further user namespaces
  (``--disable-userns``). Uid 1000 inside is the user who starts bubblewrap
  on the host: the session's user, or, when the session runs as root,
  :data:`ROOT_SESSION_UID` (``nobody``), to which the command drops before
  bubblewrap starts. Started by root, bubblewrap would map
  uid 1000 onto host root, and a command could leave a setuid-root file in
  its work directory (:func:`host_owner`). The dropped user cannot walk the
  private state root to the work directory: the controller makes, once per
  process, a mount namespace (:class:`Stage`) where the state directories are
  bound onto a tmpfs it can reach, and ``nsenter`` enters it, drops to nobody
  and starts bubblewrap;
- its own PID, IPC, UTS, cgroup and (unless the task asks for network) network
  namespaces: it sees and signals only its own processes, and reaches no host
  socket, loopback service or abstract Unix socket;
- a new session (no terminal to inject input into) and death with its parent;
- a minimal read-only filesystem: ``/usr`` (and the merged-usr links), the
  ``/etc`` files programs need (:data:`ETC_FILES`; not ``shadow``, not the
  host's users, resolver or credentials), a ``/proc`` of its own processes, a
  minimal ``/dev``, a private ``/tmp``, and the trial's work directory
  read-write. No home directory, ``/root``, ``/run``, ``/var``, ``/sys``, run
  directory or other trial's directory exists inside;
- a seccomp filter in the spirit of Docker's default profile
  (:func:`seccomp_program`): no mount, namespace, ptrace, bpf, keyring,
  kernel-module, reboot, clock or io_uring calls.

Processes a command leaves in the background end with it (its PID namespace
ends with its shell); the work directory persists between commands.
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

SANDBOX_UID = 1000
SANDBOX_GID = 1000
# The host identity a root session's confined commands run as (nobody/nogroup). Files they leave in their work
# directory are this user's on the host: never setuid-root, and unreachable by others below the 0700 state root.
ROOT_SESSION_UID = 65534
ROOT_SESSION_GID = 65534
# Where a Stage's tmpfs goes, in its own mount namespace (the host's directory is untouched): the first of these
# that is no ancestor of a directory it shows. Each lies just below /, which anyone may enter.
STAGE_POINTS = ("/tmp", "/var/tmp", "/dev/shm", "/mnt")

# /etc entries programs need to run (dynamic linker, Debian's alternatives, time zone, certificates,
# name-service switch for files only). Bound read-only when present.
ETC_FILES = ("alternatives", "bash.bashrc", "ca-certificates", "debian_version", "inputrc", "ld.so.cache",
             "ld.so.conf", "ld.so.conf.d", "locale.alias", "localtime", "magic", "mime.types", "nsswitch.conf",
             "os-release", "profile", "protocols", "services", "ssl", "terminfo", "timezone")
# Added only for tasks that ask for network access: name resolution.
ETC_NETWORK_FILES = ("gai.conf", "host.conf", "hosts", "resolv.conf")
# Top-level directories that merged-usr systems make links into /usr; on others, bound read-only.
_USR_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")

# --- the seccomp filter ---------------------------------------------------------------------------------
# Syscalls refused with EPERM, by number per architecture (from the kernel's unistd headers:
# asm/unistd_64.h on x86_64, asm-generic/unistd.h on aarch64). Docker's default profile refuses the same
# families to a container without CAP_SYS_ADMIN.
_DENIED = {
    "x86_64": {
        "acct": 163, "add_key": 248, "adjtimex": 159, "bpf": 321, "chroot": 161, "clock_adjtime": 305,
        "clock_settime": 227, "delete_module": 176, "finit_module": 313, "fsconfig": 431, "fsmount": 432,
        "fsopen": 430, "fspick": 433, "init_module": 175, "io_uring_enter": 426, "io_uring_register": 427,
        "io_uring_setup": 425, "ioperm": 173, "iopl": 172, "kcmp": 312, "kexec_file_load": 320,
        "kexec_load": 246, "keyctl": 250, "lookup_dcookie": 212, "mount": 165, "mount_setattr": 442,
        "move_mount": 429, "name_to_handle_at": 303, "nfsservctl": 180, "open_by_handle_at": 304,
        "open_tree": 428, "perf_event_open": 298, "pidfd_getfd": 438, "pivot_root": 155,
        "process_vm_readv": 310, "process_vm_writev": 311, "ptrace": 101, "quotactl": 179, "quotactl_fd": 443,
        "reboot": 169, "request_key": 249, "setns": 308, "settimeofday": 164, "swapoff": 168, "swapon": 167,
        "syslog": 103, "umount2": 166, "unshare": 272, "userfaultfd": 323, "uselib": 134, "ustat": 136,
        "vhangup": 153, "_sysctl": 156, "sysfs": 139,
    },
    "aarch64": {
        "acct": 89, "add_key": 217, "adjtimex": 171, "bpf": 280, "chroot": 51, "clock_adjtime": 266,
        "clock_settime": 112, "delete_module": 106, "finit_module": 273, "fsconfig": 431, "fsmount": 432,
        "fsopen": 430, "fspick": 433, "init_module": 105, "io_uring_enter": 426, "io_uring_register": 427,
        "io_uring_setup": 425, "kcmp": 272, "kexec_file_load": 294, "kexec_load": 104, "keyctl": 219,
        "lookup_dcookie": 18, "mount": 40, "mount_setattr": 442, "move_mount": 429, "name_to_handle_at": 264,
        "nfsservctl": 42, "open_by_handle_at": 265, "open_tree": 428, "perf_event_open": 241,
        "pidfd_getfd": 438, "pivot_root": 41, "process_vm_readv": 270, "process_vm_writev": 271, "ptrace": 117,
        "quotactl": 60, "quotactl_fd": 443, "reboot": 142, "request_key": 218, "setns": 268,
        "settimeofday": 170, "swapoff": 225, "swapon": 224, "syslog": 116, "umount2": 39, "unshare": 97,
        "userfaultfd": 282, "vhangup": 58,
    },
}
_CLONE = {"x86_64": 56, "aarch64": 220}
_CLONE3 = {"x86_64": 435, "aarch64": 435}
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
# clone() flags that create namespaces: CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET.
_CLONE_NEW_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
_X32_SYSCALL_BIT = 0x40000000

# Classic BPF, as seccomp runs it (linux/filter.h, linux/seccomp.h).
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K
_RET_ALLOW = 0x7FFF0000
_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_EPERM, _ENOSYS = 1, 38
# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6] (little-endian hosts).
_NR, _ARCH, _ARG0_LOW = 0, 4, 16


def host_owner() -> tuple[int, int] | None:
    """The host (uid, gid) confined commands run as, when it is not the session's own: a root session's drop.

    The work directory (and what the controller writes into it) must belong to it,
    so that uid 1000 inside may write there.
    """
    return (ROOT_SESSION_UID, ROOT_SESSION_GID) if os.geteuid() == 0 else None


class ConfinementUnavailable(RuntimeError):
    """This machine cannot confine commands (no bubblewrap, no user namespaces, an unknown architecture)."""


class Stage:
    """A root session's view of its private directories for the dropped user: a mount namespace, kept by a descriptor.

    In it a tmpfs (mode 0755) over one of :data:`STAGE_POINTS` holds a bind of
    each of ``roots`` (the work root, the ``/etc`` trees' root; each must let
    nobody enter: 0755, or owned by it), so that nobody
    can reach a trial's directory there without any way into the 0700 state
    root on the host. Made once per process (about the cost of one command);
    every confined command enters it with ``nsenter``, which also drops to
    nobody. The namespace lives as long as :attr:`fd` is open: nothing is left
    behind when the process ends, however it ends.

    Raises:
        ConfinementUnavailable: the namespace cannot be made (no ``unshare``, no mount permission).
    """

    def __init__(self, roots: list[Path]):
        self.roots = [Path(root) for root in roots]
        self.point = next((p for p in STAGE_POINTS if os.path.isdir(p) and not any(
            root == Path(p) or Path(p) in root.parents for root in self.roots)), None)
        if self.point is None:
            raise ConfinementUnavailable(f"no place for a root session's stage among {', '.join(STAGE_POINTS)}")
        binds = " && ".join(f'mkdir "$1/{i}" && mount --bind "${i + 2}" "$1/{i}"' for i in range(len(self.roots)))
        script = f'mount -t tmpfs -o mode=0755,size=64k harnessbench "$1" && {binds} && echo ready && read _'
        try:
            holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
                                       script, "sh", self.point, *map(str, self.roots)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            raise ConfinementUnavailable(f"cannot make a root session's mount namespace: {exc}") from None
        try:
            if holder.stdout.readline() != b"ready\n":
                holder.wait(timeout=20)
                detail = holder.stderr.read().decode(errors="replace").strip()
                raise ConfinementUnavailable(f"cannot make a root session's mount namespace: {detail}")
            self.fd = os.open(f"/proc/{holder.pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            holder.stdin.close()  # the holder exits; the namespace stays while self.fd is open
            holder.wait(timeout=20)
            holder.stdout.close()
            holder.stderr.close()

    def path(self, path: Path | str) -> str:
        """Where ``path`` (below one of the roots) is seen inside the namespace."""
        for i, root in enumerate(self.roots):
            if Path(path) == root or root in Path(path).parents:
                return os.path.join(self.point, str(i), os.path.relpath(path, root))
        raise ValueError(f"{path} is below none of {self.roots}")

    def close(self) -> None:
        os.close(self.fd)


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


@functools.cache
def seccomp_program(machine: str | None = None) -> bytes:
    """The filter as bubblewrap's ``--seccomp FD`` reads it: an array of ``struct sock_filter``.

    Another architecture's calls are refused (the process is killed): their
    numbers differ, so the list below would not hold for them. On x86_64 the
    x32 ABI (numbers with bit 30 set) is refused too. ``clone3`` answers ENOSYS,
    as in Docker's profile, so that libc falls back to ``clone``, whose flags
    a filter can read (``clone3`` passes them in memory it cannot).

    Raises:
        ConfinementUnavailable: no table for this architecture.
    """
    arch = machine or platform.machine()
    if arch not in _DENIED:
        raise ConfinementUnavailable(f"no seccomp filter for the {arch} architecture (known: {', '.join(_DENIED)})")
    deny_eperm = _insn(_RET_K, _RET_ERRNO | _EPERM)
    body = [_insn(_LD_W_ABS, _ARCH), _insn(_JEQ_K, _AUDIT_ARCH[arch], jt=1), _insn(_RET_K, _RET_KILL_PROCESS),
            _insn(_LD_W_ABS, _NR)]
    if arch == "x86_64":
        body += [_insn(_JGE_K, _X32_SYSCALL_BIT, jf=1), deny_eperm]
    for number in sorted(_DENIED[arch].values()):
        body += [_insn(_JEQ_K, number, jf=1), deny_eperm]
    body += [_insn(_JEQ_K, _CLONE3[arch], jf=1), _insn(_RET_K, _RET_ERRNO | _ENOSYS),
             _insn(_JEQ_K, _CLONE[arch], jf=3), _insn(_LD_W_ABS, _ARG0_LOW),
             _insn(_JSET_K, _CLONE_NEW_NAMESPACES, jf=1), deny_eperm,
             _insn(_RET_K, _RET_ALLOW)]
    return b"".join(body)


def _identity_files() -> tuple[str, str]:
    """/etc/passwd and /etc/group of the sandbox: its own user, root and nobody, nothing of the host's."""
    passwd = ("root:x:0:0:root:/root:/usr/sbin/nologin\n"
              f"sandbox:x:{SANDBOX_UID}:{SANDBOX_GID}:sandbox:/tmp:/bin/bash\n"
              "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
    group = f"root:x:0:\nsandbox:x:{SANDBOX_GID}:\nnogroup:x:65534:\n"
    return passwd, group


def _private(directory: str, names: list[str]) -> set[str]:
    """Entries others cannot read on the host (``/etc/ssl/private``): inside, the sandbox would own their copies."""
    hidden = set()
    for name in names:
        try:
            if not os.lstat(os.path.join(directory, name)).st_mode & 0o004:
                hidden.add(name)
        except OSError:
            hidden.add(name)
    return hidden


def prepare_etc(directory: Path) -> Path:
    """Fill ``directory`` with the sandbox's ``/etc``: copies of :data:`ETC_FILES` (links kept as links) and its identity.

    Bound read-only as one mount: twenty binds of single files cost a trial
    about 10 ms of mount calls; one directory made once per process costs nothing per trial.
    """
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)  # readable by the dropped user (mkdtemp made it 0700); its parents stay private
    for name in ETC_FILES:
        source = Path("/etc") / name
        try:
            if source.is_dir() and not source.is_symlink():
                shutil.copytree(source, directory / name, symlinks=True, dirs_exist_ok=True, ignore=_private)
            elif source.exists() and os.stat(source).st_mode & 0o004:
                shutil.copy2(source, directory / name)  # follows a link: os-release -> ../usr/lib/os-release
        except OSError:
            continue  # unreadable or vanished: programs do without it
    passwd, group = _identity_files()
    (directory / "passwd").write_text(passwd)
    (directory / "group").write_text(group)
    for name in ETC_NETWORK_FILES:  # empty; a task with network access gets the host's bound over them
        (directory / name).touch()
    return directory


def _seccomp_fd() -> int:
    """A file descriptor of an anonymous in-memory file holding the filter, positioned at its start."""
    fd = os.memfd_create("harnessbench-seccomp", os.MFD_CLOEXEC)
    os.write(fd, seccomp_program())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


@functools.cache
def _system_binds() -> tuple[str, ...]:
    """``/usr`` and what lies beside it at the top level: links on merged-usr systems, read-only binds otherwise."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in _USR_LINKS:
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    return tuple(args)


class Confinement:
    """The bubblewrap command line for one command, and the file descriptors it reads (closed after spawning).

    ``etc`` is a directory made by :func:`prepare_etc`. Use as
    ``with Confinement(workdir, etc, network) as c: Popen(c.argv + cmd, pass_fds=c.fds)``.
    ``stage``: a root session's :class:`Stage` showing both (required when :func:`host_owner` is set).
    """

    def __init__(self, workdir: Path, etc: Path, network: bool = False, stage: Stage | None = None):
        self.workdir = str(workdir)
        self.etc = str(etc)
        self.network = network
        self.stage = stage
        self.fds: tuple[int, ...] = ()

    def __enter__(self) -> Confinement:
        self.fds = (_seccomp_fd(),)
        return self

    def __exit__(self, *exc) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = ()

    @property
    def pass_fds(self) -> tuple[int, ...]:
        """The descriptors the command line names: the seccomp filter's, and the stage's namespace."""
        return self.fds + ((self.stage.fd,) if self.stage is not None else ())

    @property
    def argv(self) -> list[str]:
        resolver = [arg for name in ETC_NETWORK_FILES for arg in ("--ro-bind-try", f"/etc/{name}", f"/etc/{name}")]
        drop, workdir, etc = self._drop()
        return [*drop, "bwrap", "--unshare-all", "--unshare-user", *(["--share-net"] if self.network else []),
                "--disable-userns", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID), "--hostname", "sandbox",
                "--cap-drop", "ALL", "--new-session", "--die-with-parent",
                *_system_binds(), "--ro-bind", etc, "/etc", *(resolver if self.network else []),
                "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/dev/shm", "--tmpfs", "/tmp",
                "--bind", workdir, self.workdir, "--chdir", self.workdir, "--remount-ro", "/",
                "--seccomp", str(self.fds[0]), "--"]

    def _drop(self) -> tuple[list[str], str, str]:
        """What runs before bubblewrap, and where bubblewrap finds the work directory and ``/etc``.

        In a root session: ``nsenter`` into the :class:`Stage`'s mount namespace,
        dropping to :func:`host_owner` there; the directories as the stage shows
        them. Otherwise nothing, and the directories where they are.
        """
        owner = host_owner()
        if owner is None:
            return [], self.workdir, self.etc
        if self.stage is None:
            raise ConfinementUnavailable("a root session's confined command needs its stage (confine.Stage)")
        return (["nsenter", f"--mount=/proc/self/fd/{self.stage.fd}", f"--setuid={owner[0]}",
                 f"--setgid={owner[1]}", "--"], self.stage.path(self.workdir), self.stage.path(self.etc))


def environment(workdir: Path, tmpdir: Path) -> dict[str, str]:
    """What a confined command's environment holds: a fixed list, nothing else of the host's (no secrets, no paths)."""
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(workdir),
           "TMPDIR": str(tmpdir), "PWD": str(workdir), "USER": "sandbox", "LOGNAME": "sandbox", "SHELL": "/bin/bash"}
    for name in ("LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


@functools.cache
def unavailable_reason() -> str | None:
    """Why commands cannot be confined here (None: they can), checked by confining ``true`` for real.

    Cached per process: the answer depends on the machine (bubblewrap installed,
    user namespaces allowed), not on the session.
    """
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed"
    if host_owner() is not None and not all(shutil.which(tool) for tool in ("nsenter", "unshare")):
        return "nsenter and unshare (util-linux) are needed: a root session starts bubblewrap as nobody through them"
    try:
        seccomp_program()
    except ConfinementUnavailable as exc:
        return str(exc)
    try:
        with tempfile.TemporaryDirectory() as probe_dir:
            etc = prepare_etc(Path(probe_dir) / "etc")
            work = Path(probe_dir) / "work"
            work.mkdir(mode=0o700)
            stage = None
            if host_owner() is not None:
                os.chown(work, *host_owner())
                stage = Stage([work, etc])
            try:
                with Confinement(work, etc, stage=stage) as confinement:
                    result = subprocess.run([*confinement.argv, "/bin/true"], capture_output=True, timeout=20,
                                            pass_fds=confinement.pass_fds)
            finally:
                if stage is not None:
                    stage.close()
    except ConfinementUnavailable as exc:
        return str(exc)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bubblewrap could not be started: {exc}"
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip().splitlines()
        who = "" if host_owner() is None else f" for uid {ROOT_SESSION_UID} (a root session starts it as nobody)"
        return (f"bubblewrap cannot create an unprivileged user namespace here{who} "
                f"({detail[-1] if detail else f'exit {result.returncode}'})")
    return None
