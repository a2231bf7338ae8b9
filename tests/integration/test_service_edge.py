"""The service's edge under pressure (api.boundary): an unexpected failure is a JSON 500 on a connection
that stays usable, a crowd beyond ``max_in_flight`` gets 503 with Retry-After at once, a dry connection
pool is a 503 too, a client that leaves is a debug line, and every request is one access-log line."""

from __future__ import annotations

import http.client
import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from opslab.api import ServerThread, create_app
from opslab.config import Settings
from opslab.store.engine import MAX_OVERFLOW, POOL_SIZE


def _settings(tmp_path: Path, **changes: Any) -> Settings:
    return Settings(data_dir=tmp_path / "data", job_workers=1, **changes)


class Gate:
    """Routes added to the real app for these tests: one that fails, one that waits for a release."""

    def __init__(self, app: FastAPI) -> None:
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()

        def boom() -> None:
            raise RuntimeError("a bug the handlers do not know")

        def hold() -> dict[str, str]:
            self.entered.release()
            self.release.wait(60)
            return {"held": "yes"}

        app.add_api_route("/test/boom", boom)
        app.add_api_route("/test/hold", hold)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[str, Gate]]:
    app = create_app(_settings(tmp_path, max_in_flight=3))
    gate = Gate(app)
    try:
        with ServerThread(app) as server:
            yield server.url, gate
    finally:
        gate.release.set()


def test_an_unexpected_error_is_a_json_500_and_the_connection_answers_the_next_request(
    world: tuple[str, Gate], caplog: pytest.LogCaptureFixture
) -> None:
    url, _ = world
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", "/test/boom")
    first = conn.getresponse()
    body = first.read()
    assert first.status == 500 and b'"operation_failed"' in body and b"a bug" not in body
    conn.request("GET", "/healthz")  # the same kept-alive connection
    second = conn.getresponse()
    second.read()
    assert second.status == 200
    assert any("unhandled error on GET /test/boom" in r.getMessage() for r in caplog.records)


def test_beyond_max_in_flight_a_request_is_a_503_with_retry_after_and_health_still_answers(
    world: tuple[str, Gate],
) -> None:
    url, gate = world
    with ExitStack() as stack:
        pool = stack.enter_context(httpx.Client(base_url=url, timeout=60))
        held = [threading.Thread(target=pool.get, args=("/test/hold",)) for _ in range(3)]
        for t in held:
            t.start()
        for _ in held:
            assert gate.entered.acquire(timeout=30)  # three requests inside: the limit
        refused = httpx.get(f"{url}/agent-runs", timeout=30)
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"].isdigit()
        error = refused.json()["error"]
        assert error["code"] == "unavailable" and "OPSLAB_MAX_IN_FLIGHT" in error["message"]
        assert httpx.get(f"{url}/healthz", timeout=30).status_code == 200  # not counted
        gate.release.set()
        for t in held:
            t.join(30)
    assert httpx.get(f"{url}/agent-runs", timeout=30).status_code == 200  # room again


def test_a_dry_connection_pool_is_a_503_with_retry_after(settings: Settings) -> None:
    app = create_app(settings)
    with ServerThread(app) as server, ExitStack() as stack:
        engine = app.state.runtime.engine
        # every connection the service may open, held here
        for _ in range(POOL_SIZE + MAX_OVERFLOW[engine.dialect.name]):
            stack.enter_context(engine.connect())
        r = httpx.get(f"{server.url}/agent-runs", timeout=60)
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"].isdigit()
        assert r.json()["error"]["details"]["reason"] == "connection pool exhausted"


def test_a_client_leaving_mid_body_is_a_debug_line_not_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="opslab")
    with ServerThread(create_app(_settings(tmp_path))) as server:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as s:
            s.sendall(
                b"POST /agent-runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100000\r\n\r\n" + b'{"run_id": "left' + b"x" * 1000
            )
        # the service notices on its next read; a request after it shows the loop went on
        assert httpx.get(f"{server.url}/healthz", timeout=30).status_code == 200
        with httpx.Client(base_url=server.url, timeout=30) as c:
            for _ in range(50):
                if any("client went away" in r.getMessage() for r in caplog.records):
                    break
                c.get("/healthz")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert any(r.levelno == logging.DEBUG and "client went away" in r.getMessage() for r in caplog.records)


def test_each_request_is_one_access_log_line_with_its_status_and_no_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="opslab.access")
    secret = "sec-edge-ingest-5b2d4a8f91c3"
    settings = _settings(tmp_path, ingest_secret=secret)
    with ServerThread(create_app(settings)) as server:
        httpx.post(f"{server.url}/agent-runs", json={}, headers={"X-Ingest-Secret": "wrong-one"}, timeout=30)
        httpx.get(f"{server.url}/agent-runs?limit=2&token={secret}", timeout=30)
    lines = [r.getMessage() for r in caplog.records if r.name == "opslab.access"]
    assert any(' - "POST /agent-runs HTTP/1.1" 401 ' in line for line in lines), lines
    assert any('"GET /agent-runs?limit=2&token=*** HTTP/1.1" ' in line for line in lines), lines
    assert all(line.endswith("ms") and line.startswith("127.0.0.1:") for line in lines), lines
    assert not any(secret in line for line in lines)
