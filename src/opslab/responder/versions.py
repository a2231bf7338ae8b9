"""The responder's own view of its incident store: it saves an incident at the version *this responder*
last read or wrote, whatever copy it holds.

A workflow step saves the copy in its LangGraph state, which can lag the store: the responder itself may
have saved since (a note about an ongoing fault, the save after a run) or the process may have died
between a save and its checkpoint. Those writes are the responder's own, so their steps are merged into
the copy before it is saved. A write by anyone else (another replica's responder that took the incident
over) moves the stored version past the one remembered here, and the save is refused: ``IncidentChanged``.
Taking an incident over (resuming it as the new lease holder) is explicit: ``take_over``.
"""

from __future__ import annotations

import builtins
import threading

from opslab.errors import NotFound
from opslab.responder.model import AuditRecord, Incident
from opslab.responder.ports import IncidentChanged, IncidentStore


class VersionedIncidents:
    def __init__(self, store: IncidentStore) -> None:
        self.inner = store
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()

    def save(self, incident: Incident) -> None:
        with self._lock:
            seen = self._seen.get(incident.id)
        if seen is not None and seen != incident.version:
            stored = self.inner.get(incident.id)
            if stored.version != seen:
                raise IncidentChanged.of(incident, stored.version)
            _merge_steps(incident, stored)  # the newer writes are this responder's own: keep their steps
            incident.version = seen
        self.inner.save(incident)
        with self._lock:
            self._seen[incident.id] = incident.version

    def take_over(self, incident: Incident) -> Incident:
        """Save ``incident`` (a checkpoint's copy) as the current truth, over whatever version is stored,
        keeping the stored steps it lacks; for the lease holder resuming an incident."""
        try:
            stored = self.inner.get(incident.id)
        except NotFound:
            incident.version = 0
        else:
            _merge_steps(incident, stored)
            incident.version = stored.version
        self.save(incident)
        return incident

    def forget(self, incident_id: str) -> None:
        with self._lock:
            self._seen.pop(incident_id, None)

    def get(self, incident_id: str) -> Incident:
        return self.inner.get(incident_id)

    def list(self, *, limit: int = 100) -> list[Incident]:
        return self.inner.list(limit=limit)

    def append_audit(self, record: AuditRecord) -> None:
        self.inner.append_audit(record)

    def audit(self, *, limit: int = 1000) -> builtins.list[AuditRecord]:
        return self.inner.audit(limit=limit)


def _merge_steps(incident: Incident, stored: Incident) -> None:
    known = {(s.at, s.node, s.message) for s in incident.steps}
    extra = [s for s in stored.steps if (s.at, s.node, s.message) not in known]
    if extra:
        incident.steps = sorted([*incident.steps, *extra], key=lambda s: s.at)
