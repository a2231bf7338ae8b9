"""Migration 0018 moves the spans kept one row a span (``otel_spans``) to one row a trace (``otel_traces``)
with nothing lost, on both databases, and back on a downgrade; the service reads the moved traces. Migration
0019 keeps new rows compact and writes them back in full on a downgrade."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, text

from opslab.store import SqlRunRepository
from opslab.store.engine import make_engine
from opslab.store.migrate import alembic_config, upgrade
from opslab.store.spans import add_spans
from opslab.telemetry import Span
from opslab.telemetry.exports import _spans_text
from tests.conftest import fresh_postgres_database

TRACE_A, TRACE_B = "a" * 32, "b" * 32


def _span(trace_id: str, span_id: str, parent: str | None, name: str) -> dict[str, object]:
    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": parent,
        "name": name,
        "start_ns": 1_760_000_000_000_000_000,
        "end_ns": 1_760_000_000_500_000_000,
        "attributes": {"gen_ai.operation.name": "chat" if parent else "invoke_agent"},
        "resource": {"service.name": "svc"},
        "error": False,
        "status_message": "",
        "events": [],
    }


SPANS = [
    _span(TRACE_A, "0000000000000002", "0000000000000001", "chat"),
    _span(TRACE_A, "0000000000000001", None, "invoke_agent support"),
    _span(TRACE_B, "00000000000000ff", None, "invoke_agent other"),
]


@pytest.fixture(params=["sqlite", "postgres"])
def old_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database at revision 0017 holding spans the old way."""
    sqlite = request.param == "sqlite"
    with nullcontext(f"sqlite:///{tmp_path / 'old.db'}") if sqlite else fresh_postgres_database() as url:
        engine = make_engine(url)
        upgrade(engine, "0017")
        with engine.begin() as conn:
            for i, span in enumerate(SPANS):
                conn.execute(
                    text(
                        "INSERT INTO otel_spans (trace_id, span_id, payload, received_at) "
                        "VALUES (:t, :s, :p, :at)"
                    ),
                    {
                        "t": span["trace_id"],
                        "s": span["span_id"],
                        "p": json.dumps(span),
                        "at": datetime(2026, 11, 26, 12, i, tzinfo=UTC).replace(tzinfo=None),
                    },
                )
        yield engine
        engine.dispose()


def test_spans_move_to_a_row_a_trace_and_back(old_engine: Engine) -> None:
    upgrade(old_engine)
    with old_engine.connect() as conn:
        rows = conn.execute(text("SELECT trace_id, spans FROM otel_traces ORDER BY trace_id")).all()
        assert not conn.execute(
            text("SELECT count(*) FROM information_schema.tables WHERE table_name = 'otel_spans'")
            if old_engine.dialect.name == "postgresql"
            else text("SELECT count(*) FROM sqlite_master WHERE name = 'otel_spans'")
        ).scalar()
    stored = {t: json.loads(s) if isinstance(s, str) else s for t, s in rows}
    assert list(stored) == [TRACE_A, TRACE_B]
    assert [s["span_id"] for s in stored[TRACE_A]] == ["0000000000000001", "0000000000000002"]
    assert stored[TRACE_B] == [SPANS[2]]

    repo = SqlRunRepository(old_engine)
    spans = repo.trace_spans(TRACE_A)
    assert {s.span_id for s in spans} == {"0000000000000001", "0000000000000002"}
    assert next(s for s in spans if s.parent_span_id).name == "chat"

    with old_engine.begin() as conn:
        command.downgrade(_config(conn), "0017")
    with old_engine.connect() as conn:
        back = conn.execute(text("SELECT trace_id, span_id, payload FROM otel_spans")).all()
    payloads = {(t, s): json.loads(p) if isinstance(p, str) else p for t, s, p in back}
    assert payloads == {(s["trace_id"], s["span_id"]): s for s in SPANS}


def _config(conn: Connection) -> Config:
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    return cfg


@pytest.fixture(params=["sqlite", "postgres"])
def new_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database at the head revision."""
    sqlite = request.param == "sqlite"
    with nullcontext(f"sqlite:///{tmp_path / 'new.db'}") if sqlite else fresh_postgres_database() as url:
        engine = make_engine(url)
        upgrade(engine)
        yield engine
        engine.dispose()


def test_rows_are_compact_and_a_downgrade_writes_them_in_full(new_engine: Engine) -> None:
    """Migration 0019: the store writes a trace's row compact (no trace id, no empty fields), reads it
    back whole beside rows in the full form, and a downgrade writes every row in the full form the
    code before it reads."""
    bare = Span.from_json({**SPANS[2], "resource": {}, "attributes": {}})
    spans = [Span.from_json(s) for s in SPANS[:2]]
    with new_engine.begin() as conn:
        add_spans(conn=conn, traces={TRACE_A: _spans_text({s.span_id: s for s in spans})}, stored={})
        add_spans(conn=conn, traces={TRACE_B: _spans_text({bare.span_id: bare})}, stored={})
        stored = dict(conn.execute(text("SELECT trace_id, spans FROM otel_traces")).all())
    rows = {t: json.loads(s) if isinstance(s, str) else s for t, s in stored.items()}
    assert rows[TRACE_B] == [
        {"span_id": bare.span_id, "name": bare.name, "start_ns": bare.start_ns, "end_ns": bare.end_ns}
    ]
    assert all("trace_id" not in span and "events" not in span for span in rows[TRACE_A])
    repo = SqlRunRepository(new_engine)
    by_id = {s.span_id: s for s in repo.trace_spans(TRACE_A)}
    assert by_id == {s.span_id: s for s in spans}
    assert repo.trace_spans(TRACE_B) == [bare]

    with new_engine.begin() as conn:
        command.downgrade(_config(conn), "0018")
    with new_engine.connect() as conn:
        back = dict(conn.execute(text("SELECT trace_id, spans FROM otel_traces")).all())
    full = {t: json.loads(s) if isinstance(s, str) else s for t, s in back.items()}
    assert full[TRACE_B] == [bare.to_json()]
    assert sorted(full[TRACE_A], key=lambda s: s["span_id"]) == sorted(SPANS[:2], key=lambda s: s["span_id"])
    assert all(list(span) == list(bare.to_json()) for span in full[TRACE_A])  # the old reader's keys

    upgrade(new_engine)  # full rows read as they are after an upgrade
    assert SqlRunRepository(new_engine).trace_spans(TRACE_B) == [bare]
