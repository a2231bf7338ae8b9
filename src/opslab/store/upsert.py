"""Writing runs: one upsert per batch (replace a run and its children), rows bound in bulk through the
driver's executemany, values converted once per batch."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic_core import from_json, to_json
from sqlalchemy import Connection, Table, delete, select

from opslab.store.locks import RUNS, lock_keys
from opslab.store.tables import CHILD_TABLES, agent_runs, guardrail_events, run_steps, run_tags, tool_calls
from opslab.telemetry import AgentRunIn, PreparedRun, StepIn, UpsertStatus

_CHUNK = 500


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def upsert_runs(*, conn: Connection, runs: Sequence[PreparedRun]) -> dict[str, UpsertStatus]:
    ids = [p.run.run_id for p in runs]
    lock_keys(conn=conn, kind=RUNS, keys=ids)  # before reading which exist: see store.locks
    existing: set[str] = set()
    for chunk in _chunks(ids):
        existing.update(conn.scalars(select(agent_runs.c.run_id).where(agent_runs.c.run_id.in_(chunk))))
    if existing:
        for chunk in _chunks(sorted(existing)):
            for table in (*CHILD_TABLES, agent_runs):
                conn.execute(delete(table).where(table.c.run_id.in_(chunk)))
    dt = _datetime_param(conn, [p.run for p in runs])
    js = _json_param
    now = dt(datetime.now(UTC))
    run_rows: list[tuple[Any, ...]] = []
    step_rows: list[tuple[Any, ...]] = []
    call_rows: list[tuple[Any, ...]] = []
    guard_rows: list[tuple[Any, ...]] = []
    tag_rows: list[tuple[Any, ...]] = []
    # Tuples in each table's column order (tables.py); checked by bulk_insert.
    for p in runs:
        r, rid = p.run, p.run.run_id
        run_at = dt(r.started_at)
        run_rows.append(
            (
                rid,
                r.agent_name,
                r.agent_version,
                r.model,
                r.environment,
                run_at,
                dt(r.ended_at),
                r.status,
                r.error_type,
                r.error_message,
                r.trace_id,
                js(r.correlation_ids),
                r.cost.tokens_prompt,
                r.cost.tokens_completion,
                r.cost.total_cost_usd,
                js(r.attributes),
                p.source,
                p.content_hash,
                now,
                r.session_id,
                r.user_id,
                js(r.tags) if r.tags else None,
                js(r.metadata) if r.metadata else None,
                r.input,
                r.output,
            )
        )
        if r.tags:
            tag_rows.extend((rid, tag) for tag in r.tags)
        step_rows.extend(
            (
                rid,
                seq,
                s.step_id,
                s.name,
                s.status,
                dt(s.started_at),
                dt(s.ended_at),
                s.input_summary,
                s.output_summary,
                s.retries,
                s.latency_ms,
                s.agent,
                run_at,
                s.kind,
                s.model,
                s.tokens_prompt,
                s.tokens_completion,
                _messages(s),
            )
            for seq, s in enumerate(r.steps)
        )
        call_rows.extend(
            (
                rid,
                seq,
                c.call_id,
                c.step_id,
                c.tool_name,
                c.status,
                js(c.args_json),
                c.args_hash,
                c.result_summary,
                c.error_class,
                c.error_message,
                c.status_code,
                c.retries,
                c.latency_ms,
                dt(c.started_at),
                dt(c.ended_at),
                run_at,
            )
            for seq, c in enumerate(r.tool_calls)
        )
        guard_rows.extend(
            (rid, seq, g.event_id, g.type, g.message, g.step_id, g.call_id, dt(g.created_at))
            for seq, g in enumerate(r.guardrail_events)
        )
    for table, rows in (
        (agent_runs, run_rows),
        (run_steps, step_rows),
        (tool_calls, call_rows),
        (guardrail_events, guard_rows),
        (run_tags, tag_rows),
    ):
        bulk_insert(conn=conn, table=table, rows=rows)
    return {i: ("updated" if i in existing else "created") for i in ids}


def drop_stale_trace_runs(*, conn: Connection, trace_ids: Sequence[str], keep: set[str]) -> list[str]:
    """Remove the OTLP runs of these traces that they no longer make (a late parent span merged them)."""
    stale: list[str] = []
    for chunk in _chunks(sorted(set(trace_ids))):
        found = conn.scalars(
            select(agent_runs.c.run_id).where(agent_runs.c.trace_id.in_(chunk), agent_runs.c.source == "otlp")
        )
        stale.extend(r for r in found if r not in keep)
    for chunk in _chunks(stale):
        for table in (*CHILD_TABLES, agent_runs):
            conn.execute(delete(table).where(table.c.run_id.in_(chunk)))
    return stale


def bulk_insert(*, conn: Connection, table: Table, rows: Sequence[tuple[Any, ...]]) -> None:
    """``executemany`` straight on the driver, rows as tuples in the table's column order.

    Core's per-value bind processing costs several times the database's own insert time on
    ingest-sized batches; callers convert values once with ``_datetime_param``/``_json_param``.
    """
    if not rows:
        return
    names = [c.name for c in table.columns]
    if len(rows[0]) != len(names):
        raise ValueError(f"{table.name}: rows have {len(rows[0])} values for {len(names)} columns")
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join([mark] * len(names))})"
    conn.exec_driver_sql(sql, list(rows))


def _datetime_param(conn: Connection, runs: Sequence[AgentRunIn] = ()) -> Callable[[datetime | None], Any]:
    """How a datetime is bound: as is (PostgreSQL), or as the text SQLAlchemy's SQLite DATETIME type
    writes (naive UTC, ``YYYY-MM-DD HH:MM:SS.ffffff``), so both write paths read back alike.

    On SQLite the timestamps of ``runs`` are formatted together, by pydantic-core's serializer in one
    call, rather than one ``isoformat`` (and ``utcoffset``) each: they are most of the per-row work."""
    if conn.dialect.name != "sqlite":
        return lambda value: value
    values = [v for run in runs for v in _timestamps(run) if v is not None]
    known: dict[int, str] = {}
    for value, text in zip(values, from_json(to_json(values)), strict=True):
        # "2024-01-15T10:30:00Z" or "2024-01-15T10:30:00.100000Z"; an offset other than Z: below
        if text[-1] == "Z":
            known[id(value)] = f"{text[:10]} {text[11:19]}{text[19:-1] or '.000000'}"

    def sqlite_text(value: datetime | None) -> str | None:
        if value is None:
            return None
        found = known.get(id(value))
        if found is not None:
            return found
        if value.utcoffset():
            value = value.astimezone(UTC)
        return value.isoformat(sep=" ", timespec="microseconds")[:26]

    return sqlite_text


def _timestamps(run: AgentRunIn) -> Iterator[datetime | None]:
    yield run.started_at
    yield run.ended_at
    for s in run.steps:
        yield s.started_at
        yield s.ended_at
    for c in run.tool_calls:
        yield c.started_at
        yield c.ended_at
    for g in run.guardrail_events:
        yield g.created_at


def _messages(step: StepIn) -> str | None:
    """An LLM step's messages as the ``messages`` column holds them (NULL for a step without any)."""
    if not step.input_messages and not step.output_messages:
        return None
    return _json_param(
        {
            "input": [m.model_dump(exclude_defaults=True) for m in step.input_messages],
            "output": [m.model_dump(exclude_defaults=True) for m in step.output_messages],
        }
    )


def _json_param(value: Any) -> str | None:
    return None if value is None else to_json(value).decode()
