"""The read side: batched look-ups for DataLoaders and keyset-paginated lists.

Every statement runs on the request's one connection (read_session.ReadSession), which
serialises the DataLoaders that run concurrently.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col

from gql_service.models import (
    MAX_ID,
    OPEN_QUOTE_STATES,
    Competitor,
    Entity,
    Opportunity,
    OpportunityClose,
    OpportunityState,
    Quote,
    QuoteClose,
    QuoteState,
    UTCDateTime,
)
from gql_service.read_session import ReadSession
from gql_service.rules import is_storable_text

M = TypeVar("M", bound=Entity)
T = TypeVar("T")


class InvalidCursorError(ValueError):
    """A cursor that this service did not issue, or for another ordering."""


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
    name_contains: str | None = None
    has_open_quotes: bool | None = None


@dataclass(frozen=True, slots=True)
class QuoteFilter:
    states: tuple[QuoteState, ...] = ()
    is_open: bool | None = None


@dataclass(frozen=True, slots=True)
class Ordering:
    field: str = "created_at"
    descending: bool = True


class Reader:
    """Read-only queries of one request, on its one connection."""

    def __init__(self, reads: ReadSession) -> None:
        self.reads = reads

    async def session(self, use: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """``use`` an ORM session on the request's connection, inside its read transaction."""

        async def work(connection: AsyncConnection) -> T:
            async with AsyncSession(bind=connection, expire_on_commit=False) as session:
                return await use(session)

        return await self.reads.run(work)

    async def by_ids(self, model: type[M], ids: Sequence[int]) -> dict[int, M]:
        if not ids:
            return {}
        stmt = sa.select(model).where(col(model.id).in_(set(ids)))
        rows = await self.session(lambda session: _all_scalars(session, stmt))
        return {row.id: row for row in rows if row.id is not None}

    async def quotes_by_opportunity(
        self, opportunity_ids: Sequence[int], quote_filter: QuoteFilter
    ) -> dict[int, list[tuple[Quote, QuoteClose | None]]]:
        """Quotes with their close records (one outer join), oldest first."""
        stmt = (
            sa.select(Quote, QuoteClose)
            .outerjoin(QuoteClose, col(QuoteClose.quote_id) == col(Quote.id))
            .where(col(Quote.opportunity_id).in_(set(opportunity_ids)))
        )
        if quote_filter.states:
            stmt = stmt.where(col(Quote.state).in_(quote_filter.states))
        if quote_filter.is_open is not None:
            is_open = col(Quote.state).in_(OPEN_QUOTE_STATES)
            stmt = stmt.where(is_open if quote_filter.is_open else sa.not_(is_open))
        stmt = stmt.order_by(col(Quote.id))
        rows = [(quote, close) for quote, close in await self.session(lambda s: _all(s, stmt))]
        return _group(rows, lambda row: row[0].opportunity_id)

    async def closes_by_opportunity(
        self, opportunity_ids: Sequence[int]
    ) -> dict[int, list[OpportunityClose]]:
        stmt = (
            sa.select(OpportunityClose)
            .where(col(OpportunityClose.opportunity_id).in_(set(opportunity_ids)))
            .order_by(col(OpportunityClose.id).desc())
        )
        rows = await self.session(lambda session: _all_scalars(session, stmt))
        return _group(rows, lambda c: c.opportunity_id)

    async def quote_closes_by_quote(self, quote_ids: Sequence[int]) -> dict[int, QuoteClose]:
        stmt = sa.select(QuoteClose).where(col(QuoteClose.quote_id).in_(set(quote_ids)))
        rows = await self.session(lambda session: _all_scalars(session, stmt))
        return {row.quote_id: row for row in rows}

    async def open_quote_counts(self, opportunity_ids: Sequence[int]) -> dict[int, int]:
        stmt = (
            sa.select(col(Quote.opportunity_id), sa.func.count())
            .where(
                col(Quote.opportunity_id).in_(set(opportunity_ids)),
                col(Quote.state).in_(OPEN_QUOTE_STATES),
            )
            .group_by(col(Quote.opportunity_id))
        )
        rows = await self.session(lambda session: _all(session, stmt))
        return {opp_id: int(count) for opp_id, count in rows}

    async def opportunities(
        self, page: PageRequest, opportunity_filter: OpportunityFilter, ordering: Ordering
    ) -> Page[Opportunity]:
        conditions: list[sa.ColumnElement[bool]] = []
        if opportunity_filter.states:
            conditions.append(col(Opportunity.state).in_(opportunity_filter.states))
        if opportunity_filter.customer_name:
            conditions.append(
                sa.func.lower(col(Opportunity.customer_name)).contains(
                    opportunity_filter.customer_name.lower(), autoescape=True
                )
            )
        if opportunity_filter.name_contains:
            conditions.append(
                sa.func.lower(col(Opportunity.name)).contains(
                    opportunity_filter.name_contains.lower(), autoescape=True
                )
            )
        if opportunity_filter.has_open_quotes is not None:
            has_open = (
                sa.select(col(Quote.id))
                .where(
                    col(Quote.opportunity_id) == col(Opportunity.id),
                    col(Quote.state).in_(OPEN_QUOTE_STATES),
                )
                .exists()
            )
            conditions.append(has_open if opportunity_filter.has_open_quotes else ~has_open)
        return await self._paginate(Opportunity, conditions, page, ordering)

    async def competitors(self, page: PageRequest) -> Page[Competitor]:
        ordering = Ordering(field="name", descending=False)
        return await self._paginate(Competitor, [], page, ordering)

    async def _paginate(
        self,
        model: type[M],
        conditions: list[sa.ColumnElement[bool]],
        page: PageRequest,
        ordering: Ordering,
    ) -> Page[M]:
        """Keyset pagination on (ordering field, id): stable under concurrent inserts."""
        column = col(getattr(model, ordering.field))
        pk = col(model.id)
        backwards = page.last is not None and page.first is None
        limit = page.last if backwards else page.first
        assert limit is not None
        descending = ordering.descending != backwards
        stmt = sa.select(model).where(*conditions)
        for cursor, after in ((page.after, True), (page.before, False)):
            if cursor is None:
                continue
            value, key = _decode_cursor(cursor, ordering.field, column)
            forward = after != ordering.descending
            stmt = stmt.where(
                sa.or_(column > value, sa.and_(column == value, pk > key))
                if forward
                else sa.or_(column < value, sa.and_(column == value, pk < key))
            )
        order = (column.desc(), pk.desc()) if descending else (column.asc(), pk.asc())
        stmt = stmt.order_by(*order).limit(limit + 1)
        rows = list(await self.session(lambda session: _all_scalars(session, stmt)))
        has_more = len(rows) > limit
        rows = rows[:limit]
        if backwards:
            rows.reverse()

        async def count() -> int:
            count_stmt = sa.select(sa.func.count()).select_from(model).where(*conditions)
            return int((await self.session(lambda session: _scalar(session, count_stmt))) or 0)

        return Page(
            items=rows,
            cursors=[
                _encode_cursor(ordering.field, getattr(r, ordering.field), r.id or 0) for r in rows
            ],
            has_next_page=has_more if not backwards else page.before is not None,
            has_previous_page=has_more if backwards else page.after is not None,
            count=count,
        )


async def _all_scalars(session: AsyncSession, stmt: sa.Executable) -> list[Any]:
    return list((await session.scalars(stmt)).all())


async def _all(session: AsyncSession, stmt: sa.Executable) -> list[Any]:
    return list((await session.execute(stmt)).all())


async def _scalar(session: AsyncSession, stmt: sa.Executable) -> Any:
    return await session.scalar(stmt)


def _group(rows: Iterable[T], key: Callable[[T], int]) -> dict[int, list[T]]:
    grouped: dict[int, list[T]] = defaultdict(list)
    for row in rows:
        grouped[key(row)].append(row)
    return grouped


def _encode_cursor(field_name: str, value: Any, key: int) -> str:
    if isinstance(value, datetime):
        value = value.isoformat()
    raw = json.dumps([field_name, value, key], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str, field_name: str, column: Any) -> tuple[Any, int]:
    """The (sort value, id) behind a cursor, checked so that no forged cursor reaches SQL."""
    try:
        name, value, key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidCursorError("The cursor is not one this service issued.") from exc
    if name != field_name or not isinstance(key, int) or isinstance(key, bool):
        raise InvalidCursorError("The cursor belongs to another ordering.")
    if not 0 <= key <= MAX_ID or not isinstance(value, str) or not is_storable_text(value):
        raise InvalidCursorError("The cursor is not one this service issued.")
    if isinstance(column.type, (UTCDateTime, sa.DateTime)):
        # The column's type decorator expects a datetime, not the cursor's ISO text.
        try:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                raise ValueError("a cursor's timestamp carries its offset")
            return moment.astimezone(UTC), key
        except (ValueError, OverflowError) as exc:
            raise InvalidCursorError("The cursor is not one this service issued.") from exc
    return value, key
