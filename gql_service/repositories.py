"""Persistence for the write side: the only place where services' statements are built."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import TypeVar

from sqlalchemy import ColumnElement, case, func, insert, inspect, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from gql_service.errors import ValidationFailedError, not_found
from gql_service.models import (
    OPEN_QUOTE_STATES,
    CloseRecordState,
    Competitor,
    ForecastCategory,
    Opportunity,
    OpportunityClose,
    OpportunityState,
    OpportunityStatusReason,
    Quote,
    QuoteClose,
    QuoteState,
    QuoteStatusReason,
)
from gql_service.rules import check_version

M = TypeVar("M", bound=SQLModel)
T = TypeVar("T")


def _value(model: type[SQLModel], column: str, value: T) -> ColumnElement[T]:
    """A bound value typed as ``model``'s column, for the select list of INSERT ... SELECT."""
    return literal(value, inspect(model).columns[column].type)


class Repository:
    """Statements of one transaction, stamped with its actor and clock."""

    def __init__(self, session: AsyncSession, *, actor: str, now: datetime) -> None:
        self.session = session
        self.actor = actor
        self.now = now

    @property
    def today(self) -> date:
        return self.now.date()

    async def lock_opportunity(
        self, opportunity_id: int, *, expected_version: int | None, field: str
    ) -> Opportunity:
        """Bump the opportunity's version as the transaction's first statement.

        The write takes the row lock (PostgreSQL) or the database write lock (SQLite) before
        anything is read, so every transaction that changes the opportunity's state or the
        set of its open quotes is serialised with the others on the same opportunity.
        """
        condition = col(Opportunity.id) == opportunity_id
        if expected_version is not None:
            condition &= col(Opportunity.version) == expected_version
        locked = await self._bump(condition)
        if locked is not None:
            return locked
        actual = await self.session.scalar(
            select(col(Opportunity.version)).where(col(Opportunity.id) == opportunity_id)
        )
        if actual is None:
            raise not_found("No opportunity has this id.", field)
        raise ValidationFailedError(check_version("opportunity", expected_version, actual))

    async def lock_quote(
        self, quote_id: int, *, expected_version: int | None
    ) -> tuple[Opportunity, Quote]:
        """Lock the quote's opportunity first (as ``lock_opportunity``), then load the quote."""
        owner = select(col(Quote.opportunity_id)).where(col(Quote.id) == quote_id).scalar_subquery()
        opportunity = await self._bump(col(Opportunity.id) == owner)
        if opportunity is None:
            raise not_found("No quote has this id.", "quote_id")
        quote = await self.session.get(Quote, quote_id, populate_existing=True)
        if quote is None:  # pragma: no cover - the update above found its opportunity
            raise not_found("No quote has this id.", "quote_id")
        conflict = check_version("quote", expected_version, quote.version)
        if conflict:
            raise ValidationFailedError(conflict)
        return opportunity, quote

    def touch(self, quote: Quote) -> None:
        """Stamp a changed quote: next version, this transaction's time and actor."""
        quote.version += 1
        quote.modified_at = self.now
        quote.modified_by = self.actor

    async def _bump(self, condition: ColumnElement[bool]) -> Opportunity | None:
        """UPDATE ... SET version = version + 1 ... RETURNING: the write that takes the lock."""
        stmt = (
            update(Opportunity)
            .where(condition)
            .values(
                version=col(Opportunity.version) + 1,
                modified_at=self.now,
                modified_by=self.actor,
            )
            .returning(Opportunity)
            .execution_options(populate_existing=True)
        )
        return (await self.session.scalars(stmt)).one_or_none()

    async def open_quotes(self, opportunity_id: int) -> list[Quote]:
        stmt = (
            select(Quote)
            .where(
                col(Quote.opportunity_id) == opportunity_id,
                col(Quote.state).in_(OPEN_QUOTE_STATES),
            )
            .order_by(col(Quote.id))
        )
        return list((await self.session.scalars(stmt)).all())

    async def close_opportunity(
        self,
        opportunity_id: int,
        *,
        state: OpportunityState,
        status_reason: OpportunityStatusReason,
        forecast_category: ForecastCategory,
        actual_revenue: Decimal | None,
        actual_close_date: date,
    ) -> Opportunity | None:
        """Move the opportunity to its closed state unless one of its quotes is open.

        One ``UPDATE ... WHERE NOT EXISTS (open quote) RETURNING``: None when an open quote
        blocks it. The caller holds the opportunity's lock, so the answer holds until commit.
        """
        open_quote = (
            select(col(Quote.id))
            .where(
                col(Quote.opportunity_id) == opportunity_id,
                col(Quote.state).in_(OPEN_QUOTE_STATES),
            )
            .exists()
        )
        stmt = (
            update(Opportunity)
            .where(col(Opportunity.id) == opportunity_id, ~open_quote)
            .values(
                state=state,
                status_reason=status_reason,
                forecast_category=forecast_category,
                actual_revenue=actual_revenue,
                actual_close_date=actual_close_date,
            )
            .returning(Opportunity)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return (await self.session.scalars(stmt)).one_or_none()

    async def close_open_quotes(
        self,
        opportunity_id: int,
        *,
        state: QuoteState,
        status_reason: QuoteStatusReason,
        close_date: date,
        description: str | None,
        batch_id: str,
        quote_id: int | None = None,
        winner_id: int | None = None,
    ) -> list[tuple[Quote, QuoteClose]]:
        """Close the opportunity's open quotes (only ``quote_id`` if given) in two statements.

        ``INSERT INTO quote_close ... SELECT ... FROM quote`` writes their close records, then
        ``UPDATE quote ... RETURNING`` closes them, whatever their number; ``winner_id`` is
        closed as WON/WON instead. Both statements select the same rows because the caller
        holds the opportunity's lock, which every change to the set of its open quotes takes
        first. Returns each quote with its record, in id order.
        """
        which = (col(Quote.opportunity_id) == opportunity_id) & col(Quote.state).in_(
            OPEN_QUOTE_STATES
        )
        if quote_id is not None:
            which &= col(Quote.id) == quote_id
        new_state: ColumnElement[QuoteState] = _value(Quote, "state", state)
        reason: ColumnElement[QuoteStatusReason] = _value(Quote, "status_reason", status_reason)
        if winner_id is not None:
            won = col(Quote.id) == winner_id
            new_state = case((won, _value(Quote, "state", QuoteState.WON)), else_=new_state)
            reason = case(
                (won, _value(Quote, "status_reason", QuoteStatusReason.WON)), else_=reason
            )
        copied = select(
            col(Quote.id),
            col(Quote.quote_number),
            col(Quote.revision_number),
            reason,
            _value(QuoteClose, "close_date", close_date),
            _value(QuoteClose, "description", description),
            _value(QuoteClose, "batch_id", batch_id),
            _value(QuoteClose, "created_at", self.now),
            _value(QuoteClose, "created_by", self.actor),
        ).where(which)
        recorded = (
            insert(QuoteClose)
            .from_select(
                [
                    "quote_id",
                    "quote_number",
                    "revision_number",
                    "status_reason",
                    "close_date",
                    "description",
                    "batch_id",
                    "created_at",
                    "created_by",
                ],
                copied,
            )
            .returning(QuoteClose)
        )
        # The records first: once the UPDATE ran, nothing tells the closed rows from older ones.
        records = {r.quote_id: r for r in (await self.session.scalars(recorded)).all()}
        closed = (
            update(Quote)
            .where(which)
            .values(
                state=new_state,
                status_reason=reason,
                closed_on=close_date,
                version=col(Quote.version) + 1,
                modified_at=self.now,
                modified_by=self.actor,
            )
            .returning(Quote)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        quotes = sorted((await self.session.scalars(closed)).all(), key=lambda q: q.id or 0)
        # SQLite returns rows in no specified order: pair them by quote id.
        return [(quote, records[quote.id or 0]) for quote in quotes]

    async def cancel_completed_closes(self, opportunity_id: int) -> list[OpportunityClose]:
        """Mark the opportunity's COMPLETED close records CANCELED in one statement."""
        stmt = (
            update(OpportunityClose)
            .where(
                col(OpportunityClose.opportunity_id) == opportunity_id,
                col(OpportunityClose.state) == CloseRecordState.COMPLETED,
            )
            .values(state=CloseRecordState.CANCELED, canceled_at=self.now, canceled_by=self.actor)
            .returning(OpportunityClose)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        canceled = (await self.session.scalars(stmt)).all()
        return sorted(canceled, key=lambda c: c.id or 0, reverse=True)

    async def get(self, model: type[M], id_: int) -> M | None:
        return await self.session.get(model, id_)

    async def competitor_named(self, name: str) -> Competitor | None:
        stmt = select(Competitor).where(func.lower(col(Competitor.name)) == name.lower())
        return (await self.session.scalars(stmt)).first()

    async def add(self, *objects: SQLModel) -> None:
        self.session.add_all(objects)
        await self.session.flush()
