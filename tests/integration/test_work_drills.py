"""Drills of the work core with real processes (`opslab serve`, `opslab worker`, a Redis of the test's own):
jobs waiting with no worker keep one queue message each; a worker killed with -9 starts again at once under
its own name; Redis stopped for ten seconds under a stream of jobs loses no accepted job, runs none twice,
and leaves the workers up."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from opslab import proc
from opslab.store import make_engine
from opslab.store.jobs import SqlJobStore
from tests.conftest import REQUIRE
from tests.integration.test_fault_drills import OPSLAB, PrivateRedis
from tests.ports import free_port


def wait_for(what: Callable[[], bool], seconds: float, why: str) -> None:
    deadline = time.monotonic() + seconds
    while not what():
        assert time.monotonic() < deadline, why
        time.sleep(0.1)


@dataclass
class World:
    tmp: Path
    redis: PrivateRedis
    env: dict[str, str]
    url: str = ""
    children: list[proc.Child] = field(default_factory=list)

    @property
    def store(self) -> SqlJobStore:
        return SqlJobStore(make_engine(self.env["OPSLAB_DATABASE_URL"]))

    def serve(self) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        api = proc.spawn([OPSLAB, "serve", "--port", str(port)], env=self.env, stdout=self.tmp / "api.log")
        self.children.append(api)
        wait_for(lambda: _answers(self.url + "/healthz"), 90, (self.tmp / "api.log").read_text()[-2000:])

    def worker(self, name: str) -> proc.Child:
        log = self.tmp / f"worker-{name}-{len(self.children)}.log"
        child = proc.spawn([OPSLAB, "worker", "--name", name], env=self.env, stdout=log)
        self.children.append(child)
        return child

    def rca(self, client: httpx.Client) -> httpx.Response:
        return client.post("/agent-runs/run-001-sufficient/rca-runs", params={"force": "true"})

    def queue_length(self) -> int:
        return int(redis_cli(self.redis, "llen", "rq:queue:opslab") or 0)


def redis_cli(redis: PrivateRedis, *args: str) -> str:
    out = subprocess.run(
        ["redis-cli", "-p", str(redis.port), *args], capture_output=True, text=True, timeout=10
    )
    return out.stdout.strip()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def world(tmp_path: Path, run_001: dict[str, Any]) -> Iterator[World]:
    if shutil.which("redis-server") is None:
        if REQUIRE:
            pytest.fail("the work drills need redis-server")
        pytest.skip("needs redis-server")
    redis = PrivateRedis(tmp_path)
    redis.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLAB_")}
    env.update(
        OPSLAB_DATA_DIR=str(tmp_path / "d"),
        OPSLAB_DATABASE_URL=f"sqlite:///{tmp_path / 'w.db'}",
        OPSLAB_REDIS_URL=redis.url,
        OPSLAB_JOB_LEASE_S="2",
    )
    w = World(tmp_path, redis, env)
    w.serve()
    httpx.post(w.url + "/agent-runs", json=run_001, timeout=30).raise_for_status()
    try:
        yield w
    finally:
        for child in reversed(w.children):
            child.stop()
        if redis.child is not None:
            redis.child.stop()


def test_a_hundred_jobs_waiting_with_no_worker_keep_one_queue_message_each(world: World) -> None:
    with httpx.Client(base_url=world.url, timeout=30) as client:
        ids = [world.rca(client).json()["rca_run_id"] for _ in range(100)]
    assert world.queue_length() == 100
    store = world.store

    def oldest_touch() -> float:
        return min(j.updated_at.timestamp() for j in (store.get(i) for i in ids) if j is not None)

    # The reaper looks at long-waiting jobs every sweep (it touches them): wait for three sweeps over all.
    for _ in range(3):
        seen = oldest_touch()
        wait_for(lambda seen=seen: oldest_touch() > seen, 60, "the reaper never swept the waiting jobs")
    assert world.queue_length() == 100, "a waiting job was queued twice"
    world.worker("drain")
    wait_for(
        lambda: all((j := store.get(i)) is not None and j.status == "succeeded" for i in ids), 240, "undone"
    )
    assert world.queue_length() == 0


def test_a_worker_killed_with_sigkill_starts_again_at_once_under_its_name(world: World) -> None:
    first = world.worker("w-1")
    key = "rq:worker:w-1"

    def registered() -> bool:
        return redis_cli(world.redis, "exists", key) == "1"

    wait_for(registered, 60, "the worker never registered")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    again = world.worker("w-1")  # at once, as systemd's Restart=on-failure does
    with httpx.Client(base_url=world.url, timeout=30) as client:
        job = world.rca(client).json()["rca_run_id"]
        wait_for(
            lambda: client.get(f"/agent-runs/rca-runs/{job}").json()["status"] == "done",
            120,
            "the restarted worker took no job",
        )
    assert again.alive


def test_redis_stopped_for_ten_seconds_under_jobs_loses_no_accepted_job_and_runs_none_twice(
    world: World,
) -> None:
    workers = [world.worker("a"), world.worker("b")]
    accepted: list[str] = []
    refused: list[int] = []
    stop = threading.Event()

    def submit() -> None:
        with httpx.Client(base_url=world.url, timeout=30) as client:
            while not stop.is_set():
                try:
                    r = world.rca(client)
                except httpx.HTTPError:
                    refused.append(0)
                    continue
                if r.status_code == 202:
                    accepted.append(r.json()["rca_run_id"])
                else:
                    refused.append(r.status_code)
                time.sleep(0.05)

    feeder = threading.Thread(target=submit)
    feeder.start()
    try:
        wait_for(lambda: len(accepted) >= 10, 120, "no job was accepted")
        world.redis.kill()
        outage = time.monotonic()
        wait_for(lambda: bool(refused), 60, "a job was accepted with Redis down")
        time.sleep(max(0.0, 10 - (time.monotonic() - outage)))  # the outage itself: ten seconds
        world.redis.start()
        before = len(accepted)
        wait_for(lambda: len(accepted) >= before + 10, 120, "no job was accepted after Redis came back")
    finally:
        stop.set()
        feeder.join(60)
    assert set(refused) <= {503}, refused  # refused in the open, never a 500 or a dropped connection
    store = world.store
    wait_for(
        lambda: all((j := store.get(i)) is not None and j.status == "succeeded" for i in accepted),
        300,
        f"accepted jobs never finished: {[(i, (store.get(i) or None)) for i in accepted[:3]]}",
    )
    for job_id in accepted:
        ends = [e for e in store.events(job_id) if e.status == "succeeded"]
        assert len(ends) == 1, f"{job_id} finished {len(ends)} times"
    assert all(w.alive for w in workers), "a worker quit over the outage"
