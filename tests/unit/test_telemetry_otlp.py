"""OTLP JSON -> runs, on hand-written spans that follow the GenAI semantic conventions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from opslab.errors import InvalidInput
from opslab.telemetry import Span, map_trace, parse_request

T = "5b8efff798038103d269b633813fc60c"
NS = 1_700_000_000_000_000_000


def attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def span(
    sid: str,
    parent: str | None,
    name: str,
    start: int,
    end: int,
    attrs: dict[str, Any],
    error: str | None = None,
    events: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": T,
        "spanId": sid,
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(NS + start * 1_000_000),
        "endTimeUnixNano": str(NS + end * 1_000_000),
        "attributes": [attr(k, v) for k, v in attrs.items()],
        "status": {"code": 2, "message": error} if error else {"code": 1},
        "events": events or [],
    }
    if parent:
        out["parentSpanId"] = parent
    return out


def request(spans: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [
                        attr("service.name", "support"),
                        attr("deployment.environment.name", "prod"),
                    ]
                },
                "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}],
            }
        ]
    }


def agent_trace() -> dict[str, Any]:
    return request(
        [
            span(
                "0000000000000001",
                None,
                "invoke_agent support-bot",
                0,
                900,
                {
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.agent.name": "support-bot",
                    "gen_ai.agent.version": "3.1",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.conversation.id": "conv-9",
                },
                error="tool failed",
            ),
            span(
                "0000000000000002",
                "0000000000000001",
                "chat gpt-4o",
                10,
                200,
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.usage.input_tokens": 120,
                    "gen_ai.usage.output_tokens": 30,
                },
            ),
            span(
                "0000000000000003",
                "0000000000000002",
                "execute_tool order_lookup",
                50,
                80,
                {
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": "order_lookup",
                    "gen_ai.tool.call.id": "call_abc",
                    "gen_ai.tool.call.arguments": json.dumps({"order": "12345"}),
                    "error.type": "ValidationError",
                    "http.response.status_code": 400,
                },
                error="missing customer_id",
            ),
            span(
                "0000000000000004",
                "0000000000000001",
                "pii check",
                300,
                310,
                {"openinference.span.kind": "GUARDRAIL", "guardrail.type": "pii"},
                error="PII in output",
            ),
            span(
                "0000000000000005",
                "0000000000000001",
                "chat gpt-4o",
                400,
                800,
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.usage.input_tokens": 200,
                    "gen_ai.usage.output_tokens": 50,
                },
                events=[
                    {
                        "name": "guardrail",
                        "timeUnixNano": str(NS + 450 * 1_000_000),
                        "attributes": [attr("guardrail.type", "toxicity"), attr("message", "blocked reply")],
                    }
                ],
            ),
        ]
    )


def spans_of(body: Any) -> list[Span]:
    spans, refused = parse_request(body)
    assert refused == []
    return spans


def test_genai_spans_map_onto_one_run() -> None:
    runs = map_trace(spans_of(agent_trace())).runs
    assert len(runs) == 1
    run = runs[0]
    assert run.run_id == T and run.trace_id == T
    assert (run.agent_name, run.agent_version, run.model, run.environment) == (
        "support-bot",
        "3.1",
        "gpt-4o",
        "prod",
    )
    assert run.status == "failure" and run.error_message == "tool failed"
    assert run.correlation_ids == ["conv-9"]
    assert [s.step_id for s in run.steps] == ["0000000000000002", "0000000000000005"]
    assert run.steps[0].latency_ms == pytest.approx(190)
    call = run.tool_calls[0]
    assert (call.call_id, call.tool_name, call.status, call.status_code) == (
        "call_abc",
        "order_lookup",
        "failure",
        400,
    )
    assert call.error_class == "ValidationError" and call.error_message == "missing customer_id"
    assert call.args_json == {"order": "12345"} and call.step_id == "0000000000000002"
    assert (run.cost.tokens_prompt, run.cost.tokens_completion) == (320, 80)
    kinds = sorted((g.type, g.step_id or "") for g in run.guardrail_events)
    assert kinds == [("pii", ""), ("toxicity", "0000000000000005")]


def test_spans_whose_agent_root_has_not_arrived_make_runs_from_their_top_most_spans() -> None:
    spans = agent_trace()["resourceSpans"][0]["scopeSpans"][0]["spans"]
    mapped = map_trace(spans_of(request(spans[1:])))
    tops = [s for s in spans[1:] if s.get("parentSpanId") == spans[0]["spanId"]]
    assert sorted(r.run_id for r in mapped.runs) == sorted(f"{T}-{s['spanId']}" for s in tops)
    assert set(mapped.owner) == {s["spanId"] for s in spans[1:]}  # every span belongs to a run


def test_children_arriving_first_still_map_once_the_root_arrives() -> None:
    spans = agent_trace()["resourceSpans"][0]["scopeSpans"][0]["spans"]
    early = spans_of(request(spans[1:]))
    late = spans_of(request(spans[:1]))
    runs = map_trace([*early, *late]).runs
    assert len(runs) == 1 and len(runs[0].steps) == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ({"resourceSpans": "nope"}, "resourceSpans"),
        ({"resourceSpans": [{"scopeSpans": "nope"}]}, "resourceSpans[0]"),
    ],
)
def test_a_body_that_is_not_an_export_names_the_field(body: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_request(body)
    assert field in info.value.message


@pytest.mark.parametrize(
    ("span", "field"),
    [
        ({"name": "x"}, "traceId"),
        ({"traceId": "zz", "spanId": "01"}, "traceId"),
        ({"traceId": "01", "spanId": "02", "startTimeUnixNano": "soon"}, "malformed span"),
    ],
)
def test_a_malformed_span_is_refused_alone_with_its_reason(span: dict[str, Any], field: str) -> None:
    good = agent_trace()["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    spans, refused = parse_request(request([good, span]))
    assert [s.span_id for s in spans] == [good["spanId"]]
    assert len(refused) == 1 and field in refused[0] and "spans[1]" in refused[0]
