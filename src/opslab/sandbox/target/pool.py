"""The target's database: a real SQLAlchemy ``QueuePool`` over a real SQLite file.

A leak is real: the work route keeps the ``Connection`` it checked out (``leak``), so the pool's
``checkedout()`` climbs until a checkout waits ``pool_timeout`` and SQLAlchemy raises its own
``QueuePool limit of size 5 overflow 0 reached`` error. ``recycle`` closes the leaked connections and
disposes the pool; ``resize`` builds a new pool of another size.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import QueuePool

PoolHealth = Literal["healthy", "degraded", "critical"]
ORDERS = 100
BUSY_TIMEOUT_S = 2.0  # how long a query waits on a lock another process holds on the file
INSERT_ORDER = "INSERT INTO orders (id, item, amount, discount) VALUES (:id, :item, :amount, :discount)"


class PoolStatus(BaseModel):
    size: int
    max_overflow: int
    checked_out: int
    overflow: int
    utilization: float
    pool_health: PoolHealth
    wait_timeouts: int


class OrdersDb:
    """The orders table behind one connection pool, which ``recycle`` and ``resize`` replace."""

    def __init__(self, path: Path, *, size: int = 5, max_overflow: int = 0, timeout_s: float = 0.5) -> None:
        self.path, self.max_overflow, self.timeout_s = path, max_overflow, timeout_s
        self._lock = threading.Lock()
        self._leaked: list[Connection] = []
        self.size = size
        self.engine = self._engine(size)
        self._created = False
        self._ensure_created()

    def _ensure_created(self) -> None:
        """Create and fill the table once; a database locked by someone else at start is not fatal (the
        process comes up and says so in its health check), the next checkout tries again."""
        if self._created:
            return
        try:
            self._create()
            self._created = True
        except OperationalError:
            pass

    def _engine(self, size: int) -> Engine:
        return create_engine(
            f"sqlite:///{self.path}",
            poolclass=QueuePool,
            pool_size=size,
            max_overflow=self.max_overflow,
            pool_timeout=self.timeout_s,
            # Leaked connections are closed by recycle, from another thread than the one that opened them.
            connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_S},
        )

    def _create(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL, "
                    "amount REAL NOT NULL, discount REAL)"
                )
            )
            if conn.execute(text("SELECT count(*) FROM orders")).scalar_one() == 0:
                # Three orders in five carry no discount: the v2 build's renderer trips on them.
                rows = [
                    {"id": i, "item": f"item-{i}", "amount": 10.0 + i, "discount": None if i % 5 < 3 else 0.1}
                    for i in range(1, ORDERS + 1)
                ]
                conn.execute(
                    text(INSERT_ORDER),
                    rows,
                )

    def checkout(self) -> Connection:
        """A connection from the pool; ``sqlalchemy.exc.TimeoutError`` when none frees up in time."""
        self._ensure_created()
        return self.engine.connect()

    def leak(self, conn: Connection) -> None:
        """Keep ``conn`` checked out (and referenced, so garbage collection does not return it)."""
        with self._lock:
            self._leaked.append(conn)

    def recycle(self) -> int:
        """Close every leaked connection and dispose the pool; returns how many leaked connections went."""
        with self._lock:
            leaked, self._leaked = self._leaked, []
        for conn in leaked:
            conn.close()
        self.engine.dispose()
        return len(leaked)

    def resize(self, size: int) -> None:
        """A new pool of ``size`` connections; connections leaked from the old one stay open there."""
        old, self.engine, self.size = self.engine, self._engine(size), size
        old.dispose(close=False)

    def status(self, wait_timeouts: int) -> PoolStatus:
        pool = self.engine.pool
        assert isinstance(pool, QueuePool)
        checked_out = pool.checkedout()
        capacity = self.size + self.max_overflow
        utilization = min(1.0, checked_out / capacity) if capacity else 1.0
        health: PoolHealth = "healthy"
        if utilization >= 1.0 and wait_timeouts:
            health = "critical"
        elif utilization >= 0.8 or wait_timeouts:
            health = "degraded"
        return PoolStatus(
            size=self.size,
            max_overflow=self.max_overflow,
            checked_out=checked_out,
            overflow=max(0, pool.overflow()),
            utilization=round(utilization, 3),
            pool_health=health,
            wait_timeouts=wait_timeouts,
        )

    def close(self) -> None:
        self.recycle()
