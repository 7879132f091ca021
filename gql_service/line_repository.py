"""Persistence of lines (quote, opportunity and contract lines), and of the sums their parents
keep.

Prebuilt Core statements with named placeholders, run on the unit of work's connection, each
RETURNING what the payloads show: a line write is a constant number of statements, whatever
the number of lines. The parent's sum is brought up to date by one ``UPDATE ... SET ... =
(SELECT sum ...)`` in the same transaction, which also refuses a sum the money column cannot
hold (no row returned). The caller holds the opportunity's lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import bindparam

from gql_service import audit
from gql_service.models import (
    ContractLine,
    Money,
    Opportunity,
    OpportunityLine,
    Quote,
    QuoteLine,
    table_of,
)
from gql_service.money_sql import money_below_limit, money_sum
from gql_service.records import OpportunityRecord, QuoteRecord
from gql_service.repositories import Repository
from gql_service.transitions import Changes

_QUOTE = table_of(Quote)
_OPPORTUNITY = table_of(Opportunity)
_ZERO = sa.literal(Decimal(0), Money())


@dataclass(frozen=True)
class LineTable:
    """The lines of one kind of parent: their table and the column naming the parent."""

    table: sa.Table
    parent: str

    def sum_of(self, parent_id: Any) -> sa.ScalarSelect[Any]:
        """The exact sum of a parent's line amounts; NULL when it has none."""
        return (
            sa.select(money_sum(self.table.c.amount))
            .where(self.table.c[self.parent] == parent_id)
            .scalar_subquery()
        )


QUOTE_LINES = LineTable(table_of(QuoteLine), "quote_id")
OPPORTUNITY_LINES = LineTable(table_of(OpportunityLine), "opportunity_id")
CONTRACT_LINES = LineTable(table_of(ContractLine), "contract_id")

# What every line holds besides its parent and its stamps: what a copy takes as it is.
_VALUES = (
    "name",
    "billing_method",
    "transaction_class",
    "quantity",
    "unit_price",
    "discount",
    "amount",
)


def _copy_statement(source: LineTable, target: LineTable) -> sa.Insert:
    """``INSERT INTO <target lines> ... SELECT ... FROM <source lines> ... RETURNING``: a
    parent's lines copied to another parent in one statement, in their order, stamped as new
    (audit.inserted). A contract line also names the quote line it was made from.
    Placeholders: p_from, p_to, p_now, p_actor.
    """
    s, t = source.table, target.table
    stamps = audit.inserted(
        bindparam("p_now", type_=t.c.created_at.type),
        bindparam("p_actor", type_=t.c.created_by.type),
    )
    origin = [s.c.id] if "quote_line_id" in t.c else []
    copied = (
        sa.select(
            bindparam("p_to", type_=t.c[target.parent].type),
            *origin,
            *(s.c[name] for name in _VALUES),
            *stamps.values(),
        )
        .where(s.c[source.parent] == bindparam("p_from"))
        .order_by(s.c.id)
    )
    names = [target.parent, *(["quote_line_id"] if origin else []), *_VALUES, *stamps]
    return sa.insert(t).from_select(names, copied).returning(*t.c)


_COPY = {
    (source.parent, target.parent): _copy_statement(source, target)
    for source, target in ((QUOTE_LINES, QUOTE_LINES), (QUOTE_LINES, CONTRACT_LINES))
}


def _statements(kind: LineTable) -> dict[str, sa.Executable]:
    t = kind.table
    stamps = audit.touched(t.c.version, bindparam("p_now"), bindparam("p_actor"))
    return {
        "insert": sa.insert(t).returning(*t.c),
        "select": sa.select(*t.c).where(t.c.id == bindparam("p_id")),
        "update": (
            sa.update(t)
            .where(t.c.id == bindparam("p_id"))
            .values({name: bindparam(name) for name in _VALUES} | stamps)
            .returning(*t.c)
        ),
        "delete": sa.delete(t).where(t.c.id == bindparam("p_id")).returning(*t.c),
        "exists": sa.select(sa.exists().where(t.c[kind.parent] == bindparam("p_parent"))),
    }


_SQL = {kind.parent: _statements(kind) for kind in (QUOTE_LINES, OPPORTUNITY_LINES)}

# A quote with lines totals them; without lines its total is NULL (none to sum). Its version
# grows, as on every change of a quote.
_QUOTE_TOTAL = (
    sa.update(_QUOTE)
    .where(
        _QUOTE.c.id == bindparam("p_parent"),
        money_below_limit(QUOTE_LINES.sum_of(bindparam("p_parent"))),
    )
    .values(
        total_amount=QUOTE_LINES.sum_of(bindparam("p_parent")),
        **audit.touched(_QUOTE.c.version, bindparam("p_now"), bindparam("p_actor")),
    )
    .returning(*_QUOTE.c)
)
# A system-calculated estimate is the sum of the lines, 0 without lines; an entered one stays.
# The opportunity was stamped by the lock that began the transaction.
_OPPORTUNITY_TOTAL = (
    sa.update(_OPPORTUNITY)
    .where(
        _OPPORTUNITY.c.id == bindparam("p_parent"),
        money_below_limit(OPPORTUNITY_LINES.sum_of(bindparam("p_parent"))),
    )
    .values(
        estimated_revenue=sa.case(
            (
                _OPPORTUNITY.c.is_revenue_system_calculated,
                sa.func.coalesce(OPPORTUNITY_LINES.sum_of(bindparam("p_parent")), _ZERO),
            ),
            else_=_OPPORTUNITY.c.estimated_revenue,
        )
    )
    .returning(*_OPPORTUNITY.c)
)
_OPPORTUNITY_LINES_TOTAL = sa.select(
    sa.func.coalesce(OPPORTUNITY_LINES.sum_of(bindparam("p_parent")), _ZERO)
)


async def _run(repo: Repository, stmt: sa.Executable, params: dict[str, Any]) -> Any:
    return await repo.connection.execute(stmt, params)


async def add_line(repo: Repository, kind: LineTable, parent_id: int, values: Changes) -> Any:
    """INSERT the line RETURNING it."""
    params = {**values, kind.parent: parent_id, **repo.created()}
    return (await _run(repo, _SQL[kind.parent]["insert"], params)).one()


async def find_line(repo: Repository, kind: LineTable, line_id: int) -> Any:
    """The line, or None."""
    return (await _run(repo, _SQL[kind.parent]["select"], {"p_id": line_id})).one_or_none()


async def update_line(repo: Repository, kind: LineTable, line_id: int, values: Changes) -> Any:
    """UPDATE every entered field and the amount, stamped, RETURNING the line."""
    params = {**values, "p_id": line_id, "p_now": repo.now, "p_actor": repo.actor}
    return (await _run(repo, _SQL[kind.parent]["update"], params)).one()


async def remove_line(repo: Repository, kind: LineTable, line_id: int) -> Any:
    """DELETE the line RETURNING what it was."""
    return (await _run(repo, _SQL[kind.parent]["delete"], {"p_id": line_id})).one()


async def copy_lines(
    repo: Repository, source: LineTable, target: LineTable, source_id: int, target_id: int
) -> list[Any]:
    """Copy a parent's lines to another parent (a quote's to its revision or to its contract)
    in one INSERT ... SELECT; the copies in id order."""
    params = {"p_from": source_id, "p_to": target_id, "p_now": repo.now, "p_actor": repo.actor}
    copies = await _run(repo, _COPY[source.parent, target.parent], params)
    # SQLite returns rows in no specified order.
    return sorted(copies, key=lambda line: line.id)


async def has_lines(repo: Repository, kind: LineTable, parent_id: int) -> bool:
    return bool((await _run(repo, _SQL[kind.parent]["exists"], {"p_parent": parent_id})).scalar())


async def total_quote(repo: Repository, quote_id: int) -> QuoteRecord | None:
    """Bring the quote's total up to date with its lines, RETURNING the quote; None when the
    sum would not fit the money column (nothing changed)."""
    params = {"p_parent": quote_id, "p_now": repo.now, "p_actor": repo.actor}
    quote: QuoteRecord | None = (await _run(repo, _QUOTE_TOTAL, params)).one_or_none()
    return quote


async def total_opportunity(repo: Repository, opportunity_id: int) -> OpportunityRecord | None:
    """Bring a system-calculated estimate up to date with the lines, RETURNING the
    opportunity; None when the lines' sum would not fit the money column."""
    found: OpportunityRecord | None = (
        await _run(repo, _OPPORTUNITY_TOTAL, {"p_parent": opportunity_id})
    ).one_or_none()
    return found


async def opportunity_lines_total(repo: Repository, opportunity_id: int) -> Decimal:
    """The sum of the opportunity's lines, 0 without lines."""
    total: Decimal = (
        await _run(repo, _OPPORTUNITY_LINES_TOTAL, {"p_parent": opportunity_id})
    ).scalar_one()
    return total
