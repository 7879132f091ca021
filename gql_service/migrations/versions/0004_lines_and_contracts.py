"""quote and opportunity lines, project contracts and their lines, calculated revenue

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

Lines share one shape (models.Line). An opportunity's estimated revenue is the sum of its lines
while ``is_revenue_system_calculated`` is true; existing opportunities keep their entered value.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)
# Money is exact: NUMERIC on PostgreSQL, text on SQLite (whose NUMERIC affinity is a float).
MONEY = sa.Numeric(19, 4).with_variant(sa.String(40), "sqlite")


def _line_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("billing_method", sa.String(length=17), nullable=False),
        sa.Column("transaction_class", sa.String(length=16), nullable=True),
        sa.Column("quantity", MONEY, nullable=False),
        sa.Column("unit_price", MONEY, nullable=False),
        sa.Column("discount", MONEY, nullable=True),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("modified_at", TIMESTAMP, nullable=False),
        sa.Column("modified_by", sa.String(length=200), nullable=False),
    ]


def upgrade() -> None:
    with op.batch_alter_table("opportunity", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "is_revenue_system_calculated",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
            )
        )
    op.create_table(
        "quote_line",
        *_line_columns(),
        sa.Column("quote_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["quote_id"], ["quote.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_quote_line_quote_id"), "quote_line", ["quote_id"], unique=False)
    op.create_table(
        "opportunity_line",
        *_line_columns(),
        sa.Column("opportunity_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["opportunity_id"], ["opportunity.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_opportunity_line_opportunity_id"),
        "opportunity_line",
        ["opportunity_id"],
        unique=False,
    )
    op.create_table(
        "project_contract",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contract_number", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("customer_name", sa.String(length=200), nullable=False),
        sa.Column("currency_code", sa.String(length=3), nullable=False),
        sa.Column("total_amount", MONEY, nullable=True),
        sa.Column("opportunity_id", sa.Integer(), nullable=False),
        sa.Column("quote_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("modified_at", TIMESTAMP, nullable=False),
        sa.Column("modified_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["opportunity_id"], ["opportunity.id"]),
        sa.ForeignKeyConstraint(["quote_id"], ["quote.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("contract_number"),
        sa.UniqueConstraint("quote_id"),
    )
    op.create_index(
        op.f("ix_project_contract_opportunity_id"),
        "project_contract",
        ["opportunity_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_project_contract_created_at"), "project_contract", ["created_at"], unique=False
    )
    op.create_table(
        "contract_line",
        *_line_columns(),
        sa.Column("contract_id", sa.Integer(), nullable=False),
        sa.Column("quote_line_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["contract_id"], ["project_contract.id"]),
        sa.ForeignKeyConstraint(["quote_line_id"], ["quote_line.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_contract_line_contract_id"), "contract_line", ["contract_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_contract_line_contract_id"), table_name="contract_line")
    op.drop_table("contract_line")
    op.drop_index(op.f("ix_project_contract_created_at"), table_name="project_contract")
    op.drop_index(op.f("ix_project_contract_opportunity_id"), table_name="project_contract")
    op.drop_table("project_contract")
    op.drop_index(op.f("ix_opportunity_line_opportunity_id"), table_name="opportunity_line")
    op.drop_table("opportunity_line")
    op.drop_index(op.f("ix_quote_line_quote_id"), table_name="quote_line")
    op.drop_table("quote_line")
    with op.batch_alter_table("opportunity", schema=None) as batch_op:
        batch_op.drop_column("is_revenue_system_calculated")
