"""Builds: the autoops build stream, the success rate over time, the optimizer's current choice with its
confidence, and the fixes suggested for the latest failures."""

from __future__ import annotations

from dataclasses import dataclass

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from opslab.api.deps import RuntimeDep
from opslab.api.ui.render import page
from opslab.autoops import BuildContext, BuildRecord, Choice, FixRequest, FixSuggestion
from opslab.runtime import Runtime

router = APIRouter(prefix="/ui", include_in_schema=False)
WINDOW = 10  # builds per point of the success-rate line
SHOWN = 50
FIXES = 5


@dataclass
class BuildsView:
    counts: dict[str, int]
    recent: list[BuildRecord]
    rates: list[float | None]
    choice: Choice
    fixes: list[tuple[BuildRecord, FixSuggestion]]


def _view(rt: Runtime) -> BuildsView:
    auto = rt.autoops()
    counts = auto.builds.count()
    recent = auto.builds.recent(limit=1000)  # newest first
    oldest_first = recent[::-1]
    rates = [
        sum(b.result.status == "success" for b in chunk) / len(chunk)
        for chunk in (oldest_first[i : i + WINDOW] for i in range(0, len(oldest_first), WINDOW))
    ]
    latest = recent[0] if recent else None
    context = (
        latest.context.model_copy(update={"last_error_class": latest.result.error_class})
        if latest
        else BuildContext()
    )
    fixes = [
        (b, auto.suggest(FixRequest(error=b.result.error, status="failed", error_class=b.result.error_class)))
        for b in [b for b in recent if b.result.status == "failed" and b.result.error][:FIXES]
        if b.result.error
    ]
    return BuildsView(
        counts=counts, recent=recent[:SHOWN], rates=list(rates), choice=auto.best(context), fixes=fixes
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
        loop=request.app.state.autoops_loop.state(),
        window=WINDOW,
    )
