"""Scores (feedback) on runs: kept apart from the run's row, so a re-ingest of the run keeps them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Connection, func, insert, select

from opslab.store.locks import RUNS, lock_keys
from opslab.store.tables import agent_runs, run_scores
from opslab.telemetry import ScoreIn, ScoreStat, ScoreView


def add_score(*, conn: Connection, run_id: str, score: ScoreIn) -> ScoreView | None:
    lock_keys(conn=conn, kind=RUNS, keys=[run_id])  # a re-ingest replacing the run waits, or we do
    if conn.scalar(select(agent_runs.c.run_id).where(agent_runs.c.run_id == run_id)) is None:
        return None
    view = ScoreView(
        score_id=str(uuid.uuid4()),
        run_id=run_id,
        name=score.name,
        value=float(score.value),
        comment=score.comment,
        source=score.source,
        created_at=datetime.now(UTC),
    )
    conn.execute(insert(run_scores).values(**view.model_dump()))
    return view


def scores_of(*, conn: Connection, run_ids: Sequence[str]) -> dict[str, list[ScoreView]]:
    out: dict[str, list[ScoreView]] = {}
    if not run_ids:
        return out
    rows = conn.execute(
        select(run_scores).where(run_scores.c.run_id.in_(run_ids)).order_by(run_scores.c.created_at)
    )
    for r in rows:
        out.setdefault(r.run_id, []).append(ScoreView.model_validate(dict(r._mapping)))
    return out


def score_stats(*, conn: Connection, since: datetime) -> list[ScoreStat]:
    """Each score name over the runs started since ``since``: count, mean, min, max."""
    rows = conn.execute(
        select(
            run_scores.c.name,
            func.count(),
            func.avg(run_scores.c.value),
            func.min(run_scores.c.value),
            func.max(run_scores.c.value),
        )
        .join(agent_runs, agent_runs.c.run_id == run_scores.c.run_id)
        .where(agent_runs.c.started_at >= since)
        .group_by(run_scores.c.name)
        .order_by(run_scores.c.name)
    )
    return [
        ScoreStat(name=n, count=c, mean=round(float(m), 6), min=float(lo), max=float(hi))
        for n, c, m, lo, hi in rows
    ]
