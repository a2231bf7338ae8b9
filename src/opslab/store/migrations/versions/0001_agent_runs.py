"""Agent runs with their steps, tool calls and guardrail events.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from opslab.store.types import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = 200


def _run_fk() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "run_id", sa.String(ID), sa.ForeignKey("agent_runs.run_id", ondelete="CASCADE"), primary_key=True
    )


def upgrade() -> None:
    op.create_table(
        "agent_runs",
        sa.Column("run_id", sa.String(ID), primary_key=True),
        sa.Column("agent_name", sa.String(ID), nullable=False),
        sa.Column("agent_version", sa.String(ID)),
        sa.Column("model", sa.String(ID)),
        sa.Column("environment", sa.String(ID)),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime()),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("error_type", sa.Text),
        sa.Column("error_message", sa.Text),
        sa.Column("trace_id", sa.String(ID)),
        sa.Column("correlation_ids", sa.JSON, nullable=False),
        sa.Column("tokens_prompt", sa.Integer),
        sa.Column("tokens_completion", sa.Integer),
        sa.Column("total_cost_usd", sa.Float),
        sa.Column("attributes", sa.JSON, nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("ingested_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_agent_runs_started_at", "agent_runs", ["started_at", "run_id"])
    op.create_index("ix_agent_runs_agent", "agent_runs", ["agent_name", "agent_version"])
    op.create_table(
        "run_steps",
        _run_fk(),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("step_id", sa.String(ID), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_at", UTCDateTime()),
        sa.Column("ended_at", UTCDateTime()),
        sa.Column("input_summary", sa.Text),
        sa.Column("output_summary", sa.Text),
        sa.Column("retries", sa.Integer, nullable=False),
        sa.Column("latency_ms", sa.Float),
        sa.Column("agent", sa.Text),
        sa.Column("run_started_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_run_steps_window", "run_steps", ["run_started_at", "latency_ms"])
    op.create_table(
        "tool_calls",
        _run_fk(),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("call_id", sa.String(ID), nullable=False),
        sa.Column("step_id", sa.String(ID)),
        sa.Column("tool_name", sa.String(ID), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("args_json", sa.JSON),
        sa.Column("args_hash", sa.Text),
        sa.Column("result_summary", sa.Text),
        sa.Column("error_class", sa.Text),
        sa.Column("error_message", sa.Text),
        sa.Column("status_code", sa.Integer),
        sa.Column("retries", sa.Integer, nullable=False),
        sa.Column("latency_ms", sa.Float),
        sa.Column("started_at", UTCDateTime()),
        sa.Column("ended_at", UTCDateTime()),
        sa.Column("run_started_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_tool_calls_failing", "tool_calls", ["status", "run_started_at", "tool_name"])
    op.create_table(
        "guardrail_events",
        _run_fk(),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("event_id", sa.String(ID), nullable=False),
        sa.Column("type", sa.String(ID), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("step_id", sa.String(ID)),
        sa.Column("call_id", sa.String(ID)),
        sa.Column("created_at", UTCDateTime()),
    )
    op.create_table(
        "otel_spans",
        sa.Column("trace_id", sa.String(64), primary_key=True),
        sa.Column("span_id", sa.String(64), primary_key=True),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    for table in ("otel_spans", "guardrail_events", "tool_calls", "run_steps", "agent_runs"):
        op.drop_table(table)
