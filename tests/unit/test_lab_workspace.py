"""Trial workspaces: the project copied faithfully, and every change a harness makes seen in the diff."""

from __future__ import annotations

import os
from pathlib import Path

from opslab.lab.workspace import INLINE_BYTES, Template, diff


def make_project(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "mod.py").write_text("x = 1\n")
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    (root / "big.bin").write_bytes(os.urandom(INLINE_BYTES + 1))
    (root / "link.py").symlink_to("pkg/mod.py")
    for skipped in (".lab", ".git", "node_modules"):
        (root / skipped).mkdir()
        (root / skipped / "f").write_text("not copied")
    return root


def test_materialize_copies_contents_modes_mtimes_and_symlinks(tmp_path: Path) -> None:
    proj = make_project(tmp_path / "proj")
    t = Template.scan(proj)
    ws = tmp_path / "ws"
    t.materialize(ws)
    assert sorted(str(p.relative_to(ws)) for p in ws.rglob("*")) == [
        "big.bin",
        "link.py",
        "pkg",
        "pkg/mod.py",
        "run.sh",
    ]
    for rel in ("pkg/mod.py", "run.sh", "big.bin"):
        src, dst = (proj / rel).stat(), (ws / rel).stat()
        assert (proj / rel).read_bytes() == (ws / rel).read_bytes()
        assert (src.st_mode, src.st_mtime_ns) == (dst.st_mode, dst.st_mtime_ns), rel
    assert os.readlink(ws / "link.py") == "pkg/mod.py"
    assert t.snapshot(ws) == t.digests() and set(t.digests()) == {"big.bin", "pkg/mod.py", "run.sh"}


def test_snapshot_sees_same_size_rewrites_additions_and_removals(tmp_path: Path) -> None:
    proj = make_project(tmp_path / "proj")
    t = Template.scan(proj)
    ws = tmp_path / "ws"
    t.materialize(ws)
    (ws / "pkg" / "mod.py").write_text("x = 2\n")  # same size: only the mtime tells
    (ws / "run.sh").unlink()
    (ws / "out.txt").write_text("new")
    (ws / ".git").mkdir()
    (ws / ".git" / "ignored").write_text("skipped like the project's")
    assert diff(t.digests(), t.snapshot(ws)) == {
        "added": ["out.txt"],
        "removed": ["run.sh"],
        "modified": ["pkg/mod.py"],
    }


def test_an_excluded_folder_or_file_is_in_no_workspace(tmp_path: Path) -> None:
    proj = make_project(tmp_path / "proj")
    t = Template.scan(proj, exclude=(proj / "pkg", proj / "big.bin"))
    ws = tmp_path / "ws"
    t.materialize(ws)
    assert sorted(str(p.relative_to(ws)) for p in ws.rglob("*")) == ["link.py", "run.sh"]


def test_a_sparse_giant_a_link_and_a_fifo_in_a_workspace_cost_the_snapshot_nothing(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "a.txt").write_text("a")
    template = Template.scan(project)
    ws = tmp_path / "ws"
    template.materialize(ws)
    with open(ws / "giant.bin", "wb") as f:
        f.truncate(1 << 40)  # a terabyte that takes no disk
    (ws / "host").symlink_to("/etc/hostname")
    os.mkfifo(ws / "pipe")
    digests = template.snapshot(ws)
    assert digests["giant.bin"].startswith(f"unhashed:{1 << 40}:")
    assert set(digests) == {"a.txt", "giant.bin"}
