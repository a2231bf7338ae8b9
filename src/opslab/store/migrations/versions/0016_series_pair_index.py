"""One covering index for the fleet series on SQLite, in place of 0014's two.

The series sums every (bucket, model, agent) cell of its window as one range of
``(model, agent_name, started_at, status, total_cost_usd)``, reading each run once, and walks the stored
(model, agent) pairs on the same index. 0014's per-model and per-agent indexes read the window once for
each; nothing else reads them. PostgreSQL hashes and reads none of these, but gets it too: one schema,
the same on both databases.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-25
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_agent_runs_pair", "agent_runs", ["model", "agent_name", "started_at", "status", "total_cost_usd"]
    )
    op.drop_index("ix_agent_runs_agent_cost", table_name="agent_runs")
    op.drop_index("ix_agent_runs_model_cost", table_name="agent_runs")


def downgrade() -> None:
    op.create_index("ix_agent_runs_model_cost", "agent_runs", ["model", "started_at", "total_cost_usd"])
    op.create_index("ix_agent_runs_agent_cost", "agent_runs", ["agent_name", "started_at", "total_cost_usd"])
    op.drop_index("ix_agent_runs_pair", table_name="agent_runs")
