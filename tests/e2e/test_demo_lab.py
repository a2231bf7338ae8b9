"""The demo's lab step on a machine without the trial sandbox (no bubblewrap on PATH, as on a fresh
machine): it runs the demo's own harness on the host and says so; with bubblewrap it runs isolated."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

STEP = """
import sys
from pathlib import Path
from rich.console import Console
from opslab.demo.steps import lab
shown = lab(Console(width=200), Path(sys.argv[1]), "http://127.0.0.1:1")
print("RESULT", shown.result)
"""


def _path_without_bwrap(folder: Path) -> str:
    """A PATH holding everything the current one does, but bubblewrap."""
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            link = folder / name
            if name != "bwrap" and not link.exists():
                link.symlink_to(Path(d) / name)
    return str(folder)


def _run(tmp_path: Path, path: str) -> subprocess.CompletedProcess[str]:
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLAB_")}
    env.update(PATH=path, OPSLAB_DATA_DIR=str(tmp_path / "data"))
    return subprocess.run(
        [sys.executable, "-c", STEP, str(work)], env=env, capture_output=True, text=True, timeout=300
    )


def test_without_bubblewrap_the_demo_runs_its_own_harness_unisolated_and_says_so(tmp_path: Path) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    done = _run(tmp_path, _path_without_bwrap(bare))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ran unisolated" in done.stdout and "bubblewrap" in done.stdout
    assert "RESULT 72 trials (unisolated: no trial sandbox here)" in done.stdout


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap (apt-get install bubblewrap)")
def test_with_bubblewrap_the_demo_runs_isolated(tmp_path: Path) -> None:
    from opslab.lab import sandbox_problem

    if sandbox_problem(1024, private_network=True) is not None:
        pytest.skip("bubblewrap cannot establish the trial sandbox on this machine")
    done = _run(tmp_path, os.environ["PATH"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "unisolated" not in done.stdout and "RESULT 72 trials:" in done.stdout
