"""The responder's incidents and audit trail on SQLAlchemy (``responder.IncidentStore``).

An incident is saved whole (its typed record as JSON) with the columns a list filters on beside it; the
audit trail is insert-only: nothing here updates or deletes a row of it.
"""

from __future__ import annotations

import builtins
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from opslab.errors import NotFound
from opslab.responder import AuditRecord, Incident
from opslab.store.engine import write_tx
from opslab.store.tables import incidents, responder_audit


class SqlIncidentStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def save(self, incident: Incident) -> None:
        values: dict[str, Any] = {
            "status": incident.status,
            "category": incident.category,
            "opened_at": incident.opened_at,
            "resolved_at": incident.resolved_at,
            "updated_at": datetime.now(UTC),
            "document": incident.model_dump(mode="json"),
        }
        with write_tx(self.engine) as conn:
            found = conn.execute(update(incidents).where(incidents.c.id == incident.id).values(**values))
            if found.rowcount == 0:
                conn.execute(insert(incidents).values(id=incident.id, **values))

    def get(self, incident_id: str) -> Incident:
        row = None
        if "\x00" not in incident_id:  # names no incident (and PostgreSQL refuses it in a query): 404
            with self.engine.connect() as conn:
                row = conn.execute(select(incidents.c.document).where(incidents.c.id == incident_id)).first()
        if row is None:
            raise NotFound(f"no incident {incident_id!r}", details={"id": incident_id})
        return Incident.model_validate(row.document)

    def list(self, *, limit: int = 100, status: str | None = None) -> list[Incident]:
        query = select(incidents.c.document).order_by(incidents.c.opened_at.desc(), incidents.c.id.desc())
        if status is not None:
            query = query.where(incidents.c.status == status)
        with self.engine.connect() as conn:
            rows = conn.execute(query.limit(limit)).all()
        return [Incident.model_validate(r.document) for r in rows]

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
