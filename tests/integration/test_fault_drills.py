"""Fault drills with real processes: `opslab serve` killed with SIGKILL mid-batch, PostgreSQL restarted
under load. What a client was told is what is stored; nothing is half-applied; the service heals itself."""

from __future__ import annotations

import copy
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opslab import proc
from tests.conftest import REQUIRE
from tests.ports import free_port

OPSLAB = str(Path(sys.executable).parent / "opslab")


def serve(db_url: str, data_dir: Path, log: Path) -> tuple[proc.Child, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLAB_")}
    env.update(OPSLAB_DATABASE_URL=db_url, OPSLAB_DATA_DIR=str(data_dir))
    child = proc.spawn([OPSLAB, "serve", "--port", str(port), "--log-level", "warning"], env=env, stdout=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url + "/healthz", timeout=1).raise_for_status()
            return child, url
        except httpx.HTTPError:
            if not child.alive or time.monotonic() > deadline:
                raise AssertionError(log.read_text()[-2000:]) from None
            time.sleep(0.1)


def runs(prefix: str, n: int, base: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        run = copy.deepcopy(base)
        run["run_id"] = f"{prefix}-{i}"
        out.append(run)
    return out


def test_sigkill_during_batch_ingest_loses_no_acknowledged_run_and_half_writes_none(
    db_url: str, tmp_path: Path, run_001: dict[str, Any]
) -> None:
    child, url = serve(db_url, tmp_path / "d", tmp_path / "serve.log")
    acknowledged: set[str] = set()
    sent: list[list[str]] = []
    stop = threading.Event()

    def ingest() -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            b = 0
            while not stop.is_set():
                batch = runs(f"k{b}", 50, run_001)
                sent.append([r["run_id"] for r in batch])
                try:
                    r = client.post("/agent-runs/batch", json=batch)
                except httpx.HTTPError:
                    return  # the service died under us: this batch was never acknowledged
                if r.status_code == 200:
                    acknowledged.update(i["run_id"] for i in r.json()["results"])
                b += 1

    writer = threading.Thread(target=ingest)
    writer.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 500 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    stop.set()
    writer.join(30)
    child.wait(10)
    assert len(acknowledged) >= 500

    child, url = serve(db_url, tmp_path / "d", tmp_path / "serve2.log")
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            stored: set[str] = set()
            cursor = None
            while True:
                params: dict[str, Any] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
                page = client.get("/agent-runs", params=params).json()
                stored.update(r["run_id"] for r in page["items"])
                for r in page["items"]:  # every stored run is whole: its children came with it
                    assert r["counts"]["steps"] == len(run_001["steps"]), r["run_id"]
                    assert r["counts"]["tool_calls"] == len(run_001["tool_calls"]), r["run_id"]
                cursor = page["next_cursor"]
                if not cursor:
                    break
    finally:
        child.stop()
    assert acknowledged <= stored
    unacknowledged = stored - acknowledged
    # At most the batch in flight at the kill, and then all of it (a batch is one transaction).
    in_flight = [set(ids) for ids in sent if set(ids) & unacknowledged]
    assert len(in_flight) <= 1 and all(ids <= stored for ids in in_flight)


def _cluster() -> str | None:
    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir() or os.geteuid() != 0:
        return None
    versions = sorted(os.listdir("/etc/postgresql"))
    return versions[-1] if versions else None


@pytest.fixture
def postgres_restart(postgres_url: str) -> Iterator[str]:
    version = _cluster()
    if version is None:
        if REQUIRE:
            pytest.fail("the PostgreSQL restart drill needs root and pg_ctlcluster")
        pytest.skip("needs root and pg_ctlcluster to restart PostgreSQL")
    yield version
    # Whatever happened, leave PostgreSQL running for the rest of the suite.
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
        capture_output=True,
        check=False,
    )


@pytest.mark.serial  # restarts the shared server: nothing else may run meanwhile
def test_postgres_restarted_under_load_gives_503_meanwhile_and_heals_without_a_restart(
    postgres_url: str, postgres_restart: str, tmp_path: Path, run_001: dict[str, Any]
) -> None:
    child, url = serve(postgres_url, tmp_path / "pg", tmp_path / "serve.log")
    answers: list[tuple[str, int, str | None]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=url, timeout=15) as client:
            for i, run in enumerate(runs("pgr", 100_000, run_001)):
                if stop.is_set():
                    return
                try:
                    r = client.post("/agent-runs", json=run)
                    answers.append((run["run_id"], r.status_code, r.headers.get("retry-after")))
                except httpx.HTTPError:
                    answers.append((run["run_id"], 0, None))
                time.sleep(0.01 if i % 10 else 0)

    worker = threading.Thread(target=load)
    try:
        worker.start()
        deadline = time.monotonic() + 60
        while sum(code == 201 for _, code, _ in answers) < 20:  # load established: restart under it
            assert time.monotonic() < deadline, f"no load reached the service: {answers[-5:]}"
            time.sleep(0.05)
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", postgres_restart, "main", "restart"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        restarted = len(answers)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(code == 201 for _, code, _ in answers[restarted + 5 :]):
            time.sleep(0.2)
    finally:
        stop.set()
        worker.join(30)
    try:
        codes = {code for _, code, _ in answers}
        assert codes <= {201, 503}, codes  # never a 500, never a dropped connection
        assert any(code == 201 for _, code, _ in answers[restarted + 5 :]), "the service did not heal"
        assert all(retry for _, code, retry in answers if code == 503)
        with httpx.Client(base_url=url, timeout=30) as client:
            for run_id, code, _ in answers:
                if code == 201:
                    got = client.get(f"/agent-runs/{run_id}")
                    assert got.status_code == 200 and got.json()["counts"]["steps"] == len(run_001["steps"])
    finally:
        child.stop()


class PrivateRedis:
    """A real redis-server of this test's own (the shared one is never restarted under other tests)."""

    def __init__(self, tmp: Path) -> None:
        self.port, self.tmp = free_port(), tmp
        self.child: proc.Child | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        self.child = proc.spawn([*argv, "--dir", str(self.tmp)], stdout=self.tmp / "redis.log")
        deadline = time.monotonic() + 15
        while (
            subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).stdout
            != b"PONG\n"
        ):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.child is not None
        os.kill(self.child.pid, signal.SIGKILL)  # nothing saved: the queue is gone
        self.child.wait(10)


def test_redis_restarted_workers_reconnect_and_queued_jobs_still_finish(
    tmp_path: Path, run_001: dict[str, Any]
) -> None:
    if shutil.which("redis-server") is None:
        if REQUIRE:
            pytest.fail("the Redis restart drill needs redis-server")
        pytest.skip("needs redis-server")
    redis = PrivateRedis(tmp_path)
    redis.start()
    db = f"sqlite:///{tmp_path / 'r.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLAB_")}
    env.update(
        OPSLAB_DATA_DIR=str(tmp_path / "d"),
        OPSLAB_DATABASE_URL=db,
        OPSLAB_REDIS_URL=redis.url,
        OPSLAB_JOB_LEASE_S="1",
    )
    child, url = serve(db, tmp_path / "d", tmp_path / "serve.log")
    child.stop()  # the schema exists; the API runs here with the Redis backend
    port = free_port()
    api = proc.spawn([OPSLAB, "serve", "--port", str(port)], env=env, stdout=tmp_path / "api.log")
    url = f"http://127.0.0.1:{port}"
    worker = proc.spawn([OPSLAB, "worker"], env=env, stdout=tmp_path / "worker.log")
    try:
        with httpx.Client(base_url=url, timeout=15) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    client.post("/agent-runs", json=run_001).raise_for_status()
                    break
                except httpx.HTTPError:
                    assert time.monotonic() < deadline, (tmp_path / "api.log").read_text()[-2000:]
                    time.sleep(0.1)

            def rca() -> str:
                r = client.post("/agent-runs/run-001-sufficient/rca-runs", params={"force": "true"})
                assert r.status_code == 202, r.text
                return str(r.json()["rca_run_id"])

            def finished(job: str, seconds: float = 60) -> dict[str, Any]:
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    body: dict[str, Any] = client.get(f"/agent-runs/rca-runs/{job}").json()
                    if body["status"] in ("done", "failed"):
                        return body
                    time.sleep(0.1)
                raise AssertionError(f"{job} never finished: {(tmp_path / 'worker.log').read_text()[-2000:]}")

            assert finished(rca())["status"] == "done"
            # 1. Redis dies and comes back: the worker reconnects by itself.
            redis.kill()
            time.sleep(1)
            redis.start()
            assert finished(rca())["status"] == "done"
            # 2. Jobs queued while no worker runs, then Redis loses its queue: they still finish.
            worker.stop()
            queued = [rca() for _ in range(3)]
            redis.kill()
            redis.start()
            worker = proc.spawn([OPSLAB, "worker"], env=env, stdout=tmp_path / "worker2.log")
            for job in queued:
                done = finished(job)
                assert done["status"] == "done" and done["report"]["category"] == "tool_schema_mismatch"
    finally:
        worker.stop()
        api.stop()
        if redis.child is not None:
            redis.child.stop()


def _mount_small_tmpfs(where: Path, size: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
    )
    return r.returncode == 0


def test_a_full_disk_is_a_clear_error_and_corrupts_nothing(tmp_path: Path, run_001: dict[str, Any]) -> None:
    full = tmp_path / "full"
    if not _mount_small_tmpfs(full, "4m"):
        if REQUIRE:
            pytest.fail("the disk-full drill needs root to mount a small tmpfs")
        pytest.skip("needs root to mount a small tmpfs")
    db = full / "opslab.db"
    try:
        child, url = serve(f"sqlite:///{db}", full, tmp_path / "serve.log")
        acknowledged: list[str] = []
        refusals: list[httpx.Response] = []
        big = {**run_001, "error_message": "x" * 60_000}
        try:
            with httpx.Client(base_url=url, timeout=30) as client:
                for i in range(400):
                    r = client.post("/agent-runs", json={**big, "run_id": f"fill-{i}"})
                    if r.status_code == 201:
                        acknowledged.append(f"fill-{i}")
                        continue
                    refusals.append(r)
                    if len(refusals) >= 3:
                        break
                assert refusals, "the disk never filled up"
                for r in refusals:  # a clear, retryable error, not a 500
                    assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable", r.text
                    assert "full" in r.json()["error"]["details"]["reason"]
                    assert r.headers.get("retry-after")
                for run_id in acknowledged[-5:]:
                    assert client.get(f"/agent-runs/{run_id}").status_code == 200
        finally:
            child.stop()
        import sqlite3

        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            stored = {r[0] for r in conn.execute("SELECT run_id FROM agent_runs")}
        assert set(acknowledged) <= stored
    finally:
        subprocess.run(["umount", "-l", str(full)], capture_output=True, check=False)
