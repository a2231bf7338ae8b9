"""``./lab``: the seed's commands as written (``./lab describe …``, ``./lab run …``) in a project. ``opslab
lab init`` writes this small executable script, which runs this installation's ``opslab lab`` (found
again on PATH if the installation moved); the ``lab`` console script does the same from anywhere."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

NAME = "lab"
MARKER = "# written by `opslab lab init`"


def opslab_program() -> str | None:
    """The ``opslab`` command of the running installation, if it has one."""
    beside = Path(sys.executable).with_name("opslab")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("opslab")


def launcher_text(program: str | None) -> str:
    lines = ["#!/bin/sh", f"{MARKER}: the seed's `./lab …` runs `opslab lab …`"]
    if program:
        quoted = shlex.quote(program)
        lines.append(f'if [ -x {quoted} ]; then exec {quoted} lab "$@"; fi')
    lines += [
        'if command -v opslab >/dev/null 2>&1; then exec opslab lab "$@"; fi',
        'exec python3 -m opslab lab "$@"',
    ]
    return "\n".join(lines) + "\n"


def is_ours(path: Path) -> bool:
    """Whether ``path`` is a launcher ``opslab lab init`` wrote (a regular file with its marker)."""
    if path.is_symlink() or not path.is_file():
        return False
    try:
        return MARKER in path.read_text(errors="replace")[:400]
    except OSError:
        return False


def write_launcher(folder: Path, *, force: bool = False) -> Path | None:
    """Write ``folder/lab`` (mode 0755) and return it; an existing ``lab`` that is not ours is left alone
    (None) unless ``force``."""
    path = folder / NAME
    if path.is_dir() or (path.is_symlink() and not force):
        return None
    if path.exists() and not force and not is_ours(path):
        return None
    if path.is_symlink():
        path.unlink()
    path.write_text(launcher_text(opslab_program()))
    path.chmod(0o755)
    return path
