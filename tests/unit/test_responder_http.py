"""The HTTP adapters against the contract's wire shapes (httpx.MockTransport, no network)."""

from __future__ import annotations

import json

import httpx

from opslab.responder import HttpActionExecutor, HttpTargetProbe

HEALTH = {
    "status": "degraded",
    "version": "v2",
    "uptime_s": 12.3,
    "checks": {"database": {"ok": True, "detail": "ok"}, "dependency": {"ok": False, "detail": "refused"}},
}
METRICS = {
    "window_s": 5,
    "requests": 120,
    "request_rate": 24.0,
    "error_rate": 12.5,
    "avg_response_time_ms": 12.0,
    "latency_p50_ms": 10.0,
    "latency_p95_ms": 30.0,
    "latency_p99_ms": 50.0,
    "status_codes": {"200": 105, "502": 15},
    "memory_rss_mb": 80.1,
    "memory_limit_mb": 400.0,
    "version": "v2",
    "uptime_s": 12.3,
    "flags": {"new_ranking": True},
}
POOL = {
    "size": 5,
    "max_overflow": 0,
    "checked_out": 5,
    "overflow": 0,
    "utilization": 1.0,
    "pool_health": "critical",
    "wait_timeouts": 3,
}


def target(requests: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        path = request.url.path
        if path == "/api/v1/health":
            return httpx.Response(200, json=HEALTH)
        if path == "/api/v1/metrics":
            return httpx.Response(200, json=METRICS)
        if path == "/api/v1/pool/status":
            return httpx.Response(200, json=POOL)
        if path == "/api/v1/logs":
            logs = [{"ts": "2025-03-01T12:00:00Z", "level": "INFO", "message": f"ok {i}"} for i in range(30)]
            logs.append({"ts": "2025-03-01T12:00:01Z", "level": "ERROR", "message": "DEPENDENCY_ERROR: down"})
            return httpx.Response(200, json={"logs": logs})
        return httpx.Response(404)

    return httpx.MockTransport(handle)


def test_the_probe_reads_every_route_and_asks_logs_since_the_last_poll() -> None:
    seen: list[httpx.Request] = []
    probe = HttpTargetProbe("http://target", transport=target(seen))
    obs = probe.observe()
    assert obs.health_status == "degraded" and obs.version == "v2" and obs.flags == {"new_ranking": True}
    assert obs.error_rate == 12.5 and obs.memory_limit_mb == 400.0 and obs.status_codes["502"] == 15
    assert obs.pool is not None and obs.pool.pool_health == "critical"
    assert not obs.checks["dependency"].ok and not obs.errors
    assert obs.logs[-1].message == "DEPENDENCY_ERROR: down" and len(obs.logs) == 11  # info lines trimmed
    assert "since" not in seen[3].url.params
    probe.observe()
    assert seen[-1].url.path == "/api/v1/logs" and "since" in seen[-1].url.params


def test_an_unreachable_target_is_an_observation_not_a_raise() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    obs = HttpTargetProbe("http://target", transport=httpx.MockTransport(refuse)).observe()
    # A refused health call is how: nothing listens. The other routes are not tried, no reading is made up.
    assert obs.health_status == "unreachable" and obs.reachability == "refused"
    assert len(obs.errors) == 1 and "ConnectError" in obs.errors[0]
    assert obs.error_rate is None and obs.memory_rss_mb is None and obs.latency_p95_ms is None


def actions_server(calls: list[httpx.Request]) -> httpx.MockTransport:
    done: dict[str, dict[str, object]] = {}

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if request.headers.get("authorization") != "Bearer tok":
            return httpx.Response(401, json={"error": {"code": "unauthorized", "message": "bad token"}})
        path = request.url.path
        if path == "/actions":
            return httpx.Response(
                200,
                json={
                    "actions": [
                        {"name": "recycle-pool", "description": "d", "risk": "low", "params_schema": {}}
                    ]
                },
            )
        if path == "/action/verify-target-health":
            return httpx.Response(200, json={"is_healthy": True, "status": "healthy", "checks": {}})
        if path == "/action/recycle-pool":
            key = request.headers.get("idempotency-key", "")
            if key in done:
                return httpx.Response(200, json=done[key])
            body = {
                "id": f"a{len(done)}",
                "action": "recycle-pool",
                "params": json.loads(request.content),
                "status": "success",
                "detail": "released 5",
                "started_at": "2025-03-01T12:00:00Z",
                "ended_at": "2025-03-01T12:00:01Z",
            }
            done[key] = body
            return httpx.Response(200, json=body)
        if path == "/action/scale-pool":
            return httpx.Response(422, json={"error": {"code": "invalid_input", "message": "size: too big"}})
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "no such action"}})

    return httpx.MockTransport(handle)


def test_the_executor_speaks_the_action_server() -> None:
    calls: list[httpx.Request] = []
    ex = HttpActionExecutor("http://actions", "tok", transport=actions_server(calls))
    assert [a.name for a in ex.catalog()] == ["recycle-pool"]
    first = ex.execute("recycle-pool", {}, key="inc-1:1:recycle-pool()")
    again = ex.execute("recycle-pool", {}, key="inc-1:1:recycle-pool()")
    assert first.status == "success" and first.id == again.id == "a0" and first.detail == "released 5"
    assert calls[1].headers["idempotency-key"] == "inc-1:1:recycle-pool()"
    assert ex.verify()["is_healthy"] is True


def test_refusals_and_outages_are_error_results() -> None:
    ex = HttpActionExecutor("http://actions", "tok", transport=actions_server([]))
    refused = ex.execute("scale-pool", {"size": 99})
    assert refused.status == "error" and "422" in refused.detail and "size: too big" in refused.detail
    assert ex.execute("nope", {}).status == "error"
    wrong = HttpActionExecutor("http://actions", "bad", transport=actions_server([]))
    assert "401" in wrong.execute("recycle-pool", {}).detail and wrong.catalog() == []

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    dead = HttpActionExecutor("http://actions", "tok", transport=httpx.MockTransport(down))
    assert dead.execute("recycle-pool", {}).status == "error"
    assert dead.verify()["is_healthy"] is False and dead.catalog() == []
