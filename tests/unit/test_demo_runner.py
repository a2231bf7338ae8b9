"""The demo's bookkeeping: a step that fails is reported with its reason and does not stop the next."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

from rich.console import Console

from opslab.demo.runner import _run_step, _summary
from opslab.demo.steps import DATA, Shown, dated_now
from opslab.errors import Unavailable


def test_a_failed_step_is_reported_and_the_summary_says_so() -> None:
    out = io.StringIO()
    console = Console(file=out, width=200)

    def broken() -> Shown:
        raise Unavailable("the sandbox target did not answer")

    outcomes = [
        _run_step(console, "canary", "a flag change", broken),
        _run_step(console, "autoops", "builds", lambda: Shown("choice: default (51%)", "http://x/ui/builds")),
    ]
    assert [o.ok for o in outcomes] == [False, True]
    assert outcomes[0].result == "FAILED: the sandbox target did not answer" and outcomes[0].where == ""
    _summary(console, outcomes, "http://x", 12.0)
    text = out.getvalue()
    assert "FAILED the sandbox target did not answer" in text and "1/2 steps ok" in text
    assert "autoops: http://x/ui/builds" in text and "dashboard: http://x/ui" in text


def test_a_narrow_terminal_keeps_every_link_whole() -> None:
    out = io.StringIO()
    console = Console(file=out, width=60)
    where = "http://127.0.0.1:43567/ui/runs/8b3379c0-0981-4f5b-8407-6444610cb212"
    outcome = _run_step(console, "RCA", "runs", lambda: Shown("transcript: step 12 by Orchestrator", where))
    _summary(console, [outcome], "http://127.0.0.1:43567", 3.0)
    assert where in out.getvalue()


def test_the_seeds_sample_runs_are_dated_now_keeping_their_spacing() -> None:
    run = json.loads((DATA / "run-001-sufficient.json").read_text())
    now = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
    moved = dated_now(run, now)
    assert moved["ended_at"] == "2030-06-01T12:00:00Z" and moved["started_at"] == "2030-06-01T11:59:15Z"
    assert moved["steps"][0]["started_at"] == "2030-06-01T11:59:15Z"
    assert moved["guardrail_events"][0]["created_at"] == "2030-06-01T11:59:23Z"
    # everything else as the seed wrote it, the ETA in a tool result included
    assert moved["tool_calls"][1]["result_summary"] == run["tool_calls"][1]["result_summary"]
    assert {
        k: v for k, v in moved.items() if not k.endswith("_at") and k not in ("steps", "guardrail_events")
    } == {k: v for k, v in run.items() if not k.endswith("_at") and k not in ("steps", "guardrail_events")}
