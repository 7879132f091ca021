"""Sums of money in SQL, exact on both engines.

PostgreSQL sums NUMERIC exactly. SQLite stores money as text with four decimals
("1250.5000") and its SUM would add floats, which round 19 digits. There the sum adds the
integer parts and the four-digit fractions as integers, carries, and spells the result as
the column stores it. Money is never negative, and every line's amount is below
MONEY_LIMIT, so a parent's lines never overflow SQLite's 64-bit integers while their sum is
kept below MONEY_LIMIT as well (``money_below_limit``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from gql_service.models import MONEY_LIMIT, MONEY_PLACES, Money

_UNIT = 10**MONEY_PLACES


class money_sum(sa.sql.functions.FunctionElement[Decimal]):
    """SUM of a money column (NULL over no rows), as the column stores money."""

    type = Money()
    inherit_cache = True
    name = "money_sum"


@compiles(money_sum)
def _money_sum(element: money_sum, compiler: SQLCompiler, **kw: Any) -> str:
    return f"sum({compiler.process(element.clauses, **kw)})"


@compiles(money_sum, "sqlite")
def _money_sum_sqlite(element: money_sum, compiler: SQLCompiler, **kw: Any) -> str:
    c = compiler.process(element.clauses, **kw)
    whole = f"sum(CAST(substr({c}, 1, instr({c}, '.') - 1) AS INTEGER))"
    fraction = f"sum(CAST(substr({c}, instr({c}, '.') + 1) AS INTEGER))"
    return (
        f"(({whole} + {fraction} / {_UNIT}) || '.' || "
        f"substr('{'0' * MONEY_PLACES}' || ({fraction} % {_UNIT}), -{MONEY_PLACES}))"
    )


class money_below_limit(sa.sql.functions.FunctionElement[bool]):
    """True when a money value (as ``money_sum`` gives it) is NULL or below MONEY_LIMIT."""

    type = sa.Boolean()
    inherit_cache = True
    name = "money_below_limit"


@compiles(money_below_limit)
def _below_limit(element: money_below_limit, compiler: SQLCompiler, **kw: Any) -> str:
    value = compiler.process(element.clauses, **kw)
    return f"(({value}) IS NULL OR ({value}) < {MONEY_LIMIT})"


@compiles(money_below_limit, "sqlite")
def _below_limit_sqlite(element: money_below_limit, compiler: SQLCompiler, **kw: Any) -> str:
    # Below 10^15: at most 15 digits before the point (and no sign: money is never negative).
    value = compiler.process(element.clauses, **kw)
    digits = len(str(MONEY_LIMIT)) - 1
    return f"(({value}) IS NULL OR instr(({value}), '.') <= {digits + 1})"
