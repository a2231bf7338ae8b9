"""The demo's five steps, one per capability, each against the real service (and the sandbox), each
returning what it showed in one line and where to look. A step raises when it did not do what it says;
the runner records that and goes on with the next."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import httpx
from rich.console import Console

from opslab import proc
from opslab.api import free_port
from opslab.canary import RunRecord
from opslab.client import OpslabClient
from opslab.errors import OperationFailed
from opslab.telemetry import import_runs

T = TypeVar("T")
DATA = resources.files("opslab.demo") / "data"
SEED_RUNS = ("run-001-sufficient.json", "run-002-insufficient.json")
TRANSCRIPT = "8b3379c0-0981-4f5b-8407-6444610cb212"  # a Magentic-One run from the AgentRx dev set


@dataclass
class Shown:
    """What a step showed (one line) and where to look for more."""

    result: str
    where: str


def wait_until(what: str, check: Callable[[], T | None], seconds: float, every: float = 0.25) -> T:
    """``check()`` until it returns something true, that value; a failed step after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise OperationFailed(f"{what}: not within {seconds:g} s")


def dated_now(run: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The run moved in time so that it ends ``now``, every ``…_at`` timestamp by the same amount: the
    seed's sample runs (January 2024) then count in the last 24 hours of the fleet overview."""
    end = run.get("ended_at") or run["started_at"]
    shift = now - datetime.fromisoformat(str(end).replace("Z", "+00:00"))

    def moved(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: moved(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [moved(v) for v in value]
        if key.endswith("_at") and isinstance(value, str):
            at = datetime.fromisoformat(value.replace("Z", "+00:00")) + shift
            return at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return value

    return {k: moved(v, k) for k, v in run.items()}


def telemetry_and_rca(client: OpslabClient, console: Console, url: str) -> Shown:
    """Ingest the seed's runs (dated now) and run both RCA workflows; RCA of a real multi-agent
    transcript."""
    now = datetime.now(UTC)
    for name in SEED_RUNS:
        run = dated_now(json.loads((DATA / name).read_text()), now)
        console.print(f"  POST /agent-runs {run['run_id']} -> {client.ingest_run(run).status}")
    found = []
    for run_id in ("run-001-sufficient", "run-002-insufficient"):
        report = _rca(client, run_id)
        found.append(
            f"{run_id}: {'insufficient evidence' if report.insufficient_evidence else report.category}"
        )
        console.print(
            f"  {found[-1]} ({len(report.evidence_index)} evidence items, confidence {report.confidence})"
        )
    with resources.as_file(DATA / f"{TRANSCRIPT}.json") as path:
        (transcript,) = list(import_runs("magentic", Path(path)))
    client.ingest_run(dated_now(transcript.model_dump(mode="json", exclude_none=True), now))
    report = _rca(client, transcript.run_id)
    truth = json.loads((DATA / f"{TRANSCRIPT}.truth.json").read_text())
    if report.root_cause_step is None or not report.responsible_agent:
        raise OperationFailed(f"the transcript's RCA named no step: {report.summary}")
    console.print(
        f"  Magentic-One transcript ({len(transcript.steps)} steps): decisive step {report.root_cause_step} "
        f"by {report.responsible_agent} (annotated: step {truth['step_number']} by {truth['agent']}), "
        f"citing {', '.join((report.root_cause.evidence_ids if report.root_cause else [])[:3])}"
    )
    found.append(f"transcript: step {report.root_cause_step} by {report.responsible_agent}")
    return Shown("; ".join(found), f"{url}/ui/runs/{transcript.run_id}")


def _rca(client: OpslabClient, run_id: str) -> Any:
    created = client.create_rca(run_id)
    for _ in client.stream_rca(created.rca_run_id):
        pass
    report = client.get_rca(created.rca_run_id).report
    if report is None:
        raise OperationFailed(f"the RCA of {run_id} did not finish")
    return report


def lab(console: Console, workdir: Path, url: str) -> Shown:
    """The example harness over 12 tasks × 2 variants × 3 replications, analysed."""
    from opslab.lab import run_experiment

    src = resources.files("opslab.demo") / "lab_project"
    proj = workdir / "lab-demo"
    (proj / ".lab").mkdir(parents=True, exist_ok=True)
    (proj / "data").mkdir(exist_ok=True)
    (proj / "harness.py").write_text((src / "harness.py").read_text())
    (proj / "data" / "tasks.jsonl").write_text((src / "data" / "tasks.jsonl").read_text())
    experiment = (src / "experiment.yaml").read_text()
    unisolated = _no_sandbox()
    if unisolated:
        # The demo's own harness, which we wrote: on a machine without the trial sandbox it runs on the
        # host, and says so. A user's experiment that asks for isolation still fails closed.
        experiment = experiment.replace("network: {mode: none,", "network: {mode: full,")
        console.print(
            f"  [yellow]ran unisolated[/]: {unisolated}. The demo's own harness runs on the host instead; "
            "install bubblewrap (apt-get install bubblewrap) for the trial sandbox: a namespace, a read-only "
            "host view and no network for every trial."
        )
    (proj / ".lab" / "experiment.yaml").write_text(experiment)
    run = run_experiment(
        proj / ".lab" / "experiment.yaml",
        concurrency=4,
        env_base={"PATH": os.defpath + os.pathsep + str(Path(sys.executable).parent)},
    )
    rates = []
    for vid, v in run.variants.items():
        lo, hi = v.success_ci
        rates.append(f"{vid} {v.successes}/{v.n}")
        console.print(f"  {vid}: {v.successes}/{v.n} succeeded ({lo:.0%}–{hi:.0%} Wilson 95%)")
    for comp in run.comparisons:
        metrics: Any = comp["metrics"]
        d: Any = metrics["success"]
        pf: Any = comp["pass_fail"]
        console.print(
            f"  {comp['treatment']} vs {comp['baseline']}: success {d['mean_difference']:+.1%} per task "
            f"[{d['ci'][0]:+.1%}, {d['ci'][1]:+.1%}], {pf['test'].split(' (')[0]} p={pf['p_value']:.3g}"
        )
    how = " (unisolated: no trial sandbox here)" if unisolated else ""
    return Shown(
        f"{sum(v.n for v in run.variants.values())} trials{how}: " + ", ".join(rates), f"{url}/ui/experiments"
    )


def _no_sandbox() -> str | None:
    """Why this machine cannot give a trial the sandbox (bubblewrap missing …), or None when it can."""
    from opslab.lab import sandbox_problem

    return sandbox_problem(1024, private_network=True)


def canary(client: OpslabClient, console: Console, url: str) -> Shown:
    """A flag change judged by ABAB windows on a sandbox target of its own."""
    port = free_port()
    argv = [sys.executable, "-m", "opslab", "sandbox", "up", "--only", "target", "--traffic-rps", "0"]
    argv += ["--port", str(port), "--base-median-ms", "200", "--sigma", "0.1"]
    target = f"http://127.0.0.1:{port}"
    with proc.spawn(argv):
        wait_until("the canary's sandbox target", lambda: _answers(f"{target}/api/lab/config"), 20)
        console.print(
            f"  sandbox target on {target}: routing `default`, topk 32; candidate: `rules`, topk 20"
        )
        plan = {
            "experiment": {
                "qps": 100,
                "window_sec": 3.0,
                "rounds": 1,
                "warmup_sec": 1.0,
                "flow_policy": "static",
                "target_p95": 1200,
                "routing_mode": "rules",
                "topk_threshold": 20,
            },
            "target": {"base_url": target},
            "time_budget": 60,
            "min_samples_per_arm": 100,
        }
        created = client.create_canary(plan)
        for event in client.stream_canary(created.canary_run_id):
            console.print(f"  {event.pct:>5.0f}%  {event.step}: {event.message}", highlight=False)
        r = client.get_canary(created.canary_run_id).result
    if not isinstance(r, RunRecord) or r.delta_p95_pct is None:
        raise OperationFailed(f"the canary measured nothing: {r.reason if r else 'no result'}")
    low, high = r.delta_p95_ci or (None, None)
    line = f"{r.decision}: ΔP95 {r.delta_p95_pct:+.1f}% (95% CI {low or 0:+.1f} .. {high or 0:+.1f})"
    console.print(f"  verdict [bold]{line}[/bold], flags applied: {'yes' if r.applied else 'no'}")
    console.print(f"  summary: {r.summary_path}")
    return Shown(line, f"{r.summary_path} · {url}/ui/canaries")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def responder(client: OpslabClient, console: Console, chaos: str, chaos_token: str, url: str) -> Shown:
    """Break the sandbox's db pool through the chaos server (with its token); the responder, blind to
    chaos, detects, diagnoses, acts and verifies by itself. The step follows the incident its own break
    opened: incidents already in the data dir (an earlier demo's) are not this one."""
    wait_until(
        "a healthy baseline",
        lambda: int(str(client.agent_status().baseline.get("samples") or 0)) >= 3,
        30,
        0.5,
    )
    before = {i.id for i in client.list_incidents().incidents}
    broken = httpx.post(
        f"{chaos}/api/v1/break/db_pool", headers={"Authorization": f"Bearer {chaos_token}"}, timeout=10
    ).json()
    console.print(f"  POST {chaos}/api/v1/break/db_pool -> {broken.get('status')}")
    done = wait_until(
        "the responder resolving the incident",
        lambda: next(
            (
                i
                for i in client.list_incidents().incidents
                if i.id not in before and i.status in ("resolved", "escalated", "awaiting_approval")
            ),
            None,
        ),
        90,
        0.5,
    )
    incident = client.get_incident(done.id)
    t0 = incident.opened_at
    for step in incident.steps:
        console.print(
            f"  +{(step.at - t0).total_seconds():5.1f}s  {step.node:<9} {step.message[:90]}", highlight=False
        )
    actions = ", ".join(a.action for a in incident.actions) or "none"
    if incident.status != "resolved":
        raise OperationFailed(f"incident {incident.id} was {incident.status} (actions: {actions})")
    took = (incident.resolved_at - t0).total_seconds() if incident.resolved_at else float("nan")
    return Shown(
        f"{incident.category} diagnosed, {actions}, resolved in {took:.1f} s",
        f"{url}/ui/incidents/{incident.id}",
    )


def autoops(client: OpslabClient, console: Console, url: str, builds: int = 40) -> Shown:
    """A few dozen simulated builds through the controller loop; the optimizer's choice and a fix."""
    client.start_autoops_loop(builds=builds)
    wait_until("the autoops loop", lambda: client.autoops_status().loop.state == "finished", 60)
    status = client.autoops_status()
    choice = client.best_action()
    console.print(
        f"  {builds} builds, success rate {status.success_rate or 0:.0%}; optimizer's choice: "
        f"{choice.action_description} (confidence {choice.confidence:.0%})"
    )
    failed = next((b for b in status.recent if b.result.status == "failed" and b.result.error), None)
    fix = "no failed build to fix"
    if failed and failed.result.error:
        suggestion = client.suggest_fix(failed.result.error, error_class=failed.result.error_class)
        fix = f"{suggestion.suggestion} (from {suggestion.document_id or suggestion.source})"
        console.print(f"  failed build: {failed.result.error} -> suggested fix: {fix}")
    return Shown(
        f"choice: {choice.action_description} ({choice.confidence:.0%}); fix: {fix}", f"{url}/ui/builds"
    )
