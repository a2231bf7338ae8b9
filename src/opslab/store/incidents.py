"""The responder's incidents and audit trail on SQLAlchemy (``responder.IncidentStore``).

An incident is saved whole (its typed record as JSON) with the columns a list filters on beside it, under
optimistic concurrency: a save names the version it read (``version`` column, the truth over the copy in
the document) and one that another writer got to first is refused, never last-writer-wins. The audit trail
is insert-only: nothing here updates or deletes a row of it.
"""

from __future__ import annotations

import builtins
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Row, insert, select, update
from sqlalchemy.exc import IntegrityError

from opslab.errors import NotFound
from opslab.responder import AuditRecord, Incident, IncidentChanged
from opslab.store.engine import write_tx
from opslab.store.tables import incidents, responder_audit


class SqlIncidentStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def save(self, incident: Incident) -> None:
        read, saved = incident.version, incident.version + 1
        values: dict[str, Any] = {
            "status": incident.status,
            "category": incident.category,
            "opened_at": incident.opened_at,
            "resolved_at": incident.resolved_at,
            "updated_at": datetime.now(UTC),
            "version": saved,
            "document": incident.model_dump(mode="json") | {"version": saved},
        }
        try:
            with write_tx(self.engine) as conn:
                if read == 0:
                    conn.execute(insert(incidents).values(id=incident.id, **values))
                else:
                    at_read = (incidents.c.id == incident.id) & (incidents.c.version == read)
                    if conn.execute(update(incidents).where(at_read).values(**values)).rowcount != 1:
                        now = select(incidents.c.version).where(incidents.c.id == incident.id)
                        raise IncidentChanged.of(incident, conn.execute(now).scalar_one_or_none())
        except IntegrityError:  # a new incident under an id another writer inserted meanwhile
            raise IncidentChanged.of(incident, self._version(incident.id)) from None
        incident.version = saved

    def _version(self, incident_id: str) -> int | None:
        with self.engine.connect() as conn:
            query = select(incidents.c.version).where(incidents.c.id == incident_id)
            return conn.execute(query).scalar_one_or_none()

    def get(self, incident_id: str) -> Incident:
        row = None
        if "\x00" not in incident_id:  # names no incident (and PostgreSQL refuses it in a query): 404
            with self.engine.connect() as conn:
                row = conn.execute(_READ.where(incidents.c.id == incident_id)).first()
        if row is None:
            raise NotFound(f"no incident {incident_id!r}", details={"id": incident_id})
        return _incident(row)

    def list(self, *, limit: int = 100, status: str | None = None) -> list[Incident]:
        query = _READ.order_by(incidents.c.opened_at.desc(), incidents.c.id.desc())
        if status is not None:
            query = query.where(incidents.c.status == status)
        with self.engine.connect() as conn:
            rows = conn.execute(query.limit(limit)).all()
        return [_incident(r) for r in rows]

    def append_audit(self, record: AuditRecord) -> None:
        with write_tx(self.engine) as conn:
            conn.execute(
                insert(responder_audit).values(
                    at=record.at,
                    incident_id=record.incident_id,
                    decision=record.decision,
                    record=record.model_dump(mode="json"),
                )
            )

    def audit(self, *, limit: int = 1000, incident_id: str | None = None) -> builtins.list[AuditRecord]:
        if incident_id is not None and "\x00" in incident_id:
            return []  # no incident has such an id
        query = select(responder_audit.c.record).order_by(responder_audit.c.seq.desc()).limit(limit)
        if incident_id is not None:
            query = query.where(responder_audit.c.incident_id == incident_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [AuditRecord.model_validate(r.record) for r in reversed(rows)]


_READ = select(incidents.c.document, incidents.c.version)


def _incident(row: Row[Any, Any]) -> Incident:
    return Incident.model_validate(row.document | {"version": row.version})
