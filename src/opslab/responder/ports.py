"""The responder's seams: the target it watches, the action server it calls, where incidents are kept,
the clock it waits on, and an optional chat model. Tests swap each for a fake; nothing here does I/O
except ``SystemClock`` and the in-memory store (a dict behind a lock)."""

from __future__ import annotations

import builtins
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from pydantic import JsonValue

from opslab.errors import Conflict, NotFound
from opslab.knowledge import Document
from opslab.responder.model import ActionResult, ActionSpec, AuditRecord, Incident
from opslab.responder.observation import Liveness, Observation


class TargetProbe(Protocol):
    def observe(self) -> Observation:
        """One poll of the target; an unreachable target is an Observation with ``errors``, not a raise."""
        ...


class ActionExecutor(Protocol):
    def catalog(self) -> list[ActionSpec]: ...

    def execute(self, name: str, params: dict[str, JsonValue], *, key: str | None = None) -> ActionResult:
        """Run one action; a refusal or failure is ``ActionResult(status="error")``. The same ``key``
        twice acts once (the action server's ``Idempotency-Key``), so a resumed step is safe to repeat."""
        ...

    def recorded(self, key: str) -> ActionResult | None:
        """What was done under idempotency ``key`` already (the action server's record), if anything:
        a step resumed after a failover reads what its first run did instead of guessing."""
        ...

    def verify(self) -> dict[str, JsonValue]:
        """The action server's view of the target (``is_healthy`` …); unreachable is not healthy."""
        ...

    def liveness(self) -> Liveness | None:
        """Whether the target's process lives and in what state, and how busy its host is; None when the
        action server cannot say (it does not supervise the target, or it is unreachable)."""
        ...


class IncidentChanged(Conflict):
    """A save named a version of the incident that is no longer the stored one: another writer (another
    replica's responder) saved it since. The writer that gets this leaves the incident alone."""

    @classmethod
    def of(cls, incident: Incident, stored: int | None) -> IncidentChanged:
        return cls(
            f"incident {incident.id} was saved by another writer (read at version {incident.version}, "
            f"stored {'none' if stored is None else stored})",
            details={"id": incident.id, "version": incident.version, "stored_version": stored},
        )


class IncidentStore(Protocol):
    def save(self, incident: Incident) -> None:
        """Insert a new incident (``version`` 0) or replace the version it was read at, then set
        ``incident.version`` to the saved one; any other stored version raises ``IncidentChanged``."""
        ...

    def get(self, incident_id: str) -> Incident: ...

    def list(self, *, limit: int = 100) -> list[Incident]: ...

    def append_audit(self, record: AuditRecord) -> None: ...

    def audit(self, *, limit: int = 1000) -> builtins.list[AuditRecord]: ...


class SharedKnowledge(Protocol):
    """Knowledge documents every replica reads (``opslab.store.SqlSharedKnowledge``): what one replica's
    responder learned, the next lease holder knows."""

    def publish(self, document: Document, text: str) -> None: ...

    def pull(self, folder: Path) -> builtins.list[str]:
        """Write the shared documents ``folder`` lacks into it; their ids."""
        ...


class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


class Chat(Protocol):
    """An OpenAI-compatible chat model (``opslab.llm.ChatClient``)."""

    def complete(
        self, messages: list[dict[str, str]], *, temperature: float = 0.0, json_mode: bool = True
    ) -> str: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class InMemoryIncidentStore:
    """Incidents by id (newest first in ``list``) and an append-only audit list, for tests and the CLI."""

    def __init__(self) -> None:
        self._incidents: dict[str, Incident] = {}
        self._audit: list[AuditRecord] = []
        self._lock = threading.Lock()

    def save(self, incident: Incident) -> None:
        with self._lock:
            stored = self._incidents.get(incident.id)
            if (stored.version if stored else 0) != incident.version:
                raise IncidentChanged.of(incident, stored.version if stored else None)
            incident.version += 1
            self._incidents[incident.id] = incident.model_copy(deep=True)

    def get(self, incident_id: str) -> Incident:
        with self._lock:
            found = self._incidents.get(incident_id)
        if found is None:
            raise NotFound(f"no incident {incident_id!r}", details={"id": incident_id})
        return found.model_copy(deep=True)

    def list(self, *, limit: int = 100) -> list[Incident]:
        with self._lock:
            ordered = sorted(self._incidents.values(), key=lambda i: (i.opened_at, i.id), reverse=True)
        return [i.model_copy(deep=True) for i in ordered[:limit]]

    def append_audit(self, record: AuditRecord) -> None:
        with self._lock:
            self._audit.append(record)

    def audit(self, *, limit: int = 1000) -> builtins.list[AuditRecord]:
        with self._lock:
            return list(self._audit[-limit:])
