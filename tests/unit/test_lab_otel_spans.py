"""A trial's spans as harness events (counted like any event) and in the trial's agent run (steps, tool
calls, guardrail events, tokens, mapped as the service maps OTLP traces), which always passes the
telemetry wire contract, whatever the spans hold."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from opslab.lab import TrialDone, TrialRecord, trial_to_agent_run
from opslab.lab.events import HarnessEvent, count_events, read_span_events, span_event
from opslab.lab.report import ReportQueue, TrialSource
from opslab.lab.span_steps import MAX_SPANS, read_spans
from opslab.telemetry import AgentRunIn, Span, parse_run

START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
END = START + timedelta(seconds=2)
T0 = int(START.timestamp() * 1e9)
TRACE = "5b8efff798038103d269b633813fc60c"


def span(span_id: str, name: str, parent: str | None = None, *, at_ms: int = 0, **attrs: Any) -> Span:
    return Span(
        trace_id=TRACE,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        start_ns=T0 + at_ms * 1_000_000,
        end_ns=T0 + (at_ms + 10) * 1_000_000,
        attributes=attrs,
        resource={"service.name": "harness"},
        error=bool(attrs.pop("failed", False)),
        status_message=str(attrs.pop("message", "")),
    )


def agent_trace() -> list[Span]:
    return [
        span("aa01", "invoke_agent solver", **{"gen_ai.operation.name": "invoke_agent"}),
        span(
            "aa02",
            "chat gpt-4o",
            "aa01",
            at_ms=100,
            **{"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 300},
            **{"gen_ai.usage.output_tokens": 40},
        ),
        span(
            "aa03",
            "execute_tool order_lookup",
            "aa02",
            at_ms=200,
            failed=True,
            message="customer_id missing",
            **{"gen_ai.tool.name": "order_lookup", "gen_ai.tool.call.id": "call-1"},
            **{"gen_ai.tool.call.arguments": '{"order": 12345}', "error.type": "ValidationError"},
            **{"http.response.status_code": 400},
        ),
        span("aa04", "output filter", "aa01", at_ms=300, **{"openinference.span.kind": "GUARDRAIL"}),
        span("aa05", "GET /orders", "aa03", at_ms=210),
    ]


def record(**changes: Any) -> TrialRecord:
    base: dict[str, Any] = {
        "trial_id": "trial_3",
        "variant_id": "v1",
        "task_id": "t1",
        "replication": 1,
        "seed": 1,
        "outcome": "failure",
        "exit_code": 0,
        "duration_ms": 2000.0,
        "started_at": START.isoformat(),
        "ended_at": END.isoformat(),
    }
    return TrialRecord.model_validate({**base, **changes})


def to_run(spans: list[Span], **kw: Any) -> AgentRunIn:
    run = trial_to_agent_run(record(), lab_run_id="run_1", experiment_id="exp", spans=spans, **kw)
    parse_run(run.model_dump(mode="json"))  # what the service would say
    return run


def test_spans_are_events_typed_by_their_genai_operation() -> None:
    events = [span_event(s.to_json()) for s in agent_trace()]
    assert [e["type"] for e in events] == ["agent", "llm_call", "tool_call", "guardrail", "span"]
    assert count_events(events) == {"agent": 1, "llm_call": 1, "tool_call": 1, "guardrail": 1, "span": 1}
    tool = events[2]
    assert (tool["tool"], tool["args"], tool["status"], tool["error"]) == (
        "order_lookup",
        {"order": 12345},
        "error",
        "customer_id missing",
    )
    read = HarnessEvent.of(tool)  # the shape harness_events.jsonl lines have
    assert (read.kind, read.tool, read.status, read.error_class, read.status_code) == (
        "tool_call",
        "order_lookup",
        "failure",
        "ValidationError",
        400,
    )
    assert read.started_at == START + timedelta(milliseconds=200) and read.latency_ms == 10.0
    assert events[1]["model"] == "gpt-4o" and events[1]["input_tokens"] == 300


def test_the_spans_file_reads_as_events_in_start_order(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    path = tmp_path / "out" / "otel_spans.jsonl"
    lines = [json.dumps(s.to_json()) for s in reversed(agent_trace())]  # children end (arrive) first
    path.write_text("\n".join([*lines, "not json", "[1]"]) + "\n")
    events = read_span_events(str(tmp_path)).events
    assert [e["span_id"] for e in events] == ["aa01", "aa02", "aa03", "aa05", "aa04"]
    assert [s.span_id for s in read_spans(str(tmp_path))] == ["aa05", "aa04", "aa03", "aa02", "aa01"]
    assert read_span_events(str(tmp_path / "missing")).events == []


def test_spans_become_steps_tool_calls_and_guardrails_of_the_trial_run() -> None:
    events: list[dict[str, object]] = [{"type": "tool_call", "tool": "calc"}]  # its call is "call-1"
    run = to_run(agent_trace(), events=events, bindings={})
    names = [s.name for s in run.steps]
    assert names == ["harness", "tool_call calc", "invoke_agent solver", "chat gpt-4o", "GET /orders"]
    agent_step = run.steps[2]
    assert agent_step.step_id == "aa01" and agent_step.started_at == START
    assert run.steps[3].latency_ms == 10.0
    event_call, span_call = run.tool_calls
    assert event_call.call_id == "call-1" and span_call.call_id == "call-1-otel"  # ids stay unique
    assert (span_call.tool_name, span_call.status, span_call.step_id) == ("order_lookup", "failure", "aa02")
    assert span_call.args_json == {"order": 12345} and span_call.status_code == 400
    assert span_call.error_class == "ValidationError" and span_call.error_message == "customer_id missing"
    [guard] = run.guardrail_events
    assert guard.event_id == "aa04" and guard.step_id == "aa01"
    assert (run.cost.tokens_prompt, run.cost.tokens_completion) == (300, 40)
    assert run.model == "gpt-4o" and run.trace_id == TRACE
    assert run.attributes["lab.otel"] == {"spans": 5, "traces": 1, "dropped": 0}


def test_the_metrics_and_bindings_win_over_the_spans() -> None:
    rec = record(metrics={"prompt_tokens": 7})
    run = trial_to_agent_run(
        rec, lab_run_id="r", experiment_id="e", spans=agent_trace(), bindings={"model": "claude"}
    )
    assert run.model == "claude" and (run.cost.tokens_prompt, run.cost.tokens_completion) == (7, None)


def test_spans_no_run_can_hold_are_cleaned_or_left_out() -> None:
    future = span("bb01", "chat later", at_ms=0)
    future.start_ns = int((END + timedelta(days=3)).timestamp() * 1e9)
    backwards = span("bb02", "chat backwards", at_ms=50)
    backwards.end_ns = backwards.start_ns - 1
    nul = span("bb03", "execute_tool x", **{"gen_ai.tool.name": "x", "gen_ai.tool.call.arguments": "[NaN]"})
    nul_name = span("bb04", "step\x00")
    huge = span("bb05", "chat big", **{"gen_ai.usage.input_tokens": 2**40, "gen_ai.usage.output_tokens": "9"})
    other_trace = span("bb06", "chat elsewhere")
    other_trace.trace_id = "f" * 32
    run = to_run([future, backwards, nul, nul_name, huge, other_trace])
    by_id = {s.step_id: s for s in run.steps}
    assert by_id["bb01"].started_at is None  # ahead of the service's clock: time dropped, step kept
    assert by_id["bb02"].started_at is not None and by_id["bb02"].ended_at is None
    assert "bb04" not in by_id  # a NUL in a name: left out
    # Arguments no database stores the same way (NaN) are kept as their text, the call with them.
    assert [(c.call_id, c.args_json) for c in run.tool_calls] == [("bb03", {"raw": "[NaN]"})]
    assert (run.cost.tokens_prompt, run.cost.tokens_completion) == (None, None)
    assert run.trace_id is None and run.attributes["lab.otel"]["traces"] == 2
    assert run.attributes["lab.otel"] == {"spans": 5, "traces": 2, "dropped": 1}


def test_spans_beyond_the_limit_are_counted_not_sent() -> None:
    spans = [span(f"{i:016x}", "chat m", at_ms=i % 1000) for i in range(1, MAX_SPANS + 6)]
    run = to_run(spans)
    assert len(run.steps) == 1 + MAX_SPANS and run.attributes["lab.otel"]["dropped"] == 5


def test_a_reported_trial_carries_its_spans(tmp_path: Path) -> None:
    run_dir = tmp_path / "run_20260102_030405_ab12"
    out = run_dir / "trials" / "trial_3" / "out"
    out.mkdir(parents=True)
    (run_dir / "trials" / "trial_3" / "trial_output.json").write_text(record().model_dump_json())
    (out / "otel_spans.jsonl").write_text("".join(json.dumps(s.to_json()) + "\n" for s in agent_trace()))
    runs: list[AgentRunIn] = []

    class Collect:
        def report(self, run: AgentRunIn) -> None:
            runs.append(run)

    queue = ReportQueue(Collect(), TrialSource(run_dir, "exp", ["./h"], {"v1": {}}))
    queue.submit(TrialDone("trial_3", "failure"))
    assert queue.close().reported == 1
    [run] = runs
    assert [c.tool_name for c in run.tool_calls] == ["order_lookup"] and run.trace_id == TRACE
    no_events = ReportQueue(Collect(), TrialSource(run_dir, "exp", ["./h"], {"v1": {}}, with_events=False))
    no_events.submit(TrialDone("trial_3", "failure"))
    no_events.close()
    assert runs[1].tool_calls == [] and "lab.otel" not in runs[1].attributes
