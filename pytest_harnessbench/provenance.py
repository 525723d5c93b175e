"""Where a run (or one shard of it) ran: for the harness card, so a merged run keeps every shard's machine.

The card already holds the package versions, the backend and its enforcement,
and the start and end; this adds what tells two machines apart: host name, CPU
model, kernel, and the images the trials ran in, by content digest.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from pathlib import Path


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The first ``model name`` of /proc/cpuinfo (x86; ``Hardware``/``CPU part`` on some ARM), else platform's."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "Processor") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def image_digests(backend: str, images: Iterable[str | None]) -> dict[str, str | None]:
    """Image name -> content id as the engine holds it (docker: the image id, and its repo digest if pulled).

    Only the docker backend's engine is on this host; a kubernetes node resolves
    its image at pull time (the pod's ``imageID``), so the name is kept with None;
    the local backend runs no images.
    """
    names = sorted({image for image in images if image})
    if backend != "docker" or not names:
        return {name: None for name in names} if backend == "kubernetes" else {}
    try:
        import docker

        api = docker.from_env().api
    except Exception:  # noqa: BLE001 - no engine to ask: the names alone
        return {name: None for name in names}
    digests: dict[str, str | None] = {}
    for name in names:
        try:
            info = api.inspect_image(name)
        except Exception:  # noqa: BLE001 - an image removed since: unknown, not fatal to the card
            digests[name] = None
            continue
        digests[name] = ",".join([info.get("Id") or "?", *(info.get("RepoDigests") or [])])
    return digests


def facts(backend: str, images: Iterable[str | None]) -> dict:
    """The card's ``provenance``: host, CPU model, kernel, image digests."""
    return {"host": platform.node(), "cpu_model": cpu_model(), "kernel": platform.release(),
            "kernel_version": platform.version(), "machine": platform.machine(),
            "images": image_digests(backend, images)}
