"""Job events: every progress event of a job, so a client that connects late replays it from the first.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from opslab.store.types import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_events",
        sa.Column("job_id", sa.String(36), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("step", sa.Text, nullable=False),
        sa.Column("pct", sa.Float, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    # Jobs from before this revision keep their last state as their one event.
    op.execute(
        "INSERT INTO job_events (job_id, seq, status, step, pct, message, updated_at) "
        "SELECT id, seq, status, step, pct, message, updated_at FROM jobs"
    )


def downgrade() -> None:
    op.drop_table("job_events")
