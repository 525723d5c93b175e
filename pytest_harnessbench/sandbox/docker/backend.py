"""The docker backend: one container per trial, created with the limits mapped from an allocation."""

from __future__ import annotations

import os
import threading
import uuid
from typing import TYPE_CHECKING, Any

from .. import watchdog
from ..base import Backend, EnforcementUnavailable, SandboxError, SandboxStartError
from ..cgroups import HostCgroups, cpu_shares
from ..container import CAP_ADD, owner_alive, owner_label
from .engine import (API_TIMEOUT_S, BUILD_HINT, DEFAULT_IMAGE, LABEL_OWNER, LABEL_RUN, LABEL_TRIAL, REQUIRED_FEATURES,
                     WORKDIR, docker_sdk, explain, sanitize)
from .build import ImageBuild
from .sandbox import DockerSandbox

if TYPE_CHECKING:
    from ...resources import Allocation

class DockerBackend(Backend):
    """Creates one container per trial on a Docker engine (``--hb-backend docker``)."""

    name = "docker"
    runs_images = True

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._owner = owner_label()
        self._api: Any = None  # docker.APIClient for ordinary calls (bounded timeout)
        self._stream_api: Any = None  # docker.APIClient for command output (no read timeout)
        self._info: dict = {}
        self._version: dict = {}
        self._enforcement: str | None = None
        self._cgroups: HostCgroups | None = None
        self._lock = threading.Lock()
        self._watchdog = None  # removes our containers if this process dies without close()

    # -- connection -------------------------------------------------------------------

    def _where(self) -> str:
        return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"

    def _connect(self) -> Any:
        if self._api is not None:
            return self._api
        docker = docker_sdk()
        kwargs = docker.utils.kwargs_from_env()
        try:
            api = docker.APIClient(version="auto", timeout=API_TIMEOUT_S, **kwargs)
        except docker.errors.DockerException as exc:
            raise EnforcementUnavailable(
                f"Docker engine not reachable at {self._where()} ({explain(exc)[:120]}): "
                "start it with `dockerd &` (or .ci/docker-setup.sh) or set DOCKER_HOST"
            ) from None
        self._stream_api = docker.APIClient(version=api.api_version, timeout=None, **kwargs)
        self._api = api
        return api

    def check(self) -> str:
        """Connect and verify the engine can enforce every limit we set.

        Returns the enforcement method, e.g. ``cgroup-v1`` (the engine applies the limits through it).

        Raises:
            EnforcementUnavailable: the engine is unreachable, or its kernel lacks a
                controller we need (a limit would silently not apply).
        """
        with self._lock:
            if self._enforcement is not None:
                return self._enforcement
            api = self._connect()
            try:
                info, version = api.info(), api.version()
            except docker_sdk().errors.DockerException as exc:
                raise EnforcementUnavailable(f"Docker engine at {self._where()} did not answer `info`: {explain(exc)}") from None
            missing = [what for key, what in REQUIRED_FEATURES if not info.get(key, False)]
            if missing:
                raise EnforcementUnavailable(
                    f"Docker engine at {self._where()} cannot enforce {', '.join(missing)} on this kernel: "
                    "enable the cgroup controllers (e.g. boot with swapaccount=1) or use --hb-backend local"
                )
            cgroup_version = int(info.get("CgroupVersion") or 1)
            self._info, self._version = info, version
            self._cgroups = HostCgroups(cgroup_version, str(info.get("CgroupDriver", "cgroupfs")))
            self._enforcement = f"cgroup-v{cgroup_version}"
        return self._enforcement

    def describe(self) -> dict:
        """Engine facts for the harness card."""
        enforcement = self.check()
        info, version = self._info, self._version
        return {
            "backend": self.name,
            "enforcement": enforcement,
            "engine_version": version.get("Version"),
            "api_version": version.get("ApiVersion"),
            "sdk_version": docker_sdk().__version__,
            "host": self._where(),
            "storage_driver": info.get("Driver"),
            "cgroup_version": int(info.get("CgroupVersion") or 1),
            "cgroup_driver": info.get("CgroupDriver"),
            "kernel_counters": "host cgroupfs" if self._cgroups and self._cgroups.visible else "not visible (remote engine?)",
            "runtime": info.get("DefaultRuntime"),
            "kernel_version": info.get("KernelVersion"),
            "operating_system": info.get("OperatingSystem"),
            "host_cpus": info.get("NCPU"),
            "host_memory_bytes": info.get("MemTotal"),
            "security_options": info.get("SecurityOptions"),
            "cap_add": list(CAP_ADD),
        }

    # -- sandboxes --------------------------------------------------------------------

    def _host_config(self, allocation: Allocation, network: bool) -> tuple[dict, list[str]]:
        guarantee, limit = allocation.guarantee, allocation.limit
        notes: list[str] = []
        config: dict[str, Any] = {
            "network_mode": "bridge" if network else "none",
            "cap_drop": ["ALL"],
            "cap_add": list(CAP_ADD),
            "security_opt": ["no-new-privileges"],
            "privileged": False,
            "init": True,  # docker-init as pid 1 reaps orphans of killed commands
        }
        if guarantee.memory_bytes is not None:
            config["mem_reservation"] = int(guarantee.memory_bytes)
        if limit.memory_bytes is not None:
            config["mem_limit"] = config["memswap_limit"] = int(limit.memory_bytes)
        if guarantee.cpus is not None:
            config["cpu_shares"] = cpu_shares(guarantee.cpus)
        if limit.cpus is not None:
            host_cpus = int(self._info.get("NCPU") or os.cpu_count() or 1)
            cpus = limit.cpus
            if cpus > host_cpus:
                # The engine refuses a quota above the host's CPU count; such a limit
                # cannot bind anyway, so the host's count is the same constraint.
                notes.append(f"cpu limit {cpus:g} clamped to the host's {host_cpus} CPUs (non-binding either way)")
                cpus = host_cpus
            config["nano_cpus"] = round(cpus * 1e9)
        if limit.pids is not None:
            config["pids_limit"] = int(limit.pids)
        return config, notes

    def check_image(self, image: str | None) -> None:
        """The image is here (nothing is pulled). Raises EnforcementUnavailable naming how to get it."""
        image = image or DEFAULT_IMAGE
        self.check()
        try:
            self._api.inspect_image(image)
        except docker_sdk().errors.ImageNotFound:
            hint = BUILD_HINT if image == DEFAULT_IMAGE else "build or `docker load` it first (nothing is pulled)"
            raise EnforcementUnavailable(f"image {image} is not in the Docker engine: {hint}") from None

    def build_image(self, context: str, tag: str, timeout_s: float) -> None:
        """Build ``context``'s Dockerfile as ``tag`` (nothing pulled that is here), unless ``tag`` exists.

        Intermediate containers go in every case; the layers of a failed or
        timed-out build are removed, so no dangling image stays behind.

        Raises:
            SandboxStartError: the build failed or ran past ``timeout_s``; the message ends with the log's tail.
        """
        self.check()
        docker = docker_sdk()
        try:
            self._api.inspect_image(tag)
            return  # built before from the same content
        except docker.errors.ImageNotFound:
            pass
        build = ImageBuild(docker, self._api.api_version, context, tag)
        build.run(timeout_s)
        if build.error is not None:
            build.remove_layers(self._api)
            raise SandboxStartError(f"image build of {tag} {build.error}; build log tail: {build.tail()}")

    def image_workdir(self, image: str) -> str:
        self.check()
        try:
            config = self._api.inspect_image(image).get("Config") or {}
        except docker_sdk().errors.DockerException as exc:
            raise SandboxStartError(f"cannot inspect image {image}: {explain(exc)}") from None
        return config.get("WorkingDir") or "/"

    def provision(self, allocation: Allocation, trial_id: str, image: str | None = None, network: bool = False,
                  workdir: str | None = None, env: dict[str, str] | None = None) -> DockerSandbox:
        """Create and start the trial's container (nothing is ever pulled).

        Raises:
            SandboxStartError: the image is missing, or the engine could not create or
                start the container, or it warned that a limit was not applied.
        """
        enforcement = self.check()
        if self._watchdog is None:  # from now on this process has containers that must go with it
            self._watchdog = watchdog.start(self)
        docker = docker_sdk()
        api = self._api
        image = image or DEFAULT_IMAGE
        config, notes = self._host_config(allocation, network)
        name = f"hb-{sanitize(self.run_id, 20)}-{sanitize(trial_id, 60)}-{uuid.uuid4().hex[:6]}"
        labels = {LABEL_RUN: self.run_id, LABEL_TRIAL: trial_id, LABEL_OWNER: self._owner}
        try:
            created = api.create_container(
                image,
                entrypoint=["sleep", "infinity"],  # replaces the image's entrypoint and CMD
                working_dir=workdir or WORKDIR,
                environment=env or None,
                labels=labels,
                name=name,
                host_config=api.create_host_config(**config),
            )
        except docker.errors.ImageNotFound:
            hint = BUILD_HINT if image == DEFAULT_IMAGE else "build or `docker load` it first (nothing is pulled)"
            raise SandboxStartError(f"image {image!r} is not in the Docker engine at {self._where()}: {hint}") from None
        except docker.errors.DockerException as exc:
            raise SandboxStartError(f"could not create a container from {image!r}: {explain(exc)}") from None
        container_id = created["Id"]
        warnings = [w for w in created.get("Warnings") or [] if w]
        try:
            if warnings:  # e.g. "Memory limited without swap": a limit silently not applied
                raise SandboxStartError(f"the engine did not apply the requested limits to {name}: {'; '.join(warnings)}")
            try:
                api.start(container_id)
            except docker.errors.DockerException as exc:
                raise SandboxStartError(f"could not start container {name} from {image!r}: {explain(exc)}") from None
        except BaseException:  # also an interrupt (Ctrl-C) between create and start
            try:
                api.remove_container(container_id, force=True)
            except docker.errors.DockerException:
                pass  # reap() removes it later
            raise
        return DockerSandbox(self._api, self._stream_api, self._cgroups, container_id, name, image, enforcement, notes,
                             workdir=workdir or WORKDIR)

    def reap(self, all_runs: bool = True, *, include_live: bool = False) -> int:
        """Remove containers carrying our labels; returns how many.

        ``all_runs=False`` limits it to this run. Containers whose creating process
        still runs (on this host; other hosts count as running) belong to a live
        session, e.g. an xdist sibling, and are left alone unless ``include_live`` --
        except this backend's own (same run, same process).
        """
        api = self._connect()
        docker = docker_sdk()
        label = LABEL_RUN if all_runs else f"{LABEL_RUN}={self.run_id}"
        removed = 0
        for container in api.containers(all=True, filters={"label": label}):
            labels = container.get("Labels") or {}
            own = labels.get(LABEL_RUN) == self.run_id and labels.get(LABEL_OWNER) == self._owner
            if not (own or include_live) and owner_alive(labels.get(LABEL_OWNER, "")):
                continue
            try:
                api.remove_container(container["Id"], force=True, v=True)
                removed += 1
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if "already in progress" not in explain(exc):
                    raise SandboxError(f"could not remove leftover container {container['Id'][:12]}: {explain(exc)}") from None
        return removed

    def close(self) -> None:
        """Remove any of our containers an interrupt left behind, close the connections to the engine."""
        if self._api is not None:
            try:
                self.reap(all_runs=False)
            except (SandboxError, docker_sdk().errors.DockerException):
                pass  # the engine went away: the next session's reaper removes them
        watchdog.stop(self._watchdog)
        self._watchdog = None
        for api in (self._api, self._stream_api):
            if api is not None:
                api.close()
        self._api = self._stream_api = None
        self._enforcement = None
