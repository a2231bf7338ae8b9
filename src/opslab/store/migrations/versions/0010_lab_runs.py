"""Lab runs indexed in the database, their files in the artifact store.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

from opslab.store.types import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lab_runs",
        sa.Column("run_id", sa.String(200), primary_key=True),
        sa.Column("experiment_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("indexed_at", UTCDateTime(), nullable=False),
        sa.Column("archived", sa.JSON, nullable=False),
    )
    op.create_index("ix_lab_runs_created", "lab_runs", ["created_at"])
    op.create_index("ix_lab_runs_experiment", "lab_runs", ["experiment_id", "created_at"])


def downgrade() -> None:
    op.drop_table("lab_runs")
