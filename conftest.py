"""Top-level conftest for the project's own tests: pytester drives end-to-end runs."""

pytest_plugins = ["pytester"]
