"""Covering indexes the fleet series walks on SQLite for its cost by model and by agent.

SQLite has no hash aggregate: a GROUP BY that does not follow an index sorts every run of the window.
These let it step from one model (agent) to the next and sum each one's runs in the window as a range.
PostgreSQL hashes and does not read them, but gets them too: one schema, the same on both databases.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-25
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_agent_runs_model_cost", "agent_runs", ["model", "started_at", "total_cost_usd"])
    op.create_index("ix_agent_runs_agent_cost", "agent_runs", ["agent_name", "started_at", "total_cost_usd"])


def downgrade() -> None:
    op.drop_index("ix_agent_runs_agent_cost", table_name="agent_runs")
    op.drop_index("ix_agent_runs_model_cost", table_name="agent_runs")
