"""Statements over many keys (run ids, trace ids), straight on the driver: ``col IN (?, ?, …)`` on SQLite,
``col = ANY(%s)`` with one array on PostgreSQL.

Core renders an expanding ``IN`` anew for every execution: ~0.3 ms of Python for 200 keys, five times
the database's own time for the statement, paid by every OTLP export and batch of runs several times over
(the stored spans of its traces, which of its runs exist, what a re-ingested run replaces).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, cast

from sqlalchemy import Connection

CHUNK = 500  # keys a statement at most: SQLite binds at most 32,766 values (fewer on old builds)


def where_in(conn: Connection, column: str, keys: Sequence[str]) -> tuple[str, tuple[Any, ...]]:
    """The condition "``column`` is one of ``keys``" and its parameters, as ``conn``'s driver takes
    them (``column`` is a name of ours, never input)."""
    if conn.dialect.name == "postgresql":
        return f"{column} = ANY(%s)", (list(keys),)
    return f"{column} IN ({', '.join('?' * len(keys))})", tuple(keys)


def chunks(keys: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(keys), CHUNK):
        yield keys[i : i + CHUNK]


def select_in(
    conn: Connection, columns: str, table: str, column: str, keys: Sequence[str], *, also: str = ""
) -> Iterable[tuple[Any, ...]]:
    """``SELECT columns FROM table WHERE column`` is one of ``keys`` (at most ``CHUNK`` of them), and
    ``also`` holds (a condition of ours, without parameters): its rows, as tuples."""
    condition, params = where_in(conn, column, keys)
    if also:
        condition = f"{condition} AND {also}"
    rows = conn.exec_driver_sql(f"SELECT {columns} FROM {table} WHERE {condition}", params)
    return cast("Iterable[tuple[Any, ...]]", rows)


def delete_in(conn: Connection, table: str, column: str, keys: Sequence[str]) -> None:
    """``DELETE FROM table WHERE column`` is one of ``keys`` (at most ``CHUNK`` of them)."""
    condition, params = where_in(conn, column, keys)
    conn.exec_driver_sql(f"DELETE FROM {table} WHERE {condition}", params)
