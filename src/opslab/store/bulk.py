"""Rows written in bulk: ``executemany`` straight on the driver, values converted once per batch."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from itertools import repeat
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


def bulk_insert(*, conn: Connection, table: Table, rows: Sequence[Row]) -> None:
    """``executemany`` straight on the driver, rows as tuples in the table's column order.

    Core's per-value bind processing costs several times the database's own insert time on
    ingest-sized batches; callers convert values once (``datetime_param``, ``json_param``). A NULL is
    not bound at all: rows are grouped by which of their values are NULL, and each group's statement
    names only the others (a column left out is NULL, none having a server default), which spares the
    driver a third of its binding on sparse tables such as ``run_steps``.
    """
    if not rows:
        return
    names = [c.name for c in table.columns]
    if len(rows[0]) != len(names):
        raise ValueError(f"{table.name}: rows have {len(rows[0])} values for {len(names)} columns")
    omissible = [c.nullable and c.server_default is None for c in table.columns]
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    if not any(omissible):
        sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join([mark] * len(names))})"
        conn.exec_driver_sql(sql, list(rows))
        return
    groups: dict[tuple[bool, ...], list[Row]] = {}
    for row in rows:
        groups.setdefault(tuple(map(is_not, row, _NONES)), []).append(row)
    for present, group in groups.items():
        keep = [
            i
            for i, (there, optional) in enumerate(zip(present, omissible, strict=True))
            if there or not optional
        ]
        sql = (
            f"INSERT INTO {table.name} ({', '.join(names[i] for i in keep)}) "
            f"VALUES ({', '.join([mark] * len(keep))})"
        )
        if len(keep) < len(names):
            pick = itemgetter(*keep)  # len(keep) > 1: every table has two columns that are never NULL
            group = [pick(row) for row in group]
        conn.exec_driver_sql(sql, group)


_NONES = repeat(None)
