"""The ``opslab`` command line (Typer + Rich)."""

from opslab.cli.app import app, lab_main, main

__all__ = ["app", "lab_main", "main"]
