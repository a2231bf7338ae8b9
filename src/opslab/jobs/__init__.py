"""Jobs: long work with persisted state and live progress.

Embedded backend (default): worker threads inside `opslab serve`. Distributed backend (with
``OPSLAB_REDIS_URL``): RQ on Redis, run by `opslab worker` processes. Either way the job's state,
attempts and last progress live in the database, and progress events go over a bus (in-process or
Redis pub/sub) to SSE clients.
"""

from opslab.jobs.bus import LocalBus, RedisBus
from opslab.jobs.embedded import EmbeddedBackend
from opslab.jobs.model import ACTIVE, TERMINAL, Job, JobStatus, NewJob, ProgressEvent
from opslab.jobs.ports import Backend, JobStore, ProgressBus
from opslab.jobs.runner import JobKind, JobRunner, Progress, Reaper, owner_id
from opslab.jobs.service import JobService

__all__ = [
    "ACTIVE",
    "TERMINAL",
    "Backend",
    "EmbeddedBackend",
    "Job",
    "JobKind",
    "JobRunner",
    "JobService",
    "JobStatus",
    "JobStore",
    "LocalBus",
    "NewJob",
    "Progress",
    "ProgressBus",
    "ProgressEvent",
    "Reaper",
    "RedisBus",
    "owner_id",
]
