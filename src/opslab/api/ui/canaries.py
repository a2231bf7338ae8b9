"""Canaries: the history with verdicts (every run, from the CLI or the API) and canary jobs; one canary's
ABAB windows with p95 per window, its numbers and its summary."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from opslab import canary
from opslab.api.deps import RuntimeDep
from opslab.api.ui.render import page
from opslab.errors import NotFound

router = APIRouter(prefix="/ui", include_in_schema=False)
SUMMARY_LIMIT = 256 * 1024
PAGE = 50


def _summary_text(path: str | None) -> str | None:
    """The run's summary file, when it is still where the run wrote it."""
    if not path:
        return None
    p = Path(path)
    try:
        if p.suffix in (".md", ".txt") and p.is_file() and p.stat().st_size <= SUMMARY_LIMIT:
            return p.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return None


def _record_of(view: canary.CanaryRunView) -> canary.RunRecord | None:
    """A finished run's record (None while it runs, for a failed job, and for a dry run)."""
    return view.result if isinstance(view.result, canary.RunRecord) else None


@router.get("/canaries", response_class=HTMLResponse)
async def canaries_page(
    request: Request, rt: RuntimeDep, page_no: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1
) -> HTMLResponse:
    history = await to_thread.run_sync(rt.canary_history)
    jobs = await to_thread.run_sync(lambda: rt.jobs.list(kind=canary.KIND, limit=20))
    newest_first = list(enumerate(history, start=1))[::-1]
    rows = newest_first[(page_no - 1) * PAGE : page_no * PAGE]
    return page(
        request,
        "canaries.html",
        active="canaries",
        title="Canaries",
        rows=rows,
        total=len(history),
        page_no=page_no,
        more=len(newest_first) > page_no * PAGE,
        jobs=[(v, _record_of(v)) for v in (canary.CanaryRunView.of(j) for j in jobs)],
    )


@router.get("/canaries/history/{n}", response_class=HTMLResponse)
async def history_page(request: Request, n: int, rt: RuntimeDep) -> HTMLResponse:
    history = await to_thread.run_sync(rt.canary_history)
    if not 1 <= n <= len(history):
        raise NotFound(f"no canary run #{n} in the history ({len(history)} runs)", details={"n": n})
    record = history[n - 1]
    return page(
        request,
        "canary.html",
        active="canaries",
        title=f"Canary #{n}",
        heading=f"Canary #{n}",
        record=record,
        experiment=record.experiment,
        job=None,
        summary=_summary_text(record.summary_path),
    )


@router.get("/canaries/jobs/{job_id}", response_class=HTMLResponse)
async def job_page(request: Request, job_id: str, rt: RuntimeDep) -> HTMLResponse:
    job = canary.CanaryRunView.of(await to_thread.run_sync(lambda: rt.jobs.get(job_id, kind=canary.KIND)))
    record = _record_of(job)
    return page(
        request,
        "canary.html",
        active="canaries",
        title=f"Canary job {job_id}",
        heading=f"Canary job {job_id}",
        record=record,
        experiment=None,
        job=job,
        live=job.status in ("queued", "running"),
        summary=_summary_text(record.summary_path) if record else None,
    )
