"""A lab trial as an agent run: ids, labels, status mapping, the harness step, events as steps and tool
calls — and the result always passes the telemetry wire contract."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from opslab.errors import InvalidInput
from opslab.lab import TrialRecord, trial_to_agent_run
from opslab.telemetry import ID_PATTERN, AgentRunIn, parse_run

START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
END = START + timedelta(milliseconds=1500)


def record(**changes: Any) -> TrialRecord:
    base: dict[str, Any] = {
        "trial_id": "trial_7",
        "variant_id": "treatment",
        "task_id": "t3",
        "replication": 2,
        "seed": 99,
        "outcome": "success",
        "metrics": {"accuracy": 1.0, "latency_ms": 12},
        "exit_code": 0,
        "duration_ms": 1500.0,
        "started_at": START.isoformat(),
        "ended_at": END.isoformat(),
    }
    return TrialRecord.model_validate({**base, **changes})


def to_run(rec: TrialRecord, **kw: Any) -> AgentRunIn:
    run = trial_to_agent_run(rec, lab_run_id="run_20260102_030405_ab12", experiment_id="prompt_ab", **kw)
    # What the service would do with it: the same wire validation and semantic checks.
    parse_run(run.model_dump(mode="json"))
    return run


def test_ids_and_labels_name_the_trial() -> None:
    run = to_run(record(), bindings={"model": "gpt-4o", "temperature": 0.7})
    assert run.run_id == "run_20260102_030405_ab12.trial_7" and re.match(ID_PATTERN, run.run_id)
    assert (run.agent_name, run.agent_version, run.model, run.environment) == (
        "prompt_ab",
        "treatment",
        "gpt-4o",
        "lab",
    )
    assert (run.started_at, run.ended_at) == (START, END)
    labels = {k: run.attributes[k] for k in run.attributes if k.startswith("lab.")}
    assert labels["lab.experiment"] == "prompt_ab" and labels["lab.run_id"] == "run_20260102_030405_ab12"
    assert (labels["lab.variant"], labels["lab.trial_id"], labels["lab.task_id"]) == (
        "treatment",
        "trial_7",
        "t3",
    )
    assert labels["lab.replication"] == 2 and labels["lab.metrics"] == {"accuracy": 1.0, "latency_ms": 12}


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        ("success", "success"),
        ("failure", "failure"),
        ("error", "failure"),
        ("timeout", "timeout"),
        ("skipped", "cancelled"),
    ],
)
def test_status_follows_the_outcome(outcome: str, status: str) -> None:
    assert to_run(record(outcome=outcome)).status == status


def test_a_crashed_harness_is_a_failed_step_with_the_stderr_tail() -> None:
    rec = record(outcome="error", error="harness exited with code 1", exit_code=1)
    tail = "Traceback (most recent call last):\nKeyError: 'customer_id'"
    run = to_run(rec, stderr_tail=tail, harness_command=["python3", "./harness.py"])
    assert run.error_type == "HarnessCrash"
    assert run.error_message == "harness exited with code 1: KeyError: 'customer_id'"
    harness = run.steps[0]
    assert harness.step_id == "harness" and harness.name == "harness: python3 ./harness.py"
    assert harness.status == "failure" and harness.latency_ms == 1500.0
    assert harness.output_summary is not None and "KeyError: 'customer_id'" in harness.output_summary
    assert "exited with code 1" in harness.output_summary


def test_runner_errors_get_types_and_a_timeout_step() -> None:
    run = to_run(record(outcome="error", error="timeout: no exit within 2 s (process group killed)"))
    assert run.error_type == "HarnessTimeout" and run.steps[0].status == "timeout"
    run = to_run(record(outcome="error", error="trial_output.json is not JSON: Expecting value"))
    assert run.error_type == "HarnessOutputError" and run.steps[0].status == "failure"


def test_a_harness_error_object_gives_type_and_message_and_a_healthy_process() -> None:
    run = to_run(record(outcome="failure", error={"type": "WrongAnswer", "message": "expected 4, got 5"}))
    assert (run.error_type, run.error_message) == ("WrongAnswer", "expected 4, got 5")
    assert run.steps[0].status == "success" and "exit code 0" in (run.steps[0].output_summary or "")
    run = to_run(record(outcome="failure", error="wrong answer"))
    assert (run.error_type, run.error_message) == ("TrialFailure", "wrong answer")


def test_events_become_steps_and_tool_calls() -> None:
    events: list[dict[str, object]] = [
        {"type": "plan", "name": "decompose", "ts": (START + timedelta(milliseconds=100)).isoformat()},
        {
            "type": "tool_call",
            "tool": "order_lookup",
            "status": "error",
            "error": "Missing required field: 'customer_id'",
            "error_type": "ValidationError",
            "status_code": 400,
            "args": {"order": "12345"},
            "started_at": (START + timedelta(milliseconds=200)).timestamp(),
            "duration_ms": 35,
        },
        {"type": "llm", "status": "ok", "output": "done", "timestamp": "2026-01-02T03:04:06"},
        {"type": "note", "ts": "next tuesday"},
        {"type": "future", "ts": (END + timedelta(days=2)).isoformat()},
    ]
    run = to_run(record(outcome="failure"), events=events)
    plan, call_step, llm, note, future = run.steps[1:]
    assert [s.step_id for s in run.steps[1:]] == [f"event-{i}" for i in range(1, 6)]
    assert plan.name == "plan decompose" and plan.started_at == START + timedelta(milliseconds=100)
    assert call_step.name == "tool_call order_lookup" and call_step.status == "failure"
    assert llm.status == "success" and llm.output_summary == "done"
    assert llm.started_at == datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC)  # naive: read as UTC
    assert note.started_at is None and future.started_at is None  # unreadable / ahead of the trial
    [call] = run.tool_calls
    assert (call.call_id, call.step_id, call.tool_name, call.status) == (
        "call-2",
        "event-2",
        "order_lookup",
        "failure",
    )
    assert call.error_class == "ValidationError" and call.status_code == 400
    assert call.args_json == {"order": "12345"} and call.latency_ms == 35.0
    assert call.started_at == START + timedelta(milliseconds=200)


def test_values_the_service_cannot_store_are_left_out() -> None:
    rec = record(metrics={"accuracy": math.nan, "cost_usd": 0.25, "prompt_tokens": 1200, "ok": True})
    events: list[dict[str, object]] = [{"type": "tool_call", "tool": "calc\x00", "args": {"x": math.inf}}]
    run = to_run(rec, events=events)
    assert run.attributes["lab.metrics"] == {"cost_usd": 0.25, "prompt_tokens": 1200, "ok": True}
    assert run.cost.total_cost_usd == 0.25 and run.cost.tokens_prompt == 1200
    assert run.tool_calls[0].tool_name == "calc" and run.tool_calls[0].args_json is None


def test_older_records_without_times_use_the_file_time() -> None:
    rec = record(started_at=None, ended_at=None)
    run = to_run(rec, finished_at=END)
    assert run.ended_at == END and run.started_at == START
    with pytest.raises(InvalidInput, match="ended_at"):
        trial_to_agent_run(rec, lab_run_id="r", experiment_id="e")
