"""Named leases on SQLAlchemy (``jobs.LeaseStore``): every change is one conditional UPDATE (or the first
INSERT), so two processes never both hold a lease, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from opslab.jobs import Lease
from opslab.store.engine import write_tx
from opslab.store.tables import leases


def _held_by(lease: Lease) -> tuple[Any, ...]:
    """The row is still ``lease``: same name, holder and fencing token."""
    return (leases.c.name == lease.name, leases.c.holder == lease.holder, leases.c.token == lease.token)


def _lease(row: Any) -> Lease:
    return Lease.model_validate(dict(row._mapping))


class SqlLeaseStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def acquire(
        self, name: str, holder: str, *, ttl_s: float, info: dict[str, Any] | None = None
    ) -> Lease | None:
        now = datetime.now(UTC)
        expires = now + timedelta(seconds=ttl_s)
        with write_tx(self.engine) as conn:
            row = conn.execute(select(leases).where(leases.c.name == name)).first()
            if row is None:
                values = {
                    "name": name,
                    "holder": holder,
                    "token": 1,
                    "acquired_at": now,
                    "renewed_at": now,
                    "expires_at": expires,
                    "info": info or {},
                }
                try:
                    with conn.begin_nested():
                        conn.execute(insert(leases).values(**values))
                except IntegrityError:
                    return None  # another process inserted it first
                return Lease.model_validate(values)
            current = _lease(row)
            if current.holder == holder and current.expires_at > now:
                values = {"renewed_at": now, "expires_at": expires}
            elif current.expires_at <= now:
                values = {
                    "holder": holder,
                    "token": current.token + 1,
                    "acquired_at": now,
                    "renewed_at": now,
                    "expires_at": expires,
                    "info": info or {},
                }
            else:
                return None
            res = conn.execute(
                update(leases)
                .where(
                    leases.c.name == name, leases.c.token == current.token, leases.c.holder == current.holder
                )
                .values(**values)
            )
            if not res.rowcount:
                return None
            return current.model_copy(update=values)

    def renew(self, lease: Lease, *, ttl_s: float) -> Lease | None:
        now = datetime.now(UTC)
        values = {"renewed_at": now, "expires_at": now + timedelta(seconds=ttl_s)}
        with write_tx(self.engine) as conn:
            res = conn.execute(update(leases).where(*_held_by(lease)).values(**values))
        return lease.model_copy(update=values) if res.rowcount else None

    def update_info(self, lease: Lease, info: dict[str, Any]) -> Lease | None:
        now = datetime.now(UTC)
        with write_tx(self.engine) as conn:
            res = conn.execute(
                update(leases).where(*_held_by(lease), leases.c.expires_at > now).values(info=info)
            )
        return lease.model_copy(update={"info": info}) if res.rowcount else None

    def release(self, lease: Lease) -> None:
        now = datetime.now(UTC)
        with write_tx(self.engine) as conn:
            conn.execute(update(leases).where(*_held_by(lease)).values(expires_at=now, renewed_at=now))

    def get(self, name: str) -> Lease | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(leases).where(leases.c.name == name)).first()
        return _lease(row) if row else None

    def held(self, prefix: str) -> list[Lease]:
        """Unexpired leases whose name starts with ``prefix``."""
        now = datetime.now(UTC)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(leases).where(
                    leases.c.name.startswith(prefix, autoescape=True), leases.c.expires_at > now
                )
            )
            return [_lease(r) for r in rows]

    def expired(self, prefix: str) -> list[Lease]:
        """Leases under ``prefix`` whose holder stopped renewing them (to recover what they left)."""
        now = datetime.now(UTC)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(leases).where(
                    leases.c.name.startswith(prefix, autoescape=True),
                    leases.c.expires_at <= now,
                )
            )
            return [_lease(r) for r in rows]

    def valid(self, lease: Lease) -> bool:
        found = self.get(lease.name)
        return (
            found is not None
            and found.holder == lease.holder
            and found.token == lease.token
            and found.expires_at > datetime.now(UTC)
        )
