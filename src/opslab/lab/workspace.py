"""Trial workspaces: a copy of the project without run state or bulk, and file-digest snapshots."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

SKIP = {
    ".lab",
    ".git",
    ".venv",
    "venv",
    "node_modules",
    "__pycache__",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".opslab",
    ".tox",
    "dist",
    "build",
}


def copy_project(root: Path, dest: Path) -> None:
    shutil.copytree(root, dest, ignore=lambda _d, names: [n for n in names if n in SKIP], symlinks=True)


def snapshot(root: Path) -> dict[str, str]:
    digests: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP]
        for name in filenames:
            p = Path(dirpath) / name
            if p.is_symlink() or not p.is_file():
                continue
            h = hashlib.sha256()
            with p.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            digests[str(p.relative_to(root))] = h.hexdigest()
    return digests


def diff(pre: dict[str, str], post: dict[str, str]) -> dict[str, Any]:
    return {
        "added": sorted(set(post) - set(pre)),
        "removed": sorted(set(pre) - set(post)),
        "modified": sorted(k for k in set(pre) & set(post) if pre[k] != post[k]),
    }
