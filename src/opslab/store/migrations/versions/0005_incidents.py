"""Incidents and the responder's append-only audit trail.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

from opslab.store.types import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("category", sa.String(64)),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime()),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("document", sa.JSON, nullable=False),
    )
    op.create_index("ix_incidents_opened", "incidents", ["opened_at", "id"])
    op.create_index("ix_incidents_status", "incidents", ["status"])
    op.create_table(
        "responder_audit",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("incident_id", sa.String(64)),
        sa.Column("decision", sa.String(64), nullable=False),
        sa.Column("record", sa.JSON, nullable=False),
    )
    op.create_index("ix_responder_audit_incident", "responder_audit", ["incident_id", "seq"])


def downgrade() -> None:
    op.drop_table("responder_audit")
    op.drop_table("incidents")
