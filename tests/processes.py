"""What a killed or stopped process left behind, read from /proc: tests show that nothing can start any
more by finding nothing alive, never by sleeping and looking."""

from __future__ import annotations

import os
import time
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def boot_clock() -> float:
    """Now, on the clock /proc states process start times in (seconds since boot)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def identity(pid: int) -> tuple[int, int] | None:
    """``pid`` with its start time (clock ticks since boot) while it runs, None once it is gone or a zombie:
    the pair names one process, where a pid alone names another once it is free again (pids wrap at
    32768 on a busy host, and a test that waits for a killed process to go may find a new one there)."""
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if stat[0] == "Z" else (pid, int(stat[19]))


def started(fields: list[str]) -> tuple[int, int]:
    """The ``identity`` a harness wrote of itself on its ledger line (``start TRIAL PID START_TIME``)."""
    return int(fields[2]), int(fields[3])


def parent_of(pid: int) -> int | None:
    """``pid``'s parent, None once it is gone."""
    try:
        return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


def running(process: tuple[int, int] | None) -> bool:
    """The process ``identity`` named still runs."""
    return process is not None and identity(process[0]) == process


def left_behind(session: int, proj: Path, *, stopped_at: float) -> list[int]:
    """Processes still alive of a runner stopped at ``stopped_at`` (``boot_clock``): its session (the
    pool's workers) or working in its project (harnesses, which run in sessions of their own). A process
    of that session born after the stop is not the runner's: its number, free again, was given to a
    process of another test that leads a session of its own (pids wrap at 32768 on a busy host)."""
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
        born_by_then = int(stat[19]) / _TICKS <= stopped_at  # start times are whole ticks, rounded down
        if Path(cwd).is_relative_to(proj) or (int(stat[3]) == session and born_by_then):
            found.append(int(entry.name))
    return found


def describe(pids: list[int]) -> list[str]:
    """What each of ``pids`` is, for a failure message: its state, parent, kernel wait channel, threads'
    states and command line (a leftover named by its pid alone says nothing once the test is over)."""
    out = []
    for pid in pids:
        base = Path("/proc") / str(pid)
        try:
            stat = (base / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (base / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            wchan = (base / "wchan").read_text()
            threads = sorted(
                (t / "stat").read_text().rsplit(")", 1)[1].split()[0] + ":" + (t / "wchan").read_text()
                for t in (base / "task").iterdir()
            )
        except OSError:
            out.append(f"{pid} (gone)")
            continue
        out.append(f"{pid} state={stat[0]} ppid={stat[1]} wchan={wchan} threads={threads} cmd={cmd[:200]}")
    return out
