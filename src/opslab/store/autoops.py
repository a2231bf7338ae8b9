"""AutoOps on SQLAlchemy: the optimizer's state (``autoops.BanditStateStore``) and the build log
(``autoops.BuildLog``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Engine, case, func, insert, select, update

from opslab.autoops import BuildGroup, BuildRecord, BuildStatus
from opslab.store.engine import write_tx
from opslab.store.tables import autoops_builds, autoops_state


class SqlBanditStore:
    def __init__(self, engine: Engine, *, name: str = "default") -> None:
        self.engine, self.name = engine, name

    def load(self) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(autoops_state.c.state).where(autoops_state.c.name == self.name)).first()
        return dict(row.state) if row else None

    def save(self, state: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        with write_tx(self.engine) as conn:
            found = conn.execute(
                update(autoops_state)
                .where(autoops_state.c.name == self.name)
                .values(state=state, updated_at=now)
            )
            if found.rowcount == 0:
                conn.execute(insert(autoops_state).values(name=self.name, state=state, updated_at=now))


class SqlBuildLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def append(self, record: BuildRecord) -> None:
        with write_tx(self.engine) as conn:
            conn.execute(
                insert(autoops_builds).values(
                    build_id=record.build_id,
                    at=record.at,
                    source=record.source,
                    status=record.result.status,
                    error_class=record.result.error_class,
                    action_id=record.action_id,
                    record=record.model_dump(mode="json"),
                )
            )

    def recent(self, *, limit: int = 100, status: BuildStatus | None = None) -> list[BuildRecord]:
        query = select(autoops_builds.c.record).order_by(
            autoops_builds.c.at.desc(), autoops_builds.c.build_id
        )
        if status is not None:
            query = query.where(autoops_builds.c.status == status)
        with self.engine.connect() as conn:
            rows = conn.execute(query.limit(limit)).all()
        return [BuildRecord.model_validate(r.record) for r in rows]

    def success_rates(self, *, every: int, last: int) -> list[float]:
        """Builds numbered in order, grouped ``every`` at a time from the first, each group's success rate;
        the newest ``last`` groups, oldest first (the last group may be partial)."""
        b = autoops_builds.c
        numbered = select(
            (func.row_number().over(order_by=(b.at, b.build_id)) - 1).label("n"),
            case((b.status == "success", 1.0), else_=0.0).label("ok"),
        ).subquery()
        group = (numbered.c.n // every).label("g")
        query = select(group, func.avg(numbered.c.ok)).group_by(group).order_by(group.desc()).limit(last)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [float(rate) for _, rate in reversed(rows)]

    def count(self) -> dict[str, int]:
        query = select(autoops_builds.c.status, func.count()).group_by(autoops_builds.c.status)
        with self.engine.connect() as conn:
            return {str(status): int(n) for status, n in conn.execute(query).all()}

    def tally(self, bounds: Sequence[float]) -> list[BuildGroup]:
        """Every build, grouped by status and error class, with how many took at most each bound: one
        aggregate query (what ``/metrics`` reads at each scrape)."""
        b = autoops_builds.c
        duration = b.record[("result", "duration")].as_float()
        within = [func.sum(case((duration <= bound, 1), else_=0)) for bound in bounds]
        query = select(
            b.status, b.error_class, func.count(), func.coalesce(func.sum(duration), 0.0), *within
        ).group_by(b.status, b.error_class)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            BuildGroup(
                status=cast(BuildStatus, status),
                error_class=error_class,
                count=int(n),
                duration_sum=float(total),
                within=tuple(int(w or 0) for w in counts),
            )
            for status, error_class, n, total, *counts in rows
        ]
