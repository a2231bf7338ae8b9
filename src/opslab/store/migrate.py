"""Alembic migrations, applied programmatically (``opslab db upgrade`` and on ``opslab serve``).

A database already at the newest revision is recognised with one query, without loading Alembic (a third
of a second at every CLI start): the revision files are named after their ids (``0012_….py``), so the
newest is the highest prefix (a test holds this to Alembic's own head).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from opslab.errors import Unavailable
from opslab.store.engine import write_tx

MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK_KEY = 7_130_001  # one advisory lock id, so concurrent starters migrate one at a time


if TYPE_CHECKING:
    from alembic.config import Config


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Bring the schema to ``revision``; safe when several processes start at once. A database that cannot
    be reached is ``Unavailable``, naming it (password hidden) and the setting."""
    _reachable(engine)
    if revision == "head" and (newest := newest_revision()) == _stored_revision(engine):
        return newest
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    cfg = alembic_config()
    with write_tx(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        return MigrationContext.configure(conn).get_current_revision()


def _reachable(engine: Engine) -> None:
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        where = engine.url.render_as_string(hide_password=True)
        raise Unavailable(
            f"the database {where} cannot be reached ({reason}): check OPSLAB_DATABASE_URL (or DATABASE_URL)",
            details={"database": where},
        ) from None


def newest_revision() -> str:
    """The newest revision's id, from the revision files' names."""
    return max(p.name.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))


def _stored_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()
    except (OperationalError, ProgrammingError):  # no alembic_version table: a new database
        return None


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
