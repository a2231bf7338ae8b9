from __future__ import annotations

import copy
from typing import Any

from opslab.telemetry import build_timeline, parse_run


def test_seed_run_merges_in_time_order(run_001: dict[str, Any]) -> None:
    items = build_timeline(parse_run(run_001)).items
    assert [(i.kind, i.id) for i in items] == [
        ("step", "step-001"),
        ("step", "step-002"),
        ("tool_call", "call-001"),
        ("tool_call", "call-003"),
        ("guardrail", "guard-001"),
        ("step", "step-003"),
        ("tool_call", "call-002"),
        ("step", "step-004"),
    ]
    call = items[2]
    assert call.step_id == "step-002" and call.status == "failure" and "customer_id" in call.summary
    assert items[4].step_id == "step-002"


def test_ties_are_stable_in_payload_order(run_001: dict[str, Any]) -> None:
    body = copy.deepcopy(run_001)
    for s in body["steps"]:
        s["started_at"] = "2024-01-15T10:30:00Z"
        s["ended_at"] = "2024-01-15T10:30:01Z"
    body["guardrail_events"][0]["created_at"] = "2024-01-15T10:30:00Z"
    items = build_timeline(parse_run(body)).items
    steps = [i.id for i in items if i.kind == "step"]
    assert steps == ["step-001", "step-002", "step-003", "step-004"]
    assert [i.kind for i in items] == ["step"] * 4 + ["tool_call"] * 3 + ["guardrail"]
    assert build_timeline(parse_run(body)) == build_timeline(parse_run(body))


def test_items_without_time_go_last_in_payload_order(run_002: dict[str, Any]) -> None:
    body = copy.deepcopy(run_002)
    body["steps"].append({"step_id": "step-103", "name": "late", "status": "failure"})
    items = build_timeline(parse_run(body)).items
    assert [i.id for i in items] == ["step-101", "step-102", "step-103"]
