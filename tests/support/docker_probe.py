"""Whether the docker tests can run here: one probe for every test module that needs the engine."""

from __future__ import annotations


def unavailable() -> str | None:
    """Why the docker tests cannot run here (no engine, no base image), or None."""
    from pytest_harnessbench.sandbox.base import EnforcementUnavailable
    from pytest_harnessbench.sandbox.docker import DEFAULT_IMAGE, DockerBackend

    probe = DockerBackend("probe")
    try:
        probe.check()
        import docker

        docker.APIClient(version="auto").inspect_image(DEFAULT_IMAGE)
    except EnforcementUnavailable as exc:
        return str(exc)
    except Exception as exc:  # ImageNotFound
        return f"base image {DEFAULT_IMAGE} missing ({type(exc).__name__}): run .ci/docker-setup.sh"
    finally:
        probe.close()
    return None
