"""RCA as jobs over real HTTP, embedded backend, on SQLite and PostgreSQL: the seed's workflows,
idempotency, SSE progress, recovery after a crash."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from opslab.api import create_app
from opslab.config import Settings
from opslab.rca import RCA, RcaPayload
from opslab.serving import ServerThread
from opslab.store import make_engine
from opslab.store.jobs import SqlJobStore

STEPS = ["Starting RCA", "Collecting evidence", "Classifying failure", "Generating report", "RCA complete"]


@pytest.fixture
def api(settings: Settings, run_001: dict[str, Any], run_002: dict[str, Any]) -> Iterator[httpx.Client]:
    with (
        ServerThread(create_app(settings)) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        for run in (run_001, run_002):
            client.post("/agent-runs", json=run).raise_for_status()
        yield client


def wait_done(api: httpx.Client, rca_id: str, seconds: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        body: dict[str, Any] = api.get(f"/agent-runs/rca-runs/{rca_id}").json()
        if body["status"] in ("done", "failed"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"RCA {rca_id} not finished")


def sse(
    api: httpx.Client, path: str, headers: dict[str, str] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    event_id = ""
    with api.stream("GET", path, headers=headers or {}, timeout=30) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("data:"):
                events.append((event_id, json.loads(line[5:])))
    return events


def test_workflows_1_and_2(api: httpx.Client) -> None:
    r = api.post("/agent-runs/run-001-sufficient/rca-runs")
    assert r.status_code == 202
    rca_id = r.json()["rca_run_id"]
    body = wait_done(api, rca_id)
    assert body["status"] == "done" and body["run_id"] == "run-001-sufficient"
    report = body["report"]
    assert report["category"] == "tool_schema_mismatch" and report["insufficient_evidence"] is False
    ids = {e["evidence_id"] for e in report["evidence_index"]}
    assert all(h["evidence_ids"] and set(h["evidence_ids"]) <= ids for h in report["hypotheses"])
    assert api.get(f"/rca-runs/{rca_id}").json()["report"] == report
    r2 = api.post("/agent-runs/run-002-insufficient/rca-runs")
    report2 = wait_done(api, r2.json()["rca_run_id"])["report"]
    assert report2["category"] == "unknown" and report2["insufficient_evidence"] is True
    assert report2["evidence_index"] == [] and report2["hypotheses"] == []


def test_idempotency_force_and_changed_content(api: httpx.Client, run_001: dict[str, Any]) -> None:
    first = api.post("/agent-runs/run-001-sufficient/rca-runs").json()["rca_run_id"]
    again = api.post("/agent-runs/run-001-sufficient/rca-runs")
    assert again.json()["rca_run_id"] == first and again.status_code in (200, 202)
    wait_done(api, first)
    assert api.post("/agent-runs/run-001-sufficient/rca-runs").json()["rca_run_id"] == first
    forced = api.post("/agent-runs/run-001-sufficient/rca-runs", params={"force": "true"}).json()[
        "rca_run_id"
    ]
    assert forced != first
    assert api.post("/agent-runs/run-001-sufficient/rca-runs").json()["rca_run_id"] == forced
    changed = {**run_001, "error_message": "Tool schema validation failed twice"}
    api.post("/agent-runs", json=changed).raise_for_status()
    new = api.post("/agent-runs/run-001-sufficient/rca-runs").json()["rca_run_id"]
    assert new not in (first, forced)
    keyed = api.post(
        "/agent-runs/run-002-insufficient/rca-runs",
        params={"force": "true"},
        headers={"Idempotency-Key": "k-1"},
    ).json()["rca_run_id"]
    repeat = api.post(
        "/agent-runs/run-002-insufficient/rca-runs",
        params={"force": "true"},
        headers={"Idempotency-Key": "k-1"},
    )
    assert repeat.json()["rca_run_id"] == keyed
    clash = api.post("/agent-runs/run-001-sufficient/rca-runs", headers={"Idempotency-Key": "k-1"})
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "conflict"
    listed = api.get("/agent-runs/run-001-sufficient/rca-runs").json()["items"]
    assert {i["rca_run_id"] for i in listed} == {first, forced, new}


def test_unknown_ids_are_404(api: httpx.Client) -> None:
    assert api.post("/agent-runs/no-such-run/rca-runs").status_code == 404
    for path in (
        "/agent-runs/rca-runs/nope",
        "/rca-runs/nope",
        "/rca-runs/nope/stream",
        "/agent-runs/no-such-run/rca-runs",
    ):
        r = api.get(path)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", path
    # A run literally named like the route segment cannot exist, so the routes never collide.
    assert (
        api.post(
            "/agent-runs",
            json={
                "run_id": "rca-runs",
                "agent_name": "a",
                "status": "success",
                "started_at": "2024-01-01T00:00:00Z",
            },
        ).status_code
        == 422
    )


def test_sse_stream_reaches_done_and_honours_last_event_id(api: httpx.Client) -> None:
    rca_id = api.post("/agent-runs/run-001-sufficient/rca-runs").json()["rca_run_id"]
    events = sse(api, f"/rca-runs/{rca_id}/stream")
    assert events[-1][1]["status"] == "done" and events[-1][1]["step"] == "RCA complete"
    assert events[-1][1]["pct"] == 100
    for _, data in events:
        assert set(data) == {"status", "step", "pct", "message", "updated_at"}
        assert data["step"] in [*STEPS, "Queued"] and data["updated_at"].endswith("Z")
    seqs = [int(i) for i, _ in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # A client that has seen every event of a finished job is told 204: an EventSource stops there.
    seen_all = api.get(f"/rca-runs/{rca_id}/stream", headers={"Last-Event-ID": str(seqs[-1])})
    assert seen_all.status_code == 204 and seen_all.content == b""
    for bad_id in ("x", "\u00b2", "-1", "1.5"):
        bad = api.get(f"/rca-runs/{rca_id}/stream", headers={"Last-Event-ID": bad_id.encode()})
        assert bad.status_code == 422
        assert bad.json()["error"]["details"]["errors"][0]["field"] == "header.Last-Event-ID"


def test_a_client_connecting_after_the_rca_finished_sees_its_whole_progress(api: httpx.Client) -> None:
    rca_id = api.post("/agent-runs/run-001-sufficient/rca-runs").json()["rca_run_id"]
    wait_done(api, rca_id)
    events = sse(api, f"/rca-runs/{rca_id}/stream")
    steps = [data["step"] for _, data in events]
    assert steps[0] == "Queued" and steps[-1] == "RCA complete"
    assert [s for s in STEPS if s in steps] == STEPS  # every step, in order
    assert [int(i) for i, _ in events] == list(range(1, len(events) + 1))
    resumed = sse(api, f"/rca-runs/{rca_id}/stream", headers={"Last-Event-ID": "3"})
    assert [int(i) for i, _ in resumed] == list(range(4, len(events) + 1))


def test_jobs_left_by_a_crash_are_picked_up_on_start(settings: Settings, run_001: dict[str, Any]) -> None:
    with ServerThread(create_app(settings)) as server:
        content_hash = httpx.post(server.url + "/agent-runs", json=run_001, timeout=30).json()["content_hash"]
    engine = make_engine(settings.resolved_database_url)
    store = SqlJobStore(engine)
    payload = RcaPayload(run_id="run-001-sufficient", content_hash=content_hash)
    queued, _ = store.create(RCA.new(payload, subject="run-001-sufficient"))
    running, _ = store.create(RCA.new(payload, subject="run-001-sufficient"))
    dead_owner = f"{socket.gethostname()}:999999999:embedded"  # a process on this host that does not exist
    assert store.claim(running.id, dead_owner) is not None
    engine.dispose()
    with ServerThread(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=30) as api:
        for job in (queued, running):
            body = wait_done(api, job.id)
            assert body["status"] == "done" and body["report"]["category"] == "tool_schema_mismatch"


def test_api_token_guards_rca_creation(tmp_path: Any, db_url: str, run_001: dict[str, Any]) -> None:
    settings = Settings(data_dir=tmp_path / "t", database_url=db_url, api_token="tok-abcdef-123456")
    with ServerThread(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=30) as api:
        api.post("/agent-runs", json=run_001).raise_for_status()  # ingestion needs no token
        r = api.post("/agent-runs/run-001-sufficient/rca-runs")
        assert r.status_code == 401 and r.json()["error"]["details"]["header"] == "Authorization"
        wrong = api.post("/agent-runs/run-001-sufficient/rca-runs", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = api.post(
            "/agent-runs/run-001-sufficient/rca-runs", headers={"Authorization": "Bearer tok-abcdef-123456"}
        )
        assert ok.status_code == 202
        rca = ok.json()["rca_run_id"]
        assert api.get(f"/rca-runs/{rca}").status_code == 401  # telemetry holds prompts: reads need it too
        assert (
            api.get(f"/rca-runs/{rca}", headers={"Authorization": "Bearer tok-abcdef-123456"}).status_code
            == 200
        )
