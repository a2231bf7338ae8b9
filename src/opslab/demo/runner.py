"""The demo: each capability shows itself against the real service, started in-process on a free port."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from opslab import proc
from opslab.api import ServerThread, create_app, free_port
from opslab.canary import RunRecord
from opslab.client import OpslabClient
from opslab.config import Settings

SEED_RUNS = ("run-001-sufficient.json", "run-002-insufficient.json")


def seed_runs() -> list[dict[str, Any]]:
    pkg = resources.files("opslab.demo") / "data"
    return [json.loads((pkg / name).read_text()) for name in SEED_RUNS]


def demo_telemetry(client: OpslabClient, console: Console) -> None:
    console.rule("[bold]telemetry[/bold]: ingest the seed's runs, replay one, fleet metrics")
    for run in seed_runs():
        result = client.ingest_run(run)
        console.print(f"POST /agent-runs {run['run_id']} -> {result.status}")
    summary = client.get_run("run-001-sufficient")
    console.print(f"run-001-sufficient: {summary.status}, counts {summary.counts.model_dump()}")
    table = Table(title="timeline of run-001-sufficient")
    for col in ("at", "kind", "id", "status", "summary"):
        table.add_column(col, overflow="fold")
    for item in client.timeline("run-001-sufficient").items:
        table.add_row(
            item.started_at.strftime("%H:%M:%S") if item.started_at else "",
            item.kind,
            item.id,
            item.status,
            (item.summary or "")[:70],
        )
    console.print(table)
    overview = client.overview(hours=24 * 365 * 10)
    console.print(f"overview (10 years): {overview.model_dump(mode='json')}")


def demo_rca(client: OpslabClient, console: Console) -> None:
    console.rule("[bold]RCA[/bold]: evidence-first root cause as a job, progress over SSE")
    for run_id in ("run-001-sufficient", "run-002-insufficient"):
        created = client.create_rca(run_id)
        for event in client.stream_rca(created.rca_run_id):
            console.print(f"  {run_id}: {event.pct:>5.0f}%  {event.step}", highlight=False)
        report = client.get_rca(created.rca_run_id).report
        if report is None:
            console.print(f"{run_id}: the RCA did not finish")
            continue
        console.print(
            f"{run_id}: category [bold]{report.category}[/bold], insufficient evidence "
            f"{report.insufficient_evidence}, {len(report.evidence_index)} evidence item(s)"
        )
        for h in report.hypotheses:
            console.print(f"  hypothesis: {h.title} ({h.confidence}) cites {', '.join(h.evidence_ids)}")
        if report.root_cause:
            console.print(f"  root cause: step {report.root_cause.step_id} of {report.root_cause.agent}")
        for a in report.action_items:
            console.print(f"  action ({a.priority}): {a.title}")


def demo_lab(console: Console, workdir: Path) -> None:
    console.rule("[bold]lab[/bold]: an A/B experiment over a harness, 72 trials, analysed")
    from opslab.lab import run_experiment

    src = resources.files("opslab.demo") / "lab_project"
    proj = workdir / "lab-demo"
    (proj / ".lab").mkdir(parents=True, exist_ok=True)
    (proj / "data").mkdir(exist_ok=True)
    (proj / "harness.py").write_text((src / "harness.py").read_text())
    (proj / "data" / "tasks.jsonl").write_text((src / "data" / "tasks.jsonl").read_text())
    (proj / ".lab" / "experiment.yaml").write_text((src / "experiment.yaml").read_text())
    run = run_experiment(
        proj / ".lab" / "experiment.yaml",
        concurrency=4,
        env_base={"PATH": os.defpath + os.pathsep + str(Path(sys.executable).parent)},
    )
    for vid, v in run.variants.items():
        lo, hi = v.success_ci
        console.print(f"  {vid}: {v.successes}/{v.n} succeeded ({lo:.0%}–{hi:.0%} Wilson 95%)")
    for comp in run.comparisons:
        d: Any = comp["metrics"]
        d = d["success"]
        pf: Any = comp["pass_fail"]
        console.print(
            f"  {comp['treatment']} vs {comp['baseline']}: success {d['mean_difference']:+.1%} per task "
            f"({d.get('method') or '95%'} [{d['ci'][0]:+.1%}, {d['ci'][1]:+.1%}]), "
            f"{pf['test'].split(' (')[0]} p={pf['p_value']:.3g}"
        )
    console.print(f"  artifacts: {run.run_dir}")


def demo_canary(client: OpslabClient, console: Console) -> None:
    console.rule("[bold]canary[/bold]: a flag change judged by an ABAB experiment on a live service")
    port = free_port()
    argv = [sys.executable, "-m", "opslab", "sandbox", "up", "--only", "target", "--traffic-rps", "0"]
    argv += ["--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with proc.spawn([*argv, "--base-median-ms", "200", "--sigma", "0.1"]):
        _wait_ready(f"{url}/api/lab/config")
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
        created = client.create_canary(plan)
        for event in client.stream_canary(created.canary_run_id):
            console.print(f"  {event.pct:>5.0f}%  {event.step}: {event.message}", highlight=False)
        r = client.get_canary(created.canary_run_id).result
        if not isinstance(r, RunRecord) or r.delta_p95_pct is None:
            console.print(f"  the canary measured nothing: {r.reason if r else 'no result'}")
            return
        low, high = r.delta_p95_ci or (None, None)
        console.print(
            f"verdict [bold]{r.decision}[/bold]: ΔP95 {r.delta_p95_pct:+.1f}% "
            f"(95% CI {low or 0:+.1f} .. {high or 0:+.1f}), errors "
            f"{r.error_rate_pct or 0:.2f}%, flags applied: {'yes' if r.applied else 'no'}"
        )
        console.print(f"  summary: {r.summary_path}")


def _wait_ready(url: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            httpx.get(url, timeout=1).raise_for_status()
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def run_demo(
    settings: Settings, console: Console, *, port: int | None = None, keep_running: bool = False
) -> None:
    workdir = settings.data_dir / "demo"
    # The demo's lab project is one of the dashboard's experiment folders.
    settings = settings.model_copy(update={"lab_runs_dirs": [*settings.lab_runs_dirs, workdir / "lab-demo"]})
    app = create_app(settings)
    with ServerThread(app, port=port) as server, OpslabClient.from_settings(settings, server.url) as client:
        console.print(f"opslab service on {server.url} (data in {settings.data_dir.resolve()})")
        demo_telemetry(client, console)
        demo_rca(client, console)
        demo_canary(client, console)
        demo_lab(console, workdir)
        console.print(f"dashboard: {server.url}/ui")
        if keep_running:
            console.print("the service keeps running (Ctrl-C stops it)")
            stop = threading.Event()
            try:
                while not stop.wait(3600):
                    pass
            except KeyboardInterrupt:
                console.print("stopping")
    console.rule("done: the service stopped cleanly")
