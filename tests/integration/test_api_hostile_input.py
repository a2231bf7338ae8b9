"""Inputs that fuzzing of the OpenAPI document turned into 500s, each answered now with a 4xx naming the
field, the same way on SQLite and PostgreSQL, with nothing half-stored."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from opslab.api import ServerThread, create_app
from opslab.config import Settings


@pytest.fixture
def api(settings: Settings) -> Iterator[httpx.Client]:
    with ServerThread(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def run(run_id: str = "r-1", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "run_id": run_id,
        "agent_name": "agent",
        "status": "failure",
        "started_at": "2024-05-01T12:00:00Z",
        "steps": [{"step_id": "s1", "name": "plan", "status": "failure"}],
    }
    body.update(changes)
    return body


def fields(r: httpx.Response) -> list[str]:
    assert r.status_code == 422, (r.status_code, r.text[:300])
    body = r.json()["error"]
    return [e["field"] for e in body["details"]["errors"]]


def raw_post(api: httpx.Client, path: str, text: str) -> httpx.Response:
    return api.post(path, content=text.encode(), headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"cost": {"tokens_prompt": 9223372036854775808}}, "cost.tokens_prompt"),
        ({"cost": {"tokens_prompt": 2147483648}}, "cost.tokens_prompt"),
        ({"cost": {"tokens_completion": 2**40}}, "cost.tokens_completion"),
        ({"steps": [{"step_id": "s", "status": "success", "retries": 2**31}]}, "steps[0].retries"),
        ({"cost": {"total_cost_usd": False}}, "cost.total_cost_usd"),
        ({"cost": {"total_cost_usd": "1.5"}}, "cost.total_cost_usd"),
        ({"started_at": 12345}, "started_at"),
        ({"started_at": "9999-12-31T23:59:59-14:00"}, "started_at"),
        ({"started_at": "0001-01-01T00:00:00+14:00"}, "started_at"),
        ({"started_at": "1969-12-31T23:59:59Z"}, "started_at"),
        ({"started_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()}, "started_at"),
        ({"error_message": "nul \u0000 inside"}, "error_message"),
        ({"agent_name": "a\u0000b"}, "agent_name"),
        ({"attributes": {"k": "v\u0000"}}, "attributes"),
    ],
)
def test_out_of_range_or_unstorable_values_are_refused_naming_the_field(
    api: httpx.Client, change: dict[str, Any], field: str
) -> None:
    assert fields(api.post("/agent-runs", json=run(**change))) == [field]
    assert api.get("/agent-runs/r-1").status_code == 404  # nothing stored
    batch = api.post("/agent-runs/batch", json=[run("good"), run("bad", **change)])
    assert batch.status_code == 207
    ok, bad = batch.json()["results"]
    assert ok["status"] == "created" and bad["status"] == "error" and bad["run_id"] == "bad"
    assert bad["error"]["details"]["errors"][0]["field"] == f"[1].{field}"
    assert api.get("/agent-runs/good").status_code == 200


@pytest.mark.parametrize(
    "text",
    [
        '{"cost": {"total_cost_usd": NaN}}',
        '{"cost": {"total_cost_usd": Infinity}}',
        '{"steps": [{"step_id": "s", "status": "success", "latency_ms": Infinity}]}',
        '{"attributes": {"k": Infinity}}',
        '{"tool_calls": [{"call_id": "c", "tool_name": "t", "status": "failure", "args_json": {"x": NaN}}]}',
    ],
)
def test_non_finite_numbers_are_refused(api: httpx.Client, text: str) -> None:
    base = run()
    extra = json.loads(text.replace("NaN", '"__nan__"').replace("Infinity", '"__inf__"'))
    body = json.dumps({**base, **extra}).replace('"__nan__"', "NaN").replace('"__inf__"', "Infinity")
    r = raw_post(api, "/agent-runs", body)
    assert r.status_code == 422 and "finite" in r.json()["error"]["message"], r.text[:300]
    assert raw_post(api, "/agent-runs/batch", f"[{body}]").json()["failed"] == 1
    assert api.get("/metrics/overview", params={"hours": 24 * 365 * 100}).json()["total_cost_usd"] == 0


def test_text_that_merely_spells_nan_or_infinity_is_stored(api: httpx.Client) -> None:
    """The batch looks at its free-form values in one JSON text first: the words there are not numbers."""
    words = {"note": "NaN and Infinity are words here", "k": "\\u0000 spelled out"}
    r = api.post("/agent-runs/batch", json=[run("w-1", metadata=words), run("w-2")])
    assert r.status_code == 200 and r.json()["ok"] == 2, r.text[:300]
    assert api.get("/agent-runs/w-1").json()["metadata"] == words


def test_a_nul_or_an_endless_id_in_a_path_is_a_422_naming_the_path_and_the_connection_lives(
    api: httpx.Client,
) -> None:
    for path in (
        "/agent-runs/a%00b",
        "/agent-runs/a%00b/timeline",
        "/agent-runs/a%00b/rca-runs",
        "/agent-runs/rca-runs/a%00b",
        "/rca-runs/a%00b/stream",
        "/canary/runs/a%00b",
        "/canary/runs/a%00b/stream",
        "/agent/incidents/a%00b",
        "/agent/incidents/a%00b/stream",
        "/lab/runs/a%00b",
        "/lab/runs/a%00b/stream",
        "/sessions/%00",
        f"/sessions/{'s' * 10_000}",
    ):
        r = api.get(path)
        assert fields(r) == ["path"], path
        assert api.get("/healthz").status_code == 200  # the same kept-alive connection answers on
    page = api.get("/ui/sessions/%00")  # a dashboard page's error is a page
    assert page.status_code == 422 and "<html" in page.text and "NUL" in page.text
    assert fields(api.post("/agent-runs/a%00b/rca-runs")) == ["path"]
    assert fields(api.get("/agent/audit", params={"incident_id": "a\x00b"})) == ["query.incident_id"]


def test_ids_no_run_can_have_answer_404_and_a_session_id_too_long_422(api: httpx.Client) -> None:
    for path in ("/agent-runs/a%01b", "/agent-runs/" + "r" * 900):
        r = api.get(path)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", path
    assert api.get("/sessions/a%0Ab").json()["items"] == []
    assert fields(api.get("/sessions/" + "s" * 900)) == ["path.session_id"]


def test_bad_filters_and_cursors_are_refused_naming_them(api: httpx.Client) -> None:
    assert fields(api.get("/agent-runs", params={"agent_name": "a\x00b"})) == ["query.agent_name"]
    for since in ("9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "0.5", "12345"):
        assert fields(api.get("/agent-runs", params={"since": since})) == ["query.since"], since

    def cursor(at: str) -> str:
        return base64.urlsafe_b64encode(json.dumps([at, "r"]).encode()).decode().rstrip("=")

    for made_up in (cursor("9999-12-31T23:59:59-14:00"), cursor("2024-01-01T00:00:00"), "!!", cursor("x")):
        assert fields(api.get("/agent-runs", params={"cursor": made_up})) == ["cursor"], made_up


def test_an_empty_fleet_has_no_success_rate(api: httpx.Client) -> None:
    overview = api.get("/metrics/overview", params={"hours": 1}).json()
    assert overview["total_runs"] == 0 and overview["success_rate"] is None


def _otlp(
    trace: str, span: str, *, start: str, tokens: int = 10, parent: str | None = None
) -> dict[str, Any]:
    attrs = [
        {"key": "gen_ai.operation.name", "value": {"stringValue": "invoke_agent" if not parent else "chat"}},
        {"key": "gen_ai.agent.name", "value": {"stringValue": "otel-agent"}},
        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": str(tokens)}},
    ]
    sp: dict[str, Any] = {
        "traceId": trace,
        "spanId": span,
        "name": "invoke_agent otel-agent" if not parent else "chat model",
        "startTimeUnixNano": start,
        "endTimeUnixNano": str(int(start) + 1_000_000) if start.isdigit() else start,
        "attributes": attrs,
    }
    if parent:
        sp["parentSpanId"] = parent
    return {"resourceSpans": [{"scopeSpans": [{"spans": [sp]}]}]}


def test_a_bad_span_is_rejected_alone_and_its_trace_stays_healthy(api: httpx.Client) -> None:
    trace = "ab" * 16
    now_ns = str(int(datetime.now(UTC).timestamp() * 1e9) - 10**9)
    root = api.post("/v1/traces", json=_otlp(trace, "01" * 8, start=now_ns))
    assert root.status_code == 200 and root.json()["partialSuccess"] == {}
    for bad, why in (
        (_otlp(trace, "02" * 8, start=str(10**30), parent="01" * 8), ""),
        (
            _otlp(trace, "03" * 8, start=now_ns, tokens=10**20, parent="01" * 8),
            "tokens_prompt (from gen_ai.usage.input_tokens): ",
        ),
        (_otlp("00" * 16, "05" * 8, start=now_ns), "traceId: an all-zero id is invalid"),
        (_otlp(trace, "00" * 8, start=now_ns, parent="01" * 8), "spanId: an all-zero id is invalid"),
        (_otlp(trace, "06" * 8, start="-5", parent="01" * 8), "startTimeUnixNano: required"),
        (_otlp(trace, "07" * 8, start="0", parent="01" * 8), "startTimeUnixNano: required"),
    ):
        r = api.post("/v1/traces", json=bad)
        assert r.status_code == 200, r.text[:300]
        partial = r.json()["partialSuccess"]
        assert partial["rejectedSpans"] == 1 and why in partial["errorMessage"], partial
    good = api.post("/v1/traces", json=_otlp(trace, "04" * 8, start=now_ns, parent="01" * 8))
    assert good.status_code == 200 and good.json()["partialSuccess"] == {}
    runs = good.json()["opslab"]["runs"]
    assert len(runs) == 1
    assert api.get(f"/agent-runs/{runs[0]['run_id']}").status_code == 200


def test_a_batch_may_be_wrapped_as_runs(api: httpx.Client) -> None:
    r = api.post("/agent-runs/batch", json={"runs": [run("w-1"), run("w-2", status="nope")]})
    assert r.status_code == 207 and r.json()["ok"] == 1
    assert api.get("/agent-runs/w-1").status_code == 200
    assert fields(api.post("/agent-runs/batch", json={"items": []})) == ["runs"]


@pytest.fixture
def capped(tmp_path: Path, db_url: str) -> Iterator[httpx.Client]:
    settings = Settings(
        data_dir=tmp_path / "capped", database_url=db_url, max_otlp_spans=20, max_batch_items=5, job_workers=1
    )
    with ServerThread(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def _export_of(n: int) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add()
    for i in range(n):
        s = spans.spans.add()
        s.trace_id, s.span_id, s.name = bytes.fromhex("ab" * 16), (i + 1).to_bytes(8, "big"), "s"
        s.start_time_unix_nano, s.end_time_unix_nano = 1_760_000_000_000_000_000, 1_760_000_000_100_000_000
    return request


def test_an_export_of_more_spans_than_the_cap_is_a_413_naming_the_setting_and_keeps_nothing(
    capped: httpx.Client,
) -> None:
    too_many = _export_of(21)
    r = capped.post(
        "/v1/traces", content=too_many.SerializeToString(), headers={"Content-Type": "application/x-protobuf"}
    )
    assert r.status_code == 413, r.text[:300]
    error = r.json()["error"]
    assert error["details"]["setting"] == "OPSLAB_MAX_OTLP_SPANS" and "21 spans" in error["message"]
    one = _otlp("ab" * 16, "01" * 8, start="1760000000000000000")["resourceSpans"][0]["scopeSpans"][0]
    spans = [{**one["spans"][0], "spanId": f"{i + 1:016x}"} for i in range(21)]
    as_json = {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}
    assert capped.post("/v1/traces", json=as_json).status_code == 413
    assert capped.get(f"/v1/traces/{'ab' * 16}").status_code == 404  # nothing kept
    at_cap = capped.post(
        "/v1/traces",
        content=_export_of(20).SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert at_cap.status_code == 200


def test_a_batch_of_more_runs_than_the_cap_is_a_413_naming_the_setting_valid_or_not(
    capped: httpx.Client,
) -> None:
    for items in ([run(f"c-{i}") for i in range(6)], [{"run_id": i} for i in range(6)]):
        r = capped.post("/agent-runs/batch", json=items)
        assert r.status_code == 413 and r.json()["error"]["details"]["setting"] == "OPSLAB_MAX_BATCH_ITEMS"
    assert (
        capped.post("/agent-runs/batch", json={"runs": [run(f"c-{i}") for i in range(6)]}).status_code == 413
    )
    assert capped.get("/agent-runs").json()["items"] == []
    assert capped.post("/agent-runs/batch", json=[run(f"c-{i}") for i in range(5)]).status_code == 200
