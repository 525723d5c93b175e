"""Building a task's image (Harbor tasks: ``environment/Dockerfile``) through the engine, bounded in time."""

from __future__ import annotations

import re
import threading
from typing import Any

from .engine import LABEL_IMAGE, explain, requests_error

TAIL_LINES = 6
_LAYER = re.compile(r"^ ---> ([0-9a-f]{12,})\s*$")


class ImageBuild:
    """One ``docker build`` of a context directory; its log, the layers it made, and how it ended."""

    def __init__(self, docker: Any, api_version: str, context: str, tag: str) -> None:
        self.docker = docker
        self.api_version = api_version
        self.context = context
        self.tag = tag
        self.log: list[str] = []
        self.layers: list[str] = []  # image ids of the steps committed, in order
        self.error: str | None = None
        self._client: Any = None

    def run(self, timeout_s: float) -> None:
        """Build; sets ``error`` on failure. A build past ``timeout_s`` is cancelled by closing its connection."""
        # Its own client: closing it is how a build that runs too long is stopped (the engine cancels it).
        self._client = self.docker.APIClient(version=self.api_version, timeout=None,
                                             **self.docker.utils.kwargs_from_env())
        worker = threading.Thread(target=self._stream, daemon=True)
        worker.start()
        worker.join(timeout_s)
        if worker.is_alive():
            self.error = f"ran past build_timeout_sec = {timeout_s:g} s"
            self._client.close()
            worker.join(10)
        else:
            self._client.close()

    def _stream(self) -> None:
        try:
            for chunk in self._client.build(path=self.context, tag=self.tag, rm=True, forcerm=True, decode=True,
                                            labels={LABEL_IMAGE: self.tag}):
                if "stream" in chunk:
                    for line in chunk["stream"].splitlines():
                        self.log.append(line)
                        layer = _LAYER.match(line)
                        if layer:
                            self.layers.append(layer.group(1))
                if "error" in chunk:
                    self.error = self.error or f"failed: {' '.join(str(chunk['error']).split())}"
        except (self.docker.errors.DockerException, requests_error(), OSError) as exc:
            self.error = self.error or f"failed: {explain(exc)}"

    def tail(self) -> str:
        lines = [line.strip() for line in self.log if line.strip()]
        return " | ".join(lines[-TAIL_LINES:]) or "(empty)"

    def remove_layers(self, api: Any) -> None:
        """Remove what a failed build committed (untagged, so it would stay as dangling images)."""
        for layer in reversed(self.layers):
            try:
                if api.inspect_image(layer).get("RepoTags"):
                    continue  # a tagged image (the FROM base, or another task's): not this build's to remove
                api.remove_image(layer, noprune=True)
            except (self.docker.errors.DockerException, requests_error()):
                pass  # a layer another image builds on stays: it is not dangling
