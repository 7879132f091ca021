"""State transitions of opportunities and quotes: each checks its guards and returns its changes.

Pure functions beside the models (no I/O): a service loads and locks, calls one transition, and
saves what it returns. A transition raises ``ValidationFailedError`` when a guard in rules.py
fails, and speaks only of the domain's fields. The audit stamps are not part of the changes:
the repository adds them when it saves (audit.py).

Closing quotes and closing an opportunity are set-based: their changes are applied by one
statement each, whose WHERE clause re-checks what only the database sees at once (which quotes
are open), under the opportunity's lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from gql_service.errors import ErrorCode, Violation, raise_if_any
from gql_service.models import (
    CloseOutcome,
    CloseRecordState,
    ContractState,
    ForecastCategory,
    Opportunity,
    OpportunityState,
    OpportunityStatusReason,
    Quote,
    QuoteState,
    QuoteStatusReason,
)
from gql_service.records import OpportunityRecord
from gql_service.rules import (
    as_money,
    check_not_calculated,
    check_opportunity_closed,
    check_opportunity_open,
    check_period,
    check_quote_draft,
    check_quote_open,
    check_quote_revisable,
)
from gql_service.unset import UNSET, Unset

# What a transition changed on one row: field name -> new value.
Changes = dict[str, Any]


@dataclass(frozen=True, slots=True)
class OpportunityClosing:
    """closeOpportunity's changes: the opportunity's, its new close record, and its quotes'."""

    changes: Changes
    record: Changes
    quotes: QuoteClosing | None


@dataclass(frozen=True, slots=True)
class QuoteClosing:
    """Open quotes of one opportunity to close: all of them, or only ``quote_id``.

    ``winner_id`` becomes WON/WON, the others CLOSED with ``status_reason``.
    """

    opportunity_id: int
    status_reason: QuoteStatusReason
    close_date: date
    description: str | None
    quote_id: int | None = None
    winner_id: int | None = None
    state: QuoteState = QuoteState.CLOSED

    @property
    def all_open(self) -> bool:
        """Every open quote of the opportunity, each the same way (no single one, no winner)."""
        return self.quote_id is None and self.winner_id is None


@dataclass(frozen=True, slots=True)
class QuoteRevision:
    """reviseQuote's changes to the revised quote, and the fields of its new draft."""

    changes: Changes
    draft: Changes


def edit_opportunity(
    opportunity: OpportunityRecord,
    *,
    name: str | Unset = UNSET,
    customer_name: str | Unset = UNSET,
    estimated_revenue: Decimal | Unset | None = UNSET,
    estimated_close_date: date | Unset | None = UNSET,
    description: str | Unset | None = UNSET,
    status_reason: OpportunityStatusReason | Unset = UNSET,
    forecast_category: ForecastCategory | Unset = UNSET,
    is_revenue_system_calculated: bool | Unset = UNSET,
    lines_total: Decimal | None = None,
) -> Changes:
    """An OPEN opportunity's new values; its state never changes here.

    While its revenue is system-calculated, the estimate is the sum of its lines
    (``lines_total``, given when it is switched on) and is never entered; switched off, the
    estimate stays as it was, now the user's.
    """
    raise_if_any(check_opportunity_open(opportunity))
    calculated = (
        opportunity.is_revenue_system_calculated
        if is_revenue_system_calculated is UNSET
        else is_revenue_system_calculated
    )
    if estimated_revenue is not UNSET:
        raise_if_any(check_not_calculated("estimated_revenue", calculated))
    if calculated and not opportunity.is_revenue_system_calculated:
        assert lines_total is not None, "switched on: the service sums the lines"
        estimated_revenue = lines_total
    changes: Changes = {
        "name": name if name is UNSET else name.strip(),
        "customer_name": (customer_name if customer_name is UNSET else customer_name.strip()),
        "estimated_revenue": (
            estimated_revenue if estimated_revenue is UNSET else as_money(estimated_revenue)
        ),
        "estimated_close_date": estimated_close_date,
        "description": description,
        "status_reason": status_reason,
        "forecast_category": forecast_category,
        "is_revenue_system_calculated": is_revenue_system_calculated,
    }
    return {k: v for k, v in changes.items() if v is not UNSET}


@dataclass(frozen=True, slots=True)
class CloseInput:
    """What closeOpportunity is asked for (``rules.check_close_input`` checked it)."""

    outcome: CloseOutcome
    status_reason: OpportunityStatusReason
    actual_revenue: Decimal | None
    close_date: date
    competitor_id: int | None
    description: str | None
    close_open_quotes: bool


def close_opportunity(opportunity: OpportunityRecord, given: CloseInput) -> OpportunityClosing:
    """OPEN -> WON or LOST, with a COMPLETED close record; optionally its open quotes -> LOST.

    The central invariant (no open quote once closed) is the guard that the saving statement
    checks itself: only it sees the quotes under the opportunity's lock.
    """
    assert opportunity.id is not None
    raise_if_any(check_opportunity_open(opportunity))
    revenue: Decimal | None
    if given.actual_revenue is not None:
        revenue = as_money(given.actual_revenue)
    elif given.outcome is CloseOutcome.WON:
        revenue = opportunity.estimated_revenue
    else:
        revenue = None
    return _closing(opportunity.id, given, revenue)


def close_opportunity_unread(opportunity_id: int, given: CloseInput) -> OpportunityClosing | None:
    """``close_opportunity``'s changes where they do not depend on the opportunity's values:
    those of an opportunity in ``rules.OPEN_STATE``, the only state its guard accepts, or None
    when they do (WON without an actual revenue takes the estimate). The caller writes them
    only if the opportunity is in that state under its lock (repositories.py)."""
    if given.actual_revenue is None and given.outcome is CloseOutcome.WON:
        return None
    revenue = None if given.actual_revenue is None else as_money(given.actual_revenue)
    return _closing(opportunity_id, given, revenue)


def _closing(opportunity_id: int, given: CloseInput, revenue: Decimal | None) -> OpportunityClosing:
    quotes = None
    if given.close_open_quotes:
        quotes = QuoteClosing(
            opportunity_id,
            status_reason=QuoteStatusReason.LOST,
            close_date=given.close_date,
            description=given.description,
        )
    return OpportunityClosing(
        changes={
            "state": OpportunityState(given.outcome.value),
            "status_reason": given.status_reason,
            "forecast_category": ForecastCategory(given.outcome.value),
            "actual_revenue": revenue,
            "actual_close_date": given.close_date,
        },
        record={
            "opportunity_id": opportunity_id,
            "outcome": given.outcome,
            "status_reason": given.status_reason,
            "actual_revenue": revenue,
            "close_date": given.close_date,
            "competitor_id": given.competitor_id,
            "description": given.description,
            "state": CloseRecordState.COMPLETED,
        },
        quotes=quotes,
    )


@dataclass(frozen=True, slots=True)
class OpportunityReopening:
    """reopenOpportunity's changes: the opportunity's, and those of its COMPLETED close records
    (applied to all of them by one statement)."""

    changes: Changes
    closes: Changes


def reopen_opportunity(
    opportunity: Opportunity, *, status_reason: OpportunityStatusReason
) -> OpportunityReopening:
    """WON or LOST -> OPEN; the forecast goes back to PIPELINE and every COMPLETED close record
    becomes CANCELED. Quotes and the actual values stay as they are."""
    raise_if_any(check_opportunity_closed(opportunity))
    return OpportunityReopening(
        changes={
            "state": OpportunityState.OPEN,
            "status_reason": status_reason,
            "forecast_category": ForecastCategory.PIPELINE,
        },
        closes={"state": CloseRecordState.CANCELED},
    )


def close_quotes(
    opportunity: OpportunityRecord,
    *,
    status_reason: QuoteStatusReason,
    close_date: date,
    description: str | None,
) -> QuoteClosing:
    """Every open quote of an OPEN opportunity -> CLOSED with ``status_reason``."""
    assert opportunity.id is not None
    raise_if_any(check_opportunity_open(opportunity))
    return close_quotes_unread(
        opportunity.id, status_reason=status_reason, close_date=close_date, description=description
    )


def close_quotes_unread(
    opportunity_id: int,
    *,
    status_reason: QuoteStatusReason,
    close_date: date,
    description: str | None,
) -> QuoteClosing:
    """``close_quotes``' changes, which never depend on the opportunity's values: those of an
    opportunity in ``rules.OPEN_STATE``, written only if it is in that state under its lock
    (repositories.py)."""
    return QuoteClosing(
        opportunity_id, status_reason=status_reason, close_date=close_date, description=description
    )


def _quote_guards(opportunity: OpportunityRecord, *checks: list[Violation]) -> None:
    """An OPEN opportunity first, then the quote's own guards, each reported alone."""
    raise_if_any(check_opportunity_open(opportunity))
    for problems in checks:
        raise_if_any(problems)


def edit_quote(
    opportunity: OpportunityRecord,
    quote: Quote,
    *,
    name: str | Unset = UNSET,
    total_amount: Decimal | Unset | None = UNSET,
    effective_from: date | Unset | None = UNSET,
    effective_to: date | Unset | None = UNSET,
    has_lines: bool = False,
) -> Changes:
    """A DRAFT quote's new values; its validity period must stay in order, and the total of a
    quote with lines is their sum, never entered."""
    _quote_guards(opportunity, check_quote_draft(quote, code=ErrorCode.QUOTE_READ_ONLY))
    if total_amount is not UNSET:
        raise_if_any(check_not_calculated("total_amount", has_lines))
    start = quote.effective_from if effective_from is UNSET else effective_from
    end = quote.effective_to if effective_to is UNSET else effective_to
    raise_if_any(check_period("effective_to", start, end))
    changes: Changes = {"effective_from": start, "effective_to": end}
    if name is not UNSET:
        changes["name"] = name.strip()
    if total_amount is not UNSET:
        changes["total_amount"] = as_money(total_amount)
    return changes


def activate_quote(opportunity: OpportunityRecord, quote: Quote) -> Changes:
    """DRAFT -> ACTIVE; the quote becomes read-only."""
    _quote_guards(opportunity, check_quote_draft(quote, code=ErrorCode.QUOTE_NOT_OPEN))
    return {"state": QuoteState.ACTIVE, "status_reason": QuoteStatusReason.IN_PROGRESS}


def revise_quote(opportunity: OpportunityRecord, quote: Quote, *, today: date) -> QuoteRevision:
    """ACTIVE -> CLOSED/REVISED, and a new DRAFT with the same number and the next revision."""
    _quote_guards(opportunity, check_quote_revisable(quote))
    return QuoteRevision(
        changes={
            "state": QuoteState.CLOSED,
            "status_reason": QuoteStatusReason.REVISED,
            "closed_on": today,
        },
        draft={
            "opportunity_id": quote.opportunity_id,
            "quote_number": quote.quote_number,
            "revision_number": quote.revision_number + 1,
            "name": quote.name,
            "currency_code": quote.currency_code,
            "total_amount": quote.total_amount,
            "effective_from": quote.effective_from,
            "effective_to": quote.effective_to,
        },
    )


def win_quote(
    opportunity: OpportunityRecord,
    quote: Quote,
    *,
    close_date: date,
    description: str | None,
) -> QuoteClosing:
    """An open quote -> WON; every other open quote of its opportunity -> CLOSED/LOST.

    The opportunity stays OPEN.
    """
    assert quote.id is not None
    _quote_guards(opportunity, check_quote_open(quote))
    return QuoteClosing(
        quote.opportunity_id,
        status_reason=QuoteStatusReason.LOST,
        close_date=close_date,
        description=description,
        winner_id=quote.id,
    )


def draft_contract(
    opportunity: OpportunityRecord, quote: Quote, *, contract_number: str
) -> Changes:
    """The DRAFT project contract that winning ``quote`` creates: the opportunity's customer,
    the quote's name, currency and total, linked to both. Its lines are the quote's lines,
    copied by the saving statement (the quote's lines are read only there).

    Call it with a quote that ``win_quote`` accepted.
    """
    assert quote.id is not None
    assert opportunity.id is not None
    return {
        "contract_number": contract_number,
        "name": quote.name,
        "state": ContractState.DRAFT,
        "customer_name": opportunity.customer_name,
        "currency_code": quote.currency_code,
        "total_amount": quote.total_amount,
        "opportunity_id": opportunity.id,
        "quote_id": quote.id,
    }


def close_quote(
    opportunity: OpportunityRecord,
    quote: Quote,
    *,
    status_reason: QuoteStatusReason,
    close_date: date,
    description: str | None,
) -> QuoteClosing:
    """One open quote -> CLOSED as LOST or CANCELED."""
    assert quote.id is not None
    _quote_guards(opportunity, check_quote_open(quote))
    return QuoteClosing(
        quote.opportunity_id,
        status_reason=status_reason,
        close_date=close_date,
        description=description,
        quote_id=quote.id,
    )
