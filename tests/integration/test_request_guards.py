"""What a deployed service answers before any route's own logic, on SQLite and PostgreSQL: a request
nobody admitted is a 401 whatever its body, any body over the cap is a 413 however it is sent, and a
cursor that is not one this service issued is a 422 naming ``cursor``."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opslab.api import ServerThread, create_app
from opslab.config import Settings

TOKEN, SECRET = "tok-guard-write-7f3a9c1e", "sec-guard-ingest-5b2d4a8f"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CAP = 4000


@pytest.fixture
def service(tmp_path: Path, db_url: str) -> Iterator[tuple[httpx.Client, dict[str, Any]]]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        api_token=TOKEN,
        ingest_secret=SECRET,
        max_body_bytes=CAP,
        job_workers=1,
    )
    app = create_app(settings)
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        yield client, app.openapi()


def _writes(document: dict[str, Any]) -> list[tuple[str, str]]:
    """Every operation that takes a body, with its path parameters filled in."""
    found = []
    for template, operations in document["paths"].items():
        for method in operations:
            if method in ("post", "put", "patch", "delete"):
                found.append((method.upper(), re.sub(r"\{[^}]+\}", "x", template)))
    return found


def test_malformed_json_without_a_token_is_a_401_on_every_write(
    service: tuple[httpx.Client, dict[str, Any]],
) -> None:
    client, document = service
    writes = _writes(document)
    assert len(writes) >= 8, writes
    for method, path in writes:
        for body in (b"{not json", b"", b"[" * 5000):
            r = client.request(method, path, content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 401, (method, path, body[:10], r.status_code, r.text[:200])
            assert r.json()["error"]["code"] == "unauthorized"
    # and with the token, the same body is the route's own 422
    r = client.post(
        "/canary/runs", content=b"{not json", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["error"]["details"]["errors"][0]["field"] == "body"


def test_a_dashboard_form_without_a_session_is_refused_before_its_form_is_read(
    service: tuple[httpx.Client, dict[str, Any]],
) -> None:
    client, _ = service
    r = client.post("/ui/runs/x/rca", content=b"\xff\xfe%%%", headers={"Content-Type": "multipart/form-data"})
    assert r.status_code == 401


def _chunked(total: int) -> Iterator[bytes]:
    yield b'{"run_id": "streamed", "error_message": "'
    for _ in range(total // 500):
        yield b"y" * 500
    yield b'"}'


def test_a_body_over_the_cap_is_a_413_chunked_or_not(service: tuple[httpx.Client, dict[str, Any]]) -> None:
    client, document = service
    ingest = {"X-Ingest-Secret": SECRET}
    big = b"x" * (CAP + 1)
    targets = [
        (
            m,
            p,
            ingest
            if m == "POST"
            and p in ("/agent-runs", "/agent-runs/batch", "/v1/traces", "/v1/logs", "/v1/metrics")
            else AUTH,
        )
        for m, p in _writes(document)
    ]
    for method, path, headers in targets:
        sized = client.request(
            method, path, content=big, headers={**headers, "Content-Type": "application/json"}
        )
        chunked = client.request(
            method, path, content=_chunked(CAP * 2), headers={**headers, "Content-Type": "application/json"}
        )
        for how, r in (("sized", sized), ("chunked", chunked)):
            assert r.status_code == 413, (how, method, path, r.status_code, r.text[:200])
            error = r.json()["error"]
            assert error["code"] == "payload_too_large" and error["details"]["limit_bytes"] == CAP
            assert str(CAP) in error["message"]

    # a chunked body within the cap reaches the route whole
    def small() -> Iterator[bytes]:
        yield b'{"plan": '
        yield b"5}"

    r = client.post("/canary/runs", content=small(), headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["details"]["errors"][0]["field"] == "plan"
    assert client.get("/agent-runs/streamed", headers=AUTH).status_code == 404  # nothing half-written


def _cursor(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).decode().rstrip("=")


NOT_CURSORS = [
    _cursor(b"[" * 600 + b"]" * 600),  # deeply nested, and longer than any cursor issued
    _cursor(b"[" * 300 + b"]" * 300),  # nested, short enough to decode
    _cursor(b"[" * 3000),
    _cursor(json.dumps({"at": "2026-01-01T00:00:00+00:00", "id": "r"}).encode()),
    _cursor(json.dumps([1, 2]).encode()),
    _cursor(json.dumps([["2026-01-01T00:00:00+00:00"], "r"]).encode()),
    _cursor(json.dumps(["2026-01-01T00:00:00+00:00", "r", "extra"]).encode()),
    _cursor(json.dumps("text").encode()),
    _cursor(b"\xff\xfe"),
    "%%%",
    "",
]


def test_a_cursor_this_service_did_not_issue_is_a_422_naming_it(
    service: tuple[httpx.Client, dict[str, Any]], run_001: dict[str, Any]
) -> None:
    client, _ = service
    client.post("/agent-runs", json=run_001, headers={"X-Ingest-Secret": SECRET}).raise_for_status()
    for cursor in NOT_CURSORS:
        if not cursor:
            continue  # an empty cursor means the first page
        api = client.get("/agent-runs", params={"cursor": cursor}, headers=AUTH)
        assert api.status_code == 422, (cursor[:40], api.status_code, api.text[:200])
        assert api.json()["error"]["details"]["errors"][0]["field"] == "cursor"
        page = client.get("/ui/runs", params={"cursor": cursor}, headers=AUTH)
        assert page.status_code == 422 and "cursor" in page.text, (cursor[:40], page.status_code)
    # a cursor the service issued still pages
    client.post("/agent-runs", json={**run_001, "run_id": "second"}, headers={"X-Ingest-Secret": SECRET})
    first = client.get("/agent-runs", params={"limit": 1}, headers=AUTH).json()
    assert first["next_cursor"]
    rest = client.get("/agent-runs", params={"limit": 1, "cursor": first["next_cursor"]}, headers=AUTH)
    assert rest.status_code == 200 and len(rest.json()["items"]) == 1
