"""Crash and resume: a child process runs an incident with a SqliteSaver, is SIGKILLed while it is
inside ``execute``, and the same thread is resumed here. The steps before the kill are not run again,
and the action is retried with the same idempotency key (so a real action server would act once)."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

from langgraph.checkpoint.sqlite import SqliteSaver

from opslab import proc
from tests.unit.responder_fakes import FakeClock, FakeExecutor, World, make_responder

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import sqlite3, sys, time
from pathlib import Path
from langgraph.checkpoint.sqlite import SqliteSaver
from tests.unit.responder_fakes import FakeClock, FakeExecutor, World, make_responder, warm_up

db, marker = sys.argv[1], Path(sys.argv[2])

class BlockingExecutor(FakeExecutor):
    def execute(self, name, params, *, key=None):
        marker.write_text(f"{name}|{key}")
        time.sleep(600)  # the parent kills us here
        raise AssertionError("not killed")

world = World(FakeClock())
saver = SqliteSaver(sqlite3.connect(db, check_same_thread=False))
responder, _, _ = make_responder(world, checkpointer=saver, executor=BlockingExecutor(world))
warm_up(responder)
world.inject("db_pool")
responder.clock.sleep(30)
responder.poll_once()
responder.clock.sleep(30)
responder.poll_once()
"""


def test_an_incident_killed_mid_execute_resumes_where_it_was(tmp_path: Path) -> None:
    db, marker = tmp_path / "checkpoints.sqlite", tmp_path / "in-execute"
    child = proc.spawn(
        [sys.executable, "-c", CHILD, str(db), str(marker)], cwd=ROOT, stderr=tmp_path / "child.err"
    )
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert child.alive, (tmp_path / "child.err").read_text()
            assert time.monotonic() < deadline, "the child never reached execute"
            time.sleep(0.05)
        os.killpg(child.pid, signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        child.stop()
    action, key = marker.read_text().split("|")

    # A new process: the world is still broken, the store is empty, only the checkpoint remains.
    world = World(FakeClock())
    world.inject("db_pool")
    executor = FakeExecutor(world)
    with sqlite3.connect(db, check_same_thread=False) as conn:
        responder, _, store = make_responder(world, checkpointer=SqliteSaver(conn), executor=executor)
        resumed = responder.resume_unfinished()
        assert len(resumed) == 1
        incident = resumed[0]
        assert incident.status == "resolved"
        nodes = [s.node for s in incident.steps]
        assert nodes == [
            "monitor",
            "detect",
            "gather",
            "diagnose",
            "investigate",
            "plan",
            "execute",
            "verify",
            "learn",
        ]
        assert executor.calls == [(action, {}, key)]  # the same idempotency key as before the kill
        # the precondition's fresh poll just before acting, then the verification's polls
        assert responder.probe.calls == 1 + responder.config.verify_polls  # type: ignore[attr-defined]
        assert store.get(incident.id).status == "resolved"
        assert responder.resume_unfinished() == []  # nothing left to resume
