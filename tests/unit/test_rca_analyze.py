"""RCA on the seed's workflows and on each category's characteristic evidence."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from opslab.rca import Hypothesis, analyze_run, enforce_citations
from opslab.telemetry import VersionStat, parse_run


def test_workflow_1_is_a_cited_tool_schema_mismatch(run_001: dict[str, Any]) -> None:
    report = analyze_run(parse_run(run_001))
    assert report.category == "tool_schema_mismatch" and report.insufficient_evidence is False
    ids = {e.evidence_id for e in report.evidence_index}
    assert {"ev_tool_call-001", "ev_tool_call-003", "ev_guard_guard-001"} <= ids
    ev = next(e for e in report.evidence_index if e.evidence_id == "ev_tool_call-001")
    assert (
        ev.kind == "tool_call"
        and ev.ref_id == "call-001"
        and ev.title == "Failed tool call: order_lookup_api"
    )
    assert ev.attributes["error_class"] == "ValidationError" and ev.attributes["status_code"] == 400
    top = report.hypotheses[0]
    assert top.title == "Tool Schema Mismatch Root Cause" and top.confidence == "high"
    assert {"ev_tool_call-001", "ev_guard_guard-001"} <= set(top.evidence_ids) <= ids
    assert report.root_cause is not None and report.root_cause.step_id == "step-002"
    assert report.root_cause.evidence_ids[0] == "ev_tool_call-001"
    assert report.action_items[0].title == "Update tool schema validation"
    assert report.action_items[0].type == "code_change" and report.action_items[0].priority == "high"


def test_workflow_2_is_insufficient_evidence(run_002: dict[str, Any]) -> None:
    report = analyze_run(parse_run(run_002))
    assert report.category == "unknown" and report.insufficient_evidence is True
    assert (
        report.insufficient_reason == "Limited telemetry: no tool failures or specific error details captured"
    )
    assert report.evidence_index == [] and report.hypotheses == []
    assert [(a.type, a.title, a.priority) for a in report.action_items] == [
        ("monitoring", "Enable detailed tracing", "high"),
        ("code_change", "Add structured error codes", "medium"),
    ]


def _one_call(run_001: dict[str, Any], **call: Any) -> dict[str, Any]:
    body = copy.deepcopy(run_001)
    body["tool_calls"] = [{**body["tool_calls"][0], **call}]
    body["guardrail_events"] = []
    body["error_type"] = None
    body["error_message"] = None
    for s in body["steps"]:
        s["output_summary"] = "Failed" if s["status"] == "failure" else s["output_summary"]
    return body


@pytest.mark.parametrize(
    ("call", "category"),
    [
        (
            {"status_code": 429, "error_class": "HTTPError", "error_message": "Too Many Requests"},
            "rate_limited",
        ),
        ({"status_code": 403, "error_class": "HTTPError", "error_message": "Forbidden"}, "tool_permission"),
        (
            {
                "status": "timeout",
                "status_code": None,
                "error_class": None,
                "error_message": "call timed out after 30s",
            },
            "timeout",
        ),
        (
            {"status_code": 422, "error_class": None, "error_message": "unexpected argument 'sku'"},
            "tool_schema_mismatch",
        ),
        (
            {
                "status": "success",
                "tool_name": "kb_search",
                "status_code": 200,
                "error_class": None,
                "error_message": None,
                "result_summary": "[]",
            },
            "retrieval_empty",
        ),
        (
            {
                "retries": 5,
                "status_code": 500,
                "error_class": None,
                "error_message": "upstream returned 500 again",
            },
            "planner_loop",
        ),
    ],
)
def test_each_category_from_its_evidence(
    run_001: dict[str, Any], call: dict[str, Any], category: str
) -> None:
    report = analyze_run(parse_run(_one_call(run_001, **call)))
    assert report.category == category
    assert report.hypotheses and all(h.evidence_ids for h in report.hypotheses)


def test_permission_outranks_schema_on_the_same_evidence(run_001: dict[str, Any]) -> None:
    body = _one_call(run_001, status_code=401, error_message="validation of token failed: unauthorized")
    assert analyze_run(parse_run(body)).category == "tool_permission"


def test_prompt_regression_comes_from_version_history(run_002: dict[str, Any]) -> None:
    run = parse_run(run_002)
    history = [
        VersionStat(version="0.9.0", runs=40, failures=2, first_seen_order=0),
        VersionStat(version="1.0.0", runs=30, failures=15, first_seen_order=1),
    ]
    report = analyze_run(run, history=history)
    assert report.category == "prompt_regression" and not report.insufficient_evidence
    ev = report.evidence_index[0]
    assert ev.kind == "version_history" and ev.attributes["previous_version"] == "0.9.0"
    assert ev.attributes["p_value"] < 0.05
    same = [
        VersionStat(version="0.9.0", runs=40, failures=10, first_seen_order=0),
        VersionStat(version="1.0.0", runs=30, failures=8, first_seen_order=1),
    ]
    assert analyze_run(run, history=same).insufficient_evidence is True


def test_a_successful_run_has_nothing_to_explain(run_002: dict[str, Any]) -> None:
    body = copy.deepcopy(run_002)
    body["status"] = "success"
    body["error_message"] = None
    report = analyze_run(parse_run(body))
    assert report.outcome == "succeeded" and report.category == "none" and report.root_cause is None
    assert "succeeded" in report.summary and "failed" not in report.summary


def test_uncited_and_miscited_hypotheses_are_dropped(run_001: dict[str, Any]) -> None:
    index = analyze_run(parse_run(run_001)).evidence_index
    hyps = [
        Hypothesis(title="ok", description="", evidence_ids=["ev_tool_call-001"], confidence="low"),
        Hypothesis(title="none", description="", evidence_ids=[], confidence="low"),
        Hypothesis(
            title="made up",
            description="",
            evidence_ids=["ev_tool_call-001", "ev_tool_call-999"],
            confidence="high",
        ),
    ]
    kept, dropped = enforce_citations(hyps, index)
    assert [h.title for h in kept] == ["ok"] and dropped == 2


def _with_calls(run_002: dict[str, Any], *calls: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(run_002)
    body["tool_calls"] = [{"step_id": "step-101", "status": "success", **c} for c in calls]
    return body


def test_a_loop_of_successful_calls_is_a_planner_loop(run_002: dict[str, Any]) -> None:
    same = {"tool_name": "search", "args_json": {"q": "refund policy"}, "result_summary": "3 hits"}
    looped = _with_calls(run_002, *({"call_id": f"c{i}", **same} for i in range(4)))
    report = analyze_run(parse_run(looped))
    assert report.category == "planner_loop" and not report.insufficient_evidence
    assert report.root_cause is not None and report.root_cause.category == "planner_loop"
    ev = next(e for e in report.evidence_index if e.evidence_id == "ev_tool_c0")
    assert ev.attributes["repeats"] == 4 and "4 times with the same arguments" in ev.title
    retried = _with_calls(run_002, {"call_id": "r1", **same, "retries": 3})
    assert analyze_run(parse_run(retried)).category == "planner_loop"
    # Two identical calls are not a loop, nor are four calls with different arguments.
    twice = _with_calls(run_002, *({"call_id": f"c{i}", **same} for i in range(2)))
    varied = _with_calls(
        run_002, *({"call_id": f"c{i}", **same, "args_json": {"q": f"page {i}"}} for i in range(4))
    )
    assert analyze_run(parse_run(twice)).insufficient_evidence
    assert analyze_run(parse_run(varied)).insufficient_evidence


@pytest.mark.parametrize(
    "change",
    [
        {"tool_calls": [{"call_id": "c1", "step_id": "step-101", "tool_name": "order_api",
                         "status": "failure", "error_message": "Internal Server Error", "status_code": 500}]},
        {"error_type": "Exception"},
        {"error_type": "RuntimeError", "error_message": "something went wrong"},
    ],
    ids=["internal server error", "Exception", "RuntimeError"],
)  # fmt: skip
def test_generic_only_failures_are_insufficient_evidence_with_the_reason(
    run_002: dict[str, Any], change: dict[str, Any]
) -> None:
    report = analyze_run(parse_run({**copy.deepcopy(run_002), **change}))
    assert report.insufficient_evidence and report.category == "unknown" and report.hypotheses == []
    assert "Only generic failures were captured" in (report.insufficient_reason or "")
    assert report.evidence_index and all(e.attributes.get("generic") for e in report.evidence_index)
    assert report.action_items[0].title == "Enable detailed tracing"


def test_a_specific_detail_is_not_generic(run_002: dict[str, Any]) -> None:
    call = {
        "call_id": "c1",
        "tool_name": "order_api",
        "status": "failure",
        "error_message": "Internal Server Error",
    }
    for extra in ({"status_code": 503}, {"error_class": "ConnectionResetError"}):
        report = analyze_run(parse_run(_with_calls(run_002, {**call, **extra})))
        assert not report.insufficient_evidence and report.hypotheses


def test_a_prompt_regression_report_names_it_as_the_root_cause(run_002: dict[str, Any]) -> None:
    body = copy.deepcopy(run_002)
    body["steps"][1] |= {"status": "failure", "output_summary": "Totals did not match the ledger"}
    history = [
        VersionStat(version="0.9.0", runs=40, failures=2, first_seen_order=0),
        VersionStat(version="1.0.0", runs=30, failures=15, first_seen_order=1),
    ]
    report = analyze_run(parse_run(body), history=history)
    assert report.category == "prompt_regression" and report.root_cause is not None
    assert report.root_cause.category == "prompt_regression" and report.root_cause.step_id == "step-102"
    assert "ev_history_data-processor-1.0.0" in report.root_cause.evidence_ids
