"""The work core: job states (succeeded, cancelling, cancelled, crashed), batches of jobs (a lab run's
trial tasks), the queue message a job rides on, and named leases.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

from opslab.store.types import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

OLD_LIVE = "status != 'failed' AND dedupe_key IS NOT NULL"
NEW_LIVE = "status NOT IN ('failed', 'cancelled', 'crashed') AND dedupe_key IS NOT NULL"


def upgrade() -> None:
    op.execute("UPDATE jobs SET status = 'succeeded' WHERE status = 'done'")
    op.execute("UPDATE job_events SET status = 'succeeded' WHERE status = 'done'")
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("group_id", sa.String(36)))
        batch.add_column(sa.Column("queue_ref", sa.String(80)))
    op.create_index("ix_jobs_group", "jobs", ["group_id", "status"])
    op.drop_index("uq_jobs_dedupe_live", table_name="jobs")
    op.create_index(
        "uq_jobs_dedupe_live",
        "jobs",
        ["kind", "dedupe_key"],
        unique=True,
        sqlite_where=sa.text(NEW_LIVE),
        postgresql_where=sa.text(NEW_LIVE),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("token", sa.Integer, nullable=False),
        sa.Column("acquired_at", UTCDateTime(), nullable=False),
        sa.Column("renewed_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("info", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_index("uq_jobs_dedupe_live", table_name="jobs")
    op.create_index(
        "uq_jobs_dedupe_live",
        "jobs",
        ["kind", "dedupe_key"],
        unique=True,
        sqlite_where=sa.text(OLD_LIVE),
        postgresql_where=sa.text(OLD_LIVE),
    )
    op.drop_index("ix_jobs_group", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("queue_ref")
        batch.drop_column("group_id")
    op.execute("UPDATE job_events SET status = 'done' WHERE status = 'succeeded'")
    op.execute("UPDATE jobs SET status = 'done' WHERE status = 'succeeded'")
