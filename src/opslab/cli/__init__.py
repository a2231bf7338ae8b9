"""The ``opslab`` command line (Typer + Rich). ``main`` builds only the commands it runs (see ``app``)."""

from opslab.cli.app import build_app, lab_main, main

__all__ = ["build_app", "lab_main", "main"]
