"""The API token, read token and ingest secret never appear in the service log, the database, the data
folder (canary reports and history included), or any answer — whatever a client sends."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import Service, clean_env

TOKEN, READER, SECRET = "tok-SEKRIT-write-7731", "tok-SEKRIT-read-2291", "sec-SEKRIT-ingest-5519"


def test_tokens_never_leak(
    start_service: Callable[..., Service], tmp_path: Path, run_001: dict[str, Any]
) -> None:
    data = tmp_path / "data"
    env = clean_env(
        OPSLAB_DATA_DIR=str(data),
        OPSLAB_API_TOKEN=TOKEN,
        OPSLAB_READ_TOKEN=READER,
        OPSLAB_INGEST_SECRET=SECRET,
    )
    svc = start_service("--log-level", "debug", env=env)
    write = {"Authorization": f"Bearer {TOKEN}"}
    answers: list[str] = []
    with httpx.Client(base_url=svc.url, timeout=30) as c:
        # a run that carries the secrets in its own text: redaction must catch bearer tokens it knows
        leaky = {**run_001, "error_message": f"Authorization: Bearer {TOKEN} then X-Ingest-Secret {SECRET}"}
        for r in (
            c.post("/agent-runs", json=leaky, headers={"X-Ingest-Secret": SECRET}),
            c.post("/agent-runs", json=run_001, headers={"X-Ingest-Secret": "wrong-" + SECRET}),
            c.get("/agent-runs/run-001-sufficient", headers={"Authorization": f"Bearer {READER}"}),
            c.get("/agent-runs", headers={"Authorization": f"Bearer wrong-{TOKEN}"}),
            c.post("/agent-runs/run-001-sufficient/rca-runs", headers=write),
            c.post(
                "/canary/runs",
                headers=write,
                json={
                    "plan": {
                        "experiment": {
                            "qps": 10,
                            "window_sec": 1,
                            "rounds": 1,
                            "flow_policy": "aimd",
                            "target_p95": 900,
                            "routing_mode": "rules",
                            "topk_threshold": 16,
                        },
                        "target": {"base_url": "http://127.0.0.1:9"},
                    },
                    "dry_run": False,
                },
            ),
            c.get("/openapi.json"),
        ):
            answers.append(r.text)
        rca = c.get("/agent-runs/run-001-sufficient/rca-runs", headers=write).json()["items"][0]["rca_run_id"]
        answers.append(c.get(f"/agent-runs/rca-runs/{rca}", headers=write).text)
        answers.append(c.get("/agent-runs/run-001-sufficient/timeline", headers=write).text)
    svc.stop()
    places = {"answers": "\n".join(answers), "log": svc.log.read_text(errors="replace")}
    for path in data.rglob("*"):
        if path.is_file():
            places[str(path)] = path.read_bytes().decode("utf-8", errors="replace")
    for name, text in places.items():
        for secret in (TOKEN, READER, SECRET):
            assert secret not in text, f"{secret[:12]}… leaked into {name}"
