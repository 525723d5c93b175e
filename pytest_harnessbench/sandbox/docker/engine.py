"""What the docker backend and its sandboxes share: the engine's SDK, names, labels and ownership."""

from __future__ import annotations

import re

from ..base import EnforcementUnavailable

DEFAULT_IMAGE = "harnessbench/python:3.11"
BUILD_HINT = "build it with scripts/build-base-image.sh (or .ci/docker-setup.sh)"
WORKDIR = "/task"
LABEL_RUN = "harnessbench.run_id"
LABEL_TRIAL = "harnessbench.trial_id"
LABEL_OWNER = "harnessbench.owner"
LABEL_IMAGE = "harnessbench.task_image"  # on images built from a task's Dockerfile (kept: the tag is a content hash)
KILL_GRACE_S = 2.0  # after killing a timed-out command, how long its output stream may take to close
API_TIMEOUT_S = 120.0  # for ordinary API calls; command output streams have none

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


def sanitize(text: str, limit: int) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", text).strip("-.")[:limit] or "x"
