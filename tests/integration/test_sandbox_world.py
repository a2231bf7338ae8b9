"""A whole sandbox world on free ports (target and dependency as real child processes, chaos and action
servers in this process): each fault really produces its symptom on the target, and each remediation,
taken through the action server, really fixes it. The tests share one world and leave it healthy."""

from __future__ import annotations

import json
import socket
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from opslab.sandbox import TargetOptions, World, WorldPorts
from opslab.sandbox.guard import fingerprint

T = TypeVar("T")


class Handles:
    def __init__(self, world: World) -> None:
        self.world = world
        self.target = httpx.Client(base_url=world.url("target"), timeout=10)
        self.chaos = httpx.Client(
            base_url=world.url("chaos"), timeout=10, headers={"Authorization": f"Bearer {world.chaos_token}"}
        )
        self.actions = httpx.Client(
            base_url=world.url("actions"),
            timeout=30,
            headers={"Authorization": f"Bearer {world.action_token}", "X-Caller": "pytest"},
        )
        self.admin = {"X-Sandbox-Token": world.sandbox_token}

    def act(self, name: str, params: dict[str, Any] | None = None, **headers: str) -> dict[str, Any]:
        r = self.actions.post(f"/action/{name}", json=params or {}, headers=headers)
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()
        return result

    def break_(self, fault: str, **body: Any) -> dict[str, Any]:
        r = self.chaos.post(f"/api/v1/break/{fault}", json=body)
        assert r.status_code == 201, r.text
        result: dict[str, Any] = r.json()
        return result

    def metrics(self) -> dict[str, Any]:
        result: dict[str, Any] = self.target.get("/api/v1/metrics").json()
        return result

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self.target.get("/api/v1/health").json()
        return result

    def logs(self) -> list[str]:
        return [line["message"] for line in self.target.get("/api/v1/logs?limit=1000").json()["logs"]]

    def wait_healthy(self) -> dict[str, Any]:
        return wait_until(
            lambda: (
                v if (v := self.actions.get("/action/verify-target-health").json())["is_healthy"] else None
            ),
            timeout=15,
            what="the target to verify healthy",
        )


def wait_until(probe: Callable[[], T | None], *, timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Handles]:
    data = tmp_path_factory.mktemp("world")
    options = TargetOptions(traffic_rps=20, window_s=2, memory_headroom_mb=60)
    with World.start(data, ports=WorldPorts(0, 0, 0, 0), target=options) as w:
        h = Handles(w)
        yield h
        for client in (h.target, h.chaos, h.actions):
            client.close()


def test_the_world_writes_its_files_and_hides_the_chaos_server(world: Handles) -> None:
    files = world.world.files
    endpoints = json.loads(files.endpoints.read_text())
    assert endpoints == {
        "schema_version": 1,
        "target": world.world.url("target"),
        "actions": world.world.url("actions"),
    }
    for token in (files.sandbox_token, files.action_token, files.chaos_token):
        assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert world.target.get("/api/lab/config").json()["ok"] is True  # the canary's routes still there
    assert world.target.get("/api/v1/flags").json() == {"new_ranking": False}
    m = wait_until(lambda: m if (m := world.metrics())["requests"] >= 10 else None, timeout=5, what="traffic")
    assert m["status_codes"].get("200", 0) == m["requests"] and m["error_rate"] == 0.0
    assert world.health()["status"] == "healthy"
    prom = world.target.get("/metrics").text
    for name in ("sandbox_orders_total", "sandbox_orders_latency_seconds", "sandbox_pool_checked_out"):
        assert name in prom
    assert "sandbox_memory_rss_bytes" in prom


def test_pool_exhaustion_outlives_its_leak_until_the_pool_is_recycled(world: Handles) -> None:
    brk = world.break_("db_pool", duration_s=1)
    pool = wait_until(
        lambda: (
            p if (p := world.target.get("/api/v1/pool/status").json())["pool_health"] == "critical" else None
        ),
        timeout=10,
        what="the pool to go critical",
    )
    assert pool["checked_out"] == pool["size"] == 5 and pool["utilization"] == 1.0
    wait_until(
        lambda: world.chaos.get("/api/v1/breaks").json()["breaks"][-1]["status"] == "stopped",
        timeout=5,
        what="the leak to stop by itself",
    )
    assert world.target.get("/admin/state", headers=world.admin).json()["faults"]["db_pool_leak"] is False
    r = world.target.get("/api/v1/orders")
    assert r.status_code == 503, r.text  # the leak stopped, the leaked pool stays exhausted
    assert any("QueuePool limit of size 5 overflow 0 reached" in m for m in world.logs())
    assert world.health()["checks"]["database"]["ok"] is False

    result = world.act("remediate-db-pool-exhaustion", {"action": "recycle_pool"})
    assert result["status"] == "success" and "5 leaked connections" in result["detail"], result
    assert world.target.get("/api/v1/orders").status_code == 200
    assert brk["id"]
    world.wait_healthy()


def test_a_bigger_pool_also_relieves_an_exhausted_one(world: Handles) -> None:
    brk = world.break_("db_pool")
    wait_until(
        lambda: world.target.get("/api/v1/pool/status").json()["checked_out"] == 5,
        timeout=10,
        what="the leak",
    )
    stopped = world.chaos.post(f"/api/v1/break/db_pool/{brk['id']}/stop").json()
    assert stopped["status"] == "stopped"
    result = world.act("scale-pool", {"size": 10})
    assert result["status"] == "success", result
    assert world.target.get("/api/v1/pool/status").json()["size"] == 10
    assert world.target.get("/api/v1/orders").status_code == 200
    assert world.act("recycle-pool")["status"] == "success"
    world.act("scale-pool", {"size": 5})


def test_release_v2_fails_orders_until_it_is_rolled_back(world: Handles) -> None:
    world.break_("bad_deploy")
    m = wait_until(
        lambda: m if (m := world.metrics())["version"] == "v2" and m["error_rate"] > 30 else None,
        timeout=10,
        what="v2's errors",
    )
    assert m["status_codes"].get("500", 0) > 0
    assert any(msg.startswith("TypeError:") and "(release v2)" in msg for msg in world.logs())
    assert world.health()["status"] == "degraded"
    result = world.act("rollback-deploy")
    assert result["status"] == "success" and "v1" in result["detail"], result
    verified = world.wait_healthy()
    assert verified["error_rate"] <= 5.0


def test_the_new_ranking_flag_slows_every_order_until_it_is_disabled(world: Handles) -> None:
    world.break_("latency_flag")
    assert world.target.get("/api/v1/flags").json() == {"new_ranking": True}
    wait_until(lambda: world.metrics()["latency_p50_ms"] >= 400, timeout=10, what="p50 over 400 ms")
    assert world.metrics()["latency_p95_ms"] >= 400
    verify = world.actions.get("/action/verify-target-health").json()
    assert verify["is_healthy"] is False and verify["latency_p95_ms"] >= 400
    assert world.act("disable-flag", {"flag": "new_ranking"})["status"] == "success"
    assert world.wait_healthy()["latency_p95_ms"] < 250


def test_a_memory_leak_is_real_and_a_restart_frees_it_but_keeps_the_release(world: Handles) -> None:
    before = world.metrics()["memory_rss_mb"]
    world.break_("memory_leak", params={"mb_per_s": 150})
    health = wait_until(
        lambda: h if (h := world.health()) and not h["checks"]["memory"]["ok"] else None,
        timeout=10,
        what="memory over the limit",
    )
    assert health["status"] == "unhealthy"
    # The limit counts from the target's start, ``before`` from this test's: the leak goes on, so wait for
    # it to pass 50 MB more on a loaded machine too.
    wait_until(
        lambda: world.metrics()["memory_rss_mb"] > before + 50, timeout=10, what="50 MB more resident memory"
    )
    r = world.target.get("/api/v1/orders")
    assert r.status_code == 503 and "MemoryError" in r.text
    # The deployed version lives in the state dir: a restart keeps it (the leak does not survive it).
    world.target.post("/admin/deploy", json={"version": "v2"}, headers=world.admin).raise_for_status()
    pid = world.world.pid("target")

    result = world.act("restart-target")
    assert result["status"] == "success", result
    assert world.world.pid("target") != pid and str(world.world.pid("target")) in result["detail"]
    state = world.target.get("/admin/state", headers=world.admin).json()
    assert state["pid"] == world.world.pid("target") and state["uptime_s"] < 10
    assert state["faults"]["memory_leak"]["enabled"] is False and state["version"] == "v2"
    assert world.metrics()["memory_rss_mb"] < before + 50
    assert world.act("rollback-deploy")["status"] == "success"
    world.wait_healthy()


def test_a_crashed_dependency_fails_orders_until_it_is_restarted(world: Handles) -> None:
    pid = world.world.pid("dependency")
    world.break_("dependency_outage")
    wait_until(lambda: world.target.get("/api/v1/orders").status_code == 502, timeout=5, what="502s")
    health = world.health()
    assert health["status"] == "unhealthy" and health["checks"]["dependency"]["ok"] is False
    assert any(m.startswith("DEPENDENCY_ERROR: pricing service unreachable") for m in world.logs())
    result = world.act("restart-dependency")
    assert result["status"] == "success" and world.world.pid("dependency") != pid, result
    assert world.target.get("/api/v1/orders").status_code == 200
    world.wait_healthy()


def test_a_traffic_spike_is_more_load_and_no_fault(world: Handles) -> None:
    brk = world.break_("traffic_spike", params={"multiplier": 4})
    m = wait_until(
        lambda: m if (m := world.metrics())["request_rate"] > 45 else None, timeout=10, what="load"
    )
    assert m["error_rate"] <= 1.0
    assert world.health()["status"] == "healthy"
    assert world.chaos.post(f"/api/v1/break/traffic_spike/{brk['id']}/stop").json()["status"] == "stopped"
    state = world.target.get("/admin/state", headers=world.admin).json()
    assert state["faults"]["traffic_spike"]["enabled"] is False


def test_the_chaos_server_names_what_it_refuses(world: Handles) -> None:
    assert "db_pool" in world.chaos.get("/api/v1/faults").json()["faults"]
    r = world.chaos.post("/api/v1/break/meteor")
    assert r.status_code == 404 and "fault" in r.json()["error"]["message"]
    r = world.chaos.post("/api/v1/break/memory_leak", json={"params": {"mb_per_s": 5000}})
    assert r.status_code == 422 and "mb_per_s" in r.json()["error"]["message"], r.text
    assert world.chaos.post("/api/v1/break/none/nope/stop").status_code == 404
    brk = world.break_("none")
    assert brk["status"] == "active" and brk["ends_at"] is None
    assert brk["id"] in [b["id"] for b in world.chaos.get("/api/v1/breaks").json()["breaks"]]


def test_the_target_admin_routes_need_the_sandbox_token(world: Handles) -> None:
    assert world.target.post("/admin/pool/recycle").status_code == 401
    assert world.target.post("/admin/pool/recycle", headers={"X-Sandbox-Token": "nope"}).status_code == 403
    r = world.target.get("/api/v1/logs?since=yesterday")
    assert r.status_code == 422 and r.json()["error"]["details"]["errors"][0]["field"] == "since"
    since = world.target.get("/api/v1/logs").json()["logs"][-1]["ts"]
    assert all(line["ts"] > since for line in world.target.get(f"/api/v1/logs?since={since}").json()["logs"])


def test_the_action_server_refuses_without_acting_and_audits_what_it_does(world: Handles) -> None:
    audit = world.world.files.audit
    before = len(audit.read_text().splitlines()) if audit.exists() else 0
    anon = httpx.Client(base_url=world.world.url("actions"), timeout=10)
    assert anon.get("/healthz").status_code == 200
    assert anon.get("/actions").status_code == 401
    r = anon.post("/action/recycle-pool", headers={"Authorization": "Bearer nope", "X-Caller": "admin"})
    assert r.status_code == 401
    assert anon.get("/audit").status_code == 401
    anon.close()
    denied = [json.loads(line) for line in audit.read_text().splitlines()[before:]]
    assert [(d["action"], d["status"], d["caller"]) for d in denied][1] == (
        "recycle-pool",
        "refused",
        "anonymous",
    )
    assert denied[1]["claimed_caller"] == "admin" and "wrong token" in denied[1]["detail"]
    catalog = {a["name"]: a for a in world.actions.get("/actions").json()["actions"]}
    assert catalog["restart-target"]["risk"] == "high" and "params_schema" in catalog["scale-pool"]
    lines = audit.read_text().splitlines()

    assert world.actions.post("/action/reboot-the-moon").status_code == 404
    for params, field in (({}, "size"), ({"size": 0}, "size"), ({"size": 5, "color": "red"}, "color")):
        r = world.actions.post("/action/scale-pool", json=params)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["details"]["errors"][0]["field"] == field, r.text
    r = world.actions.post("/action/disable-flag", json={"flag": "everything"})
    assert r.status_code == 422 and "flag" in r.json()["error"]["message"]
    deep = b"[" * 5000 + b"]" * 5000
    r = world.actions.post("/action/recycle-pool", content=deep, headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["details"]["errors"][0]["field"] == "body", r.text
    # Nothing was done, and every refusal is in the audit with its reason, under the proven caller.
    refusals = [json.loads(line) for line in audit.read_text().splitlines()[len(lines) :]]
    assert [r["status"] for r in refusals] == ["refused"] * 6
    assert [r["action"] for r in refusals[:2]] == ["reboot-the-moon", "scale-pool"]
    assert "HTTP 404" in refusals[0]["detail"] and "nested deeper" in refusals[-1]["detail"]
    assert {r["caller"] for r in refusals} == {fingerprint(world.world.action_token)}
    lines = audit.read_text().splitlines()

    first = world.act("recycle-pool", **{"Idempotency-Key": "k-1"})
    again = world.act("recycle-pool", **{"Idempotency-Key": "k-1"})
    assert again == first
    r = world.actions.post("/action/scale-pool", json={"size": 6}, headers={"Idempotency-Key": "k-1"})
    assert r.status_code == 409
    new = audit.read_text().splitlines()[len(lines) :]
    assert len(new) == 1 and json.loads(new[0])["id"] == first["id"]
    # The caller is who the token proves; what the X-Caller header claims is kept beside it, not trusted.
    assert json.loads(new[0])["caller"] == fingerprint(world.world.action_token)
    assert json.loads(new[0])["claimed_caller"] == "pytest"
    records = world.actions.get("/audit?limit=3").json()["records"]
    assert records[-1]["id"] == first["id"] and records[-1]["status"] == "success"
    # A refused call keeps what was sent; a call is found again by its key.
    assert refusals[2]["params"] == {"size": 0} and refusals[3]["params"] == {"size": 5, "color": "red"}
    keyed = world.actions.get("/audit", params={"idempotency_key": "k-1"}).json()["records"]
    assert [r["id"] for r in keyed] == [first["id"]] and keyed[0]["idempotency_key"] == "k-1"


def test_a_timed_out_action_is_read_back_not_guessed_and_never_run_twice(world: Handles) -> None:
    from opslab.responder import HttpActionExecutor

    audit = world.world.files.audit
    executor = HttpActionExecutor(world.world.url("actions"), world.world.action_token, timeout_s=0.005)
    try:
        result = executor.execute("recycle-pool", {}, key="inc-x:1:recycle-pool")
        again = executor.execute("recycle-pool", {}, key="inc-x:1:recycle-pool")
        found = executor.recorded("inc-x:1:recycle-pool")
    finally:
        executor.close()
    assert result.status == "success" and again.status == "success" and found is not None
    assert result.id == again.id == found.id
    ran = [json.loads(line) for line in audit.read_text().splitlines()]
    mine = [r for r in ran if r.get("idempotency_key") == "inc-x:1:recycle-pool"]
    assert len(mine) == 1 and mine[0]["claimed_caller"] == "opslab-responder"


def test_run_method_performs_a_scenario_on_the_chaos_server(world: Handles) -> None:
    from opslab.sandbox import load_scenarios, run_method

    scenario = next(s for s in load_scenarios() if s.name == "no-fault")
    ids = run_method(scenario, world.world.url("chaos"), world.world.chaos_token)
    assert len(ids) == 1
    assert ids[0] in [b["id"] for b in world.chaos.get("/api/v1/breaks").json()["breaks"]]


def test_a_world_that_cannot_start_says_which_part_and_where_its_log_is(tmp_path: Path) -> None:
    from opslab.errors import Unavailable

    with socket.socket() as squatter:  # the port is taken (and never answers)
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(Unavailable) as err:
            World.start(tmp_path, ports=WorldPorts(0, port, 0, 0), only="dependency", ready_timeout_s=20)
    assert "dependency" in err.value.message and "dependency.log" in err.value.message
    assert err.value.details["part"] == "dependency"


def test_a_world_is_not_fooled_by_another_server_answering_on_its_port(tmp_path: Path) -> None:
    """Another healthy sandbox already holds the port: its ``/healthz`` answers 200, but the world waits for
    its own child, which cannot bind, and says so instead of reporting a world that is not its own."""
    from opslab.errors import Unavailable
    from opslab.sandbox.app import create_service_app
    from opslab.serving import ServerThread

    with ServerThread(create_service_app("dependency")) as other:
        assert httpx.get(f"{other.url}/healthz").json()["service"] == "dependency"
        with pytest.raises(Unavailable) as err:
            ports = WorldPorts(0, other.port, 0, 0)
            World.start(tmp_path, ports=ports, only="dependency", ready_timeout_s=30)
    assert "dependency" in err.value.message and err.value.details["part"] == "dependency"


def test_the_chaos_server_takes_orders_only_with_its_token_and_small_bodies(world: Handles) -> None:
    anon = httpx.Client(base_url=world.world.url("chaos"), timeout=10)
    assert anon.get("/healthz").status_code == 200
    r = anon.post("/api/v1/break/latency_flag")
    assert r.status_code == 401 and "chaos-token" in r.json()["error"]["message"]
    assert anon.post("/api/v1/break/none", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert anon.get("/api/v1/breaks").status_code == 401
    anon.close()
    assert world.health()["status"] == "healthy"  # nothing was broken
    huge = world.chaos.post(
        "/api/v1/break/none", content=b" " * (1024 * 1024), headers={"Content-Type": "application/json"}
    )
    assert huge.status_code == 413 and huge.json()["error"]["details"]["field"] == "body"
    # chaostoolkit's HTTP provider sends a form unless told otherwise: the same fields are read from it
    form = world.chaos.post("/api/v1/break/none", data={"duration_s": "5"})
    assert form.status_code == 201 and form.json()["ends_at"] is not None
    bad = world.chaos.post("/api/v1/break/none", data={"duration_s": "soon"})
    assert bad.status_code == 422 and bad.json()["error"]["details"]["errors"][0]["field"] == "duration_s"


def test_the_seeds_action_call_with_query_parameters_and_the_liveness_check(world: Handles) -> None:
    r = world.actions.post("/action/remediate-db-pool-exhaustion?escalate_to_db_restart=false")
    assert r.status_code == 200 and r.json()["status"] == "success", r.text
    assert "recycled" in r.json()["detail"] and r.json()["params"] == {"escalate_to_db_restart": False}
    r = world.actions.post("/action/remediate-db-pool-exhaustion?escalate_to_db_restart=maybe")
    assert (
        r.status_code == 422
        and r.json()["error"]["details"]["errors"][0]["field"] == "escalate_to_db_restart"
    )
    live = world.actions.get("/action/liveness").json()
    target = live["processes"]["target"]
    assert target["alive"] is True and target["pid"] == world.world.pid("target")
    assert target["state"] in ("running", "sleeping", "disk_wait")
    assert live["host"]["cpus"] >= 1 and live["host"]["mem_available_mb"] > 0
