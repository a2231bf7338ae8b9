"""Helpers shared by the benchmarks: a service process, a scratch PostgreSQL database, result files."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from opslab import proc
from opslab.serving import free_port
from opslab.store.engine import scratch_database

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
OPSLAB = str(Path(sys.executable).parent / "opslab")
SEED_RUN = ROOT / "tests" / "fixtures" / "run-001-sufficient.json"


def seed_run() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SEED_RUN.read_text())
    return data


def postgres_base_url() -> str | None:
    return os.environ.get("OPSLAB_BENCH_POSTGRES_URL") or os.environ.get("OPSLAB_TEST_POSTGRES_URL")


@contextmanager
def scratch_postgres() -> Iterator[str | None]:
    base = postgres_base_url()
    if not base:
        yield None
        return
    with scratch_database(base, "opslab_bench") as url:
        yield url


@contextmanager
def service(env: dict[str, str], log: Path, *, pids: list[int] | None = None) -> Iterator[str]:
    """``opslab serve`` on a free port, until the block ends; its pid is appended to ``pids`` if given."""
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLAB_")}
    full_env.update(env)
    child = proc.spawn(
        [OPSLAB, "serve", "--port", str(port), "--log-level", "warning"],
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url + "/", timeout=1)
            break
        except httpx.HTTPError:
            if not child.alive or time.monotonic() > deadline:
                raise RuntimeError(log.read_text()[-2000:]) from None
            time.sleep(0.1)
    if pids is not None:
        pids.append(child.pid)
    try:
        yield url
    finally:
        child.stop(grace_s=20)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process (Linux) has used so far: a figure the machine's load does not
    stretch the way it stretches wall time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fill_runs(url: str, runs: int, synth: Callable[..., list[Any]]) -> float:
    """Store ``runs`` synthetic runs (``synth(n, offset=i)``) straight through the repository, in batches
    of 2,000, then ANALYZE; the seconds it took."""
    from opslab.store import SqlRunRepository, make_engine, upgrade
    from opslab.telemetry import Redactor, prepare_run

    engine = make_engine(url)
    upgrade(engine)
    repo = SqlRunRepository(engine)
    redactor = Redactor(enabled=False)
    start = time.perf_counter()
    for i in range(0, runs, 2000):
        repo.upsert_runs([prepare_run(r, redactor=redactor) for r in synth(min(2000, runs - i), offset=i)])
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))  # fresh statistics, as autovacuum / a long-lived database would have
    engine.dispose()
    return time.perf_counter() - start


def cpu_model() -> str | None:
    """The processor's name as the kernel gives it (Linux), or None: a ratio to ``xargs`` or to a floor
    moves with it (the lab's isolated trials measured 3.0× on one 2-core machine, 3.8× on another)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return None


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "cpu_model": cpu_model(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        **result,
    }
    path = RESULTS / f"{name}-{datetime.now(UTC):%Y%m%d}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return path
