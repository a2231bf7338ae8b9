"""Fleet metrics (JSON) and the Prometheus exposition."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from opslab.api.deps import TelemetryDep
from opslab.telemetry import MAX_HOURS, FleetSeries, Overview

router = APIRouter(tags=["metrics"])


@router.get("/metrics/overview")
def overview(svc: TelemetryDep, hours: Annotated[int, Query(ge=1, le=MAX_HOURS)] = 24) -> Overview:
    """Runs started in the last ``hours``: total, success rate (%), failing tools, p95 step latency, cost."""
    return svc.overview(hours)


@router.get("/metrics/series")
def series(svc: TelemetryDep, hours: Annotated[int, Query(ge=1, le=MAX_HOURS)] = 24) -> FleetSeries:
    """Runs started in the last ``hours`` per hour (per day past 48 hours): count, successes, success
    rate (%), cost; and the cost by model and by agent."""
    return svc.series(hours)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "The Prometheus text exposition format.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
def prometheus(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
