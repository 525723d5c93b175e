"""What the container backends (docker, kubernetes) share.

The capability set a trial keeps, the in-container kill of a timed-out
command's processes, the host-qualified owner label that lets a reaper tell a
dead session's containers from a live one's, and the one-file tar archive that
writes a file into a container.
"""

from __future__ import annotations

import io
import socket
import tarfile
import time

from ..procs import owner_token, token_alive

EXEC_TOKEN_VAR = "HARNESSBENCH_EXEC"  # marks every process a command started (inherited env)

# Capabilities kept after cap_drop=ALL: what ordinary work as root inside the
# container needs (installing packages, unpacking archives, fixing permissions).
# Dropped from Docker's default set: MKNOD, NET_RAW, NET_BIND_SERVICE, AUDIT_WRITE,
# SETFCAP, SETPCAP, SYS_CHROOT, FSETID.
CAP_ADD = (
    "CHOWN",  # chown files: tar -x / cp -a / pip and apt keep or set owners
    "DAC_OVERRIDE",  # root reads and writes files whatever their mode bits (e.g. a 0444 file)
    "FOWNER",  # chmod/utime on files root does not own (unpacked with their owner's uid)
    "SETUID",  # switch user: apt's _apt sandbox, runuser/su to test as an unprivileged user
    "SETGID",  # ... and its groups (setgroups/setresgid go with SETUID)
    "KILL",  # root may signal the processes it started under another uid
)

# Kills, from inside the container, every process carrying the command's token in
# its environment (children inherit it, even ones that left the process group).
# Pure bash plus /proc: works in any image that has bash. $1 is the token.
KILL_SCRIPT = r"""
tok="HARNESSBENCH_EXEC=$1"
for round in 1 2 3 4 5; do
  found=
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" = "$$" ] && continue
    while IFS= read -r -d '' e; do
      if [ "$e" = "$tok" ]; then kill -9 "$p" 2>/dev/null && found=1; break; fi
    done < "$d/environ" 2>/dev/null
  done
  [ -z "$found" ] && break
done
"""


def one_file_tar(path: str, data: bytes) -> bytes:
    """A tar archive holding ``data`` at the absolute ``path`` (mode 0644), to unpack at ``/``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        member = tarfile.TarInfo(path.lstrip("/"))
        member.size, member.mode, member.mtime = len(data), 0o644, int(time.time())
        tar.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def owner_label() -> str:
    return f"{socket.gethostname()}:{owner_token()}"


def owner_alive(owner: str) -> bool:
    """Whether the process that created a container or pod still runs (unknown hosts count as alive)."""
    host, sep, token = owner.rpartition(":")
    if not sep:
        return False  # no owner recorded: nothing protects it
    if host != socket.gethostname():
        return True  # another machine's session: we cannot tell, leave it alone
    return token_alive(token)
