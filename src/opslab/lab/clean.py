"""``opslab lab clean``: remove what the lab generated in a project, as the seed's ``clean --init`` /
``clean --runs`` say — never anything else of the project.

``--init`` removes what ``init`` and ``knobs-init`` wrote: ``.lab/experiment.yaml``, ``.lab/knobs/`` and
``./lab`` when it is opslab's launcher (a ``lab`` of the project's own is kept, as ``init`` keeps it).
``--runs`` removes ``.lab/runs/``. A ``.lab/`` left empty goes too; one holding anything else stays.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from opslab.errors import InvalidInput
from opslab.lab.launcher import is_ours

EXPERIMENT = Path(".lab/experiment.yaml")
KNOBS = Path(".lab/knobs")
RUNS = Path(".lab/runs")


def clean_project(root: Path, *, init: bool, runs: bool) -> list[str]:
    """Remove the generated files of the project at ``root``; the paths removed, relative to it."""
    if not (init or runs):
        raise InvalidInput.for_field("--init/--runs", "say what to clean")
    removed: list[str] = []
    if runs and (root / RUNS).is_dir():
        shutil.rmtree(root / RUNS)
        removed.append(str(RUNS))
    if init:
        if (root / EXPERIMENT).is_file():
            (root / EXPERIMENT).unlink()
            removed.append(str(EXPERIMENT))
        if (root / KNOBS).is_dir():
            shutil.rmtree(root / KNOBS)
            removed.append(str(KNOBS))
        launcher = root / "lab"
        if is_ours(launcher):
            launcher.unlink()
            removed.append("./lab")
    lab_dir = root / ".lab"
    if removed and lab_dir.is_dir() and not any(lab_dir.iterdir()):
        lab_dir.rmdir()
        removed.append(".lab")
    return removed
