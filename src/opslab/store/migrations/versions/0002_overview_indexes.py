"""Covering indexes for the fleet overview (window aggregates and the p95 walk).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_agent_runs_window", "agent_runs", ["started_at", "status", "total_cost_usd"])
    op.create_index("ix_run_steps_latency", "run_steps", ["latency_ms", "run_started_at"])


def downgrade() -> None:
    op.drop_index("ix_run_steps_latency", table_name="run_steps")
    op.drop_index("ix_agent_runs_window", table_name="agent_runs")
