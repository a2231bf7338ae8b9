"""Lab runs started from the API: a job per run, its result, and an SSE progress stream."""

from __future__ import annotations

from anyio import to_thread
from fastapi import APIRouter, Request, Response
from sse_starlette import EventSourceResponse

from opslab import lab
from opslab.api.deps import IdempotencyKey, RuntimeDep
from opslab.api.jobs import STREAM_DOC, LastEventId, stream_job
from opslab.jobs import wire_status

router = APIRouter(tags=["lab"])


@router.post(
    "/lab/runs",
    status_code=202,
    responses={
        200: {
            "model": lab.LabRunCreated,
            "description": "A request with this Idempotency-Key was already accepted.",
        }
    },
)
async def create_lab_run(
    body: lab.LabRunIn,
    rt: RuntimeDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> lab.LabRunCreated:
    """Start a lab run as a job: ``{"experiment_path": "/abs/proj/.lab/experiment.yaml"}``, or an inline
    ``{"experiment": {…}, "project_path": "/abs/proj"}``; ``"executor": "rq"`` runs its trials on the
    workers. Paths must lie under ``OPSLAB_LAB_ALLOWED_ROOTS`` (403 naming the field; empty: every request
    is refused), the experiment must resolve (422 naming the field), before anything is written. The run
    lands in the project's ``.lab/runs``."""
    s = rt.settings
    new = await to_thread.run_sync(
        lambda: lab.new_lab_job(
            body,
            allowed_roots=s.lab_allowed_roots,
            workers=bool(s.redis_url),
            idempotency_key=idempotency_key,
        )
    )
    job, created = await to_thread.run_sync(lambda: rt.jobs.submit(new))
    response.status_code = 202 if created else 200
    return lab.LabRunCreated(lab_run_id=job.id, status=wire_status(job.status), created=created)


@router.get("/lab/runs/{run_id}")
def get_lab_run(run_id: str, rt: RuntimeDep) -> lab.LabRunView:
    """Status, progress (trials done / total, pass rates so far) and, when done, the run's result."""
    return lab.LabRunView.of(rt.jobs.get(run_id, kind=lab.KIND))


@router.post("/lab/runs/{run_id}/cancel")
def cancel_lab_run(run_id: str, rt: RuntimeDep) -> lab.LabRunView:
    """Cancel the lab run: a queued one ends ``cancelled`` at once; a running one stops its trials (their
    harnesses are killed; trials already recorded stay, and ``opslab lab run --resume`` runs the rest) and
    ends ``cancelled``; 409 once it has ended otherwise."""
    return lab.LabRunView.of(rt.jobs.cancel(run_id, kind=lab.KIND))


@router.get("/lab/runs/{run_id}/stream", response_class=EventSourceResponse, responses=STREAM_DOC)
async def stream_lab_run(
    run_id: str, request: Request, rt: RuntimeDep, last_event_id: LastEventId = None
) -> Response:
    """SSE: the lab run's progress events, from the first (or after ``Last-Event-ID``), ending after done."""
    return await stream_job(rt.jobs, lab.KIND, run_id, request, last_event_id)
