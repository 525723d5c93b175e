"""Sandbox backends, registered by name and imported only when used.

A new backend is one module with a :class:`base.Backend` subclass and one line here.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config
    from .base import Backend

#: ``--hb-backend`` name -> "module:class" (relative to this package)
BACKENDS: dict[str, str] = {
    "local": "local:LocalBackend",
    "docker": "docker:DockerBackend",
    "kubernetes": "kubernetes:KubernetesBackend",
}


def backend_class(name: str) -> type[Backend]:
    module, _, cls = BACKENDS[name].partition(":")
    return getattr(import_module(f".{module}", __name__), cls)


def make_backend(config: Config, run_id: str) -> Backend:
    """The backend ``config.backend`` for this session; raises EnforcementUnavailable (see ``from_config``)."""
    return backend_class(config.backend).from_config(config, run_id)
