"""The demo: each capability shows itself against the real service, started in-process on a free port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from opslab.api import create_app
from opslab.api.server import ServerThread, free_port
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


def demo_rca(client: httpx.Client, console: Console) -> None:
    console.rule("[bold]RCA[/bold]: evidence-first root cause as a job, progress over SSE")
    for run_id in ("run-001-sufficient", "run-002-insufficient"):
        created = _call(client, "POST", f"/agent-runs/{run_id}/rca-runs")
        rca_id = created["rca_run_id"]
        with client.stream("GET", f"/rca-runs/{rca_id}/stream") as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    event = json.loads(line[5:])
                    console.print(f"  {run_id}: {event['pct']:>3}%  {event['step']}", highlight=False)
        view = _call(client, "GET", f"/agent-runs/rca-runs/{rca_id}")
        report = view["report"]
        console.print(
            f"{run_id}: category [bold]{report['category']}[/bold], insufficient evidence "
            f"{report['insufficient_evidence']}, {len(report['evidence_index'])} evidence item(s)"
        )
        for h in report["hypotheses"]:
            console.print(
                f"  hypothesis: {h['title']} ({h['confidence']}) cites {', '.join(h['evidence_ids'])}"
            )
        if report.get("root_cause"):
            rc = report["root_cause"]
            console.print(f"  root cause: step {rc['step_id']} of {rc['agent']}")
        for a in report["action_items"]:
            console.print(f"  action ({a['priority']}): {a['title']}")


def demo_lab(console: Console, workdir: Path) -> None:
    console.rule("[bold]lab[/bold]: an A/B experiment over a harness, 72 trials, analysed")
    from opslab.lab import execute, prepare_run, resolve
    from opslab.lab.finish import finish_run

    src = resources.files("opslab.demo") / "lab_project"
    proj = workdir / "lab-demo"
    (proj / ".lab").mkdir(parents=True, exist_ok=True)
    (proj / "data").mkdir(exist_ok=True)
    (proj / "harness.py").write_text((src / "harness.py").read_text())
    (proj / "data" / "tasks.jsonl").write_text((src / "data" / "tasks.jsonl").read_text())
    (proj / ".lab" / "experiment.yaml").write_text((src / "experiment.yaml").read_text())
    resolved = resolve(proj / ".lab" / "experiment.yaml")
    run_dir = prepare_run(resolved)
    execute(
        resolved,
        run_dir,
        concurrency=4,
        env_base={"PATH": os.defpath + os.pathsep + str(Path(sys.executable).parent)},
    )
    result = finish_run(resolved, run_dir)["comparison"]
    for vid, v in result["variants"].items():
        lo, hi = v["success_ci"]
        console.print(f"  {vid}: {v['successes']}/{v['n']} succeeded ({lo:.0%}–{hi:.0%} Wilson 95%)")
    for comp in result["comparisons"]:
        d = comp["metrics"]["success"]
        console.print(
            f"  {comp['treatment']} vs {comp['baseline']}: success {d['mean_difference']:+.1%} per task "
            f"(bootstrap 95% [{d['ci'][0]:+.1%}, {d['ci'][1]:+.1%}]), "
            f"{comp['pass_fail']['test'].split(' (')[0]} p={comp['pass_fail']['p_value']:.3g}"
        )
    console.print(f"  artifacts: {run_dir}")


def demo_canary(client: httpx.Client, console: Console) -> None:
    console.rule("[bold]canary[/bold]: a flag change judged by an ABAB experiment on a live service")
    port = free_port()
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "opslab", "sandbox", "up", "--port", str(port), "--base-median-ms", "200"]
        + ["--sigma", "0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(f"{url}/api/lab/config", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        console.print(f"  sandbox target on {url}: routing `default`, topk 32; candidate: `rules`, topk 20")
        plan = {
            "experiment": {
                "qps": 100,
                "window_sec": 3.5,
                "rounds": 1,
                "flow_policy": "static",
                "target_p95": 1200,
                "routing_mode": "rules",
                "topk_threshold": 20,
            },
            "target": {"base_url": url},
            "time_budget": 60,
            "min_samples_per_arm": 100,
        }
        created = _call(client, "POST", "/canary/runs", json={"plan": plan})
        run_id = created["canary_run_id"]
        with client.stream("GET", f"/canary/runs/{run_id}/stream") as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    event = json.loads(line[5:])
                    console.print(
                        f"  {event['pct']:>3}%  {event['step']}: {event['message']}", highlight=False
                    )
        r = _call(client, "GET", f"/canary/runs/{run_id}")["result"]
        console.print(
            f"verdict [bold]{r['decision']}[/bold]: ΔP95 {r['delta_p95_pct']:+.1f}% "
            f"(95% CI {r['delta_p95_ci'][0]:+.1f} .. {r['delta_p95_ci'][1]:+.1f}), errors "
            f"{r['error_rate_pct']:.2f}%, flags applied: {'yes' if r['applied'] else 'no'}"
        )
        console.print(f"  summary: {r['summary_path']}")
    finally:
        os.killpg(sandbox.pid, signal.SIGTERM)
        sandbox.wait(10)


def run_demo(settings: Settings, console: Console, *, port: int | None = None) -> None:
    app = create_app(settings)
    with ServerThread(app, port=port) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        console.print(f"opslab service on {server.url} (data in {settings.data_dir.resolve()})")
        demo_telemetry(client, console)
        demo_rca(client, console)
        demo_canary(client, console)
    demo_lab(console, settings.data_dir / "demo")
    console.rule("done: the service stopped cleanly")
