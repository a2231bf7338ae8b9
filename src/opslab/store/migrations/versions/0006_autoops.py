"""AutoOps: the optimizer's persisted posterior and the builds it learned from.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

from opslab.store.types import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "autoops_state",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "autoops_builds",
        sa.Column("build_id", sa.String(64), primary_key=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("error_class", sa.String(40)),
        sa.Column("action_id", sa.Integer),
        sa.Column("record", sa.JSON, nullable=False),
    )
    op.create_index("ix_autoops_builds_at", "autoops_builds", ["at", "build_id"])


def downgrade() -> None:
    op.drop_table("autoops_builds")
    op.drop_table("autoops_state")
