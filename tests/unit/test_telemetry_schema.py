"""The wire contract: the seed's bodies pass; each kind of bad input names its field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from opslab.errors import InvalidInput
from opslab.telemetry import parse_run


def fields_of(exc: InvalidInput) -> set[str]:
    return {e["field"] for e in exc.details["errors"]}


def test_seed_workflow_bodies_are_accepted(run_001: dict[str, Any], run_002: dict[str, Any]) -> None:
    one = parse_run(run_001)
    assert (len(one.steps), len(one.tool_calls), len(one.guardrail_events)) == (4, 3, 1)
    two = parse_run(run_002)
    assert two.cost.total_cost_usd is None and two.tool_calls == []


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r.pop("agent_name"), "agent_name"),
        (lambda r: r.update(status="exploded"), "status"),
        (lambda r: r.update(started_at="2024-01-15T10:30:00"), "started_at"),
        (lambda r: r["steps"][1].update(started_at="2024-01-15T10:30:05"), "steps[1].started_at"),
        (lambda r: r["steps"][0].update(retries="many"), "steps[0].retries"),
        (lambda r: r["tool_calls"][0].update(step_id="step-999"), "tool_calls[0].step_id"),
        (lambda r: r["guardrail_events"][0].update(call_id="call-999"), "guardrail_events[0].call_id"),
        (lambda r: r["steps"][1].update(step_id="step-001"), "steps[1].step_id"),
        (lambda r: r.update(run_id="../../etc/passwd"), "run_id"),
        (lambda r: r.update(run_id="a\\b"), "run_id"),
        (lambda r: r.update(run_id="x" * 201), "run_id"),
        (lambda r: r.update(run_id="batch"), "run_id"),
        (lambda r: r.update(run_id=""), "run_id"),
        (lambda r: r.update(surprise=1), "surprise"),
        (lambda r: r.update(ended_at="2024-01-15T10:00:00Z"), "ended_at"),
        (lambda r: r["steps"][2].update(ended_at="2024-01-15T10:00:00Z"), "steps[2].ended_at"),
        (lambda r: r["tool_calls"][0].update(call_id="."), "tool_calls[0].call_id"),
        (lambda r: r["steps"][0].update(step_id="a\nb"), "steps[0].step_id"),
        (lambda r: r["cost"].update(total_cost_usd=-1), "cost.total_cost_usd"),
    ],
)
def test_bad_input_names_the_field(run_001: dict[str, Any], mutate: Any, field: str) -> None:
    body = copy.deepcopy(run_001)
    mutate(body)
    with pytest.raises(InvalidInput) as info:
        parse_run(body)
    assert field in fields_of(info.value), info.value.details
    assert field in info.value.message


def test_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidInput, match="JSON object"):
        parse_run([1, 2])


def test_timestamps_are_normalised_to_utc(run_001: dict[str, Any]) -> None:
    body = copy.deepcopy(run_001)
    body["started_at"] = "2024-01-15T12:30:00+02:00"
    run = parse_run(body)
    assert run.started_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert run.started_at.hour == 10


def test_step_latency_is_derived_when_missing(run_001: dict[str, Any]) -> None:
    body = copy.deepcopy(run_001)
    del body["steps"][0]["latency_ms"]
    assert parse_run(body).steps[0].latency_ms == 5000


def test_the_cli_status_choices_are_the_schema_statuses() -> None:
    from typing import get_args

    from opslab.cli.runs import RunStatusChoice
    from opslab.telemetry import RunStatus

    assert get_args(RunStatusChoice) == get_args(RunStatus)
