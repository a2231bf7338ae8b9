"""``opslab lab`` whole: the runner's commands (``lab.py``) with those its other modules add to it —
compare and query (``lab_analysis``), replay, fork, pause, resume, publish and validate-* (``lab_control``),
knobs-init and knobs-validate (``lab_knobs``)."""

from __future__ import annotations

from opslab.cli import lab_analysis, lab_control, lab_knobs
from opslab.cli.lab import lab_app

# Imported for the commands they register on lab_app.
__all__ = ["lab_analysis", "lab_app", "lab_control", "lab_knobs"]
