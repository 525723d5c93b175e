"""Helpers of the project's own tests, not tests themselves (pytest collects nothing here).

Test modules import them as ``from support.NAME import ...``: ``tests/`` has no
``__init__.py``, so pytest's default import mode puts ``tests/`` on ``sys.path``.

- ``scripted_openai``: an OpenAI-compatible HTTP server that plays a script (the one provider test double).
- ``k8s_standin``: a stand-in Kubernetes API server (test double: no cluster can run here).
- ``docker_probe``: whether the docker lanes can run (engine up, base image present).
- ``polling``: ``wait_for`` and ``small_disk`` (a tmpfs of a given size).
- ``workloads``: commands that drive a sandbox into a kernel limit.
- ``uml/``: init and script of the User-Mode Linux cgroup v2 guests (``test_cgroup_v2_guest.py``).
- ``guest``: boots those guests in the background when the session has collected their test.
- ``lanes``: the slow lanes' markers, applied by ``tests/conftest.py``.
"""
