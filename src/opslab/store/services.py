"""The shared state of leased services (``jobs.ServiceStateStore``): every write is a compare-and-set on
``version``, so two replicas changing it at once never lose one another's change silently."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from opslab.jobs import Versioned
from opslab.store.engine import write_tx
from opslab.store.tables import service_state


class SqlServiceState:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def read(self, name: str) -> Versioned | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(service_state).where(service_state.c.name == name)).first()
        return Versioned(version=row.version, state=row.state) if row else None

    def write(self, name: str, state: dict[str, Any], *, expected: int) -> Versioned | None:
        """Replace the state if its version is still ``expected`` (0: it must not exist yet)."""
        now = datetime.now(UTC)
        with write_tx(self.engine) as conn:
            if expected == 0:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            insert(service_state).values(name=name, version=1, state=state, updated_at=now)
                        )
                except IntegrityError:
                    return None
                return Versioned(version=1, state=state)
            res = conn.execute(
                update(service_state)
                .where(service_state.c.name == name, service_state.c.version == expected)
                .values(version=expected + 1, state=state, updated_at=now)
            )
        return Versioned(version=expected + 1, state=state) if res.rowcount else None
