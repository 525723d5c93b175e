"""Docker backend: one container per trial, limits set by the engine, evidence from the kernel.

Mapping of an :class:`~pytest_harnessbench.resources.Allocation` (docs/design.md §Resources):

=====================  ==========================================================
guarantee memory       ``mem_reservation`` (cgroup v1 soft limit / v2 memory.low)
limit memory           ``mem_limit`` = ``memswap_limit`` (no hidden swap headroom)
guarantee cpus         ``cpu_shares`` = round(cpus × 1024)
limit cpus             ``nano_cpus`` = cpus × 1e9 (CFS quota)
limit pids             ``pids_limit``
uncapped (limit None)  that limit is not set at all
=====================  ==========================================================

The container's main process idles (``sleep infinity`` under docker-init); every
command is a ``docker exec`` of ``bash -c`` in ``/task``. The engine's
``State.OOMKilled`` only reports a kill of the *main* process: a command started
with ``exec`` that the kernel OOM-kills exits 137 while ``OOMKilled`` stays false.
The truth is in the container's cgroup (``memory.oom_control`` ``oom_kill`` and
``memory.max_usage_in_bytes`` on v1, ``memory.events`` and ``memory.peak`` on
v2), read from the host while the container exists and snapshotted after every
command, so a container that dies mid-trial still leaves its last counters.

Every container carries the labels :data:`LABEL_RUN`, :data:`LABEL_TRIAL` and
:data:`LABEL_OWNER` (host:pid:start-time of the creating process), so that
:meth:`DockerBackend.reap` can remove what a crashed session left behind without
touching the containers of sessions that are still alive (e.g. xdist siblings).
"""

from .backend import DockerBackend
from ..container import CAP_ADD
from .engine import DEFAULT_IMAGE, LABEL_OWNER, LABEL_RUN, LABEL_TRIAL
from .sandbox import DockerSandbox

__all__ = ["CAP_ADD", "DEFAULT_IMAGE", "LABEL_OWNER", "LABEL_RUN", "LABEL_TRIAL", "DockerBackend", "DockerSandbox"]
