"""The ``opslab`` command line (Typer + Rich)."""

from opslab.cli.app import app, main

__all__ = ["app", "main"]
