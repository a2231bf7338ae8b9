"""Storage: SQLAlchemy 2 engine factory, tables, repositories and Alembic migrations.

SQLite (WAL) under the data dir by default; PostgreSQL by URL. The same migrations and the same
tests run on both.
"""

from typing import TYPE_CHECKING

from opslab.lazy import lazy_exports

if TYPE_CHECKING:
    from opslab.store.autoops import SqlBanditStore, SqlBuildLog
    from opslab.store.canary import SqlCanaryHistory
    from opslab.store.checkpoint import CHECKPOINT_TABLES, open_checkpointer
    from opslab.store.engine import make_engine, write_tx
    from opslab.store.incidents import SqlIncidentStore
    from opslab.store.jobs import SqlJobStore
    from opslab.store.knowledge import SqlSharedKnowledge
    from opslab.store.lab_runs import SqlLabRunIndex
    from opslab.store.leases import SqlLeaseStore
    from opslab.store.migrate import current_revision, head_revision, newest_revision, upgrade
    from opslab.store.runs import SqlRunRepository
    from opslab.store.services import SqlServiceState
else:
    __getattr__ = lazy_exports(__name__)

__all__ = [
    "CHECKPOINT_TABLES",
    "SqlBanditStore",
    "SqlBuildLog",
    "SqlCanaryHistory",
    "SqlIncidentStore",
    "SqlJobStore",
    "SqlLabRunIndex",
    "SqlLeaseStore",
    "SqlRunRepository",
    "SqlServiceState",
    "SqlSharedKnowledge",
    "current_revision",
    "head_revision",
    "make_engine",
    "newest_revision",
    "open_checkpointer",
    "upgrade",
    "write_tx",
]
