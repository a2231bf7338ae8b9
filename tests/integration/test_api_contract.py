"""The HTTP contract where fuzzing found it broken: the OpenAPI document resolves, 405 keeps its Allow
header, an empty Idempotency-Key is refused, a failed batch item names its run (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from opslab.api import ServerThread, create_app
from opslab.config import Settings


@pytest.fixture
def api(settings: Settings) -> Iterator[httpx.Client]:
    with ServerThread(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_every_reference_in_the_openapi_document_resolves(api: httpx.Client) -> None:
    doc = api.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    refs = set(_refs(doc))
    assert refs, "the document should reference its schemas"
    for ref in refs:
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    for path, ops in doc["paths"].items():
        for op in ops.values():
            assert "x-components" not in op, path
    body = doc["paths"]["/agent-runs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/AgentRunIn"}
    for name in ("StepIn", "ToolCallIn", "GuardrailEventIn", "CostIn", "AgentRunIn"):
        assert name in schemas
    batch = doc["paths"]["/agent-runs/batch"]["post"]["requestBody"]["content"]["application/json"]
    assert batch["schema"]["items"] == {"$ref": "#/components/schemas/AgentRunIn"}
    stream = doc["paths"]["/rca-runs/{rca_run_id}/stream"]["get"]["responses"]["200"]["content"]
    assert list(stream) == ["text/event-stream"]


def test_a_405_keeps_its_allow_header(api: httpx.Client) -> None:
    r = api.put("/agent-runs")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    assert set(r.headers["allow"].replace(" ", "").split(",")) == {"DELETE", "GET", "POST"}


def test_an_empty_idempotency_key_is_refused_every_time(api: httpx.Client, run_001: dict[str, Any]) -> None:
    api.post("/agent-runs", json=run_001).raise_for_status()
    for _ in range(2):  # the second use once collided on the unique index: a 500
        r = api.post("/agent-runs/run-001-sufficient/rca-runs", headers={"Idempotency-Key": ""})
        assert r.status_code == 422
        assert r.json()["error"]["details"]["errors"][0]["field"] == "header.Idempotency-Key"
    ok = api.post("/agent-runs/run-001-sufficient/rca-runs", headers={"Idempotency-Key": "k-42"})
    assert ok.status_code == 202


def test_a_failed_batch_item_names_its_run(api: httpx.Client, run_001: dict[str, Any]) -> None:
    bad = {**run_001, "run_id": "bad-status", "status": "exploded"}
    r = api.post("/agent-runs/batch", json=[run_001, bad])
    assert r.status_code == 207
    results = r.json()["results"]
    assert results[0]["status"] == "created" and results[0]["run_id"] == "run-001-sufficient"
    assert results[1]["status"] == "error" and results[1]["run_id"] == "bad-status"
    assert results[1]["error"]["details"]["errors"][0]["field"] == "[1].status"


def test_an_rca_of_a_run_with_the_longest_id_is_accepted(api: httpx.Client, run_001: dict[str, Any]) -> None:
    long_id = "r" * 200  # the dedupe key once overflowed its column on PostgreSQL: a 500
    api.post("/agent-runs", json={**run_001, "run_id": long_id}).raise_for_status()
    first = api.post(f"/agent-runs/{long_id}/rca-runs")
    assert first.status_code == 202
    again = api.post(f"/agent-runs/{long_id}/rca-runs")
    assert again.json()["rca_run_id"] == first.json()["rca_run_id"]
