"""The sandbox target over real HTTP (in-process on a free port): its latency model as configured, one
error body for every refusal, naming the field, and its own experiment refusing a second run."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import httpx
import pytest

from opslab.sandbox import TOKEN_HEADER, LatencyModel, OpsOptions, create_target_app
from opslab.serving import ServerThread

ADMIN_TOKEN = "tok-target-admin-4c9e2a7f1b"
ADMIN_BODY_ROUTES = [
    "/admin/faults/db_pool_leak",
    "/admin/faults/memory_leak",
    "/admin/faults/traffic_spike",
    "/admin/deploy",
    "/admin/flags",
    "/admin/pool/resize",
]


@pytest.fixture
def target() -> Iterator[httpx.Client]:
    app = create_target_app(seed=3, model=LatencyModel(base_median_ms=2.0, sigma=0.1))
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def refused(r: httpx.Response, status: int, field: str | None = None) -> dict[str, object]:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"code", "message", "details"}
    if field is not None:
        assert field in error["message"], error
        assert field in [e["field"] for e in error["details"]["errors"]], error
    return dict(error)


def test_health_flags_and_the_latency_model(target: httpx.Client) -> None:
    assert target.get("/healthz").json() == {"ok": True, "service": "target", "pid": os.getpid()}
    assert target.get("/api/lab/config").json()["ok"] is True
    changed = target.post("/api/flags", json={"routing": {"mode": "rules"}}).json()
    assert (
        changed["routing"] == {"mode": "rules", "topk_threshold": 32}
        and changed["control"]["flow_policy"] == "static"
    )
    model = target.get("/api/sandbox/model").json()
    assert model["multiplier"] == pytest.approx(0.85) and model["median_ms"] == pytest.approx(1.7)
    r = target.get("/api/search?q=x")
    assert r.status_code == 200 and float(r.headers["X-Server-Time-Ms"]) > 0
    target.post("/api/sandbox/health", json={"qdrant": False}).raise_for_status()
    config = target.get("/api/lab/config").json()
    assert config["ok"] is False and config["health"]["qdrant"] == {"ok": False}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/flags", {"routing": {"mode": "turbo"}}, "routing.mode"),
        ("/api/flags", {"control": {"target_p95": -1}}, "control.target_p95"),
        ("/api/flags", {"cache": {"size": 1}}, "cache"),
        ("/api/flags", ["not", "an", "object"], "body"),
        ("/api/sandbox/faults", {"error_rate": 2}, "error_rate"),
        ("/api/sandbox/faults", {"latency": 2}, "latency"),
        ("/api/sandbox/health", {"qdrant": "maybe"}, "qdrant"),
        ("/api/lab/run", {"candidate_flags": {}, "qps": -1, "window_sec": 1, "rounds": 1}, "qps"),
        (
            "/api/lab/run",
            {
                "candidate_flags": {"control": {"flow_policy": "yolo"}},
                "qps": 10,
                "window_sec": 1,
                "rounds": 1,
            },
            "candidate_flags.control.flow_policy",
        ),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    target: httpx.Client, path: str, body: object, field: str
) -> None:
    before = target.get("/api/flags").json()
    error = refused(target.post(path, json=body), 422, field)
    assert error["code"] == "invalid_input"
    assert target.get("/api/flags").json() == before


def test_malformed_json_and_unknown_routes_get_the_same_error_body(target: httpx.Client) -> None:
    r = target.post("/api/flags", content=b"{nope", headers={"Content-Type": "application/json"})
    refused(r, 422, "body")
    assert refused(target.get("/api/nope"), 404)["code"] == "not_found"
    assert refused(target.get("/api/lab/report?mini=1"), 404)["code"] == "not_found"  # nothing ran yet


def test_the_targets_own_experiment_runs_one_at_a_time(target: httpx.Client) -> None:
    run = {"candidate_flags": {"routing": {"mode": "rules"}}, "qps": 20, "window_sec": 0.5, "rounds": 1}
    assert target.post("/api/lab/run", json=run).status_code == 202
    assert refused(target.post("/api/lab/run", json=run), 409)["code"] == "conflict"
    deadline = time.monotonic() + 30
    while (r := target.get("/api/lab/report?mini=1")).status_code == 202 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert r.status_code == 200 and r.text.startswith("COMBO MINI REPORT") and "ΔP95:" in r.text
    full = target.get("/api/lab/report").json()
    assert full["source"] == "load" and full["decision"] in ("PASS", "EDGE", "FAIL")
    assert target.get("/api/flags").json()["routing"]["mode"] == "default"  # the baseline restored


def test_the_seeds_ops_paths_answer_as_the_api_paths(target: httpx.Client) -> None:
    assert target.get("/ops/flags").json() == target.get("/api/flags").json()
    changed = target.post("/ops/flags", json={"routing": {"mode": "rules"}})
    assert changed.status_code == 200 and changed.json() == target.get("/api/flags").json()
    assert changed.json()["routing"]["mode"] == "rules"
    refused(target.post("/ops/flags", json={"routing": {"mode": "turbo"}}), 422, "routing.mode")
    assert target.get("/ops/lab/report").json() == target.get("/api/lab/report").json()  # both 404

    run = {"candidate_flags": {"routing": {"mode": "default"}}, "qps": 20, "window_sec": 0.5, "rounds": 1}
    assert target.post("/api/lab/run", json=run).status_code == 202
    deadline = time.monotonic() + 30
    while (r := target.get("/ops/lab/report?mini=1")).status_code == 202 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert r.status_code == 200 and r.text == target.get("/api/lab/report?mini=1").text
    assert r.text.startswith("COMBO MINI REPORT")
    assert target.get("/ops/lab/report").json() == target.get("/api/lab/report").json()


def admin_world(c: httpx.Client) -> dict[str, object]:
    """What an admin route changes: the faults, the release, the flags, the pool."""
    state = c.get("/admin/state", headers={TOKEN_HEADER: ADMIN_TOKEN}).json()
    return {key: state[key] for key in ("faults", "version", "flags", "pool")}


@pytest.mark.parametrize("path", ADMIN_BODY_ROUTES)
def test_an_admin_route_checks_the_token_before_it_parses_the_body(path: str) -> None:
    app = create_target_app(seed=3, ops=OpsOptions(token=ADMIN_TOKEN, traffic_rps=0))
    json_type = {"Content-Type": "application/json"}
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=10) as c:
        before = admin_world(c)
        missing = c.post(path, content=b"{nope", headers=json_type)
        assert refused(missing, 401)["code"] == "unauthorized"
        wrong = c.post(path, content=b"{nope", headers={**json_type, TOKEN_HEADER: "tok-not-the-admin-0000"})
        assert refused(wrong, 403)["code"] == "policy_violation"
        # With the token the body is parsed, and only then found malformed.
        right = c.post(path, content=b"{nope", headers={**json_type, TOKEN_HEADER: ADMIN_TOKEN})
        refused(right, 422, "body")
        assert admin_world(c) == before


def test_admin_routes_are_closed_without_a_token_whatever_the_body(target: httpx.Client) -> None:
    headers = {"Content-Type": "application/json"}
    assert refused(target.post("/admin/flags", content=b"{nope", headers=headers), 401)
    headers[TOKEN_HEADER] = ADMIN_TOKEN  # the target was started without one: nothing opens it
    assert refused(target.post("/admin/flags", content=b"{nope", headers=headers), 403)
