"""Property tests (hypothesis) for what users feed the product: whatever arrives, the answer is a value or
an ``InvalidInput`` naming a field — never another exception (which the service would turn into a 500)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opslab.canary import parse_plan
from opslab.errors import InvalidInput
from opslab.telemetry import AgentRunIn, map_trace, parse_request, parse_run
from tests.conftest import examples
from tests.unit.strategies import json_values

SETTINGS = settings(max_examples=examples(300), deadline=None, suppress_health_check=list(HealthCheck))

timestamps = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.text(max_size=30),
    st.integers(),
    st.sampled_from(["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "2024-05-01T12:00:00Z"]),
)


def _field_errors_named(exc: InvalidInput) -> bool:
    errors = exc.details.get("errors") or []
    return bool(errors) and all(e.get("field") for e in errors)


@st.composite
def agent_runs(draw: st.DrawFn) -> dict[str, Any]:
    run: dict[str, Any] = {
        "run_id": draw(st.text(min_size=0, max_size=12) | st.integers()),
        "agent_name": draw(st.text(max_size=8)),
        "status": draw(st.sampled_from(["success", "failure", "running", "timeout", "cancelled", "bogus"])),
        "started_at": draw(timestamps),
    }
    optional = {
        "ended_at": timestamps,
        "error_message": st.text(max_size=20),
        "cost": st.fixed_dictionaries(
            {},
            optional={
                "tokens_prompt": st.integers(min_value=-5, max_value=2**64)
                | st.booleans()
                | st.text(max_size=3),
                "total_cost_usd": st.floats(allow_nan=True, allow_infinity=True) | st.booleans(),
            },
        ),
        "steps": st.lists(
            st.fixed_dictionaries(
                {"step_id": st.text(max_size=4), "status": st.sampled_from(["success", "failure", "x"])},
                optional={"started_at": timestamps, "retries": st.integers(), "latency_ms": st.floats()},
            ),
            max_size=3,
        ),
        "tool_calls": st.lists(
            st.fixed_dictionaries(
                {
                    "call_id": st.text(max_size=4),
                    "tool_name": st.text(max_size=4),
                    "status": st.sampled_from(["success", "failure", "timeout"]),
                },
                optional={"step_id": st.text(max_size=4), "args_json": json_values},
            ),
            max_size=3,
        ),
        "attributes": st.dictionaries(st.text(max_size=5), json_values, max_size=3),
        "unknown_field": json_values,
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            run[key] = draw(strategy)
    return run


@SETTINGS
@given(agent_runs())
def test_an_agent_run_payload_parses_or_names_its_field(payload: dict[str, Any]) -> None:
    try:
        run = parse_run(payload)
    except InvalidInput as exc:
        assert _field_errors_named(exc)
        return
    assert isinstance(run, AgentRunIn)
    assert run.started_at.tzinfo is not None and run.started_at.utcoffset() == timedelta(0)
    assert run.started_at <= datetime.now(UTC) + timedelta(minutes=5)


@SETTINGS
@given(json_values)
def test_any_json_is_a_run_or_a_named_error(payload: Any) -> None:
    try:
        parse_run(payload)
    except InvalidInput as exc:
        assert exc.message


span_ids = st.text(alphabet="0123456789abcdef", min_size=1, max_size=16) | st.text(max_size=5)
any_values = st.fixed_dictionaries(
    {},
    optional={
        "stringValue": st.text(max_size=10),
        "intValue": st.integers(min_value=-(2**70), max_value=2**70).map(str) | st.text(max_size=4),
        "doubleValue": st.floats(),
        "boolValue": st.booleans(),
    },
)
otlp_spans = st.fixed_dictionaries(
    {"traceId": span_ids, "spanId": span_ids},
    optional={
        "parentSpanId": span_ids,
        "name": st.sampled_from(["invoke_agent a", "chat m", "execute_tool t", ""]),
        "startTimeUnixNano": st.integers(min_value=-1, max_value=10**30).map(str) | st.text(max_size=4),
        "endTimeUnixNano": st.integers(min_value=-1, max_value=10**30).map(str),
        "attributes": st.lists(
            st.fixed_dictionaries(
                {
                    "key": st.sampled_from(
                        ["gen_ai.operation.name", "gen_ai.usage.input_tokens", "gen_ai.agent.name", "k"]
                    ),
                    "value": any_values,
                }
            ),
            max_size=4,
        ),
        "status": st.fixed_dictionaries(
            {}, optional={"code": st.integers(0, 3), "message": st.text(max_size=5)}
        ),
    },
)
otlp_bodies = st.fixed_dictionaries(
    {},
    optional={
        "resourceSpans": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "scopeSpans": st.lists(
                        st.fixed_dictionaries({}, optional={"spans": st.lists(otlp_spans, max_size=4)}),
                        max_size=2,
                    )
                },
            ),
            max_size=2,
        )
        | json_values
    },
)


@SETTINGS
@given(otlp_bodies)
def test_an_otlp_request_parses_or_names_its_field_and_maps_or_says_why(body: dict[str, Any]) -> None:
    try:
        spans, refused = parse_request(body)
    except InvalidInput as exc:
        assert _field_errors_named(exc)
        return
    assert all(isinstance(reason, str) and reason for reason in refused)  # a refused span says why
    # The service rejects spans that cannot be mapped alone (partial success): see telemetry/exports.py.
    with contextlib.suppress(ValueError, OverflowError, OSError):
        map_trace(spans)


plans = st.fixed_dictionaries(
    {
        "experiment": st.fixed_dictionaries(
            {
                "qps": st.floats() | st.integers() | st.booleans(),
                "window_sec": st.floats(),
                "rounds": st.integers(-2, 200) | st.floats(),
                "flow_policy": st.sampled_from(["aimd", "static", "other"]),
                "target_p95": st.floats() | st.integers(),
                "routing_mode": st.sampled_from(["rules", "default", ""]),
                "topk_threshold": st.integers(-1, 2000) | st.floats(),
            }
        )
    },
    optional={"seed": st.integers() | st.booleans(), "time_budget": st.floats(), "extra": json_values},
)


@SETTINGS
@given(plans | json_values)
def test_a_canary_plan_parses_or_names_its_field(data: Any) -> None:
    try:
        plan = parse_plan(data)
    except InvalidInput as exc:
        assert _field_errors_named(exc)
        return
    assert plan.experiment.qps > 0 and plan.experiment.rounds >= 1
