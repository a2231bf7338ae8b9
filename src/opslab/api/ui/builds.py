"""Builds: the autoops build stream, the success rate over time, the optimizer's current choice with its
confidence, and the fixes suggested for the latest failures."""

from __future__ import annotations

from dataclasses import dataclass

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from opslab.api.background import AutoOpsLoop
from opslab.api.deps import RuntimeDep, service_handle
from opslab.api.ui.render import page
from opslab.autoops import BuildContext, BuildRecord, Choice, FixRequest, FixSuggestion
from opslab.runtime import Runtime

router = APIRouter(prefix="/ui", include_in_schema=False)
WINDOW = 10  # builds per point of the success-rate line
SHOWN = 50
FIXES = 5
POINTS = 100  # groups of WINDOW builds on the success-rate line


@dataclass
class BuildsView:
    counts: dict[str, int]
    recent: list[BuildRecord]
    rates: list[float | None]
    choice: Choice
    fixes: list[tuple[BuildRecord, FixSuggestion]]


def _view(rt: Runtime) -> BuildsView:
    auto = rt.autoops()
    recent = auto.builds.recent(limit=SHOWN)  # newest first
    latest = recent[0] if recent else None
    context = (
        latest.context.model_copy(update={"last_error_class": latest.result.error_class})
        if latest
        else BuildContext()
    )
    fixes = [
        (b, auto.suggest(FixRequest(error=b.result.error, status="failed", error_class=b.result.error_class)))
        for b in auto.builds.recent(limit=FIXES, status="failed")
        if b.result.error
    ]
    return BuildsView(
        counts=auto.builds.count(),
        recent=recent,
        rates=list(auto.builds.success_rates(every=WINDOW, last=POINTS)),
        choice=auto.best(context),
        fixes=fixes,
    )


@router.get("/builds", response_class=HTMLResponse)
async def builds_page(request: Request, rt: RuntimeDep) -> HTMLResponse:
    view = await to_thread.run_sync(lambda: _view(rt))
    total = sum(view.counts.values())
    return page(
        request,
        "builds.html",
        active="builds",
        title="Builds",
        view=view,
        total=total,
        success_rate=view.counts.get("success", 0) / total if total else None,
        loop=service_handle(request, "autoops", AutoOpsLoop).state(),
        window=WINDOW,
    )
