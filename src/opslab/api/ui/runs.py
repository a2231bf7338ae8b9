"""Runs: the filtered, paginated list with the fleet on top; one run's waterfall and its RCA."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from anyio import to_thread
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from opslab.api.deps import RuntimeDep
from opslab.api.routes.rca import start_rca
from opslab.api.ui.auth import require_csrf, require_writer
from opslab.api.ui.render import page
from opslab.errors import InvalidInput, invalid_from_pydantic
from opslab.rca import KIND as RCA
from opslab.rca import RcaRunView, rca_run_view
from opslab.runtime import Runtime
from opslab.telemetry import RunFilter, RunSummary, RunTree, Timeline, TimelineItem, TreeNode

router = APIRouter(prefix="/ui", include_in_schema=False)
PAGE_SIZE = 50
FOLD_AT = 400  # characters of a payload shown before it folds
RANGES = {"1h": 1, "24h": 24, "7d": 24 * 7, "30d": 24 * 30}


def _when(name: str, value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput.for_field(
            name, f"{value!r}: expected a date and time, e.g. 2026-11-24T10:00"
        ) from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _number(name: str, value: str | None) -> float | None:
    if not value or not value.strip():
        return None
    try:
        return float(value)
    except ValueError:
        raise InvalidInput.for_field(name, f"{value!r}: expected a number") from None


def _filter(
    status: str | None, agent: str | None, version: str | None, environment: str | None,
    since: str | None, until: str | None, experiment: str | None, q: str | None, range_: str | None,
    more: dict[str, str | None] | None = None,
) -> RunFilter:  # fmt: skip
    start = _when("since", since)
    if start is None and range_ in RANGES:
        start = datetime.now(UTC) - timedelta(hours=RANGES[range_])
    extra = more or {}
    try:
        return RunFilter.model_validate(
            {
                "status": status or None,
                "agent_name": agent or None,
                "agent_version": version or None,
                "model": extra.get("model") or None,
                "environment": environment or None,
                "since": start,
                "until": _when("until", until),
                "experiment": experiment or None,
                "q": q.strip() if q and q.strip() else None,
                "session_id": extra.get("session") or None,
                "user_id": extra.get("user") or None,
                "tag": extra.get("tag") or None,
                "score": extra.get("score") or None,
                "score_min": _number("score_min", extra.get("score_min")),
                "score_max": _number("score_max", extra.get("score_max")),
            }
        )
    except ValidationError as exc:
        raise invalid_from_pydantic(list(exc.errors())) from None


@router.get("", response_class=HTMLResponse)
@router.get("/runs", response_class=HTMLResponse)
async def runs_page(
    request: Request,
    rt: RuntimeDep,
    status: str | None = None,
    agent: str | None = None,
    version: str | None = None,
    environment: str | None = None,
    since: str | None = None,
    until: str | None = None,
    experiment: str | None = None,
    q: str | None = None,
    range_: Annotated[str | None, Query(alias="range")] = None,
    session: str | None = None,
    user: str | None = None,
    tag: str | None = None,
    score: str | None = None,
    score_min: str | None = None,
    score_max: str | None = None,
    model: str | None = None,
    cursor: str | None = None,
    hours: Annotated[int, Query(ge=1, le=24 * 365)] = 24,
) -> HTMLResponse:
    more = {"session": session, "user": user, "tag": tag, "score": score, "score_min": score_min,
            "score_max": score_max, "model": model}  # fmt: skip
    flt = _filter(status, agent, version, environment, since, until, experiment, q, range_, more)
    listing = await to_thread.run_sync(lambda: rt.telemetry.list_runs(flt, cursor=cursor, limit=PAGE_SIZE))
    partial = request.headers.get("hx-request") == "true" and request.headers.get("hx-target") == "runs-table"
    fleet = series = None
    if not partial:
        fleet = await to_thread.run_sync(lambda: rt.telemetry.overview(hours))
        series = await to_thread.run_sync(lambda: rt.telemetry.series(hours))
    given = {
        "status": status, "agent": agent, "version": version, "environment": environment, "since": since,
        "until": until, "experiment": experiment, "q": q, "range": range_, **more,
    }  # fmt: skip
    return page(
        request,
        "runs_table.html" if partial else "runs.html",
        active="runs",
        title="Runs",
        page=listing,
        filters={k: v or "" for k, v in given.items()},
        fleet=fleet,
        series=series,
        hours=hours,
        first_page=cursor is None,
        statuses=("success", "failure", "error", "timeout", "running", "cancelled"),
    )


@dataclass
class Bar:
    """One row of the waterfall: an item placed on the run's time axis (percent of its span)."""

    item: TimelineItem
    left: float
    width: float
    duration_ms: float | None
    failed: bool
    folded: bool
    cited_by: list[str]
    decisive: bool


def waterfall(summary: RunSummary, timeline: Timeline, report: RcaRunView | None) -> list[Bar]:
    """Place each timeline item on the run's span; items without times follow their predecessor."""
    items = timeline.items
    starts = [i.started_at for i in items if i.started_at] + [summary.started_at]
    ends = [at for i in items if (at := i.ended_at or i.started_at) is not None]
    t0 = min(starts)
    t1 = max([*ends, summary.ended_at or t0, t0 + timedelta(milliseconds=1)])
    span = (t1 - t0).total_seconds()
    cites: dict[str, list[str]] = {}
    decisive: str | None = None
    if report and report.report:
        for ev in report.report.evidence_index:
            cites.setdefault(ev.ref_id, []).append(ev.evidence_id)
            if ev.step_id and ev.step_id != ev.ref_id:
                cites.setdefault(ev.step_id, []).append(ev.evidence_id)
        rc = report.report.root_cause
        decisive = rc.step_id if rc else None
    bars: list[Bar] = []
    previous = 0.0
    for n, item in enumerate(items):
        if item.started_at:
            left = 100 * (item.started_at - t0).total_seconds() / span
        else:
            left = previous if bars else 100 * n / max(1, len(items))
        end = item.ended_at or item.started_at
        width = 100 * (end - item.started_at).total_seconds() / span if end and item.started_at else 0.0
        duration = (end - item.started_at).total_seconds() * 1000 if end and item.started_at else None
        previous = min(100.0, left + width)
        bars.append(
            Bar(
                item=item,
                left=max(0.0, min(99.5, left)),
                width=max(0.5, min(100.0 - left, width)),
                duration_ms=duration,
                failed=item.status not in ("success", "ok", "info", "passed", "allowed"),
                folded=len(item.summary) > FOLD_AT,
                cited_by=sorted(set(cites.get(item.id, []))),
                decisive=decisive is not None and item.id == decisive,
            )
        )
    return bars


def _latest_rca(rt: Runtime, run_id: str) -> RcaRunView | None:
    jobs = rt.jobs.list(kind=RCA, subject=run_id, limit=1)
    return rca_run_view(jobs[0]) if jobs else None


def evidence_anchor(report: RcaRunView | None, timeline: Timeline) -> dict[str, str]:
    """Each cited evidence id -> the id of its timeline item (the page anchor is ``tl-<id>``)."""
    if not report or not report.report:
        return {}
    ids = {i.id for i in timeline.items}
    out: dict[str, str] = {}
    for ev in report.report.evidence_index:
        target = ev.ref_id if ev.ref_id in ids else ev.step_id if ev.step_id in ids else None
        if target:
            out[ev.evidence_id] = target
    return out


@dataclass
class Branch:
    """A node of the trace tree with the nodes under it, for the page's nested lists."""

    node: TreeNode
    children: list[Branch]


MAX_TREE_DEPTH = 40  # deeper spans are listed at this depth: a page is read, not scrolled sideways


def branches(tree: RunTree) -> list[Branch]:
    """The flat, depth-first nodes of a run's tree as nested branches."""
    roots: list[Branch] = []
    open_at: list[Branch] = []  # the branch open at each depth
    for node in tree.nodes:
        depth = min(node.depth, MAX_TREE_DEPTH, len(open_at))
        branch = Branch(node, [])
        del open_at[depth:]
        (open_at[-1].children if open_at else roots).append(branch)
        open_at.append(branch)
    return roots


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_page(
    request: Request, run_id: str, rt: RuntimeDep, rca: str | None = None, node: str | None = None
) -> HTMLResponse:
    """A run: its facts, its RCA, its trace tree and timeline, and (``?node=``) all stored for one node."""
    summary = await to_thread.run_sync(lambda: rt.telemetry.summary(run_id))
    timeline = await to_thread.run_sync(lambda: rt.telemetry.timeline(run_id))
    tree = await to_thread.run_sync(lambda: rt.telemetry.tree(run_id))
    selected = await to_thread.run_sync(lambda: rt.telemetry.node(run_id, node)) if node else None
    job = await to_thread.run_sync(lambda: rt.jobs.get(rca, kind=RCA) if rca else None)
    report = rca_run_view(job) if job else await to_thread.run_sync(lambda: _latest_rca(rt, run_id))
    return page(
        request,
        "run.html",
        active="runs",
        title=f"Run {run_id}",
        run=summary,
        bars=waterfall(summary, timeline, report),
        tree=branches(tree),
        tree_source=tree.source,
        rca=report,
        anchors=evidence_anchor(report, timeline),
        live=report is not None and report.status in ("queued", "running"),
        selected=selected,
    )


@router.post("/runs/{run_id}/rca")
async def run_rca(
    request: Request,
    run_id: str,
    rt: RuntimeDep,
    csrf: Annotated[str | None, Form()] = None,
    force: Annotated[Literal["", "true"], Form()] = "",
) -> RedirectResponse:
    """The "Run RCA" button: start (or find) the RCA job, then show the run with its live progress."""
    require_writer(request)
    require_csrf(request, csrf)
    job, _ = await to_thread.run_sync(lambda: start_rca(rt, run_id, force == "true", None))
    return RedirectResponse(f"/ui/runs/{run_id}?rca={job.id}#rca", status_code=303)


@router.get("/sessions/{session_id}", response_class=HTMLResponse)
async def session_page(request: Request, session_id: str, rt: RuntimeDep) -> HTMLResponse:
    """One session: its runs in the order they started, with their totals."""
    flt = RunFilter.model_validate({"session_id": session_id[:200]})
    listing = await to_thread.run_sync(lambda: rt.telemetry.list_runs(flt, cursor=None, limit=1000))
    runs = list(reversed(listing.items))
    tokens_in = sum(r.tokens_prompt or 0 for r in runs)
    tokens_out = sum(r.tokens_completion or 0 for r in runs)
    cost = sum(r.total_cost_usd or 0.0 for r in runs)
    return page(
        request,
        "session.html",
        active="runs",
        title=f"Session {session_id}",
        session_id=session_id,
        runs=runs,
        users=sorted({r.user_id for r in runs if r.user_id}),
        totals={"tokens_in": tokens_in, "tokens_out": tokens_out, "cost": cost},
        more=listing.next_cursor is not None,
    )
