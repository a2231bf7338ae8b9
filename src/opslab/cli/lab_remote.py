"""Where `opslab lab run` runs its trials: in this process (``--executor local``), on `opslab worker`
processes through Redis (``--executor rq``), or the whole run as a job of a service (``--url``), whose
progress the CLI follows over SSE."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from opslab.cli.context import err_console, local_runtime, settings
from opslab.cli.lab_display import print_run
from opslab.errors import InvalidInput, OperationFailed

if TYPE_CHECKING:
    from opslab.lab import TrialQueue

Executor = Literal["local", "rq"]


@contextmanager
def trial_queue(executor: Executor) -> Iterator[TrialQueue | None]:
    """The tasks `opslab worker` processes take for ``rq`` (the database and Redis of this runner's
    settings, which its workers share); None runs locally."""
    if executor == "local":
        yield None
        return
    s = settings()
    if not s.redis_url:
        raise InvalidInput.for_field(
            "--executor", "rq needs OPSLAB_REDIS_URL: the Redis your `opslab worker` processes listen on"
        )
    rt = local_runtime(s)
    try:
        yield rt.trial_queue()
    finally:
        rt.close()


def run_remote(
    experiment: Path, url: str, executor: Executor, concurrency: int | None, as_json: bool
) -> dict[str, Any]:
    """Submit the experiment (its absolute path: the service reads it from its own disk, under its allowed
    roots), follow the job to its end, print the run's table; the ``--json`` envelope's fields."""
    from opslab.client import OpslabClient

    with OpslabClient.from_settings(settings(), url) as client:
        created = client.create_lab_run(
            experiment_path=str(experiment.resolve()), executor=executor, concurrency=concurrency
        )
        job_id = created.lab_run_id
        if not as_json:
            err_console.print(f"lab run {job_id} submitted to {url}", soft_wrap=True)
        for event in client.stream_lab_run(job_id):
            if not as_json:
                err_console.print(f"{event.pct:5.1f}%  {event.step}: {event.message}", soft_wrap=True)
        view = client.get_lab_run(job_id)
    if view.status != "done" or view.result is None:
        reason = view.error.message if view.error else f"the job ended {view.status}"
        raise OperationFailed(
            f"lab run {job_id} failed on {url}: {reason}",
            details={"lab_run_id": job_id, "error": view.error.model_dump() if view.error else None},
        )
    if not as_json:
        print_run(view.result, None)
    return {"lab_run_id": job_id, "run": view.result.envelope()}
