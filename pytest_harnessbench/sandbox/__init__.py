"""Sandbox backends: the contract (base.py), the registry (registry.py) and the built-in backends.

Nothing is imported here: a backend's module is imported only when it is used (registry.load).
"""
