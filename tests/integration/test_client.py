"""The typed client against a real service (SQLite and PostgreSQL): typed answers, the service's own
errors re-raised, streams that replay a finished job, and one stream behaviour for every job kind."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from opslab.api import ServerThread, create_app
from opslab.client import OpslabClient
from opslab.config import Settings
from opslab.errors import InvalidInput, NotFound, Unauthorized, Unavailable
from opslab.telemetry import RunFilter
from tests.ports import free_port


@pytest.fixture
def served(settings: Settings) -> Iterator[str]:
    with ServerThread(create_app(settings)) as server:
        yield server.url


def test_telemetry_round_trip_is_typed(served: str, run_001: dict[str, Any]) -> None:
    with OpslabClient(served) as client:
        assert client.ingest_run(run_001).status == "created"
        assert client.ingest_run(run_001).status == "updated"
        summary = client.get_run("run-001-sufficient")
        assert summary.counts.tool_calls >= 1 and summary.status == "failure"
        assert [i.kind for i in client.timeline("run-001-sufficient").items][0] == "step"
        page = client.list_runs(RunFilter(status="failure"), limit=5)
        assert [r.run_id for r in page.items] == ["run-001-sufficient"]
        batch = client.ingest_batch([run_001, {"run_id": "bad"}])
        assert batch.ok == 1 and batch.failed == 1
        assert client.overview(24 * 365 * 30).total_runs == 1


def test_the_service_errors_come_back_as_the_same_exceptions(served: str) -> None:
    with OpslabClient(served) as client:
        with pytest.raises(NotFound):
            client.get_run("no-such-run")
        with pytest.raises(InvalidInput) as bad:
            client.ingest_run(
                {"run_id": "x", "agent_name": "a", "status": "nope", "started_at": "2024-01-01Z"}
            )
        assert any(e["field"] == "status" for e in bad.value.details["errors"])
        with pytest.raises(InvalidInput) as plan:
            client.create_canary({"experiment": {"qps": -1}})
        fields = {e["field"] for e in plan.value.details["errors"]}
        assert "plan.experiment.qps" in fields
    with OpslabClient(f"http://127.0.0.1:{free_port()}") as nobody, pytest.raises(Unavailable):
        nobody.get_run("x")


def test_a_finished_rca_replays_its_whole_stream(served: str, run_001: dict[str, Any]) -> None:
    with OpslabClient(served) as client:
        client.ingest_run(run_001)
        created = client.create_rca("run-001-sufficient")
        live = list(client.stream_rca(created.rca_run_id))
        assert live[-1].status == "done"
        late = list(client.stream_rca(created.rca_run_id))
        assert [e.seq for e in late] == list(range(1, len(late) + 1))
        assert [e.step for e in late][-1] == "RCA complete" and len(late) >= 5
        assert [e.seq for e in client.stream_rca(created.rca_run_id, last_event_id=3)] == [
            e.seq for e in late[3:]
        ]
        view = client.get_rca(created.rca_run_id)
        assert view.report is not None and view.report.category == "tool_schema_mismatch"
        assert client.create_rca("run-001-sufficient").created is False
        assert [i.rca_run_id for i in client.list_rca("run-001-sufficient").items] == [created.rca_run_id]


def test_every_job_stream_answers_bad_input_the_same_way(served: str, run_001: dict[str, Any]) -> None:
    with OpslabClient(served) as client:
        client.ingest_run(run_001)
        rca = client.create_rca("run-001-sufficient").rca_run_id
        canary = client.create_canary(
            {
                "experiment": {
                    "qps": 10,
                    "window_sec": 1,
                    "rounds": 1,
                    "flow_policy": "aimd",
                    "target_p95": 900,
                    "routing_mode": "rules",
                    "topk_threshold": 16,
                },
                "target": {"base_url": f"http://127.0.0.1:{free_port()}"},
            },
            dry_run=True,
        ).canary_run_id
        assert list(client.stream_canary(canary))[-1].status == "done"
    for path in (f"/rca-runs/{rca}/stream", f"/canary/runs/{canary}/stream"):
        for header in ("x", "²", "-3"):
            r = httpx.get(served + path, headers={"Last-Event-ID": header.encode()}, timeout=10)
            assert r.status_code == 422, (path, header)
            assert r.json()["error"]["details"]["errors"][0]["field"] == "header.Last-Event-ID"
        missing = httpx.get(served + path.replace(rca, "nope").replace(canary, "nope"), timeout=10)
        assert missing.status_code == 404
    other_kind = httpx.get(f"{served}/canary/runs/{rca}/stream", timeout=10)
    assert other_kind.status_code == 404  # an RCA id is not a canary run


def test_the_client_sends_the_token_and_secret_from_settings(
    tmp_path: Any, db_url: str, run_001: dict[str, Any]
) -> None:
    settings = Settings(
        data_dir=tmp_path / "s",
        database_url=db_url,
        api_token="tok-client-123456",
        ingest_secret="sec-client-123456",
    )
    with ServerThread(create_app(settings)) as server:
        with OpslabClient(server.url) as anonymous, pytest.raises(Unauthorized):
            anonymous.ingest_run(run_001)
        with OpslabClient.from_settings(settings, server.url) as client:
            client.ingest_run(run_001)
            assert client.create_rca("run-001-sufficient").status in ("queued", "running", "done")
    with pytest.raises(InvalidInput):
        OpslabClient.from_settings(Settings(data_dir=tmp_path / "n"))
