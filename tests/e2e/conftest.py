"""The CLI and the service as a user runs them: real processes, real ports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ports import free_port

OPSLAB = str(Path(sys.executable).parent / "opslab")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLAB_") or k.startswith("OPSLAB_TEST_")}
    env.update(extra)
    return env


def run_cli(
    *args: str, env: dict[str, str], cwd: Path | None = None, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OPSLAB, *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Service:
    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.proc, self.url, self.log = proc, url, log

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"process exited early:\n{log.read_text()[-2000:]}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"nothing answered at {url}:\n{log.read_text()[-2000:]}")


def wait_for(fetch: Callable[[], Any], ok: Callable[[Any], bool], seconds: float, what: str) -> Any:
    """Poll ``fetch`` until ``ok`` holds of its answer; fail with the last answer after ``seconds``."""
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        last = fetch()
        if ok(last):
            return last
        time.sleep(0.3)
    raise AssertionError(
        f"{what} did not happen in {seconds} s; last: {json.dumps(last, default=str)[:3000]}"
    )


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    started: list[Service] = []

    def start(
        *args: str,
        env: dict[str, str] | None = None,
        name: str = "serve",
        command: tuple[str, ...] = ("serve",),
        ready: str = "/",
    ) -> Service:
        """``opslab <command> --host … --port … <args>``, answering on ``ready`` before it is returned."""
        port = free_port()
        log = tmp_path / f"{name}-{port}.log"
        proc = subprocess.Popen(
            [OPSLAB, *command, "--host", "127.0.0.1", "--port", str(port), *args],
            env=env or clean_env(OPSLAB_DATA_DIR=str(tmp_path / "data")),
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        svc = Service(proc, f"http://127.0.0.1:{port}", log)
        started.append(svc)
        wait_http(svc.url + ready, proc, log)
        return svc

    yield start
    for svc in started:
        svc.stop()
