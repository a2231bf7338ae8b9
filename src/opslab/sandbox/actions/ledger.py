"""What the action server keeps: each action's result, the append-only audit (``audit.jsonl``, one JSON
object a line, each flushed to disk before the answer leaves), and the results by ``Idempotency-Key``."""

from __future__ import annotations

import json
import os
import threading
from collections import deque
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, JsonValue, ValidationError

from opslab.errors import Conflict


class ActionResult(BaseModel):
    id: str
    action: str
    params: dict[str, JsonValue]
    status: Literal["success", "error"]
    detail: str
    started_at: datetime
    ended_at: datetime


class AuditRecord(BaseModel):
    """One call to an action: done (``success``/``error``) or ``refused`` (the reason in ``detail``).
    ``caller`` is who the token proves (``token:<fingerprint>``, or ``anonymous``); ``claimed_caller``
    what the ``X-Caller`` header said, kept for reading, never trusted."""

    at: datetime
    id: str
    action: str
    params: dict[str, JsonValue]
    status: Literal["success", "error", "refused"]
    detail: str
    caller: str
    claimed_caller: str | None = None
    idempotency_key: str | None = None
    started_at: datetime | None = None

    @classmethod
    def of(
        cls, result: ActionResult, caller: str, *, claimed: str | None = None, key: str | None = None
    ) -> AuditRecord:
        return cls(
            at=result.ended_at,
            caller=caller,
            claimed_caller=claimed,
            idempotency_key=key,
            **result.model_dump(exclude={"ended_at"}),
        )

    def result(self) -> ActionResult | None:
        """The action's result as it was answered (None for a refused call)."""
        if self.status == "refused":
            return None
        return ActionResult(
            id=self.id,
            action=self.action,
            params=self.params,
            status=self.status,
            detail=self.detail,
            started_at=self.started_at or self.at,
            ended_at=self.at,
        )


class AuditLog:
    """``audit.jsonl``: appended, fsync'd, never rewritten."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def append(self, record: AuditRecord) -> None:
        line = record.model_dump_json() + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def tail(self, limit: int) -> list[AuditRecord]:
        """The last ``limit`` records, oldest first (a line that does not parse is skipped, not fatal)."""
        if not self.path.exists():
            return []
        with self._lock, self.path.open(encoding="utf-8") as f:
            lines = deque(f, maxlen=limit)
        return _parsed(lines)

    def all(self) -> list[AuditRecord]:
        """Every record, oldest first (to rebuild the idempotency keys when the server starts)."""
        if not self.path.exists():
            return []
        with self._lock, self.path.open(encoding="utf-8") as f:
            return _parsed(f)


def _parsed(lines: Iterable[str]) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    for line in lines:
        try:
            records.append(AuditRecord.model_validate_json(line))
        except ValidationError:
            continue
    return records


class Idempotency:
    """The first result per ``Idempotency-Key``: in memory, rebuilt from the audit when the server starts
    (``load``), so a key used before a restart still answers its first result and acts no more."""

    def __init__(self) -> None:
        self._results: dict[str, ActionResult] = {}
        self._lock = threading.Lock()

    def load(self, records: Iterable[AuditRecord]) -> None:
        for record in records:
            result = record.result()
            if record.idempotency_key and result is not None:
                self.put(record.idempotency_key, result)

    def get(self, key: str, action: str, params: dict[str, JsonValue]) -> ActionResult | None:
        with self._lock:
            first = self._results.get(key)
        if first is not None and (first.action, _canon(first.params)) != (action, _canon(params)):
            raise Conflict(
                f"Idempotency-Key {key!r} was used for {first.action} with other params",
                details={"field": "Idempotency-Key"},
            )
        return first

    def put(self, key: str, result: ActionResult) -> None:
        with self._lock:
            self._results.setdefault(key, result)


def _canon(params: dict[str, JsonValue]) -> str:
    return json.dumps(params, sort_keys=True)
