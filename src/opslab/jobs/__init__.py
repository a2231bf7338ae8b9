"""Jobs: long work with persisted state and live progress.

Embedded backend (default): worker threads inside `opslab serve`. Distributed backend (with
``OPSLAB_REDIS_URL``): RQ on Redis, run by `opslab worker` processes. Either way the job's state,
attempts and last progress live in the database, and progress events go over a bus (in-process or
Redis pub/sub) to SSE clients.

Beside the jobs, short tasks (a lab run's trials) go to a tasks queue the same workers listen on first
(``RqTasks``): many small calls under a lease each, awaited together by the process that submitted them.
"""

from opslab.jobs.bus import LocalBus, RedisBus
from opslab.jobs.embedded import EmbeddedBackend
from opslab.jobs.kinds import Handler, JobDeps, JobKind, JobProgress, KindFactory
from opslab.jobs.model import ACTIVE, TERMINAL, Job, JobStatus, NewJob, ProgressEvent
from opslab.jobs.ports import Backend, JobStore, ProgressBus
from opslab.jobs.rq_backend import RqBackend, run_worker
from opslab.jobs.runner import JobRunner, Reaper, owner_id
from opslab.jobs.service import JobService
from opslab.jobs.tasks import RqTasks, TaskBatch, TaskEnd, tasks_queue_name
from opslab.jobs.views import ErrorBody, JobEvent, JobView

__all__ = [
    "ACTIVE",
    "TERMINAL",
    "Backend",
    "EmbeddedBackend",
    "ErrorBody",
    "Job",
    "Handler",
    "JobDeps",
    "JobEvent",
    "JobKind",
    "JobProgress",
    "JobRunner",
    "JobService",
    "JobStatus",
    "JobStore",
    "JobView",
    "KindFactory",
    "LocalBus",
    "NewJob",
    "ProgressBus",
    "ProgressEvent",
    "Reaper",
    "RedisBus",
    "RqBackend",
    "RqTasks",
    "TaskBatch",
    "TaskEnd",
    "owner_id",
    "run_worker",
    "tasks_queue_name",
]
