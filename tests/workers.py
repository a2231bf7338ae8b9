"""Real `opslab worker` processes for a test: an environment with a queue of its own, the processes (each
in its own process group, logging to ``worker-<i>.log``), and stopping them, SIGTERM then SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

OPSLAB = str(Path(sys.executable).parent / "opslab")


def worker_env(
    tmp_path: Path, *, redis_url: str, db_url: str, lease_s: float, prefix: str = "t"
) -> dict[str, str]:
    """This process's environment less its OPSLAB_* settings, with a fresh queue on ``redis_url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLAB_") or k.startswith("OPSLAB_TEST")}
    env.update(
        OPSLAB_DATA_DIR=str(tmp_path / "data"),
        OPSLAB_DATABASE_URL=db_url,
        OPSLAB_REDIS_URL=redis_url,
        OPSLAB_JOB_QUEUE=f"{prefix}-{uuid.uuid4().hex[:8]}",
        OPSLAB_JOB_LEASE_S=f"{lease_s:g}",
    )
    return env


def start_workers(env: dict[str, str], tmp_path: Path, count: int) -> list[subprocess.Popen[bytes]]:
    queue = env["OPSLAB_JOB_QUEUE"]
    procs = []
    for i in range(count):
        with (tmp_path / f"worker-{i}.log").open("wb") as log:
            procs.append(
                subprocess.Popen(
                    [OPSLAB, "worker", "--name", f"{queue}-{i}"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    return procs


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
