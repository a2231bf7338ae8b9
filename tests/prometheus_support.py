"""A real Prometheus for integration tests: Debian's ``prometheus`` binary scraping targets on this machine.

Absent the binary, a test using it is skipped, and with ``OPSLAB_TEST_REQUIRE_SERVICES=1`` (CI, where
``.ci/run`` installs it) that skip is a failure.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml

from opslab import proc
from tests.conftest import REQUIRE
from tests.ports import free_port

T = TypeVar("T")
TIMEOUT_S = 30.0


@dataclass
class Prometheus:
    url: str
    client: httpx.Client
    log: Path

    def query(self, promql: str, *, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": promql} if at is None else {"query": promql, "time": f"{at:.3f}"}
        body = self.client.get(f"{self.url}/api/v1/query", params=params).json()
        assert body["status"] == "success", f"{promql}: {body}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def until(self, what: str, probe: Callable[[], T | None]) -> T:
        """Poll ``probe`` until it returns a value (scrapes land once an interval)."""
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            value = probe()
            if value is not None:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"Prometheus: {what} within {TIMEOUT_S}s\n{self.log.read_text()[-3000:]}")
            time.sleep(0.25)


def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        if REQUIRE:
            pytest.fail("the prometheus binary is missing but OPSLAB_TEST_REQUIRE_SERVICES=1")
        pytest.skip("needs the prometheus binary (apt-get install prometheus)")
    return binary


@contextmanager
def run_prometheus(
    tmp_path: Path,
    *,
    job: str,
    targets: list[str],
    scrape_interval: str = "1s",
    scrape: dict[str, Any] | None = None,
) -> Iterator[Prometheus]:
    """Prometheus on a free port scraping ``targets`` (``host:port``, ``/metrics``) as ``job``, ready;
    ``scrape``: more of the job's scrape config (``authorization`` …)."""
    binary = prometheus_binary()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
                "scrape_configs": [
                    {
                        "job_name": job,
                        "metrics_path": "/metrics",
                        **(scrape or {}),
                        "static_configs": [{"targets": targets}],
                    }
                ],
            }
        )
    )
    port = free_port()
    log = tmp_path / "prometheus.log"
    child = proc.spawn(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        cwd=tmp_path,
        stdout=log,
        stderr=log,
    )
    with child, httpx.Client(timeout=5.0) as client:
        server = Prometheus(f"http://127.0.0.1:{port}", client, log)

        def ready() -> bool | None:
            if not child.alive:
                pytest.fail(f"prometheus exited with {child.returncode}\n{log.read_text()[-3000:]}")
            try:
                return client.get(f"{server.url}/-/ready").status_code == 200 or None
            except httpx.TransportError:
                return None

        server.until("ready on /-/ready", ready)
        yield server
