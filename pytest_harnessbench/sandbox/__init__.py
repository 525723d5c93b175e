"""Sandbox backends, chosen by name and imported only when used."""

from __future__ import annotations


def make_backend(name: str, run_id: str, enforcement: str = "cgroup", isolate_fs: bool = False):
    """The backend called ``name`` (``local`` or ``docker``)."""
    if name == "local":
        from .local import LocalBackend

        return LocalBackend(run_id, enforcement, isolate_fs)
    if name == "docker":
        from .docker import DockerBackend

        return DockerBackend(run_id)
    raise ValueError(f"unknown backend {name!r}")
