"""Jobs: persisted state and progress of long work (RCA, canary, lab runs …).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from opslab.store.types import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ID = 200
LIVE = "status != 'failed' AND dedupe_key IS NOT NULL"


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("pct", sa.Float, nullable=False),
        sa.Column("step", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("result", sa.JSON),
        sa.Column("error", sa.JSON),
        sa.Column("subject", sa.String(ID)),
        sa.Column("dedupe_key", sa.String(ID)),
        sa.Column("idempotency_key", sa.String(ID)),
        sa.Column("owner", sa.String(ID)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime()),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("heartbeat_at", UTCDateTime()),
    )
    op.create_index("ix_jobs_subject", "jobs", ["kind", "subject", "created_at"])
    op.create_index("ix_jobs_status", "jobs", ["status", "heartbeat_at"])
    op.create_index("uq_jobs_idempotency", "jobs", ["kind", "idempotency_key"], unique=True)
    op.create_index(
        "uq_jobs_dedupe_live",
        "jobs",
        ["kind", "dedupe_key"],
        unique=True,
        sqlite_where=sa.text(LIVE),
        postgresql_where=sa.text(LIVE),
    )


def downgrade() -> None:
    op.drop_table("jobs")
