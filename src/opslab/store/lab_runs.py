"""The index of archived lab runs: one row a run (its listing as JSON beside the columns a list orders
and filters on); indexing a run again replaces its row."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, delete, func, insert, select

from opslab.lab import ArchivedRun
from opslab.store.engine import write_tx
from opslab.store.tables import lab_runs


class SqlLabRunIndex:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def put(self, run: ArchivedRun) -> None:
        with write_tx(self.engine) as conn:
            conn.execute(delete(lab_runs).where(lab_runs.c.run_id == run.run_id))
            conn.execute(
                insert(lab_runs).values(
                    run_id=run.run_id,
                    experiment_id=run.experiment_id,
                    status=run.manifest.status,
                    created_at=run.manifest.created_at,
                    indexed_at=datetime.now(UTC),
                    archived=run.model_dump(mode="json"),
                )
            )

    def get(self, run_id: str) -> ArchivedRun | None:
        if "\x00" in run_id:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(select(lab_runs.c.archived).where(lab_runs.c.run_id == run_id)).first()
        return ArchivedRun.model_validate(row.archived) if row else None

    def list(
        self, *, experiment: str | None = None, offset: int = 0, limit: int = 50
    ) -> tuple[int, list[ArchivedRun]]:
        """How many runs there are, and the page of them, newest first."""
        if experiment is not None and "\x00" in experiment:
            return 0, []  # names no experiment (and PostgreSQL refuses it in a query)
        q = select(lab_runs.c.archived).order_by(lab_runs.c.created_at.desc(), lab_runs.c.run_id.desc())
        n = select(func.count()).select_from(lab_runs)
        if experiment is not None:
            q = q.where(lab_runs.c.experiment_id == experiment)
            n = n.where(lab_runs.c.experiment_id == experiment)
        with self.engine.connect() as conn:
            total = int(conn.execute(n).scalar() or 0)
            rows = conn.execute(q.offset(offset).limit(limit)).all()
        return total, [ArchivedRun.model_validate(r.archived) for r in rows]
