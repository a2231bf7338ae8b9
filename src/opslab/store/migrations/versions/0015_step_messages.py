"""An LLM step's kind, model, token counts and messages (the agent-run schema's version 2).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("run_steps") as batch:
        batch.add_column(sa.Column("kind", sa.String(40)))
        batch.add_column(sa.Column("model", sa.String(200)))
        batch.add_column(sa.Column("tokens_prompt", sa.Integer))
        batch.add_column(sa.Column("tokens_completion", sa.Integer))
        batch.add_column(sa.Column("messages", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("run_steps") as batch:
        for name in ("messages", "tokens_completion", "tokens_prompt", "model", "kind"):
            batch.drop_column(name)
