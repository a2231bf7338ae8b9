"""The responder against the real sandbox world (target and dependency as processes, chaos and action
servers on free ports): blind — every request it makes goes to the target or the action server, never to
the chaos server — and the service's /agent routes answer bad requests with clear 4xx."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from langgraph.checkpoint.memory import InMemorySaver

from opslab.api import create_app
from opslab.config import Settings
from opslab.knowledge import KnowledgeBase
from opslab.responder import (
    HttpActionExecutor,
    HttpTargetProbe,
    InMemoryIncidentStore,
    Responder,
    ResponderConfig,
)
from opslab.sandbox import TargetOptions, World, WorldPorts


class Recording(httpx.BaseTransport):
    """A real transport that also notes where each request went."""

    def __init__(self, seen: list[str]) -> None:
        self.inner, self.seen = httpx.HTTPTransport(), seen

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(f"{request.url.host}:{request.url.port}")
        return self.inner.handle_request(request)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data = tmp_path_factory.mktemp("world")
    with World.start(data, ports=WorldPorts(0, 0, 0, 0), target=TargetOptions(window_s=2.0)) as w:
        yield w


def test_the_responder_only_ever_talks_to_the_target_and_the_action_server(
    world: World, tmp_path: Path
) -> None:
    seen: list[str] = []
    store = InMemoryIncidentStore()
    responder = Responder(
        probe=HttpTargetProbe(world.url("target"), transport=Recording(seen)),
        actions=HttpActionExecutor(world.url("actions"), world.action_token, transport=Recording(seen)),
        store=store,
        knowledge=KnowledgeBase.load(tmp_path),
        knowledge_dir=tmp_path,
        checkpointer=InMemorySaver(),
        config=ResponderConfig(poll_interval_s=0.5, settle_s=2.5, verify_interval_s=0.5, cooldown_s=0),
    )
    for _ in range(5):
        assert responder.poll_once() is None
        time.sleep(0.5)
    auth = {"Authorization": f"Bearer {world.chaos_token}"}
    httpx.post(f"{world.url('chaos')}/api/v1/break/bad_deploy", headers=auth, timeout=10).raise_for_status()
    deadline = time.monotonic() + 60
    while not (store.list() and store.list()[0].finished) and time.monotonic() < deadline:
        time.sleep(0.5)
        responder.poll_once()
    incident = store.list()[0]
    assert incident.status == "resolved" and [a.action for a in incident.actions] == ["rollback-deploy"]
    allowed = {f"127.0.0.1:{world.ports.target}", f"127.0.0.1:{world.ports.actions}"}
    assert seen and set(seen) <= allowed, set(seen) - allowed
    assert f"127.0.0.1:{world.ports.chaos}" not in seen


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=tmp_path / "data"))) as client:
        yield client


def test_agent_routes_refuse_bad_requests_with_clear_errors(api: TestClient) -> None:
    status = api.get("/agent/status").json()
    assert status["state"] == "not_configured" and "OPSLAB_RESPONDER_TARGET_URL" in status["message"]
    r = api.post("/agent/trigger", params={"wait": "true"})
    assert (
        r.status_code == 409 and r.json()["error"]["details"]["missing"][0] == "OPSLAB_RESPONDER_TARGET_URL"
    )
    r = api.get("/agent/incidents/inc-nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = api.get("/agent/incidents", params={"status": "sideways"})
    assert r.status_code == 422 and "status" in r.text
    r = api.post("/agent/incidents/inc-nope/approve", json={"approver": "me"})
    assert r.status_code == 404
    r = api.post("/agent/kill-switch", json={"engaged": "maybe"})
    assert r.status_code == 422 and "engaged" in r.text
    r = api.get("/agent/incidents/inc-nope/stream")
    assert r.status_code == 404


def test_the_seed_setting_names_configure_the_responder(
    tmp_path: Path, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TARGET_API_BASE_URL", world.url("target"))
    monkeypatch.setenv("ACTION_SERVER_URL", world.url("actions"))
    monkeypatch.setenv("POLL_INTERVAL_SECONDS", "7")
    monkeypatch.setenv("ANOMALY_THRESHOLD_ERROR_RATE", "25")
    monkeypatch.setenv("OPSLAB_ACTION_TOKEN", world.action_token)
    s = Settings(data_dir=tmp_path)
    assert (s.responder_target_url, s.responder_action_url) == (world.url("target"), world.url("actions"))
    assert s.responder_poll_interval_s == 7 and s.responder_error_rate_threshold == 25
    with TestClient(create_app(s)) as client:
        status = client.get("/agent/status").json()
    # configured, but OPSLAB_RESPONDER_ENABLED is off: nothing watches, and the status says so
    assert status["configured"] and status["state"] == "disabled" and status["poll_interval_s"] == 7
    assert status["enabled"] is False
