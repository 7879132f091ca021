"""The read side: batched look-ups for DataLoaders and keyset-paginated lists.

Every statement runs on the request's one connection (read_session.ReadSession), which
serialises the DataLoaders that run concurrently. Every statement selects table columns with
SQLAlchemy Core, so results are ``Row`` objects (see records.py), never ORM instances: no
identity map, no per-row state.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gql_service.cursors import (
    decode_keyset_cursor,
    encode_keyset_cursor,
)
from gql_service.models import (
    OPEN_QUOTE_STATES,
    Competitor,
    ContractLine,
    ContractState,
    Entity,
    Money,
    Opportunity,
    OpportunityClose,
    OpportunityLine,
    OpportunityState,
    ProjectContract,
    Quote,
    QuoteClose,
    QuoteLine,
    QuoteState,
    table_of,
)
from gql_service.read_session import ReadSession
from gql_service.records import (
    CompetitorRecord,
    ContractRecord,
    OpportunityCloseRecord,
    OpportunityRecord,
    QuoteCloseRecord,
    QuoteCloseValues,
    QuoteRecord,
)
from gql_service.sort_keys import money_key

T = TypeVar("T")


OPPORTUNITY = table_of(Opportunity)
QUOTE = table_of(Quote)
QUOTE_CLOSE = table_of(QuoteClose)
OPPORTUNITY_CLOSE = table_of(OpportunityClose)
COMPETITOR = table_of(Competitor)
CONTRACT = table_of(ProjectContract)
# Each kind of line: the column naming its parent.
LINE_PARENTS: dict[type[Any], str] = {
    QuoteLine: "quote_id",
    OpportunityLine: "opportunity_id",
    ContractLine: "contract_id",
}


@dataclass(frozen=True, slots=True)
class PageRequest:
    first: int | None = None
    after: str | None = None
    last: int | None = None
    before: str | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    cursors: list[str]
    has_next_page: bool
    has_previous_page: bool
    count: Callable[[], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class OpportunityFilter:
    states: tuple[OpportunityState, ...] = ()
    customer_name: str | None = None
    customer: str | None = None
    name_contains: str | None = None
    has_open_quotes: bool | None = None
    outcome: OpportunityState | None = None
    actual_close_from: date | None = None
    actual_close_to: date | None = None


@dataclass(frozen=True, slots=True)
class QuoteFilter:
    states: tuple[QuoteState, ...] = ()
    is_open: bool | None = None
    opportunity_id: int | None = None


@dataclass(frozen=True, slots=True)
class ContractFilter:
    states: tuple[ContractState, ...] = ()
    opportunity_id: int | None = None


@dataclass(frozen=True, slots=True)
class Ordering:
    field: str = "created_at"
    descending: bool = True


# The top-level quotes list: oldest first, as the quotes under an opportunity.
QUOTE_ORDERING = Ordering(field="created_at", descending=False)
# The top-level contracts list: newest first, as opportunities by default.
CONTRACT_ORDERING = Ordering(field="created_at", descending=True)


QuoteWithClose = tuple[QuoteRecord, QuoteCloseRecord | None]

# The quote's columns, then its close record's under a prefix, in QuoteCloseValues' order.
_QUOTE_COLUMNS = len(QUOTE.c)
_QUOTE_WITH_CLOSE = sa.select(
    *QUOTE.c, *(QUOTE_CLOSE.c[name].label(f"close_{name}") for name in QuoteCloseValues._fields)
).select_from(QUOTE.outerjoin(QUOTE_CLOSE, QUOTE_CLOSE.c.quote_id == QUOTE.c.id))


class Reader:
    """Read-only queries of one request, on its one connection."""

    def __init__(self, reads: ReadSession) -> None:
        self.reads = reads

    async def _all(self, stmt: sa.Executable) -> list[Any]:
        """Every row of ``stmt``, on the request's connection."""

        async def work(connection: AsyncConnection) -> list[Any]:
            return list((await connection.execute(stmt)).all())

        return await self.reads.run(work)

    async def _scalar(self, stmt: sa.Executable) -> Any:
        async def work(connection: AsyncConnection) -> Any:
            return await connection.scalar(stmt)

        return await self.reads.run(work)

    async def by_ids(self, model: type[Entity], ids: Sequence[int]) -> dict[int, Any]:
        """Rows of the model's table by id (typed by the caller as its record protocol)."""
        if not ids:
            return {}
        table = table_of(model)
        stmt = sa.select(*table.c).where(table.c.id.in_(set(ids)))
        rows = await self._all(stmt)
        return {row.id: row for row in rows}

    async def quotes_by_opportunity(
        self, opportunity_ids: Sequence[int], quote_filter: QuoteFilter
    ) -> dict[int, list[QuoteWithClose]]:
        """Quotes with their close records (one outer join), oldest first."""
        stmt = _QUOTE_WITH_CLOSE.where(QUOTE.c.opportunity_id.in_(set(opportunity_ids)))
        if quote_filter.states:
            stmt = stmt.where(QUOTE.c.state.in_(quote_filter.states))
        if quote_filter.is_open is not None:
            is_open = QUOTE.c.state.in_(OPEN_QUOTE_STATES)
            stmt = stmt.where(is_open if quote_filter.is_open else sa.not_(is_open))
        stmt = stmt.order_by(QUOTE.c.id)
        rows = await self._all(stmt)
        grouped: dict[int, list[QuoteWithClose]] = defaultdict(list)
        for row in rows:
            close = None if row.close_id is None else QuoteCloseValues._make(row[_QUOTE_COLUMNS:])
            grouped[row.opportunity_id].append((row, close))
        return grouped

    async def quotes_stamped(self, opportunity_id: int, stamp: datetime) -> list[QuoteWithClose]:
        """The opportunity's quotes that the transaction with clock ``stamp`` created or changed
        (a write stamps each quote it touches with its clock: announcements.py)."""
        stmt = _QUOTE_WITH_CLOSE.where(
            QUOTE.c.opportunity_id == opportunity_id, QUOTE.c.modified_at == stamp
        ).order_by(QUOTE.c.id)
        rows = await self._all(stmt)
        return [
            (row, None if row.close_id is None else QuoteCloseValues._make(row[_QUOTE_COLUMNS:]))
            for row in rows
        ]

    async def lines_by_parent(
        self, model: type[QuoteLine | OpportunityLine | ContractLine], parent_ids: Sequence[int]
    ) -> dict[int, list[Any]]:
        """The lines of many quotes, opportunities or contracts in one statement, oldest first."""
        table = table_of(model)
        parent = table.c[LINE_PARENTS[model]]
        stmt = sa.select(*table.c).where(parent.in_(set(parent_ids))).order_by(table.c.id)
        rows = await self._all(stmt)
        return _group(rows, lambda row: getattr(row, parent.name))

    async def closes_by_opportunity(
        self, opportunity_ids: Sequence[int]
    ) -> dict[int, list[OpportunityCloseRecord]]:
        stmt = (
            sa.select(*OPPORTUNITY_CLOSE.c)
            .where(OPPORTUNITY_CLOSE.c.opportunity_id.in_(set(opportunity_ids)))
            .order_by(OPPORTUNITY_CLOSE.c.id.desc())
        )
        rows = await self._all(stmt)
        return _group(rows, lambda c: c.opportunity_id)

    async def quote_closes_by_quote(self, quote_ids: Sequence[int]) -> dict[int, QuoteCloseRecord]:
        stmt = sa.select(*QUOTE_CLOSE.c).where(QUOTE_CLOSE.c.quote_id.in_(set(quote_ids)))
        rows = await self._all(stmt)
        return {row.quote_id: row for row in rows}

    async def open_quote_counts(self, opportunity_ids: Sequence[int]) -> dict[int, int]:
        stmt = (
            sa.select(QUOTE.c.opportunity_id, sa.func.count())
            .where(
                QUOTE.c.opportunity_id.in_(set(opportunity_ids)),
                QUOTE.c.state.in_(OPEN_QUOTE_STATES),
            )
            .group_by(QUOTE.c.opportunity_id)
        )
        rows = await self._all(stmt)
        return {opp_id: int(count) for opp_id, count in rows}

    async def opportunities(
        self, page: PageRequest, opportunity_filter: OpportunityFilter, ordering: Ordering
    ) -> Page[OpportunityRecord]:
        conditions: list[sa.ColumnElement[bool]] = []
        if opportunity_filter.states:
            conditions.append(OPPORTUNITY.c.state.in_(opportunity_filter.states))
        if opportunity_filter.customer_name:
            conditions.append(
                sa.func.lower(OPPORTUNITY.c.customer_name).contains(
                    opportunity_filter.customer_name.lower(), autoescape=True
                )
            )
        if opportunity_filter.name_contains:
            conditions.append(
                sa.func.lower(OPPORTUNITY.c.name).contains(
                    opportunity_filter.name_contains.lower(), autoescape=True
                )
            )
        if opportunity_filter.has_open_quotes is not None:
            has_open = (
                sa.select(QUOTE.c.id)
                .where(
                    QUOTE.c.opportunity_id == OPPORTUNITY.c.id,
                    QUOTE.c.state.in_(OPEN_QUOTE_STATES),
                )
                .exists()
            )
            conditions.append(has_open if opportunity_filter.has_open_quotes else ~has_open)
        if opportunity_filter.customer is not None:
            conditions.append(OPPORTUNITY.c.customer_name == opportunity_filter.customer)
        if opportunity_filter.outcome is not None:
            conditions.append(OPPORTUNITY.c.state == opportunity_filter.outcome)
        if opportunity_filter.actual_close_from is not None:
            conditions.append(
                OPPORTUNITY.c.actual_close_date >= opportunity_filter.actual_close_from
            )
        if opportunity_filter.actual_close_to is not None:
            conditions.append(OPPORTUNITY.c.actual_close_date <= opportunity_filter.actual_close_to)
        return await self._paginate(OPPORTUNITY, conditions, page, ordering)

    async def competitors(self, page: PageRequest) -> Page[CompetitorRecord]:
        ordering = Ordering(field="name", descending=False)
        return await self._paginate(COMPETITOR, [], page, ordering)

    async def quotes(self, page: PageRequest, quote_filter: QuoteFilter) -> Page[QuoteRecord]:
        """Every quote the filter admits, oldest first (as under an opportunity)."""
        conditions: list[sa.ColumnElement[bool]] = []
        if quote_filter.opportunity_id is not None:
            conditions.append(QUOTE.c.opportunity_id == quote_filter.opportunity_id)
        if quote_filter.states:
            conditions.append(QUOTE.c.state.in_(quote_filter.states))
        if quote_filter.is_open is not None:
            is_open = QUOTE.c.state.in_(OPEN_QUOTE_STATES)
            conditions.append(is_open if quote_filter.is_open else sa.not_(is_open))
        return await self._paginate(QUOTE, conditions, page, QUOTE_ORDERING)

    # --- project contracts ---

    async def contracts_by_opportunity(
        self, opportunity_ids: Sequence[int]
    ) -> dict[int, list[ContractRecord]]:
        """Contracts of many opportunities, oldest first."""
        stmt = (
            sa.select(*CONTRACT.c)
            .where(CONTRACT.c.opportunity_id.in_(set(opportunity_ids)))
            .order_by(CONTRACT.c.id)
        )
        return _group(await self._all(stmt), lambda c: c.opportunity_id)

    async def contracts_by_quote(self, quote_ids: Sequence[int]) -> dict[int, ContractRecord]:
        stmt = sa.select(*CONTRACT.c).where(CONTRACT.c.quote_id.in_(set(quote_ids)))
        return {row.quote_id: row for row in await self._all(stmt)}

    async def contracts(
        self, page: PageRequest, contract_filter: ContractFilter
    ) -> Page[ContractRecord]:
        """Every contract the filter admits, newest first."""
        conditions: list[sa.ColumnElement[bool]] = []
        if contract_filter.opportunity_id is not None:
            conditions.append(CONTRACT.c.opportunity_id == contract_filter.opportunity_id)
        if contract_filter.states:
            conditions.append(CONTRACT.c.state.in_(contract_filter.states))
        return await self._paginate(CONTRACT, conditions, page, CONTRACT_ORDERING)

    async def _paginate(
        self,
        table: sa.Table,
        conditions: list[sa.ColumnElement[bool]],
        page: PageRequest,
        ordering: Ordering,
    ) -> Page[Any]:
        """Keyset pagination on (ordering field, id), nulls last: stable under inserts."""
        stored = table.c[ordering.field]
        nullable = bool(stored.nullable)
        column = money_key(stored) if isinstance(stored.type, Money) else stored
        pk = table.c.id
        backwards = page.last is not None and page.first is None
        limit = page.last if backwards else page.first
        assert limit is not None
        stmt = sa.select(*table.c).where(*conditions)
        for cursor, after in ((page.after, True), (page.before, False)):
            if cursor is None:
                continue
            value, key = decode_keyset_cursor(cursor, ordering.field, stored)
            stmt = stmt.where(
                keyset_condition(
                    column,
                    pk,
                    value,
                    key,
                    descending=ordering.descending,
                    after=after,
                    nullable=nullable,
                )
            )
        stmt = stmt.order_by(
            *keyset_order(
                column, pk, descending=ordering.descending, backwards=backwards, nullable=nullable
            )
        ).limit(limit + 1)
        rows = await self._all(stmt)
        has_more = len(rows) > limit
        rows = rows[:limit]
        if backwards:
            rows.reverse()

        async def count() -> int:
            count_stmt = sa.select(sa.func.count()).select_from(table).where(*conditions)
            return int((await self._scalar(count_stmt)) or 0)

        return Page(
            items=rows,
            cursors=[
                encode_keyset_cursor(ordering.field, getattr(r, ordering.field), r.id) for r in rows
            ],
            has_next_page=has_more if not backwards else page.before is not None,
            has_previous_page=has_more if backwards else page.after is not None,
            count=count,
        )


def keyset_order(
    column: Any, pk: Any, *, descending: bool, backwards: bool, nullable: bool
) -> tuple[sa.ColumnElement[Any], sa.ColumnElement[Any]]:
    """ORDER BY (column, id) in the ordering's direction, nulls last; reversed for ``last``.

    Nulls come last in both directions, so a backward page (read in reverse, then flipped)
    puts them first. The placement is spelled out only for nullable columns: the engines'
    defaults differ (PostgreSQL sorts nulls as largest, SQLite as smallest).
    """
    reverse = descending != backwards
    value = column.desc() if reverse else column.asc()
    if nullable:
        value = value.nulls_first() if backwards else value.nulls_last()
    return value, pk.desc() if reverse else pk.asc()


def keyset_condition(
    column: Any,
    pk: Any,
    value: Any,
    key: int,
    *,
    descending: bool,
    after: bool,
    nullable: bool,
) -> sa.ColumnElement[bool]:
    """The rows strictly after (or before) the cursor ``(value, key)`` in (column, id) order.

    Nulls sort last in both directions: after a dated cursor come the later dates and then
    every null; before a null cursor come every dated row and the nulls that precede it by id.
    """
    larger = after != descending

    def beyond(left: Any, right: Any) -> sa.ColumnElement[bool]:
        return left > right if larger else left < right  # type: ignore[no-any-return]

    if value is None:
        later_nulls = sa.and_(column.is_(None), beyond(pk, key))
        return later_nulls if after else sa.or_(column.is_not(None), later_nulls)
    # A comparison with NULL is never true, so this part holds only dated rows.
    dated = sa.or_(beyond(column, value), sa.and_(column == value, beyond(pk, key)))
    return sa.or_(dated, column.is_(None)) if after and nullable else dated


def _group(rows: Iterable[T], key: Callable[[T], int]) -> dict[int, list[T]]:
    grouped: dict[int, list[T]] = defaultdict(list)
    for row in rows:
        grouped[key(row)].append(row)
    return grouped
