"""``opslab sandbox`` whole: the world's commands (``sandbox.py``) with those ``chaos.py`` adds to it —
scenarios and chaos-suite."""

from __future__ import annotations

from opslab.cli import chaos
from opslab.cli.sandbox import sandbox_app

# Imported for the commands it registers on sandbox_app.
__all__ = ["chaos", "sandbox_app"]
