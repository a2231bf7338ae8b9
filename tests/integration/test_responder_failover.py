"""The responder across two `opslab serve` replicas on one PostgreSQL, against a real sandbox world: one
replica holds the responder's lease and opens the incident of a fault; it is killed with SIGKILL after it
acted and before it verified; the other replica takes the lease over, finishes that incident once (one
incident, resolved) and does not act again (the action server's own audit holds the fix once)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from opslab import proc
from opslab.sandbox import TargetOptions, World, WorldPorts
from tests.conftest import fresh_postgres_database
from tests.integration.responder_outside import wait_healthy
from tests.ports import free_port
from tests.workers import OPSLAB

LEASE_S = 4  # the takeover is asserted within three lease periods and a busy machine's slack


def wait_for(what: Callable[[], Any], seconds: float, why: Callable[[], str]) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := what()):
        assert time.monotonic() < deadline, why()
        time.sleep(0.2)
    return found


@pytest.fixture
def database() -> Iterator[str]:
    """A database of this test's own (the replicas' checkpoints included)."""
    with fresh_postgres_database("opslab_failover") as url:
        yield url


def get(url: str) -> Any:
    try:
        r = httpx.get(url, timeout=10)
    except httpx.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None


def test_the_active_replica_killed_mid_incident_leaves_it_to_the_other_to_finish_once(
    tmp_path: Path, database: str
) -> None:
    with World.start(
        tmp_path / "world", ports=WorldPorts(0, 0, 0, 0), target=TargetOptions(window_s=3.0)
    ) as world:
        wait_healthy(world)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLAB_")}
        env.update(
            OPSLAB_DATABASE_URL=database,
            OPSLAB_RESPONDER_ENABLED="true",
            OPSLAB_SERVICE_LEASE_S=str(LEASE_S),
            POLL_INTERVAL_SECONDS="1",
            TARGET_API_BASE_URL=world.url("target"),
            ACTION_SERVER_URL=world.url("actions"),
            OPSLAB_ACTION_TOKEN=world.action_token,
        )
        replicas: dict[str, tuple[str, proc.Child]] = {}
        try:
            for name in ("a", "b"):
                port, log = free_port(), tmp_path / f"{name}.log"
                child = proc.spawn(
                    [OPSLAB, "serve", "--port", str(port)],
                    env={**env, "OPSLAB_DATA_DIR": str(tmp_path / name)},
                    stdout=log,
                    stderr=log,
                )
                replicas[name] = (f"http://127.0.0.1:{port}", child)
                wait_for(partial(get, f"http://127.0.0.1:{port}/healthz"), 90, log.read_text)

            def active() -> dict[str, bool]:
                return {
                    n: bool((get(url + "/agent/status") or {}).get("active"))
                    for n, (url, child) in replicas.items()
                    if child.alive
                }

            def logs() -> str:
                # The replicas' own lines: this test's polls (access-log lines of GET /agent/...) left out.
                def own(n: str) -> str:
                    lines = (tmp_path / f"{n}.log").read_text().splitlines()
                    return "\n".join(line for line in lines if '"GET /agent/' not in line)[-6000:]

                return "\n".join(f"--- {n}\n{own(n)}" for n in replicas)

            wait_for(lambda: sum(active().values()) == 1, 60, lambda: f"active: {active()}\n{logs()}")
            leader = next(n for n, on in active().items() if on)
            other = "b" if leader == "a" else "a"
            base = replicas[other][0]

            auth = {"Authorization": f"Bearer {world.chaos_token}"}
            httpx.post(
                f"{world.url('chaos')}/api/v1/break/db_pool", headers=auth, timeout=10
            ).raise_for_status()

            def acted() -> dict[str, Any] | None:
                for summary in (get(base + "/agent/incidents") or {}).get("incidents", []):
                    incident = get(f"{base}/agent/incidents/{summary['id']}") or {}
                    if any(s["node"] == "execute" for s in incident.get("steps", [])):
                        return incident
                return None

            # Killed after its action ran and before verification ended (the settle wait is 10 s).
            incident = wait_for(acted, 120, lambda: f"no action was taken\n{logs()}")
            assert incident["status"] not in ("resolved", "escalated"), incident["status"]
            os.killpg(replicas[leader][1].pid, signal.SIGKILL)
            replicas[leader][1].wait(10)

            wait_for(lambda: active().get(other), 3 * LEASE_S + 30, lambda: f"no takeover\n{logs()}")

            def finished() -> list[dict[str, Any]] | None:
                listed = (get(base + "/agent/incidents") or {}).get("incidents", [])
                return (
                    listed
                    if listed and all(i["status"] in ("resolved", "escalated") for i in listed)
                    else None
                )

            listed = wait_for(finished, 120, lambda: f"not finished\n{logs()}")
            details = [get(base + "/agent/incidents/" + i["id"]) for i in listed]
            assert [(i["id"], i["status"]) for i in listed] == [(incident["id"], "resolved")], (
                f"{details}\n{logs()}"
            )
            final = get(f"{base}/agent/incidents/{incident['id']}")
            nodes = [s["node"] for s in final["steps"]]
            assert nodes.count("verify") >= 1 and nodes.count("learn") == 1, nodes
            records = httpx.get(
                f"{world.url('actions')}/audit",
                params={"limit": 1000},
                headers={"Authorization": f"Bearer {world.action_token}"},
                timeout=10,
            ).json()["records"]
            # Acted once each: the killed replica's action is not run again (nor re-sent under a new key);
            # what the new holder did after its own verification is a different action, audited once.
            done = [(r["action"], r["params"]) for r in records if r["status"] == "success"]
            taken = [(a["action"], a["params"]) for a in final["actions"]]
            assert taken[0] == (incident["actions"][0]["action"], incident["actions"][0]["params"])
            assert sorted(done, key=str) == sorted(taken, key=str), (done, taken)
            assert len(set(map(str, taken))) == len(taken), taken
        finally:
            for _, child in replicas.values():
                child.stop()
