"""A canary started from the API, as a job kind: payload ``{"plan", "dry_run", "run_key"}`` -> the result
(``RunRecord``, or ``DryRun`` for a dry run), the same JSON ``opslab canary run --json`` prints.

Reports go to ``<data dir>/canary/reports/<run_key>/``; every run is appended to the same history the
CLI writes (``<data dir>/canary/history.jsonl``)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from opslab.canary.agent import dry_run, run_canary
from opslab.canary.execute import Stop
from opslab.canary.history import RunRecord
from opslab.canary.plan import parse_plan
from opslab.canary.secrets import readable, resolve_secrets
from opslab.canary.target import HttpTarget
from opslab.config import process_environment
from opslab.jobs import JobDeps, JobKind, JobProgress

KIND = "canary"
DONE_STEP = "Canary complete"


def history_file(data_dir: Path) -> Path:
    return data_dir / "canary" / "history.jsonl"


def reports_dir(data_dir: Path, run_key: str) -> Path:
    return data_dir / "canary" / "reports" / run_key


def job_kind(deps: JobDeps) -> JobKind:
    data_dir = deps.settings.data_dir

    def handle(payload: dict[str, Any], progress: JobProgress) -> dict[str, Any]:
        plan = parse_plan(payload["plan"])
        reports = reports_dir(data_dir, str(payload["run_key"]))
        if payload.get("dry_run"):
            progress.report("Plan", 50, "dry run: no load sent, no flag changed")
            return dry_run(plan, reports).model_dump(mode="json")
        # ${ENV} references are the service's own environment: a plan sent over the API carries the
        # reference, never the secret.
        secrets = resolve_secrets(
            plan, process_environment(), may_read=readable(deps.settings.canary_plan_env)
        )
        target = HttpTarget(plan.target, secrets, seed=plan.seed)
        # The service shutting down stops the run like a Ctrl-C: the window ends, A is restored.
        stop, done = Stop(), threading.Event()
        relay = threading.Thread(target=_relay, args=(progress.stopping, stop, done), daemon=True)
        relay.start()
        try:
            result = run_canary(
                plan,
                target,
                reports_dir=reports,
                history_path=history_file(data_dir),
                progress=lambda step, pct, msg: progress.report(step, pct, msg),
                secrets=secrets,
                cancel=stop,
            )
        finally:
            done.set()
            target.close()
        return RunRecord.of(result).model_dump(mode="json")

    return JobKind(KIND, handle, done_step=DONE_STEP, failed_step="Canary failed")


def _relay(stopping: threading.Event, stop: Stop, done: threading.Event) -> None:
    while not done.is_set():
        if stopping.wait(0.2):
            stop.stop("the service is shutting down")
            return
