"""What the docker backend and its sandboxes share: the engine's SDK, names, labels and ownership."""

from __future__ import annotations

import re
import socket

from ...procs import owner_token, token_alive
from ..base import EnforcementUnavailable

DEFAULT_IMAGE = "harnessbench/python:3.11"
BUILD_HINT = "build it with scripts/build-base-image.sh (or .ci/docker-setup.sh)"
WORKDIR = "/task"
LABEL_RUN = "harnessbench.run_id"
LABEL_TRIAL = "harnessbench.trial_id"
LABEL_OWNER = "harnessbench.owner"
LABEL_IMAGE = "harnessbench.task_image"  # on images built from a task's Dockerfile (kept: the tag is a content hash)
EXEC_TOKEN_VAR = "HARNESSBENCH_EXEC"  # marks every process a command started (inherited env)
KILL_GRACE_S = 2.0  # after killing a timed-out command, how long its output stream may take to close
API_TIMEOUT_S = 120.0  # for ordinary API calls; command output streams have none

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

# docker info flags that must be true for the limits we set to be enforced.
REQUIRED_FEATURES = (
    ("MemoryLimit", "memory limits"),
    ("SwapLimit", "swap limits (memswap_limit = mem_limit)"),
    ("CpuCfsQuota", "CPU quotas"),
    ("CPUShares", "CPU shares"),
    ("PidsLimit", "pids limits"),
)


def docker_sdk():
    """The docker SDK, imported on first use (it costs ~0.1 s)."""
    try:
        import docker
    except ImportError:  # pragma: no cover - it is a declared dependency
        raise EnforcementUnavailable("the docker SDK is not installed: pip install 'docker>=7'") from None
    return docker


def explain(exc: BaseException) -> str:
    text = getattr(exc, "explanation", None) or str(exc)
    return " ".join(str(text).split())


def requests_error() -> type[BaseException]:
    """The HTTP library's base error: an engine that stops answering raises it, not a DockerException."""
    import requests

    return requests.RequestException


def owner_label() -> str:
    return f"{socket.gethostname()}:{owner_token()}"


def owner_alive(owner: str) -> bool:
    """Whether the process that created a container still runs (unknown hosts count as alive)."""
    host, sep, token = owner.rpartition(":")
    if not sep:
        return False  # no owner recorded: nothing protects it
    if host != socket.gethostname():
        return True  # another machine's session: we cannot tell, leave it alone
    return token_alive(token)


def sanitize(text: str, limit: int) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", text).strip("-.")[:limit] or "x"
