"""Agent-run repository: keyword-only functions over a Connection, and ``SqlRunRepository`` wrapping them
(writes in ``store.upsert``, fleet aggregates in ``store.fleet``, OTLP spans in ``store.spans``)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, or_, select

from opslab.errors import InvalidInput
from opslab.sidecar import Sidecar
from opslab.store.engine import write_tx
from opslab.store.fleet import FAILED_TOOL_STATUSES, overview, series, version_stats
from opslab.store.removal import delete_runs, runs_started_before
from opslab.store.scores import add_score, score_stats, scores_of
from opslab.store.spans import add_logs, trace_logs, trace_spans
from opslab.store.tables import agent_runs, guardrail_events, run_scores, run_steps, run_tags, tool_calls
from opslab.store.traces import ShareBalance, SharePlanner, share_work, write_traces
from opslab.store.upsert import upsert_runs
from opslab.telemetry import (
    MAX_YEAR,
    MIN_YEAR,
    AgentRunIn,
    ExportPlanner,
    FleetSeries,
    LogRecord,
    Overview,
    PreparedRun,
    RunCounts,
    RunFilter,
    RunPage,
    RunSummary,
    ScoreIn,
    ScoreView,
    Span,
    TracePlan,
    UpsertStatus,
    VersionStat,
)


def _counts_query(run_ids: Sequence[str]) -> Any:
    def count_of(table: Any, *extra: Any) -> Any:
        return (
            select(table.c.run_id, func.count().label("n"))
            .where(table.c.run_id.in_(run_ids), *extra)
            .group_by(table.c.run_id)
        )

    return {
        "steps": count_of(run_steps),
        "tool_calls": count_of(tool_calls),
        "failed_tool_calls": count_of(tool_calls, tool_calls.c.status.in_(FAILED_TOOL_STATUSES)),
        "guardrail_events": count_of(guardrail_events),
    }


def _counts(conn: Connection, run_ids: Sequence[str]) -> dict[str, RunCounts]:
    out = {rid: RunCounts() for rid in run_ids}
    for name, query in _counts_query(run_ids).items():
        for rid, n in conn.execute(query):
            setattr(out[rid], name, n)
    return out


def _summary(row: Any, counts: RunCounts, scores: list[ScoreView]) -> RunSummary:
    m = row._mapping
    return RunSummary(
        session_id=m["session_id"],
        user_id=m["user_id"],
        tags=m["tags"] or [],
        metadata=m["run_metadata"] or {},
        input=m["input_text"],
        output=m["output_text"],
        scores=scores,
        run_id=m["run_id"],
        agent_name=m["agent_name"],
        agent_version=m["agent_version"],
        model=m["model"],
        environment=m["environment"],
        started_at=m["started_at"],
        ended_at=m["ended_at"],
        status=m["status"],
        error_type=m["error_type"],
        error_message=m["error_message"],
        trace_id=m["trace_id"],
        correlation_ids=m["correlation_ids"] or [],
        total_cost_usd=m["total_cost_usd"],
        tokens_prompt=m["tokens_prompt"],
        tokens_completion=m["tokens_completion"],
        source=m["source"],
        content_hash=m["content_hash"],
        ingested_at=m["ingested_at"],
        counts=counts,
    )


def get_summary(*, conn: Connection, run_id: str) -> RunSummary | None:
    row = conn.execute(select(agent_runs).where(agent_runs.c.run_id == run_id)).first()
    if row is None:
        return None
    return _summary(
        row, _counts(conn, [run_id])[run_id], scores_of(conn=conn, run_ids=[run_id]).get(run_id, [])
    )


def load_run(*, conn: Connection, run_id: str) -> AgentRunIn | None:
    row = conn.execute(select(agent_runs).where(agent_runs.c.run_id == run_id)).first()
    if row is None:
        return None
    m = dict(row._mapping)

    def children(table: Any, drop: tuple[str, ...]) -> list[dict[str, Any]]:
        rows = conn.execute(select(table).where(table.c.run_id == run_id).order_by(table.c.seq))
        return [{k: v for k, v in r._mapping.items() if k not in drop and v is not None} for r in rows]

    common = ("run_id", "seq", "run_started_at")
    steps = children(run_steps, common)
    for step in steps:  # the messages column holds both sides of an LLM step's conversation
        messages = step.pop("messages", None) or {}
        step["input_messages"] = messages.get("input", [])
        step["output_messages"] = messages.get("output", [])
    return AgentRunIn.model_validate(
        {
            "run_id": m["run_id"],
            "agent_name": m["agent_name"],
            "agent_version": m["agent_version"],
            "model": m["model"],
            "environment": m["environment"],
            "started_at": m["started_at"],
            "ended_at": m["ended_at"],
            "status": m["status"],
            "error_type": m["error_type"],
            "error_message": m["error_message"],
            "trace_id": m["trace_id"],
            "correlation_ids": m["correlation_ids"] or [],
            "steps": steps,
            "tool_calls": children(tool_calls, common),
            "guardrail_events": children(guardrail_events, common),
            "cost": {
                "tokens_prompt": m["tokens_prompt"],
                "tokens_completion": m["tokens_completion"],
                "total_cost_usd": m["total_cost_usd"],
            },
            "attributes": m["attributes"] or {},
            "session_id": m["session_id"],
            "user_id": m["user_id"],
            "tags": m["tags"] or [],
            "metadata": m["run_metadata"] or {},
            "input": m["input_text"],
            "output": m["output_text"],
        }
    )


def encode_cursor(started_at: datetime, run_id: str) -> str:
    raw = json.dumps([started_at.isoformat(), run_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# A cursor this service issues is a few dozen characters; a longer one is not worth decoding.
MAX_CURSOR_CHARS = 1024


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    refused = InvalidInput.for_field("cursor", "not a cursor this service issued")
    if len(cursor) > MAX_CURSOR_CHARS:
        raise refused
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
        if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
            raise ValueError("a cursor is [time, run id]")
        at_text, run_id = value
        at = datetime.fromisoformat(at_text)
        if at.tzinfo is None or "\x00" in run_id:
            raise ValueError("a cursor holds an aware time and a run id")
        utc = at.astimezone(UTC)  # OverflowError at the ends of the calendar
        if not MIN_YEAR <= utc.year <= MAX_YEAR:
            raise ValueError("out of range")
        return utc, run_id
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        # RecursionError: JSON nested deeper than the parser goes.
        raise refused from exc


def _filtered(q: Any, flt: RunFilter) -> Any:
    r = agent_runs.c
    for column, value in (
        (r.status, flt.status),
        (r.agent_name, flt.agent_name),
        (r.model, flt.model),
        (r.agent_version, flt.agent_version),
        (r.environment, flt.environment),
    ):
        if value:
            q = q.where(column == value)
    if flt.since:
        q = q.where(r.started_at >= flt.since)
    if flt.until:
        q = q.where(r.started_at < flt.until)
    if flt.experiment:
        q = q.where(r.attributes["lab.experiment"].as_string() == flt.experiment)
    if flt.session_id:
        q = q.where(r.session_id == flt.session_id)
    if flt.user_id:
        q = q.where(r.user_id == flt.user_id)
    if flt.tag:
        q = q.where(r.run_id.in_(select(run_tags.c.run_id).where(run_tags.c.tag == flt.tag)))
    if flt.score:
        scored = select(run_scores.c.run_id).where(run_scores.c.name == flt.score)
        if flt.score_min is not None:
            scored = scored.where(run_scores.c.value >= flt.score_min)
        if flt.score_max is not None:
            scored = scored.where(run_scores.c.value <= flt.score_max)
        q = q.where(r.run_id.in_(scored))
    if flt.q:
        # The failed calls matching the text, found once (their status index keeps it to failed calls), not
        # a correlated subquery per run: with no match anywhere, every run is looked at (bench/ui.py).
        failed_calls = select(tool_calls.c.run_id).where(
            tool_calls.c.status.in_(FAILED_TOOL_STATUSES),
            or_(
                tool_calls.c.error_message.icontains(flt.q, autoescape=True),
                tool_calls.c.error_class.icontains(flt.q, autoescape=True),
            ),
        )
        steps = select(run_steps.c.run_id).where(
            or_(
                run_steps.c.input_summary.icontains(flt.q, autoescape=True),
                run_steps.c.output_summary.icontains(flt.q, autoescape=True),
            )
        )
        q = q.where(
            or_(
                r.error_message.icontains(flt.q, autoescape=True),
                r.error_type.icontains(flt.q, autoescape=True),
                r.input_text.icontains(flt.q, autoescape=True),
                r.output_text.icontains(flt.q, autoescape=True),
                r.run_id.in_(failed_calls),
                r.run_id.in_(steps),
            )
        )
    return q


def list_runs(*, conn: Connection, flt: RunFilter, cursor: str | None, limit: int) -> RunPage:
    q = _filtered(select(agent_runs), flt)
    if cursor:
        at, rid = decode_cursor(cursor)
        q = q.where(
            or_(agent_runs.c.started_at < at, and_(agent_runs.c.started_at == at, agent_runs.c.run_id < rid))
        )
    rows = list(
        conn.execute(q.order_by(agent_runs.c.started_at.desc(), agent_runs.c.run_id.desc()).limit(limit + 1))
    )
    page, more = rows[:limit], len(rows) > limit
    ids = [r._mapping["run_id"] for r in page]
    counts = _counts(conn, ids) if page else {}
    scores = scores_of(conn=conn, run_ids=ids)
    items = [_summary(r, counts[r._mapping["run_id"]], scores.get(r._mapping["run_id"], [])) for r in page]
    nxt = encode_cursor(items[-1].started_at, items[-1].run_id) if more and items else None
    return RunPage(items=items, next_cursor=nxt)


class SqlRunRepository:
    """``telemetry.RunRepository`` on a SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.one_writer = engine.dialect.name == "sqlite"
        self.sidecar: Sidecar | None = None
        self.share = ShareBalance()  # how much of a large export this process plans beside its sidecar

    def upsert_runs(self, runs: Sequence[PreparedRun]) -> dict[str, UpsertStatus]:
        with write_tx(self.engine) as conn:
            return upsert_runs(conn=conn, runs=runs)

    def get_summary(self, run_id: str) -> RunSummary | None:
        with self.engine.connect() as conn:
            return get_summary(conn=conn, run_id=run_id)

    def load_run(self, run_id: str) -> AgentRunIn | None:
        with self.engine.connect() as conn:
            return load_run(conn=conn, run_id=run_id)

    def list_runs(self, flt: RunFilter, *, cursor: str | None, limit: int) -> RunPage:
        with self.engine.connect() as conn:
            return list_runs(conn=conn, flt=flt, cursor=cursor, limit=limit)

    def overview(self, *, since: datetime, hours: int, top_tools: int = 5) -> Overview:
        with self.engine.connect() as conn:
            found = overview(conn=conn, since=since, hours=hours, top_tools=top_tools)
            found.scores = score_stats(conn=conn, since=since)
            return found

    def series(self, *, since: datetime, hours: int) -> FleetSeries:
        with self.engine.connect() as conn:
            return series(conn=conn, since=since, hours=hours)

    def write_traces(self, export: ExportPlanner) -> tuple[TracePlan, dict[str, UpsertStatus]]:
        with write_tx(self.engine) as conn:
            return write_traces(conn, export, self.sidecar, self.share)

    def start_sidecar(self, planner: SharePlanner) -> None:
        """Fork the sidecar that plans a share of large OTLP exports (``store.traces``); call it while
        this process runs one thread (the service's start). ``close_sidecar`` ends it."""
        if self.sidecar is None:
            self.sidecar = Sidecar(share_work(planner), name="opslab-ingest")

    def close_sidecar(self) -> None:
        if self.sidecar is not None:
            self.sidecar.close()
            self.sidecar = None

    def add_logs(self, records: Sequence[LogRecord]) -> int:
        with write_tx(self.engine) as conn:
            return add_logs(conn=conn, records=records)

    def trace_logs(self, trace_id: str, *, limit: int = 1000) -> list[LogRecord]:
        with self.engine.connect() as conn:
            return trace_logs(conn=conn, trace_id=trace_id, limit=limit)

    def add_score(self, run_id: str, score: ScoreIn) -> ScoreView | None:
        with write_tx(self.engine) as conn:
            return add_score(conn=conn, run_id=run_id, score=score)

    def trace_spans(self, trace_id: str) -> list[Span]:
        with self.engine.connect() as conn:
            return trace_spans(conn=conn, trace_id=trace_id)

    def version_stats(self, agent_name: str) -> list[VersionStat]:
        with self.engine.connect() as conn:
            return version_stats(conn=conn, agent_name=agent_name)

    def delete_runs(self, run_ids: Sequence[str]) -> list[str]:
        with write_tx(self.engine) as conn:
            return delete_runs(conn=conn, run_ids=run_ids)

    def runs_started_before(self, before: datetime, *, limit: int) -> list[str]:
        with self.engine.connect() as conn:
            return runs_started_before(conn=conn, before=before, limit=limit)
