"""Leased services across replicas, on SQLite and PostgreSQL: two services on one database run one autoops
loop between them — started on one, reported by both, its builds run by the lease holder only, and taken
over by the other when the holder leaves."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from opslab.api import create_app
from opslab.config import Settings


def wait_for(what: Callable[[], bool], seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def replica(db_url: str, data: Path) -> TestClient:
    return TestClient(create_app(Settings(data_dir=data, database_url=db_url, service_lease_s=2.0)))


def test_one_autoops_loop_across_two_replicas_and_the_other_takes_it_over(
    db_url: str, tmp_path: Path
) -> None:
    a, b = replica(db_url, tmp_path / "a"), replica(db_url, tmp_path / "b")
    with a, b:
        # a build a second: the holder is still far from its last build when it leaves, even on a busy machine
        started = a.post("/autoops/loop", json={"builds": 8, "interval_s": 1.0})
        assert started.status_code == 202, started.text
        assert b.post("/autoops/loop", json={"builds": 3}).status_code == 409  # one loop, whoever asks
        wait_for(lambda: b.get("/autoops/status").json()["loop"]["done"] >= 2)
        seen = b.get("/autoops/status").json()["loop"]
        assert seen["state"] == "running" and seen["holder"] is not None
        first_holder = seen["holder"]
        # The holder leaves (its replica shuts down): the other one carries the loop on from the count.
        # Every replica reports the same holder: which replica it is, each one's own lease service says.
        leaving = a if a.app.state.services["autoops"].handle.service.holder == first_holder else b
        staying = b if leaving is a else a
        leaving.app.state.services["autoops"].stop()
        left_at = staying.get("/autoops/status").json()["loop"]["done"]
        assert left_at < 8, "the holder finished the loop before it left: nothing was taken over"
        wait_for(lambda: staying.get("/autoops/status").json()["loop"]["state"] == "finished")
        final = staying.get("/autoops/status").json()
    assert final["loop"]["done"] == 8 and final["loop"]["holder"] != first_holder
    # Each counted build ran once: the build log holds exactly as many as the loop counted.
    assert sum(final["builds"].values()) == 8


def test_a_stopped_loop_stops_on_every_replica(db_url: str, tmp_path: Path) -> None:
    a, b = replica(db_url, tmp_path / "a"), replica(db_url, tmp_path / "b")
    with a, b:
        a.post("/autoops/loop", json={"builds": 1000, "interval_s": 0.2}).raise_for_status()
        wait_for(lambda: a.get("/autoops/status").json()["loop"]["done"] >= 1)
        stopped = b.post("/autoops/loop/stop").json()
        assert stopped["state"] == "idle" and stopped["done"] < 1000
        done = stopped["done"]
        assert sum(a.get("/autoops/status").json()["builds"].values()) == done
