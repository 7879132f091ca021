"""money of lines and contracts as text on SQLite, as every other money column

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27

0004 declared the money columns of quote_line, opportunity_line, project_contract and
contract_line NUMERIC on SQLite too, where NUMERIC affinity stores "1000.0000" as the integer
1000 and "0.5000" as a float: the Money type and the exact sums (money_sql.py) expect the text
with four decimals that every other money column holds (0001). On SQLite the columns become
VARCHAR(40) and stored values are spelt again with four decimals; PostgreSQL is unchanged.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

LINE_MONEY = ("quantity", "unit_price", "discount", "amount")
TABLES = {
    "quote_line": LINE_MONEY,
    "opportunity_line": LINE_MONEY,
    "contract_line": LINE_MONEY,
    "project_contract": ("total_amount",),
}
NUMERIC = sa.Numeric(19, 4)
TEXT = sa.String(40)


def _retype(old: sa.types.TypeEngine[Any], new: sa.types.TypeEngine[Any]) -> None:
    for table, columns in TABLES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.alter_column(column, existing_type=old, type_=new)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _retype(NUMERIC, TEXT)
    for table, columns in TABLES.items():
        for column in columns:
            # An integer came back as "1000", a float as "22499.5": four decimals again.
            op.execute(
                f"UPDATE {table} SET {column} = CASE WHEN instr({column}, '.') = 0 "
                f"THEN {column} || '.0000' "
                f"ELSE substr({column} || '0000', 1, instr({column}, '.') + 4) END "
                f"WHERE {column} IS NOT NULL"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _retype(TEXT, NUMERIC)
