"""Jobs: long work with persisted state, live progress and one lease primitive.

Every piece of long work is a typed ``Work[P, R]`` (``work.py``). Embedded backend (default): worker
threads inside `opslab serve`. Distributed backend (with ``OPSLAB_REDIS_URL``): RQ on Redis carries job
ids to `opslab worker` processes. Either way the job's state, ownership, attempts and last progress live
in the database, and progress events go over a bus (in-process or Redis pub/sub) to SSE clients.

Beside the jobs, short tasks (a lab run's trials) are jobs of kind ``task`` in a batch (``tasks.py``), and
long-lived loops that must run once across replicas hold a named lease (``lease.py``).
"""

from opslab.jobs.bus import LocalBus, RedisBus
from opslab.jobs.embedded import EmbeddedBackend
from opslab.jobs.lease import (
    Lease,
    LeasedService,
    LeaseKeeper,
    LeaseLost,
    LeaseStore,
    ServiceStateStore,
    Versioned,
)
from opslab.jobs.model import (
    ACTIVE,
    RETRYABLE_END,
    TERMINAL,
    Job,
    JobStatus,
    NewJob,
    ProgressEvent,
    wire_status,
)
from opslab.jobs.ports import Backend, JobStore, ProgressBus
from opslab.jobs.rq_backend import RqBackend, run_worker, tasks_queue_name
from opslab.jobs.runner import JobRunner, Reaper, owner_id
from opslab.jobs.service import JobService, ServiceRouting
from opslab.jobs.tasks import TASK, TaskBatch, TaskEnd, TaskQueue, task_work
from opslab.jobs.views import job_fields
from opslab.jobs.work import (
    AnyWork,
    Cancelled,
    Payload,
    Work,
    WorkContext,
    WorkDeps,
    WorkFactory,
    WorkKind,
    Works,
)
from opslab.wire.jobs import WIRE_TERMINAL, ErrorBody, JobEvent, JobView, WireStatus

__all__ = [
    "ACTIVE",
    "RETRYABLE_END",
    "TASK",
    "TERMINAL",
    "WIRE_TERMINAL",
    "AnyWork",
    "Backend",
    "Cancelled",
    "EmbeddedBackend",
    "ErrorBody",
    "Job",
    "JobEvent",
    "JobRunner",
    "JobService",
    "JobStatus",
    "JobStore",
    "JobView",
    "Lease",
    "LeaseKeeper",
    "LeaseLost",
    "LeaseStore",
    "LeasedService",
    "LocalBus",
    "NewJob",
    "Payload",
    "ProgressBus",
    "ProgressEvent",
    "Reaper",
    "ServiceRouting",
    "ServiceStateStore",
    "Versioned",
    "RedisBus",
    "RqBackend",
    "TaskBatch",
    "TaskEnd",
    "TaskQueue",
    "WireStatus",
    "Work",
    "WorkContext",
    "WorkDeps",
    "WorkFactory",
    "WorkKind",
    "Works",
    "owner_id",
    "run_worker",
    "task_work",
    "tasks_queue_name",
    "job_fields",
    "wire_status",
]
