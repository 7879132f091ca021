"""money of lines and contracts as text on SQLite, as every other money column

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26

0004 declared the money columns of quote_line, opportunity_line, project_contract and
contract_line as NUMERIC on every engine. SQLite's NUMERIC affinity stores them as floats, so
amounts lost digits and the compiled read path answered numbers where the plain path answers
"12.3400". On SQLite they become text with four decimals (0001's variant); on PostgreSQL
nothing changes.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

NUMERIC = sa.Numeric(19, 4)
TEXT = sa.String(40)
LINE_MONEY = {"quantity": False, "unit_price": False, "discount": True, "amount": False}
# Table -> money column -> nullable.
MONEY_COLUMNS = {
    "quote_line": LINE_MONEY,
    "opportunity_line": LINE_MONEY,
    "contract_line": LINE_MONEY,
    "project_contract": {"total_amount": True},
}


def _convert(old: sa.types.TypeEngine[Any], new: sa.types.TypeEngine[Any]) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, columns in MONEY_COLUMNS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, nullable in columns.items():
                batch_op.alter_column(
                    column, existing_type=old, type_=new, existing_nullable=nullable
                )
    for table, columns in MONEY_COLUMNS.items():
        for column in columns:
            # A float copied to text reads "95.5": give it the column's four decimals.
            if new is TEXT:
                op.execute(
                    f"UPDATE {table} SET {column} = printf('%.4f', {column}) "
                    f"WHERE {column} IS NOT NULL"
                )


def upgrade() -> None:
    _convert(NUMERIC, TEXT)


def downgrade() -> None:
    _convert(TEXT, NUMERIC)
