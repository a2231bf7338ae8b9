"""Canary runs indexed in the database (every replica's API and dashboard list them).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

from opslab.store.types import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "canary_runs",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("target", sa.String(2048), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("decision", sa.String(20), nullable=False),
        sa.Column("record", sa.JSON, nullable=False),
    )
    op.create_index("ix_canary_runs_started", "canary_runs", ["started_at"])


def downgrade() -> None:
    op.drop_table("canary_runs")
