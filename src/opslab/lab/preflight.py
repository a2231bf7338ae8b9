"""Before the first trial: a harness that cannot start refuses the run, instead of every trial erroring.

Checked: the program (``command[0]``) is found — on the runner's PATH, in the project, or in the image's
root filesystem — and the script it runs exists in the project (``python ./h.py``, ``bash ./x.sh``,
``./bin/evaluate``). ``python -m pkg.mod`` is not refused: the module may be installed, not a file.
"""

from __future__ import annotations

import os
import shutil

from opslab.errors import InvalidInput
from opslab.lab.config import Resolved
from opslab.lab.describe import harness_script
from opslab.lab.isolation import IsolationPlan
from opslab.lab.isolation.plan import CONTAINER_PATH

FIELD = "runtime.harness.command"


def check_harness(resolved: Resolved, plan: IsolationPlan) -> None:
    command = resolved.config.runtime.harness.command
    root = resolved.project_root
    program = command[0]
    if "{" not in program:
        if "/" in program and not program.startswith("/"):
            target = root / program
            if not target.is_file():
                raise _refused(f"{program} does not exist under the project root {root}")
            if not os.access(target, os.X_OK):
                raise _refused(f"{program} is not executable (chmod +x it, or run it through an interpreter)")
        elif plan.sandbox == "rootfs" and plan.rootfs is not None:
            if not _in_rootfs(program, str(plan.rootfs)):
                raise _refused(f"{program!r} is not in the image's root filesystem ({plan.image})")
        elif plan.sandbox == "local" and not (shutil.which(program) or os.path.isfile(program)):
            raise _refused(f"{program!r} is not on PATH")
    if "-m" in command[1:]:
        return
    script = harness_script(command)
    if script and script != program and not (root / script).exists():
        raise _refused(f"{script} does not exist under the project root {root}")


def _in_rootfs(program: str, rootfs: str) -> bool:
    if program.startswith("/"):
        return os.path.lexists(rootfs + program)
    return any(os.path.lexists(f"{rootfs}{d}/{program}") for d in CONTAINER_PATH.split(":"))


def _refused(why: str) -> InvalidInput:
    return InvalidInput.for_field(FIELD, f"the harness cannot start: {why}; every trial would fail")
