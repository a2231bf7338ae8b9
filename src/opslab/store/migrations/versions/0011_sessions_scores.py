"""Sessions, users, tags, metadata, input and output on runs; scores; OTLP log records.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

from opslab.store.types import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

ID = 200


def upgrade() -> None:
    with op.batch_alter_table("agent_runs") as batch:
        batch.add_column(sa.Column("session_id", sa.String(ID)))
        batch.add_column(sa.Column("user_id", sa.String(ID)))
        batch.add_column(sa.Column("tags", sa.JSON))
        batch.add_column(sa.Column("run_metadata", sa.JSON))
        batch.add_column(sa.Column("input_text", sa.Text))
        batch.add_column(sa.Column("output_text", sa.Text))
    op.create_index("ix_agent_runs_session", "agent_runs", ["session_id", "started_at"])
    op.create_index("ix_agent_runs_user", "agent_runs", ["user_id", "started_at"])
    op.create_index("ix_agent_runs_trace", "agent_runs", ["trace_id"])
    op.create_table(
        "run_tags",
        sa.Column(
            "run_id", sa.String(ID), sa.ForeignKey("agent_runs.run_id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("tag", sa.String(ID), primary_key=True),
    )
    op.create_index("ix_run_tags_tag", "run_tags", ["tag", "run_id"])
    op.create_table(
        "run_scores",
        sa.Column("score_id", sa.String(36), primary_key=True),
        sa.Column("run_id", sa.String(ID), nullable=False),
        sa.Column("name", sa.String(ID), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_run_scores_run", "run_scores", ["run_id", "created_at"])
    op.create_index("ix_run_scores_name", "run_scores", ["name", "value"])
    op.create_table(
        "otel_logs",
        sa.Column("log_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("trace_id", sa.String(64), nullable=False),
        sa.Column("span_id", sa.String(64)),
        sa.Column("at", UTCDateTime()),
        sa.Column("severity", sa.String(40), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("attributes", sa.JSON, nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_otel_logs_trace", "otel_logs", ["trace_id", "at"])


def downgrade() -> None:
    op.drop_table("otel_logs")
    op.drop_table("run_scores")
    op.drop_table("run_tags")
    for name in ("ix_agent_runs_trace", "ix_agent_runs_user", "ix_agent_runs_session"):
        op.drop_index(name, table_name="agent_runs")
    with op.batch_alter_table("agent_runs") as batch:
        for column in ("output_text", "input_text", "run_metadata", "tags", "user_id", "session_id"):
            batch.drop_column(column)
