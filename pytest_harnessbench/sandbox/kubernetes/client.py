"""The official ``kubernetes`` client, imported on first use, and what the backend and its sandboxes share."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from ..base import EnforcementUnavailable

API_TIMEOUT_S = 60.0  # ordinary API calls; exec streams are bounded by the command's own timeout
NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"  # inside a cluster


def sdk() -> Any:
    """The ``kubernetes`` package (its import costs 0.3-0.5 s here: only when this backend is used)."""
    try:
        import kubernetes
    except ImportError:  # pragma: no cover - a declared dependency
        raise EnforcementUnavailable("the kubernetes client is not installed: pip install 'kubernetes>=37'") from None
    return kubernetes


def api_error() -> type[BaseException]:
    return sdk().client.exceptions.ApiException


def transport_errors() -> tuple[type[BaseException], ...]:
    """What a cluster that stops answering raises (besides an ApiException)."""
    import urllib3

    return (urllib3.exceptions.HTTPError, OSError)


def explain(exc: BaseException) -> str:
    """The API server's own message (a Status object's ``message``) where there is one."""
    body = getattr(exc, "body", None)
    if body:
        try:
            message = json.loads(body).get("message")
        except (ValueError, AttributeError):
            message = None
        if message:
            return f"{getattr(exc, 'status', '')} {message}".strip()
    return " ".join((getattr(exc, "reason", None) or str(exc)).split())




@dataclass
class Cluster:
    """A connection: the API client, where it points and the namespace trials go to."""

    api_client: Any
    host: str
    context: str
    namespace: str

    @property
    def core(self) -> Any:
        return sdk().client.CoreV1Api(self.api_client)

    @property
    def networking(self) -> Any:
        return sdk().client.NetworkingV1Api(self.api_client)


def connect(namespace: str | None) -> Cluster:
    """The cluster of the current kube context (``KUBECONFIG`` or ~/.kube/config), else the one we run in.

    Raises:
        EnforcementUnavailable: no cluster is configured.
    """
    kubernetes = sdk()
    config = kubernetes.config
    # Read KUBECONFIG now: the client's own default is fixed when it is first imported.
    kubeconfig = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    try:
        _, current = config.list_kube_config_contexts(config_file=kubeconfig)
        api_client = config.new_client_from_config(config_file=kubeconfig)
        context = current.get("name", "")
        namespace = namespace or current.get("context", {}).get("namespace") or "default"
    except (config.ConfigException, OSError, TypeError) as exc:
        if not os.environ.get("KUBERNETES_SERVICE_HOST"):
            raise EnforcementUnavailable(
                f"no Kubernetes cluster configured ({kubeconfig}: {' '.join(str(exc).split())[:120]}): "
                "point KUBECONFIG at a cluster's kubeconfig (kind, k3d, GKE, ...)"
            ) from None
        configuration = kubernetes.client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        api_client = kubernetes.client.ApiClient(configuration)
        context = "in-cluster"
        if not namespace:
            with open(NAMESPACE_FILE) as f:
                namespace = f.read().strip()
    return Cluster(api_client, api_client.configuration.host, context, namespace)
