"""The floor of OTLP ingest *with the store's schema*: the exports written as the rows ``opslab`` keeps for
them (a trace's spans as one JSON array, the run its root span starts, a step per other span) into the
store's own tables, migrated, with their keys and indexes, by the least Python that can make those rows:
raw sqlite3 ``executemany``, a transaction per export, NULL columns left out as ``store.bulk`` does.

No conventions, no redaction, no validation, no late spans merged into stored traces: it is not an
ingest path, it says what the three tables alone cost, beside the acceptance check's floor of one row per
span in a table without keys (``_otlp_payload.floor_rows``) and the service measured in the same round.
"""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from pydantic_core import to_json

from opslab.store import make_engine, upgrade
from opslab.store.engine import WAL_CHECKPOINT_BYTES

_RUN_COLUMNS = (
    "run_id, agent_name, started_at, ended_at, status, trace_id, correlation_ids, attributes, source, "
    "content_hash, ingested_at"
)
_STEP_COLUMNS = (
    "run_id, seq, step_id, name, status, started_at, ended_at, retries, latency_ms, run_started_at, kind"
)


def _when(ns: int) -> str:
    """Nanoseconds as the text the store's SQLite columns hold (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC): the
    date and time formatted once per second (the spans of an export share a few), the microseconds
    appended, as the least work a writer could do."""
    second, micros = divmod(ns // 1000, 1_000_000)
    head = _SECONDS.get(second)
    if head is None:
        if len(_SECONDS) > 4096:
            _SECONDS.clear()
        head = _SECONDS[second] = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"{head}.{micros:06d}"


_SECONDS: dict[int, str] = {}


def schema_floor(bodies: list[bytes], workdir: Path | None = None) -> dict[str, Any]:
    """``bodies`` written as the store's rows by a minimal writer (see the module docstring), into
    ``workdir``/opslab.db (kept), else a temporary database."""
    if workdir is not None:
        return _measure(bodies, workdir / "opslab.db")
    with tempfile.TemporaryDirectory(prefix="opslab-bench-otlp-schema-") as tmp:
        return _measure(bodies, Path(tmp) / "opslab.db")


def _measure(bodies: list[bytes], path: Path) -> dict[str, Any]:
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    db = sqlite3.connect(path, isolation_level=None)
    page_size = db.execute("PRAGMA page_size").fetchone()[0]  # the store's, as it made the database
    for pragma in (
        "journal_mode=WAL",
        "synchronous=NORMAL",
        f"wal_autocheckpoint={WAL_CHECKPOINT_BYTES // page_size}",
    ):
        db.execute(f"PRAGMA {pragma}")
    db.execute("PRAGMA foreign_keys=ON")
    start, spans = time.perf_counter(), 0
    for body in bodies:
        spans += _write(db, body)
    wall = time.perf_counter() - start
    db.close()
    return {"spans": spans, "wall_s": round(wall, 3), "spans_per_s": round(spans / wall, 1)}


def _write(db: sqlite3.Connection, body: bytes) -> int:
    req = ExportTraceServiceRequest.FromString(body)
    traces: dict[str, list[Any]] = {}
    count = 0
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            for s in ss.spans:
                traces.setdefault(s.trace_id.hex(), []).append(s)
                count += 1
    now = _when(time.time_ns())
    trace_rows, run_rows, step_rows = [], [], []
    for trace_id, members in traces.items():
        payload = [
            {
                "trace_id": trace_id,
                "span_id": s.span_id.hex(),
                "parent_span_id": s.parent_span_id.hex() or None,
                "name": s.name,
                "start_ns": s.start_time_unix_nano,
                "end_ns": s.end_time_unix_nano,
                "attributes": {a.key: a.value.string_value for a in s.attributes},
                "error": s.status.code == 2,
            }
            for s in members
        ]
        trace_rows.append((trace_id, to_json(payload).decode(), now))
        root = next((p for p in payload if p["parent_span_id"] is None), payload[0])
        run_at = _when(root["start_ns"])
        steps = sorted((p for p in payload if p is not root), key=lambda p: (p["start_ns"], p["span_id"]))
        mine = [
            (
                trace_id,
                seq,
                p["span_id"],
                p["name"],
                "failure" if p["error"] else "success",
                _when(p["start_ns"]),
                _when(p["end_ns"]),
                0,
                (p["end_ns"] - p["start_ns"]) / 1e6,
                run_at,
                "llm",
            )
            for seq, p in enumerate(steps)
        ]
        step_rows += mine
        run_rows.append(
            (
                trace_id,
                root["name"],
                run_at,
                _when(root["end_ns"]),
                "failure" if root["error"] else "success",
                trace_id,
                "[]",
                '{"otel": {}}',
                "otlp",
                hashlib.sha256(to_json(mine)).hexdigest(),
                now,
            )
        )
    db.execute("BEGIN IMMEDIATE")
    db.executemany("INSERT INTO otel_traces (trace_id, spans, received_at) VALUES (?, ?, ?)", trace_rows)
    db.executemany(f"INSERT INTO agent_runs ({_RUN_COLUMNS}) VALUES ({', '.join('?' * 11)})", run_rows)
    db.executemany(f"INSERT INTO run_steps ({_STEP_COLUMNS}) VALUES ({', '.join('?' * 11)})", step_rows)
    db.execute("COMMIT")
    return count
