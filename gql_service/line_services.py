"""Use cases for quote and opportunity lines: add, update, remove.

Each takes the opportunity's lock first (the locking UPDATE, by the line's parent), checks the
transition (lines.py), writes the line and brings the parent's sum up to date in the same
transaction: a quote's totalAmount is the sum of its lines while it has any, and a
system-calculated estimatedRevenue is the sum of the opportunity's lines. Versions grow as on
every change: the opportunity's (by the lock), the quote's, the line's.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from gql_service import line_repository as store
from gql_service import lines
from gql_service.errors import ValidationFailedError, not_found, raise_if_any
from gql_service.line_repository import OPPORTUNITY_LINES, QUOTE_LINES
from gql_service.messages import msg
from gql_service.models import BillingMethod, Opportunity, Quote, TransactionClass
from gql_service.records import (
    LineRecord,
    OpportunityLineRecord,
    OpportunityRecord,
    QuoteLineRecord,
    QuoteRecord,
)
from gql_service.repositories import Repository
from gql_service.rules import check_line_values, check_lines_total, check_version
from gql_service.unit_of_work import UnitOfWork
from gql_service.unset import UNSET, Unset


@dataclass(frozen=True, slots=True)
class QuoteLineChanged:
    """A quote line as written (or as it was, when removed) and its quote with its new total."""

    line: QuoteLineRecord
    quote: QuoteRecord


@dataclass(frozen=True, slots=True)
class OpportunityLineChanged:
    """An opportunity line as written (or as removed) and its opportunity."""

    line: OpportunityLineRecord
    opportunity: OpportunityRecord


def _values(**given: Any) -> dict[str, Any]:
    """The line fields given, checked each on its own (every violation at once)."""
    raise_if_any(check_line_values(**given))
    return {name: value for name, value in given.items() if value is not UNSET}


def _no_line(kind: str) -> ValidationFailedError:
    return not_found(msg("No line has this id."), kind)


async def _quote_total(repo: Repository, quote_id: int) -> QuoteRecord:
    quote = await store.total_quote(repo, quote_id)
    if quote is None:
        raise ValidationFailedError(check_lines_total("quantity", False))
    return quote


async def _opportunity_total(repo: Repository, opportunity_id: int) -> OpportunityRecord:
    opportunity = await store.total_opportunity(repo, opportunity_id)
    if opportunity is None:
        raise ValidationFailedError(check_lines_total("quantity", False))
    return opportunity


async def add_quote_line(
    uow: UnitOfWork,
    *,
    quote_id: int,
    name: str,
    billing_method: BillingMethod,
    quantity: Decimal,
    unit_price: Decimal,
    transaction_class: TransactionClass | None = None,
    discount: Decimal | None = None,
    expected_version: int | None = None,
) -> QuoteLineChanged:
    """Add a line to a DRAFT quote; the quote's total becomes the sum of its lines.
    expectedVersion is the quote's, as on the other quote mutations.

    Codes: NOT_FOUND, CONCURRENCY_CONFLICT, OPPORTUNITY_ALREADY_CLOSED,
    QUOTE_READ_ONLY, INVALID_VALUE.
    """
    values = _values(
        name=name,
        billing_method=billing_method,
        transaction_class=transaction_class,
        quantity=quantity,
        unit_price=unit_price,
        discount=discount,
    )

    async def work(repo: Repository) -> QuoteLineChanged:
        opportunity, quote = await repo.lock_quote(quote_id, expected_version=expected_version)
        line = await store.add_line(
            repo, QUOTE_LINES, quote_id, lines.add_quote_line(opportunity, quote, values)
        )
        return QuoteLineChanged(line, await _quote_total(repo, quote_id))

    return await uow.run(work)


async def _lock_quote_of_line(
    repo: Repository, line_id: int, expected_version: int | None
) -> tuple[Opportunity, Quote, LineRecord]:
    """Lock the line's opportunity first, then load the line and its quote."""
    table = QUOTE_LINES.table
    quote_of_line = select(table.c.quote_id).where(table.c.id == line_id).scalar_subquery()
    owner = (
        select(col(Quote.opportunity_id)).where(col(Quote.id) == quote_of_line).scalar_subquery()
    )
    opportunity = await repo.lock_opportunity_of(
        owner, expected_version=None, missing=_no_line("line")
    )
    line = await store.find_line(repo, QUOTE_LINES, line_id)
    if line is None:  # pragma: no cover - the lock found its opportunity through the line
        raise _no_line("line")
    quote = await repo.session.get(Quote, line.quote_id, populate_existing=True)
    assert quote is not None
    raise_if_any(check_version("quote", expected_version, quote.version))
    return opportunity, quote, line


async def update_quote_line(
    uow: UnitOfWork,
    *,
    line_id: int,
    name: str | Unset = UNSET,
    billing_method: BillingMethod | Unset = UNSET,
    transaction_class: TransactionClass | Unset | None = UNSET,
    quantity: Decimal | Unset = UNSET,
    unit_price: Decimal | Unset = UNSET,
    discount: Decimal | Unset | None = UNSET,
    expected_version: int | None = None,
) -> QuoteLineChanged:
    """Change a DRAFT quote's line; its amount and the quote's total follow.

    Codes: NOT_FOUND, CONCURRENCY_CONFLICT, OPPORTUNITY_ALREADY_CLOSED,
    QUOTE_READ_ONLY, INVALID_VALUE.
    """
    values = _values(
        name=name,
        billing_method=billing_method,
        transaction_class=transaction_class,
        quantity=quantity,
        unit_price=unit_price,
        discount=discount,
    )

    async def work(repo: Repository) -> QuoteLineChanged:
        opportunity, quote, line = await _lock_quote_of_line(repo, line_id, expected_version)
        changes = lines.edit_quote_line(opportunity, quote, line, values)
        written = await store.update_line(repo, QUOTE_LINES, line_id, changes)
        return QuoteLineChanged(written, await _quote_total(repo, quote.id or 0))

    return await uow.run(work)


async def remove_quote_line(
    uow: UnitOfWork, *, line_id: int, expected_version: int | None = None
) -> QuoteLineChanged:
    """Remove a DRAFT quote's line. Without lines left, the quote's total is null (there is
    nothing to sum; updateQuote may enter one again).

    Codes: NOT_FOUND, CONCURRENCY_CONFLICT, OPPORTUNITY_ALREADY_CLOSED,
    QUOTE_READ_ONLY.
    """

    async def work(repo: Repository) -> QuoteLineChanged:
        opportunity, quote, _ = await _lock_quote_of_line(repo, line_id, expected_version)
        lines.remove_quote_line(opportunity, quote)
        removed = await store.remove_line(repo, QUOTE_LINES, line_id)
        return QuoteLineChanged(removed, await _quote_total(repo, quote.id or 0))

    return await uow.run(work)


async def add_opportunity_line(
    uow: UnitOfWork,
    *,
    opportunity_id: int,
    name: str,
    billing_method: BillingMethod,
    quantity: Decimal,
    unit_price: Decimal,
    transaction_class: TransactionClass | None = None,
    discount: Decimal | None = None,
    expected_version: int | None = None,
) -> OpportunityLineChanged:
    """Add a line to an OPEN opportunity; a system-calculated estimate follows its lines.

    Codes: NOT_FOUND, CONCURRENCY_CONFLICT, OPPORTUNITY_ALREADY_CLOSED, INVALID_VALUE.
    """
    values = _values(
        name=name,
        billing_method=billing_method,
        transaction_class=transaction_class,
        quantity=quantity,
        unit_price=unit_price,
        discount=discount,
    )

    async def work(repo: Repository) -> OpportunityLineChanged:
        opportunity = await repo.lock_opportunity_row(
            opportunity_id, expected_version=expected_version
        )
        changes = lines.add_opportunity_line(opportunity, values)
        line = await store.add_line(repo, OPPORTUNITY_LINES, opportunity_id, changes)
        return OpportunityLineChanged(line, await _opportunity_total(repo, opportunity_id))

    return await uow.run(work)


async def _lock_opportunity_of_line(
    repo: Repository, line_id: int, expected_version: int | None
) -> tuple[Opportunity, LineRecord]:
    table = OPPORTUNITY_LINES.table
    owner = select(table.c.opportunity_id).where(table.c.id == line_id).scalar_subquery()
    opportunity = await repo.lock_opportunity_of(
        owner, expected_version=expected_version, missing=_no_line("line")
    )
    line = await store.find_line(repo, OPPORTUNITY_LINES, line_id)
    if line is None:  # pragma: no cover - the lock found its opportunity through the line
        raise _no_line("line")
    return opportunity, line


async def update_opportunity_line(
    uow: UnitOfWork,
    *,
    line_id: int,
    name: str | Unset = UNSET,
    billing_method: BillingMethod | Unset = UNSET,
    transaction_class: TransactionClass | Unset | None = UNSET,
    quantity: Decimal | Unset = UNSET,
    unit_price: Decimal | Unset = UNSET,
    discount: Decimal | Unset | None = UNSET,
    expected_version: int | None = None,
) -> OpportunityLineChanged:
    """Change an OPEN opportunity's line; its amount and a calculated estimate follow.

    Codes: NOT_FOUND, CONCURRENCY_CONFLICT, OPPORTUNITY_ALREADY_CLOSED, INVALID_VALUE.
    """
    values = _values(
        name=name,
        billing_method=billing_method,
        transaction_class=transaction_class,
        quantity=quantity,
        unit_price=unit_price,
        discount=discount,
    )

    async def work(repo: Repository) -> OpportunityLineChanged:
        opportunity, line = await _lock_opportunity_of_line(repo, line_id, expected_version)
        changes = lines.edit_opportunity_line(opportunity, line, values)
        written = await store.update_line(repo, OPPORTUNITY_LINES, line_id, changes)
        return OpportunityLineChanged(written, await _opportunity_total(repo, opportunity.id or 0))

    return await uow.run(work)


async def remove_opportunity_line(
    uow: UnitOfWork, *, line_id: int, expected_version: int | None = None
) -> OpportunityLineChanged:
    """Remove an OPEN opportunity's line; a calculated estimate becomes the rest's sum (0.0000
    without lines).

    Codes: NOT_FOUND, CONCURRENCY_CONFLICT, OPPORTUNITY_ALREADY_CLOSED.
    """

    async def work(repo: Repository) -> OpportunityLineChanged:
        opportunity, _ = await _lock_opportunity_of_line(repo, line_id, expected_version)
        lines.remove_opportunity_line(opportunity)
        removed = await store.remove_line(repo, OPPORTUNITY_LINES, line_id)
        return OpportunityLineChanged(removed, await _opportunity_total(repo, opportunity.id or 0))

    return await uow.run(work)
