"""Canary runs started from the API: a job per run, its result, and an SSE progress stream."""

from __future__ import annotations

import uuid

from anyio import to_thread
from fastapi import APIRouter, Request, Response
from sse_starlette import EventSourceResponse

from opslab import egress
from opslab.api.deps import IdempotencyKey, RuntimeDep
from opslab.api.jobs import STREAM_DOC, LastEventId, stream_job
from opslab.canary import (
    CANARY,
    KIND,
    CanaryPayload,
    CanaryRunCreated,
    CanaryRunIn,
    CanaryRunView,
    readable,
    resolve_secrets,
)
from opslab.jobs import wire_status

router = APIRouter(tags=["canary"])


@router.post(
    "/canary/runs",
    status_code=202,
    responses={
        200: {
            "model": CanaryRunCreated,
            "description": "A request with this Idempotency-Key was already accepted.",
        }
    },
)
async def create_canary_run(
    body: CanaryRunIn,
    rt: RuntimeDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> CanaryRunCreated:
    """Start a canary run as a job: body ``{"plan": {…the plan YAML as JSON…}, "dry_run": false}``; the plan
    is validated (422 naming the field, an unset ``${ENV}`` reference included: they are read from the
    service's environment) and every host it reaches (target, Prometheus, webhook) and its volume checked
    against the service's limits (403: ``OPSLAB_CANARY_ALLOWED_TARGETS``, ``OPSLAB_CANARY_MAX_REQUESTS``)
    before anything runs."""
    s, e = rt.settings, body.plan.experiment
    secrets = resolve_secrets(body.plan, rt.environment(), may_read=readable(s.canary_plan_env))
    reached = {
        "plan.target.base_url": body.plan.target.base_url,
        "plan.metrics.prometheus.url": secrets.prometheus_url,
        "plan.notify.webhook_url": secrets.webhook_url,
    }
    for field, url in reached.items():
        if url:
            egress.check_target(
                url, s.canary_allowed_targets, field=field, setting="OPSLAB_CANARY_ALLOWED_TARGETS"
            )
    egress.check_volume(
        e.qps * (body.plan.planned_seconds() + e.warmup_seconds()),
        s.canary_max_requests,
        field="plan.experiment.qps",
        setting="OPSLAB_CANARY_MAX_REQUESTS",
    )
    payload = CanaryPayload(
        plan=body.plan.model_dump(mode="json", exclude_unset=True),
        dry_run=body.dry_run,
        run_key=uuid.uuid4().hex[:12],
    )
    new = CANARY.new(payload, subject=body.plan.target.base_url, idempotency_key=idempotency_key)
    job, created = await to_thread.run_sync(lambda: rt.jobs.submit(new))
    response.status_code = 202 if created else 200
    return CanaryRunCreated(canary_run_id=job.id, status=wire_status(job.status), created=created)


@router.get("/canary/runs/{run_id}")
def get_canary_run(run_id: str, rt: RuntimeDep) -> CanaryRunView:
    """Status, progress and (when done) the canary's result."""
    return CanaryRunView.of(rt.jobs.get(run_id, kind=KIND))


@router.post("/canary/runs/{run_id}/cancel")
def cancel_canary_run(run_id: str, rt: RuntimeDep) -> CanaryRunView:
    """Cancel the canary: a queued one ends ``cancelled`` at once; a running one stops like a Ctrl-C (the
    window ends, the baseline flags are restored and read back) and ends ``cancelled`` with its INTERRUPTED
    record; 409 once it has ended otherwise."""
    return CanaryRunView.of(rt.jobs.cancel(run_id, kind=KIND))


@router.get("/canary/runs/{run_id}/stream", response_class=EventSourceResponse, responses=STREAM_DOC)
async def stream_canary_run(
    run_id: str, request: Request, rt: RuntimeDep, last_event_id: LastEventId = None
) -> Response:
    """SSE: the canary's progress events, from the first (or after ``Last-Event-ID``), ending after done."""
    return await stream_job(rt.jobs, KIND, run_id, request, last_event_id)
