"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Money is exact: NUMERIC on PostgreSQL, text on SQLite (whose NUMERIC affinity is a float).
MONEY = sa.Numeric(19, 4).with_variant(sa.String(40), "sqlite")


revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "competitor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("website", sa.String(length=500), nullable=True),
        sa.Column("notes", sa.String(length=2000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "opportunity",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("customer_name", sa.String(length=200), nullable=False),
        sa.Column("currency_code", sa.String(length=3), nullable=False),
        sa.Column("estimated_revenue", MONEY, nullable=True),
        sa.Column("estimated_close_date", sa.Date(), nullable=True),
        sa.Column(
            "state",
            sa.Enum("OPEN", "WON", "LOST", name="opportunitystate", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column(
            "status_reason",
            sa.Enum(
                "IN_PROGRESS",
                "ON_HOLD",
                "WON",
                "CANCELED",
                "OUT_SOLD",
                name="opportunitystatusreason",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "forecast_category",
            sa.Enum(
                "PIPELINE",
                "BEST_CASE",
                "COMMITTED",
                "OMITTED",
                "WON",
                "LOST",
                name="forecastcategory",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("actual_revenue", MONEY, nullable=True),
        sa.Column("actual_close_date", sa.Date(), nullable=True),
        sa.Column("description", sa.String(length=2000), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("modified_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("opportunity", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_opportunity_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_opportunity_state"), ["state"], unique=False)

    op.create_table(
        "opportunity_close",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("opportunity_id", sa.Integer(), nullable=False),
        sa.Column(
            "outcome",
            sa.Enum("WON", "LOST", name="closeoutcome", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column(
            "status_reason",
            sa.Enum(
                "IN_PROGRESS",
                "ON_HOLD",
                "WON",
                "CANCELED",
                "OUT_SOLD",
                name="opportunitystatusreason",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("actual_revenue", MONEY, nullable=True),
        sa.Column("close_date", sa.Date(), nullable=False),
        sa.Column("competitor_id", sa.Integer(), nullable=True),
        sa.Column("description", sa.String(length=2000), nullable=True),
        sa.Column(
            "state",
            sa.Enum("COMPLETED", "CANCELED", name="closerecordstate", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("canceled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("canceled_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["competitor_id"],
            ["competitor.id"],
        ),
        sa.ForeignKeyConstraint(
            ["opportunity_id"],
            ["opportunity.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("opportunity_close", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_opportunity_close_opportunity_id"), ["opportunity_id"], unique=False
        )

    op.create_table(
        "quote",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("opportunity_id", sa.Integer(), nullable=False),
        sa.Column("quote_number", sa.String(length=32), nullable=False),
        sa.Column("revision_number", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("currency_code", sa.String(length=3), nullable=False),
        sa.Column("total_amount", MONEY, nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "DRAFT", "ACTIVE", "WON", "CLOSED", name="quotestate", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column(
            "status_reason",
            sa.Enum(
                "IN_PROGRESS",
                "OPEN",
                "WON",
                "LOST",
                "CANCELED",
                "REVISED",
                name="quotestatusreason",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("effective_from", sa.Date(), nullable=True),
        sa.Column("effective_to", sa.Date(), nullable=True),
        sa.Column("closed_on", sa.Date(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("modified_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["opportunity_id"],
            ["opportunity.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("quote_number", "revision_number", name="uq_quote_number_revision"),
    )
    with op.batch_alter_table("quote", schema=None) as batch_op:
        batch_op.create_index(
            "ix_quote_opportunity_state", ["opportunity_id", "state"], unique=False
        )

    op.create_table(
        "quote_close",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("quote_id", sa.Integer(), nullable=False),
        sa.Column("quote_number", sa.String(length=32), nullable=False),
        sa.Column("revision_number", sa.Integer(), nullable=False),
        sa.Column(
            "status_reason",
            sa.Enum(
                "IN_PROGRESS",
                "OPEN",
                "WON",
                "LOST",
                "CANCELED",
                "REVISED",
                name="quotestatusreason",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("close_date", sa.Date(), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=True),
        sa.Column("batch_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["quote_id"],
            ["quote.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("quote_id"),
    )
    with op.batch_alter_table("quote_close", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_quote_close_batch_id"), ["batch_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("quote_close", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quote_close_batch_id"))

    op.drop_table("quote_close")
    with op.batch_alter_table("quote", schema=None) as batch_op:
        batch_op.drop_index("ix_quote_opportunity_state")

    op.drop_table("quote")
    with op.batch_alter_table("opportunity_close", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_opportunity_close_opportunity_id"))

    op.drop_table("opportunity_close")
    with op.batch_alter_table("opportunity", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_opportunity_state"))
        batch_op.drop_index(batch_op.f("ix_opportunity_created_at"))

    op.drop_table("opportunity")
    op.drop_table("competitor")
