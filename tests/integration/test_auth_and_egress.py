"""Who may do what with a token configured, and where the service may send load (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from opslab.api import ServerThread, create_app
from opslab.config import Settings
from opslab.errors import InvalidInput

TOKEN, READER, SECRET = "tok-write-1234-5678", "tok-read-5678-9012", "sec-ingest-9012-3456"
WRITE = {"Authorization": f"Bearer {TOKEN}"}
READ = {"Authorization": f"Bearer {READER}"}


def plan(base_url: str, qps: float = 10, window_sec: float = 1) -> dict[str, Any]:
    return {
        "experiment": {
            "qps": qps,
            "window_sec": window_sec,
            "rounds": 1,
            "flow_policy": "aimd",
            "target_p95": 1200,
            "routing_mode": "rules",
            "topk_threshold": 32,
        },
        "target": {"base_url": base_url},
        "time_budget": 10,
    }


def test_with_a_token_reads_need_it_too_and_a_read_token_only_reads(
    tmp_path: Path, db_url: str, run_001: dict[str, Any]
) -> None:
    settings = Settings(
        data_dir=tmp_path / "d", database_url=db_url, api_token=TOKEN, read_token=READER, ingest_secret=SECRET
    )
    with ServerThread(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=30) as api:
        assert api.post("/agent-runs", json=run_001).status_code == 401  # the ingest secret guards ingest
        assert api.post("/agent-runs", json=run_001, headers={"X-Ingest-Secret": SECRET}).status_code == 201
        for path in ("/agent-runs/run-001-sufficient", "/agent-runs", "/metrics/overview", "/metrics"):
            assert api.get(path).status_code == 401, path
            assert api.get(path, headers=WRITE).status_code == 200, path
            assert api.get(path, headers=READ).status_code == 200, path
        assert api.get("/agent-runs", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert api.post("/agent-runs/run-001-sufficient/rca-runs", headers=READ).status_code == 401
        assert api.post("/agent-runs/run-001-sufficient/rca-runs", headers=WRITE).status_code == 202
        for open_path in ("/", "/healthz"):
            assert api.get(open_path).status_code == 200


def test_public_reads_leave_reads_open_and_writes_guarded(
    tmp_path: Path, db_url: str, run_001: dict[str, Any]
) -> None:
    settings = Settings(data_dir=tmp_path / "p", database_url=db_url, api_token=TOKEN, public_reads=True)
    with ServerThread(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=30) as api:
        api.post("/agent-runs", json=run_001).raise_for_status()
        assert api.get("/agent-runs/run-001-sufficient").status_code == 200
        assert api.post("/agent-runs/run-001-sufficient/rca-runs").status_code == 401


def test_canary_load_goes_only_to_allowed_hosts_and_volumes(tmp_path: Path, db_url: str) -> None:
    settings = Settings(data_dir=tmp_path / "c", database_url=db_url, canary_max_requests=1000)
    with ServerThread(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=30) as api:
        for url in ("http://canary-target.invalid:80", "http://10.0.0.8:8100", "http://example.com"):
            for dry_run in (True, False):
                r = api.post("/canary/runs", json={"plan": plan(url), "dry_run": dry_run})
                assert r.status_code == 403, (url, r.text)
                assert r.json()["error"]["details"]["field"] == "plan.target.base_url"
        r = api.post("/canary/runs", json={"plan": plan("ftp://127.0.0.1/x"), "dry_run": True})
        assert r.status_code == 422
        big = api.post("/canary/runs", json={"plan": plan("http://127.0.0.1:9", qps=5000, window_sec=60)})
        assert big.status_code == 403 and big.json()["error"]["details"]["field"] == "plan.experiment.qps"
        ok = api.post("/canary/runs", json={"plan": plan("http://127.0.0.1:9"), "dry_run": True})
        assert ok.status_code == 202
    listed = Settings(data_dir=tmp_path / "l", database_url=db_url, canary_allowed_targets=["example.com"])
    with ServerThread(create_app(listed)) as server, httpx.Client(base_url=server.url, timeout=30) as api:
        r = api.post("/canary/runs", json={"plan": plan("http://example.com:8100"), "dry_run": True})
        assert r.status_code == 202


def test_weak_secrets_and_unprotected_production_are_refused(tmp_path: Path) -> None:
    for bad in ("", "   ", "changeme", "secret"):
        with pytest.raises(ValueError):
            Settings(data_dir=tmp_path, ingest_secret=bad)
    with pytest.raises(ValueError, match="OPSLAB_API_TOKEN and OPSLAB_INGEST_SECRET"):
        Settings(data_dir=tmp_path, env="production")
    assert (
        Settings(data_dir=tmp_path, env="production", api_token=TOKEN, ingest_secret=SECRET).env
        == "production"
    )


def test_settings_load_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSLAB_INGEST_SECRET", "")
    with pytest.raises(InvalidInput) as exc:
        Settings.load()
    assert exc.value.message.startswith("OPSLAB_INGEST_SECRET: empty")
    monkeypatch.delenv("OPSLAB_INGEST_SECRET")
    monkeypatch.setenv("APP_INGEST_SECRET", SECRET)  # the seed's name
    loaded = Settings.load()
    assert loaded.ingest_secret is not None and loaded.ingest_secret.get_secret_value() == SECRET
