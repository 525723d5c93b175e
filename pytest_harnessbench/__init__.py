"""pytest-harnessbench: agent bake-offs with resources as a first-class variable."""

__version__ = "0.1.0"
