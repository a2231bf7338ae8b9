"""Alembic migrations, applied programmatically (``opslab db upgrade`` and on ``opslab serve``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from opslab.errors import Unavailable
from opslab.store.engine import write_tx

MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK_KEY = 7_130_001  # one advisory lock id, so concurrent starters migrate one at a time


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Bring the schema to ``revision``; safe when several processes start at once. A database that cannot
    be reached is ``Unavailable``, naming it (password hidden) and the setting."""
    _reachable(engine)
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


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
