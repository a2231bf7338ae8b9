"""The demo: each capability shows itself against the real service, started in-process on a free port."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from opslab.api import create_app
from opslab.api.server import ServerThread
from opslab.cli.backend import raise_for_error
from opslab.config import Settings

SEED_RUNS = ("run-001-sufficient.json", "run-002-insufficient.json")


def seed_runs() -> list[dict[str, Any]]:
    pkg = resources.files("opslab.demo") / "data"
    return [json.loads((pkg / name).read_text()) for name in SEED_RUNS]


def _call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    response = client.request(method, path, **kwargs)
    raise_for_error(response)
    return response.json()


def demo_telemetry(client: httpx.Client, console: Console) -> None:
    console.rule("[bold]telemetry[/bold]: ingest the seed's runs, replay one, fleet metrics")
    for run in seed_runs():
        result = _call(client, "POST", "/agent-runs", json=run)
        console.print(f"POST /agent-runs {run['run_id']} -> {result['status']}")
    summary = _call(client, "GET", "/agent-runs/run-001-sufficient")
    console.print(f"run-001-sufficient: {summary['status']}, counts {summary['counts']}")
    table = Table(title="timeline of run-001-sufficient")
    for col in ("at", "kind", "id", "status", "summary"):
        table.add_column(col, overflow="fold")
    for item in _call(client, "GET", "/agent-runs/run-001-sufficient/timeline")["items"]:
        table.add_row(
            (item["started_at"] or "")[11:19],
            item["kind"],
            item["id"],
            item["status"],
            (item["summary"] or "")[:70],
        )
    console.print(table)
    overview = _call(client, "GET", "/metrics/overview", params={"hours": 24 * 365 * 10})
    console.print(f"overview (10 years): {overview}")


def run_demo(settings: Settings, console: Console, *, port: int | None = None) -> None:
    app = create_app(settings)
    with ServerThread(app, port=port) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        console.print(f"opslab service on {server.url} (data in {settings.data_dir.resolve()})")
        demo_telemetry(client, console)
    console.rule("done: the service stopped cleanly")
