"""``opslab.proc.run`` keeps every child's deadline with one watchdog thread: a child past its deadline
has its process group killed, whatever other children with later (or cancelled) deadlines it shares the
watchdog with; a child that ends in time is never touched."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from opslab import proc
from opslab.proc import Watchdog


def test_a_short_deadline_armed_after_a_long_one_still_fires(tmp_path: Path) -> None:
    long_started = threading.Event()
    results: dict[str, proc.ProcResult] = {}

    def long_child() -> None:
        # Waits for the file the short child's group would have written had it not been killed.
        script = f"touch {tmp_path}/long-started; while [ ! -e {tmp_path}/never ]; do sleep 0.05; done"
        results["long"] = proc.run(["sh", "-c", script], timeout_s=60)

    long = threading.Thread(target=long_child)
    long.start()
    try:
        for _ in range(600):
            if (tmp_path / "long-started").exists():
                long_started.set()
                break
            long.join(0.05)
        assert long_started.is_set()
        # Armed after the 60 s one: earlier, so the watchdog is woken for it.
        short = proc.run(["sh", "-c", f"sleep 30; touch {tmp_path}/short-done"], timeout_s=0.5)
        assert short.timed_out and short.returncode is None
        assert not (tmp_path / "short-done").exists()
    finally:
        (tmp_path / "never").touch()
        long.join(30)
    assert results["long"].ok


def test_children_that_end_in_time_are_left_alone_and_the_next_deadline_still_fires(tmp_path: Path) -> None:
    for i in range(20):  # each one's deadline cancelled when it ends
        assert proc.run(["sh", "-c", f"echo {i} > {tmp_path}/{i}"], timeout_s=30).ok
    assert sorted(os.listdir(tmp_path), key=int) == [str(i) for i in range(20)]
    late = proc.run(["sleep", "30"], timeout_s=0.3)
    assert late.timed_out


def test_the_watchdog_runs_a_callback_at_an_earlier_deadline_than_the_one_it_waits_for() -> None:
    watchdog = Watchdog()
    fired: list[str] = []
    done = threading.Event()
    late = watchdog.arm(3600, lambda: fired.append("late"))
    watchdog.arm(0.05, lambda: (fired.append("early"), done.set()))
    assert done.wait(30)
    assert fired == ["early"]
    watchdog.disarm(late)
