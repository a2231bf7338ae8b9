"""A cancelled task's programs end: those running when the cancel comes, and one the call starts after it
(a trial's harness being started as its run stopped), which the worker kills too instead of letting it run
to its timeout."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest

from opslab import proc
from opslab.jobs import tasks


@dataclass
class Context:
    attempt: int = 1
    cancelled: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)


def test_a_program_started_after_the_cancel_is_killed_too(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = Context()
    seen: list[proc.ProcResult] = []

    def call(*, attempt: int, cancelled: threading.Event) -> str:
        cancelled.set()
        time.sleep(0.5)  # the watcher has seen the cancel and killed what ran then: nothing
        seen.append(proc.run(["sleep", "30"], timeout_s=60))  # a start that came too late to be stopped
        return "done"

    monkeypatch.setattr(tasks, "_function", lambda _call: call)
    start = time.monotonic()
    outcome = tasks._perform(tasks.TaskPayload(call="opslab:x", task_id="t1", args=[]), ctx)  # type: ignore[arg-type]
    assert outcome.value == "done"
    assert seen[0].returncode is not None and seen[0].returncode < 0, "the late program was not killed"
    assert time.monotonic() - start < 30  # killed, not waited out


def test_a_call_that_is_not_cancelled_runs_its_programs_to_their_end(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = Context()

    def call(*, attempt: int, cancelled: threading.Event) -> str:
        return str(proc.run(["sh", "-c", "sleep 0.3; exit 7"], timeout_s=60).returncode)

    monkeypatch.setattr(tasks, "_function", lambda _call: call)
    assert tasks._perform(tasks.TaskPayload(call="opslab:x", task_id="t2", args=[]), ctx).value == "7"  # type: ignore[arg-type]
