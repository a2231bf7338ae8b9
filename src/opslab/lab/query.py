"""SQL over a run's analysis tables (``opslab lab query RUN_DIR "SQL"``), in an in-memory DuckDB.

The tables are loaded with the same DDL as the run's ``tables/load_duckdb.sql`` (``analysis.load_sql``),
pointed at the run's folder, so the query works from any directory and needs no DuckDB CLI. Nothing is
written: the database lives for one query.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, JsonValue

from opslab.errors import InvalidInput, NotFound, Unavailable
from opslab.lab.analysis import TABLES, load_sql

INSTALL_HINT = "pip install duckdb (or reinstall opslab: DuckDB is one of its dependencies)"


class QueryResult(BaseModel):
    """The columns and rows a query returned (values as JSON: dates and decimals as strings)."""

    sql: str
    columns: list[str]
    rows: list[list[JsonValue]]

    def records(self) -> list[dict[str, JsonValue]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def _json(value: Any) -> JsonValue:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time | dt.timedelta | uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def tables_dir(run_dir: Path) -> Path:
    """The run's ``analysis/tables`` folder, or ``NotFound`` naming what is missing."""
    if not run_dir.is_dir():
        raise NotFound(f"RUN_DIR: no run directory at {run_dir}", details={"field": "RUN_DIR"})
    folder = run_dir / "analysis" / "tables"
    missing = [name for name in TABLES if not (folder / f"{name}.jsonl").is_file()]
    if missing:
        raise NotFound(
            f"RUN_DIR: {folder} lacks {', '.join(missing)}.jsonl: has the run finished? "
            "(`opslab lab run … --resume RUN_ID` analyses it)",
            details={"field": "RUN_DIR", "missing": missing},
        )
    return folder


def query_run(run_dir: Path, sql: str) -> QueryResult:
    """Run ``sql`` against the run's tables (``trials``, ``metrics_long``, ``event_counts_by_trial``,
    ``event_counts_by_variant``, ``variant_summary``); bad SQL is ``InvalidInput`` on ``sql``."""
    folder = tables_dir(run_dir)
    if not sql.strip():
        raise InvalidInput.for_field("sql", "empty query")
    try:
        import duckdb
    except ImportError:
        raise Unavailable(f"opslab lab query needs DuckDB: {INSTALL_HINT}") from None
    con = duckdb.connect(":memory:")
    try:
        con.execute(load_sql(str(folder.resolve())))
        try:
            cur = con.execute(sql)
        except duckdb.Error as exc:
            raise InvalidInput.for_field("sql", str(exc).strip(), sql=sql) from None
        columns = [d[0] for d in cur.description] if cur.description else []
        rows = [[_json(v) for v in row] for row in cur.fetchall()] if columns else []
    finally:
        con.close()
    return QueryResult(sql=sql, columns=columns, rows=rows)
