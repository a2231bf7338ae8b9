"""opslab: the operations lab for AI agents and the services they run on."""

# The one place the version is written (pyproject.toml reads it from here): importlib.metadata would
# cost every CLI start tens of milliseconds.
__version__ = "0.1.0"

__all__ = ["__version__"]
