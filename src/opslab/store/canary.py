"""Canary runs in the database: each history line the canary appends to its ``history.jsonl`` is also
indexed here, so the API and dashboard of any replica list every canary, wherever it ran."""

from __future__ import annotations

from sqlalchemy import Engine, insert, select

from opslab.canary import HistoryRecord
from opslab.store.engine import write_tx
from opslab.store.tables import canary_runs


class SqlCanaryHistory:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def append(self, target: str, record: HistoryRecord) -> None:
        with write_tx(self.engine) as conn:
            conn.execute(
                insert(canary_runs).values(
                    target=target,
                    started_at=record.started_at,
                    finished_at=record.finished_at,
                    decision=record.decision,
                    record=record.model_dump(mode="json"),
                )
            )

    def read(self, *, limit: int = 1000) -> list[HistoryRecord]:
        """The newest ``limit`` runs, oldest first (as the history file reads)."""
        q = select(canary_runs.c.record).order_by(canary_runs.c.seq.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [HistoryRecord.model_validate(r.record) for r in reversed(rows)]
