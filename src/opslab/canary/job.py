"""A canary started from the API, as typed work: ``CanaryPayload`` (the plan, dry run or not, the key of
its reports folder) -> the ``RunRecord`` (or the ``DryRun``), the same JSON ``opslab canary run --json``
prints.

Reports go to ``<data dir>/canary/reports/<run_key>/``; every run is appended to the same history the
CLI writes (``<data dir>/canary/history.jsonl``). A cancel (``POST /canary/runs/{id}/cancel``) or the
process shutting down stops the run like a Ctrl-C: the window ends, A is restored and read back, and the
record says INTERRUPTED; the job ends ``cancelled`` with that record."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import Field, StrictBool

from opslab.canary.history import HistoryRecord, RunRecord
from opslab.canary.model import DryRun
from opslab.canary.plan import Plan, parse_plan
from opslab.canary.secrets import RunSecrets, readable, resolve_secrets
from opslab.canary.target import TargetClient
from opslab.canary.target_plan import Target
from opslab.jobs import Payload, Work, WorkContext, WorkDeps, WorkKind

if TYPE_CHECKING:
    from opslab.canary.execute import Stop
    from opslab.canary.guard import GuardedTarget

KIND = "canary"
DONE_STEP = "Canary complete"


class CanaryPayload(Payload):
    plan: dict[str, Any] = Field(description="The plan as JSON (``${ENV}`` references unresolved).")
    dry_run: StrictBool = False
    run_key: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


CANARY: WorkKind[CanaryPayload, RunRecord | DryRun] = WorkKind(
    KIND, CanaryPayload, RunRecord | DryRun, done_step=DONE_STEP, failed_step="Canary failed", max_attempts=1
)


class CanaryDeps(WorkDeps, Protocol):
    def environment(self) -> Mapping[str, str]:
        """Where a plan's ``${ENV}`` references are read (the service's own environment)."""
        ...

    def canary_target(self, plan_target: Target, secrets: RunSecrets, *, seed: int) -> TargetClient:
        """The client of the service under test (closed with ``close()`` when it has one)."""
        ...

    def canary_hold(
        self, plan: Plan, target: TargetClient, *, run_key: str
    ) -> AbstractContextManager[GuardedTarget]:
        """The target held for this canary: its intent recorded before every change (``guard``)."""
        ...

    def canary_index(self, target: str, record: HistoryRecord) -> None:
        """Index a history line where every replica reads it."""
        ...


def history_file(data_dir: Path) -> Path:
    return data_dir / "canary" / "history.jsonl"


def reports_dir(data_dir: Path, run_key: str) -> Path:
    return data_dir / "canary" / "reports" / run_key


def canary_work(deps: CanaryDeps) -> Work[CanaryPayload, RunRecord | DryRun]:
    data_dir = deps.settings.data_dir

    def run(payload: CanaryPayload, ctx: WorkContext) -> RunRecord | DryRun:
        # The engine (its load generator: aiohttp) is loaded by the process that runs a canary, not by
        # every process that only declares the work.
        from opslab.canary.agent import dry_run, run_canary
        from opslab.canary.execute import Stop

        plan = parse_plan(payload.plan)
        reports = reports_dir(data_dir, payload.run_key)
        if payload.dry_run:
            ctx.report("Plan", 50, "dry run: no load sent, no flag changed")
            return dry_run(plan, reports)
        # ${ENV} references are the service's own environment: a plan sent over the API carries the
        # reference, never the secret.
        secrets = resolve_secrets(plan, deps.environment(), may_read=readable(deps.settings.canary_plan_env))
        inner = deps.canary_target(plan.target, secrets, seed=plan.seed)
        stop, done = Stop(), threading.Event()
        try:
            with deps.canary_hold(plan, inner, run_key=payload.run_key) as target:
                relay = threading.Thread(target=_relay, args=(ctx, target.lost, stop, done), daemon=True)
                relay.start()
                result = run_canary(
                    plan,
                    target,
                    reports_dir=reports,
                    history_path=history_file(data_dir),
                    index=deps.canary_index,
                    progress=lambda step, pct, msg: ctx.report(step, pct, msg),
                    secrets=secrets,
                    cancel=stop,
                )
        finally:
            done.set()
            close = getattr(inner, "close", None)
            if callable(close):
                close()
        return RunRecord.of(result)

    return CANARY.bind(run)


def _relay(ctx: WorkContext, lost: threading.Event, stop: Stop, done: threading.Event) -> None:
    """A cancel, a shutdown or a lost hold stops the run like a Ctrl-C (the window ends, A is restored)."""
    while not done.is_set():
        if ctx.cancelled.wait(0.2):
            stop.stop("cancelled through the API")
            return
        if ctx.stopping.is_set():
            stop.stop("the service is shutting down")
            return
        if lost.is_set():
            stop.stop("its hold on the target lapsed")
            return
