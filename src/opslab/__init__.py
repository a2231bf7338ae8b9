"""opslab: the operations lab for AI agents and the services they run on."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("opslab")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

__all__ = ["__version__"]
