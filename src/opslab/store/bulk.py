"""Rows written in bulk, straight on the driver (SQLite: statements of many rows; elsewhere
``executemany``), values converted once per batch."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from itertools import chain, repeat
from operator import is_not, itemgetter
from typing import Any

from pydantic_core import from_json, to_json
from sqlalchemy import Connection, Table

Row = tuple[Any, ...]
DatetimeParam = Callable[[datetime | None], Any]


def json_param(value: Any) -> str | None:
    return None if value is None else to_json(value).decode()


def datetime_param(dialect: str, values: Iterable[datetime | None] = ()) -> DatetimeParam:
    """How a datetime is bound: as is (PostgreSQL), or as the text SQLAlchemy's SQLite DATETIME type
    writes (naive UTC, ``YYYY-MM-DD HH:MM:SS.ffffff``), so both write paths read back alike.

    On SQLite ``values`` (the batch's timestamps) are formatted together, by pydantic-core's serializer
    in one call, rather than one ``isoformat`` (and ``utcoffset``) each: they are most of the per-row
    work."""
    if dialect != "sqlite":
        return lambda value: value
    present = [v for v in values if v is not None]
    # ["2024-01-15T10:30:00Z", "2024-01-15T10:30:00.100000Z", ...]: when every one is in UTC (the
    # usual case), one replace over the whole array makes them "2024-01-15 10:30:00[.100000]".
    texts = to_json(present)
    known: dict[int, str] = (
        dict(zip(map(id, present), from_json(texts.replace(b"T", b" ").replace(b"Z", b"")), strict=True))
        if texts.count(b"Z") == len(present)
        else {}
    )

    def sqlite_text(value: datetime | None) -> str | None:
        if value is None:
            return None
        found = known.get(id(value))
        if found is not None:
            return found if len(found) == 26 else f"{found}.000000"
        if value.utcoffset():
            value = value.astimezone(UTC)
        return value.isoformat(sep=" ", timespec="microseconds")[:26]

    return sqlite_text


# Rows of one table with the same columns present: (table name, those columns, the rows of their values).
Batch = tuple[str, tuple[str, ...], list[Row]]


def bulk_insert(*, conn: Connection, table: Table, rows: Sequence[Row]) -> None:
    """``executemany`` straight on the driver, rows as tuples in the table's column order (``batches``)."""
    insert_batches(conn, batches(table, rows))


def batches(table: Table, rows: Sequence[Row]) -> list[Batch]:
    """``rows`` grouped for the driver (``insert_batches``), each value converted already
    (``datetime_param``, ``json_param``).

    Core's per-value bind processing costs several times the database's own insert time on
    ingest-sized batches, hence the driver itself. A NULL is not bound at all: rows are grouped by which
    of their values are NULL, and each group's statement names only the others (a column left out is
    NULL, none having a server default), which spares the driver a third of its binding on sparse
    tables such as ``run_steps``. Made apart from the statement's execution, so that another process
    may group the rows it made (``store.traces``).
    """
    if not rows:
        return []
    names = tuple(c.name for c in table.columns)
    if len(rows[0]) != len(names):
        raise ValueError(f"{table.name}: rows have {len(rows[0])} values for {len(names)} columns")
    omissible = [c.nullable and c.server_default is None for c in table.columns]
    if not any(omissible):
        return [(table.name, names, list(rows))]
    groups: dict[tuple[bool, ...], list[Row]] = {}
    for row in rows:
        groups.setdefault(tuple(map(is_not, row, _NONES)), []).append(row)
    out: list[Batch] = []
    for present, group in groups.items():
        keep = [
            i
            for i, (there, optional) in enumerate(zip(present, omissible, strict=True))
            if there or not optional
        ]
        if len(keep) < len(names):
            pick = itemgetter(*keep)  # len(keep) > 1: every table has two columns that are never NULL
            group = [pick(row) for row in group]
        out.append((table.name, tuple(names[i] for i in keep), group))
    return out


# Rows of one SQLite statement at most: past a few hundred, more gain nothing (and cost a longer SQL text).
SQLITE_ROWS = 500


def insert_batches(conn: Connection, grouped: Iterable[Batch]) -> None:
    """Each batch's rows inserted: on SQLite as statements of many rows each (``INSERT … VALUES (…),
    (…), …``, up to ``SQLITE_ROWS`` rows and the connection's limit of bound values), which SQLite
    inserts ~20 % faster than the same rows one ``executemany`` step each; elsewhere by the driver's
    ``executemany`` (psycopg pipelines it)."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    for table, columns, rows in grouped:
        head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
        one = f"({', '.join([mark] * len(columns))})"
        if conn.dialect.name != "sqlite":
            conn.exec_driver_sql(head + one, rows)
            continue
        per = max(1, min(SQLITE_ROWS, _sqlite_variables(conn) // len(columns)))
        for start in range(0, len(rows), per):
            chunk = rows[start : start + per]
            conn.exec_driver_sql(head + ", ".join([one] * len(chunk)), tuple(chain.from_iterable(chunk)))


def _sqlite_variables(conn: Connection) -> int:
    """How many values one statement may bind on this connection (SQLite's build decides)."""
    driver: sqlite3.Connection = conn.connection.dbapi_connection  # type: ignore[assignment]
    return driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)


_NONES = repeat(None)
