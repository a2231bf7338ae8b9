"""What a killed or stopped process left behind, read from /proc: tests show that nothing can start any
more by finding nothing alive, never by sleeping and looking."""

from __future__ import annotations

import os
from pathlib import Path


def left_behind(session: int, proj: Path) -> list[int]:
    """Processes still alive of a runner killed with -9: its session (the pool's workers) or working in
    its project (harnesses, which run in sessions of their own)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if stat[0] == "Z":
                continue
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if int(stat[3]) == session or Path(cwd).is_relative_to(proj):
            found.append(int(entry.name))
    return found
