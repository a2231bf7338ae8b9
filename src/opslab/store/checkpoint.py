"""LangGraph checkpointers on the project's own database, so a responder's incident survives a crash.

SQLite: langgraph's ``SqliteSaver`` on the same file as the rest of the store (its own tables,
``checkpoints`` and ``writes``). PostgreSQL: ``PostgresSaver`` over a small psycopg pool that checks a
connection before lending it, so a restarted server costs one retry, not the responder.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

from opslab.errors import InvalidInput
from opslab.store.engine import SQLITE_BUSY_TIMEOUT_MS

if TYPE_CHECKING:  # LangGraph is loaded by the process that checkpoints, not by every store user
    from langgraph.checkpoint.base import BaseCheckpointSaver

# Created and migrated by LangGraph's savers themselves (``setup()``), not by our Alembic revisions.
CHECKPOINT_TABLES = frozenset(
    {"checkpoints", "checkpoint_blobs", "checkpoint_writes", "checkpoint_migrations", "writes"}
)


@contextmanager
def open_checkpointer(database_url: str) -> Iterator[BaseCheckpointSaver[str]]:
    """A checkpointer on ``database_url`` (tables created if missing), closed on exit."""
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        path = url.database or ":memory:"
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, check_same_thread=False, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            from langgraph.checkpoint.sqlite import SqliteSaver

            saver = SqliteSaver(conn)
            saver.setup()
            yield saver
        finally:
            conn.close()
        return
    if backend == "postgresql":
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool

        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        with ConnectionPool(
            conninfo,
            min_size=1,
            max_size=4,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
            check=ConnectionPool.check_connection,
            open=True,
        ) as pool:
            pg = PostgresSaver(pool)  # type: ignore[arg-type]
            pg.setup()
            yield pg
        return
    raise InvalidInput.for_field("database_url", f"no checkpointer for {backend!r}; use sqlite or postgresql")
