"""The telemetry routes over real HTTP (uvicorn on a free port), on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from opslab.api import create_app
from opslab.config import Settings
from opslab.serving import ServerThread
from opslab.telemetry import load_prices


@pytest.fixture
def api(settings: Settings) -> Iterator[httpx.Client]:
    with (
        ServerThread(create_app(settings)) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        yield client


def error_fields(response: httpx.Response) -> set[str]:
    body = response.json()
    assert set(body["error"]) == {"code", "message", "details"}
    return {e["field"] for e in body["error"]["details"].get("errors", [])}


def test_root_identifies_the_service(api: httpx.Client) -> None:
    body = api.get("/").json()
    assert body["status"] == "ok" and body["service"] == "opslab" and body["version"]
    assert api.get("/healthz").json()["status"] == "ok"
    assert "/agent-runs" in api.get("/openapi.json").json()["paths"]


def test_seed_workflow_ingest_read_timeline_overview(
    api: httpx.Client, run_001: dict[str, Any], run_002: dict[str, Any]
) -> None:
    assert api.post("/agent-runs", json=run_001).status_code == 201
    assert api.post("/agent-runs", json=run_002).status_code == 201
    again = api.post("/agent-runs", json=run_001)
    assert again.status_code == 200 and again.json()["status"] == "updated"
    run = api.get("/agent-runs/run-001-sufficient").json()
    assert run["counts"] == {"steps": 4, "tool_calls": 3, "failed_tool_calls": 2, "guardrail_events": 1}
    assert run["started_at"] == "2024-01-15T10:30:00Z"
    items = api.get("/agent-runs/run-001-sufficient/timeline").json()["items"]
    assert len(items) == 8 and items[0]["kind"] == "step" and items[4]["kind"] == "guardrail"
    assert {"kind", "id", "started_at", "ended_at", "status", "summary", "step_id"} <= set(items[2])
    ov = api.get("/metrics/overview", params={"hours": 1_000_000}).json()
    assert ov["total_runs"] == 2 and ov["success_rate"] == 0.0
    assert ov["top_failing_tools"] == [{"tool": "order_lookup_api", "count": 2}]
    # run-002 names its model and tokens but no cost: it is priced from the price table
    priced = load_prices().cost(run_002["model"], 200, 50)
    assert ov["p95_step_latency_ms"] == 20000 and ov["total_cost_usd"] == pytest.approx(0.0245 + priced)
    assert api.get("/agent-runs/run-002-insufficient").json()["cost"]["total_cost_usd"] == pytest.approx(
        priced
    )
    listed = api.get("/agent-runs", params={"environment": "staging"}).json()["items"]
    assert [r["run_id"] for r in listed] == ["run-002-insufficient"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"run_id": "x"}, "agent_name"),
        (
            {"run_id": "x", "agent_name": "a", "status": "weird", "started_at": "2024-01-01T00:00:00Z"},
            "status",
        ),
        (
            {"run_id": "x", "agent_name": "a", "status": "success", "started_at": "2024-01-01T00:00:00"},
            "started_at",
        ),
        (
            {
                "run_id": "x" * 201,
                "agent_name": "a",
                "status": "success",
                "started_at": "2024-01-01T00:00:00Z",
            },
            "run_id",
        ),
        (
            {
                "run_id": "../../etc/passwd",
                "agent_name": "a",
                "status": "success",
                "started_at": "2024-01-01T00:00:00Z",
            },
            "run_id",
        ),
        (
            {"run_id": "x", "agent_name": 5, "status": "success", "started_at": "2024-01-01T00:00:00Z"},
            "agent_name",
        ),
    ],
)
def test_bad_runs_are_refused_naming_the_field(api: httpx.Client, body: dict[str, Any], field: str) -> None:
    r = api.post("/agent-runs", json=body)
    assert r.status_code == 422 and field in error_fields(r)
    assert api.get("/agent-runs").json()["items"] == []


def test_malformed_json_and_dangling_step_write_nothing(api: httpx.Client, run_001: dict[str, Any]) -> None:
    r = api.post("/agent-runs", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_input"
    dangling = copy.deepcopy(run_001)
    dangling["run_id"] = "dangling"
    dangling["tool_calls"][0]["step_id"] = "nope"
    r = api.post("/agent-runs", json=dangling)
    assert r.status_code == 422 and "tool_calls[0].step_id" in error_fields(r)
    assert api.get("/agent-runs/dangling").status_code == 404


def test_batch_reports_each_item_and_keeps_the_good_ones(api: httpx.Client, run_001: dict[str, Any]) -> None:
    good2 = copy.deepcopy(run_001)
    good2["run_id"] = "second"
    bad = copy.deepcopy(run_001)
    bad["run_id"] = "third"
    bad["status"] = "exploded"
    r = api.post("/agent-runs/batch", json=[run_001, bad, good2, "not-a-run"])
    assert r.status_code == 207
    body = r.json()
    assert (body["ok"], body["failed"]) == (2, 2)
    assert [i["status"] for i in body["results"]] == ["created", "error", "created", "error"]
    assert body["results"][1]["error"]["details"]["errors"][0]["field"] == "[1].status"
    assert api.get("/agent-runs/third").status_code == 404
    assert api.get("/agent-runs/second").status_code == 200
    assert api.post("/agent-runs/batch", json=[run_001]).status_code == 200
    assert api.post("/agent-runs/batch", json={"run_id": 1}).status_code == 422


def test_unknown_ids_are_404_with_the_error_shape(api: httpx.Client) -> None:
    for path in ("/agent-runs/nope", "/agent-runs/nope/timeline", "/no/such/route"):
        r = api.get(path)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_prometheus_exposition_counts_ingested_runs(api: httpx.Client, run_001: dict[str, Any]) -> None:
    api.post("/agent-runs", json=run_001)
    text = api.get("/metrics").text
    assert "# TYPE opslab_http_request_duration_seconds histogram" in text
    assert 'opslab_ingested_runs_total{source="native",status="failure"} 1.0' in text
    assert 'route="/agent-runs"' in text


@pytest.fixture
def guarded(tmp_path: Any, db_url: str) -> Iterator[httpx.Client]:
    settings = Settings(
        data_dir=tmp_path / "g",
        database_url=db_url,
        ingest_secret="s3cret-ingest-5f1c9a",
        api_token="tok-123456-guarded",
        max_body_bytes=20_000,
    )
    with (
        ServerThread(create_app(settings)) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        yield client


def test_ingest_secret_token_and_body_cap(guarded: httpx.Client, run_001: dict[str, Any]) -> None:
    r = guarded.post("/agent-runs", json=run_001)
    assert r.status_code == 401 and r.json()["error"]["details"]["header"] == "X-Ingest-Secret"
    assert guarded.post("/agent-runs", json=run_001, headers={"X-Ingest-Secret": "wrong"}).status_code == 401
    assert (
        guarded.post(
            "/agent-runs", json=run_001, headers={"X-Ingest-Secret": "s3cret-ingest-5f1c9a"}
        ).status_code
        == 201
    )
    # Ingestion needs no API token; reads and any other write need the bearer token.
    assert guarded.get("/agent-runs/run-001-sufficient").status_code == 401
    auth = {"Authorization": "Bearer tok-123456-guarded"}
    assert guarded.get("/agent-runs/run-001-sufficient", headers=auth).status_code == 200
    big = copy.deepcopy(run_001)
    big["run_id"] = "big"
    big["error_message"] = "x" * 30_000
    r = guarded.post("/agent-runs", json=big, headers={"X-Ingest-Secret": "s3cret-ingest-5f1c9a"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:
        yield b'{"run_id": "streamed", "error_message": "'
        for _ in range(30):
            yield b"y" * 1000
        yield b'"}'

    r = guarded.post("/agent-runs", content=chunks(), headers={"X-Ingest-Secret": "s3cret-ingest-5f1c9a"})
    assert r.status_code == 413
    assert guarded.get("/agent-runs/big", headers=auth).status_code == 404
