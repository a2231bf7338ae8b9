"""Engine factory: SQLite in WAL mode with a busy timeout, or PostgreSQL through psycopg 3."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url

from opslab.errors import InvalidInput

SQLITE_BUSY_TIMEOUT_MS = 30_000
# A new database's pages: 16 KiB, not SQLite's 4 KiB. An OTLP export's trace rows (a trace's spans as one
# JSON array, a few KiB each) fit several to a page rather than one, and a commit writes a quarter as many
# WAL frames (two writes each) for the same bytes: 20 exports of 2,000 spans ingest ~5 % faster before any
# checkpoint, ~8 % over 100 (bench/ingest.py). An existing database keeps the size it was made with.
PAGE_SIZE = 16_384
# An ingest transaction rewrites a few hundred index pages (trace and run ids are random). Checkpointing
# every ~160 MB of WAL rather than SQLite's ~4 MB copies such a page into the database once per many
# transactions instead of once per transaction (OTLP ingest on a busy disk gained a sixth to a third at
# ~40 MB, and ~7 % more at ~160 MB over 100 exports: bench/ingest.py). The WAL file keeps about that size
# between checkpoints; SQLite counts it in pages, of whatever size the database has.
WAL_CHECKPOINT_BYTES = 160 * 1024 * 1024
# Each SQLite connection's page cache, in KiB (SQLite's own default: 2,000). An ingest's rows land in
# indexes keyed by run ids, trace ids, start times and latencies, all scattered: with 2 MiB a connection
# read most leaves it wrote to again from the WAL, export after export. 60 OTLP exports whose runs' times
# and latencies all differ (90,000 spans): 5.6-6.2 s in-process with 2 MiB, 4.5 s with 16 MiB, no better
# with 64. The pool hands out the connection returned last (LIFO), whose cache is the one still current:
# SQLite drops a connection's cache when another connection has written since.
CACHE_KIB = 16_384
# All of a process's SQLite memory, caches included, is kept under this (soft: pages are recycled
# first), whatever the number of pooled connections.
SQLITE_HEAP_BYTES = 256 * 1024 * 1024
# Connections per process. SQLite's are cheap: as many as the threads that may hold one at once (anyio's
# 40 for the service's routes). PostgreSQL's count against its max_connections (docs/operations.md). A
# request that finds none free in POOL_TIMEOUT_S is a 503 with Retry-After.
POOL_SIZE, POOL_TIMEOUT_S = 10, 10.0
MAX_OVERFLOW = {"sqlite": 30, "postgresql": 20}


def make_engine(url: str, *, echo: bool = False) -> Engine:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        pool: dict[str, Any] = {}
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            overflow = MAX_OVERFLOW["sqlite"]
            pool = {
                "pool_size": POOL_SIZE,
                "max_overflow": overflow,
                "pool_timeout": POOL_TIMEOUT_S,
                "pool_use_lifo": True,
            }
        engine = create_engine(
            parsed,
            echo=echo,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            **pool,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if backend == "postgresql":
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(
            parsed,
            echo=echo,
            pool_pre_ping=True,
            pool_size=POOL_SIZE,
            max_overflow=MAX_OVERFLOW["postgresql"],
            pool_timeout=POOL_TIMEOUT_S,
        )
    raise InvalidInput.for_field(
        "database_url", f"unsupported database {backend!r}; use sqlite or postgresql"
    )


@contextmanager
def write_tx(engine: Engine) -> Iterator[Connection]:
    """A write transaction. On SQLite it takes the write lock up front (BEGIN IMMEDIATE), so two
    writers queue on the busy timeout instead of one failing with "database is locked" mid-way."""
    with engine.connect() as conn:
        conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            yield conn


def _sqlite_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "")
    conn.exec_driver_sql(f"BEGIN {mode}".strip())


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event own transactions (pysqlite's implicit BEGIN is deferred only).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA page_size={PAGE_SIZE}")  # before WAL: a new database only (else ignored)
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA synchronous=NORMAL")
    page_size = cur.execute("PRAGMA page_size").fetchone()[0]
    cur.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_BYTES // page_size}")
    cur.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    cur.execute(f"PRAGMA soft_heap_limit={SQLITE_HEAP_BYTES}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


@contextmanager
def scratch_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new database on the PostgreSQL server of ``server_url``, dropped (its connections with it) when
    the block ends; yields its URL. For tests and benchmarks that must not share a database. Creating it
    raises what the server said when it is unreachable."""
    base = make_url(server_url).set(drivername="postgresql+psycopg")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    # pre-ping: a server restarted meanwhile (a drill) has dropped the pooled connection
    admin = create_engine(base, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
