"""opportunities by state and estimated close date

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27

One index serves the list of open opportunities by estimated close date (the bench's R2) as an
index scan that stops after the page, instead of sorting every open opportunity. It starts with
state, so it also serves every look-up that ix_opportunity_state served, and replaces it (one
index less to write when an opportunity is closed).
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("opportunity", schema=None) as batch_op:
        batch_op.create_index(
            "ix_opportunity_state_close_date",
            ["state", "estimated_close_date", "id"],
            unique=False,
        )
        batch_op.drop_index(batch_op.f("ix_opportunity_state"))


def downgrade() -> None:
    with op.batch_alter_table("opportunity", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_opportunity_state"), ["state"], unique=False)
        batch_op.drop_index("ix_opportunity_state_close_date")
