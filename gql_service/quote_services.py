"""Use cases for quotes: create, edit, activate, revise, win and close.

Each starts by locking the quote's opportunity (``Repository.lock_quote``), which serialises it
with closeOpportunity and closeQuotes on the same opportunity.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from gql_service import line_repository, transitions
from gql_service.contracts import DraftedContract, draft_contract
from gql_service.errors import Violation, raise_if_any
from gql_service.line_repository import QUOTE_LINES
from gql_service.models import DESCRIPTION_MAX, NAME_MAX, Quote, QuoteStatusReason
from gql_service.quote_closing import (
    ClosedQuote,
    check_quote_close_input,
    close_open_quotes,
    split_winner,
)
from gql_service.repositories import Repository
from gql_service.rules import (
    as_money,
    check_currency,
    check_money,
    check_opportunity_open,
    check_period,
    check_quote_currency,
    check_text,
)
from gql_service.unit_of_work import UnitOfWork
from gql_service.unset import UNSET, Unset


@dataclass(frozen=True, slots=True)
class QuoteRevised:
    quote: Quote
    revised_quote: Quote


@dataclass(frozen=True, slots=True)
class QuoteWon:
    quote: ClosedQuote
    lost_quotes: list[ClosedQuote]
    contract: DraftedContract


def new_quote_number() -> str:
    return f"QUO-{secrets.token_hex(4).upper()}"


async def create_quote(
    uow: UnitOfWork,
    *,
    opportunity_id: int,
    name: str,
    currency_code: str | None = None,
    total_amount: Decimal | None = None,
    effective_from: date | None = None,
    effective_to: date | None = None,
) -> Quote:
    """Add a DRAFT quote to an OPEN opportunity, in the opportunity's currency.

    Codes: NOT_FOUND, OPPORTUNITY_ALREADY_CLOSED, CURRENCY_MISMATCH, INVALID_VALUE.
    """
    problems = [
        *check_text("name", name, max_length=NAME_MAX, required=True),
        *check_money("total_amount", total_amount),
        *check_period("effective_to", effective_from, effective_to),
    ]
    if currency_code is not None:
        problems += check_currency("currency_code", currency_code)
    raise_if_any(problems)

    async def work(repo: Repository) -> Quote:
        opportunity = await repo.lock_opportunity(opportunity_id, expected_version=None)
        raise_if_any(check_opportunity_open(opportunity))
        currency = currency_code or opportunity.currency_code
        raise_if_any(check_quote_currency(opportunity, currency))
        quote = Quote(
            opportunity_id=opportunity_id,
            quote_number=new_quote_number(),
            revision_number=0,
            name=name.strip(),
            currency_code=currency,
            total_amount=as_money(total_amount),
            effective_from=effective_from,
            effective_to=effective_to,
            **repo.created(),
        )
        await repo.add(opportunity, quote)
        return quote

    return await uow.run(work)


async def update_quote(
    uow: UnitOfWork,
    *,
    quote_id: int,
    name: str | Unset = UNSET,
    total_amount: Decimal | Unset | None = UNSET,
    effective_from: date | Unset | None = UNSET,
    effective_to: date | Unset | None = UNSET,
    expected_version: int | None = None,
) -> Quote:
    """Edit a DRAFT quote; the total of a quote with lines is their sum, never entered.
    Codes: NOT_FOUND, CONCURRENCY_CONFLICT, OPPORTUNITY_ALREADY_CLOSED, QUOTE_READ_ONLY,
    INVALID_VALUE."""
    problems: list[Violation] = []
    if name is not UNSET:
        problems += check_text("name", name, max_length=NAME_MAX, required=True)
    if total_amount is not UNSET:
        problems += check_money("total_amount", total_amount)
    raise_if_any(problems)

    async def work(repo: Repository) -> Quote:
        opportunity, quote = await repo.lock_quote(quote_id, expected_version=expected_version)
        has_lines = total_amount is not UNSET and await line_repository.has_lines(
            repo, QUOTE_LINES, quote_id
        )
        changes = transitions.edit_quote(
            opportunity,
            quote,
            name=name,
            total_amount=total_amount,
            effective_from=effective_from,
            effective_to=effective_to,
            has_lines=has_lines,
        )
        await repo.update(quote, changes)
        return quote

    return await uow.run(work)


async def activate_quote(
    uow: UnitOfWork, *, quote_id: int, expected_version: int | None = None
) -> Quote:
    """DRAFT -> ACTIVE; the quote becomes read-only. Codes: NOT_FOUND, CONCURRENCY_CONFLICT,
    OPPORTUNITY_ALREADY_CLOSED, QUOTE_NOT_OPEN."""

    async def work(repo: Repository) -> Quote:
        opportunity, quote = await repo.lock_quote(quote_id, expected_version=expected_version)
        await repo.update(quote, transitions.activate_quote(opportunity, quote))
        return quote

    return await uow.run(work)


async def revise_quote(
    uow: UnitOfWork, *, quote_id: int, expected_version: int | None = None
) -> QuoteRevised:
    """ACTIVE -> CLOSED/REVISED, plus a new DRAFT with the same number and the next revision,
    with a copy of the quote's lines (one INSERT ... SELECT).

    Codes: NOT_FOUND, CONCURRENCY_CONFLICT, OPPORTUNITY_ALREADY_CLOSED, QUOTE_NOT_OPEN.
    """

    async def work(repo: Repository) -> QuoteRevised:
        opportunity, quote = await repo.lock_quote(quote_id, expected_version=expected_version)
        raise_if_any(check_opportunity_open(opportunity))
        revision = transitions.revise_quote(opportunity, quote, today=repo.today)
        await repo.update(quote, revision.changes)
        draft = Quote(**revision.draft, **repo.created())
        await repo.add(draft)
        assert draft.id is not None
        await line_repository.copy_lines(repo, QUOTE_LINES, QUOTE_LINES, quote_id, draft.id)
        return QuoteRevised(draft, quote)

    return await uow.run(work)


async def win_quote(
    uow: UnitOfWork,
    *,
    quote_id: int,
    close_date: date | None = None,
    description: str | None = None,
    expected_version: int | None = None,
) -> QuoteWon:
    """Mark an open quote WON; every other open quote of its opportunity becomes CLOSED/LOST,
    and a DRAFT project contract is made from the won quote and its lines (contracts.py).

    The opportunity stays OPEN. Codes: NOT_FOUND, CONCURRENCY_CONFLICT,
    OPPORTUNITY_ALREADY_CLOSED, QUOTE_NOT_OPEN, INVALID_VALUE.
    """
    raise_if_any(check_text("description", description, max_length=DESCRIPTION_MAX))

    async def work(repo: Repository) -> QuoteWon:
        opportunity, quote = await repo.lock_quote(quote_id, expected_version=expected_version)
        closing = transitions.win_quote(
            opportunity, quote, close_date=close_date or repo.today, description=description
        )
        closed = await close_open_quotes(repo, closing)
        contract = await draft_contract(repo, opportunity, quote)
        return QuoteWon(*split_winner(closed, quote_id), contract)

    return await uow.run(work)


async def close_quote(
    uow: UnitOfWork,
    *,
    quote_id: int,
    status_reason: QuoteStatusReason = QuoteStatusReason.LOST,
    close_date: date | None = None,
    description: str | None = None,
    expected_version: int | None = None,
) -> ClosedQuote:
    """Close one open quote as LOST or CANCELED, with a close record.

    Codes: NOT_FOUND, CONCURRENCY_CONFLICT, OPPORTUNITY_ALREADY_CLOSED, QUOTE_NOT_OPEN,
    INVALID_STATUS_REASON, INVALID_VALUE.
    """
    raise_if_any(check_quote_close_input(status_reason, description))

    async def work(repo: Repository) -> ClosedQuote:
        opportunity, quote = await repo.lock_quote(quote_id, expected_version=expected_version)
        closing = transitions.close_quote(
            opportunity,
            quote,
            status_reason=status_reason,
            close_date=close_date or repo.today,
            description=description,
        )
        [closed] = await close_open_quotes(repo, closing)
        return closed

    return await uow.run(work)
