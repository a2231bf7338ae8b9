"""deploy/prometheus.yml against a secured service, with a real Prometheus: the opslab job's own scrape
settings (its ``authorization`` block and token file) get ``up == 1`` from a service whose API token is
set, where a scrape without the token is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import yaml
from pydantic import SecretStr

from opslab.api import create_app
from opslab.config import Settings
from opslab.serving import ServerThread
from tests.prometheus_support import run_prometheus

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus.yml"


def _job(name: str) -> dict[str, Any]:
    config = yaml.safe_load(DEPLOY.read_text(encoding="utf-8"))
    job: dict[str, Any] = next(j for j in config["scrape_configs"] if j["job_name"] == name)
    return job


def test_the_shipped_scrape_settings_reach_a_token_protected_service(tmp_path: Path, db_url: str) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        api_token=SecretStr("prom-test-api-token-7f3a9c"),
        read_token=SecretStr("prom-test-read-token-4b8d2e"),
    )
    job = _job("opslab")
    auth = dict(job["authorization"])
    token = tmp_path / "opslab-token"
    token.write_text("prom-test-read-token-4b8d2e\n")
    auth["credentials_file"] = str(token)  # the compose file mounts it at the shipped path
    with ServerThread(create_app(settings)) as server:
        assert httpx.get(f"{server.url}/metrics", timeout=10).status_code == 401
        target = server.url.removeprefix("http://")
        scrape = {"metrics_path": job["metrics_path"], "authorization": auth}
        with run_prometheus(tmp_path, job="opslab", targets=[target], scrape=scrape) as prom:
            up = prom.until(
                "opslab scraped with its token",
                lambda: next((r for r in prom.query('up{job="opslab"}') if r["value"][1] == "1"), None),
            )
    assert up["metric"]["instance"] == target


def test_the_autoops_job_sends_the_same_token() -> None:
    assert _job("autoops")["authorization"] == _job("opslab")["authorization"]
    assert "authorization" not in _job("sandbox")  # the sandbox target's /metrics is open
