"""Where a run looks for the trial groups of runners that are gone: only in the cgroup folders that exist,
never making (or probing) one of a controller the run does not use."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opslab.lab.isolation import pids

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="trial groups are a root runner's")


def _machine(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """A machine whose cgroup v1 controllers are mounted under ``root``."""
    for name in ("pids", "memory"):
        (root / name).mkdir()
    mounts = [(str(root / name), "cgroup", f"rw,{name}") for name in ("pids", "memory")]
    monkeypatch.setattr(pids, "_mounts", lambda: mounts)


def test_the_folder_of_a_controller_no_run_used_is_neither_made_nor_probed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _machine(monkeypatch, tmp_path)
    (tmp_path / "pids" / pids.BASE).mkdir()
    assert pids.existing("pids") == str(tmp_path / "pids" / pids.BASE)
    assert pids.existing("memory") is None
    assert pids.existing("cpu") is None
    assert sorted(p.name for p in (tmp_path / "memory").iterdir()) == []


def test_a_sweep_removes_the_groups_of_gone_runners_in_the_folders_that_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _machine(monkeypatch, tmp_path)
    namespace = os.stat("/proc/self/ns/pid").st_ino
    gone, alive = f"{namespace}-{2**22 + 7}-abc", f"{namespace}-{os.getpid()}-def"
    for name in (gone, alive):
        (tmp_path / "memory" / pids.BASE / name).mkdir(parents=True)
    monkeypatch.setattr(pids, "hierarchy", lambda controller="pids": pytest.fail("made a folder to sweep"))
    pids.sweep()
    assert sorted(p.name for p in (tmp_path / "memory" / pids.BASE).iterdir()) == [alive]
    assert not (tmp_path / "pids" / pids.BASE).exists()
