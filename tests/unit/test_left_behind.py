"""The leftover finder the kill tests rely on: a number another test's process took over is not a leftover."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.processes import boot_clock, left_behind


def test_a_session_led_by_a_process_born_after_the_stop_is_not_the_runners(tmp_path: Path) -> None:
    # A process that leads a session of its own, as another test's harness or server does: its session
    # id is its pid, the number a killed runner's session had if the number came round again.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        assert left_behind(other.pid, tmp_path, stopped_at=boot_clock() - 1) == []
        assert left_behind(other.pid, tmp_path, stopped_at=boot_clock() + 1) == [other.pid]
    finally:
        other.kill()
        other.wait()


def test_a_process_working_in_the_project_is_a_leftover_whenever_it_was_born(tmp_path: Path) -> None:
    before = boot_clock()
    harness = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], cwd=tmp_path, start_new_session=True
    )
    try:
        assert left_behind(-1, tmp_path, stopped_at=before) == [harness.pid]
    finally:
        harness.kill()
        harness.wait()
