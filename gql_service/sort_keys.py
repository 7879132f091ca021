"""How stored values sort: money on SQLite is text, so it sorts by a fixed-width key.

PostgreSQL stores money as NUMERIC and sorts it as a number. SQLite stores it as text with
four decimals ("9.5000", "10.0000"), which sorts as text (9.5 after 10). Money is never
negative, so the text left-padded with zeros to the column's full width sorts as the number,
exactly (a float would round 19 digits). Both read paths (queries.py, graphql/compiler.py)
sort, compare and bind through this one key.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from gql_service.models import MONEY_PLACES, MONEY_PRECISION, MONEY_QUANTUM

# Digits, the decimal point: the longest stored amount.
MONEY_SORT_WIDTH = MONEY_PRECISION + 1
_ZEROS = "0" * MONEY_SORT_WIDTH


def sqlite_money_key(column_sql: str) -> str:
    """The SQLite expression that sorts the money column ``column_sql`` as a number
    (NULL stays NULL: ``NULL || x`` is NULL)."""
    return f"substr('{_ZEROS}' || {column_sql}, -{MONEY_SORT_WIDTH})"


def money_key_value(value: Decimal, dialect_name: str) -> Any:
    """A money value as bound for comparison with the column's sort key."""
    quantized = value.quantize(MONEY_QUANTUM)
    if dialect_name == "sqlite":
        return f"{quantized:.{MONEY_PLACES}f}".rjust(MONEY_SORT_WIDTH, "0")
    return quantized


class _MoneyKeyType(sa.types.TypeDecorator[Decimal]):
    """Binds a Decimal as the sort key's value on each engine."""

    impl = sa.Numeric(MONEY_PRECISION, MONEY_PLACES)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(MONEY_SORT_WIDTH))
        return dialect.type_descriptor(sa.Numeric(MONEY_PRECISION, MONEY_PLACES, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        return None if value is None else money_key_value(value, dialect.name)


class money_key(sa.sql.functions.FunctionElement[Decimal]):
    """The sort key of a money column: the column itself, or on SQLite its padded text."""

    type = _MoneyKeyType()
    inherit_cache = True
    name = "money_key"


@compiles(money_key)
def _money_key(element: money_key, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(money_key, "sqlite")
def _money_key_sqlite(element: money_key, compiler: SQLCompiler, **kw: Any) -> str:
    return sqlite_money_key(compiler.process(element.clauses, **kw))
