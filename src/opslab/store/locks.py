"""Write locks per key (a run id, a trace id), held until the transaction ends, on PostgreSQL.

SQLite needs none: ``write_tx`` takes its one write lock up front, so writers already queue. PostgreSQL
lets two transactions read "no such run" at once and then both insert it (a unique violation), or
replace overlapping runs in different orders (a deadlock): an SDK retrying a slow request, or two
replicas behind a load balancer, do exactly that. A writer therefore takes, before it reads, the lock of
every key it will replace.

Two levels keep a transaction within PostgreSQL's shared lock table (64 locks per connection by
default): a writer of a few keys holds its kind's lock shared and each key's exclusively; a writer of
many holds the kind's lock exclusively, alone. Every writer takes the kind's lock first and its keys in
one sorted order, so two writers never wait on each other in a cycle. Kinds are taken in the order
``TRACES`` then ``RUNS`` (a trace's writer replaces the runs the trace makes).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Final

from sqlalchemy import Connection, text

# Advisory-lock classes (the migration lock is 7_130_001, a key of its own).
TRACES: Final = 7_130_002
RUNS: Final = 7_130_003
# Above this many keys a writer takes its kind's lock exclusively instead of one lock per key.
MAX_KEYS: Final = 32


def lock_keys(*, conn: Connection, kind: int, keys: Iterable[str]) -> None:
    """Hold, until ``conn``'s transaction ends, the right to replace what ``keys`` name."""
    if conn.dialect.name != "postgresql":
        return
    hashed = sorted({zlib.crc32(k.encode()) - 2**31 for k in keys})  # int4; a collision only queues
    if not hashed:
        return
    if len(hashed) > MAX_KEYS:
        conn.execute(text("SELECT pg_advisory_xact_lock(CAST(:kind AS bigint))"), {"kind": kind})
        return
    conn.execute(text("SELECT pg_advisory_xact_lock_shared(CAST(:kind AS bigint))"), {"kind": kind})
    # unnest keeps the array's (sorted) order; one round trip for every key.
    conn.execute(
        text("SELECT pg_advisory_xact_lock(:kind, k) FROM unnest(CAST(:keys AS int[])) AS k"),
        {"kind": kind, "keys": hashed},
    ).all()
