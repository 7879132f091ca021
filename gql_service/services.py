"""Use cases for opportunities and competitors: load, check the rules, change, commit.

Every use case that changes an opportunity's state or the set of its open quotes starts its
transaction by locking the opportunity (``Repository.lock_opportunity``), so that the invariant
"a WON or LOST opportunity has no open quote" holds under any interleaving of requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar, overload

from sqlalchemy.exc import IntegrityError

from gql_service import line_repository, quote_closing, transitions
from gql_service.errors import ValidationFailedError, Violation, not_found, raise_if_any
from gql_service.messages import msg
from gql_service.models import (
    DESCRIPTION_MAX,
    NAME_MAX,
    URL_MAX,
    CloseOutcome,
    Competitor,
    ForecastCategory,
    Opportunity,
    OpportunityClose,
    OpportunityStatusReason,
    QuoteStatusReason,
)
from gql_service.quote_closing import ClosedQuote, check_quote_close_input
from gql_service.records import (
    OpportunityCloseRecord,
    OpportunityRecord,
    QuoteChange,
    QuoteCloseRecord,
    QuoteRecord,
)
from gql_service.repositories import Repository
from gql_service.rules import (
    CLOSE_REASONS,
    OPEN_REASONS,
    as_money,
    check_choice,
    check_close_input,
    check_competitor_name_free,
    check_currency,
    check_forecast,
    check_money,
    check_no_open_quotes,
    check_not_calculated,
    check_required,
    check_text,
)
from gql_service.unit_of_work import UnitOfWork
from gql_service.unset import UNSET, Unset


@dataclass(frozen=True, slots=True)
class OpportunityClosed:
    opportunity: OpportunityRecord
    close: OpportunityCloseRecord
    closed_quotes: list[ClosedQuote]


@dataclass(frozen=True, slots=True)
class OpportunityReopened:
    opportunity: Opportunity
    canceled_closes: list[OpportunityClose]


Closed = TypeVar("Closed", ClosedQuote, QuoteChange)


@dataclass(frozen=True, slots=True)
class QuotesClosed(Generic[Closed]):
    """The opportunity as closeQuotes locked it, and the quotes it closed: each with its close
    record, or only what the close changed of it (``close_quotes``' ``changes_only``)."""

    opportunity: OpportunityRecord
    closed_quotes: list[Closed]


async def create_opportunity(
    uow: UnitOfWork,
    *,
    name: str,
    customer_name: str,
    currency_code: str,
    estimated_revenue: Decimal | None = None,
    estimated_close_date: date | None = None,
    description: str | None = None,
    is_revenue_system_calculated: bool = False,
) -> Opportunity:
    """Create an OPEN / IN_PROGRESS opportunity. A system-calculated one starts at 0.0000 (it
    has no lines yet), and its estimate is never entered. Codes: INVALID_VALUE."""
    raise_if_any(
        [
            *check_text("name", name, max_length=NAME_MAX, required=True),
            *check_text("customer_name", customer_name, max_length=NAME_MAX, required=True),
            *check_currency("currency_code", currency_code),
            *check_money("estimated_revenue", estimated_revenue),
            *check_text("description", description, max_length=DESCRIPTION_MAX),
            *check_not_calculated(
                "estimated_revenue",
                is_revenue_system_calculated and estimated_revenue is not None,
            ),
        ]
    )
    if is_revenue_system_calculated:
        estimated_revenue = Decimal(0)

    async def work(repo: Repository) -> Opportunity:
        opportunity = Opportunity(
            name=name.strip(),
            customer_name=customer_name.strip(),
            currency_code=currency_code,
            estimated_revenue=as_money(estimated_revenue),
            estimated_close_date=estimated_close_date,
            description=description,
            is_revenue_system_calculated=is_revenue_system_calculated,
            **repo.created(),
        )
        await repo.add(opportunity)
        return opportunity

    return await uow.run(work)


async def update_opportunity(
    uow: UnitOfWork,
    *,
    opportunity_id: int,
    name: str | Unset = UNSET,
    customer_name: str | Unset = UNSET,
    estimated_revenue: Decimal | Unset | None = UNSET,
    estimated_close_date: date | Unset | None = UNSET,
    description: str | Unset | None = UNSET,
    status_reason: OpportunityStatusReason | Unset = UNSET,
    forecast_category: ForecastCategory | Unset = UNSET,
    is_revenue_system_calculated: bool | Unset = UNSET,
    expected_version: int | None = None,
) -> Opportunity:
    """Edit an OPEN opportunity; its state never changes here. Switching
    ``is_revenue_system_calculated`` on makes the estimate the sum of its lines; while on,
    the estimate is never entered.

    Codes: NOT_FOUND, CONCURRENCY_CONFLICT, OPPORTUNITY_ALREADY_CLOSED, INVALID_STATUS_REASON,
    INVALID_VALUE.
    """
    problems: list[Violation] = []
    if name is not UNSET:
        problems += check_text("name", name, max_length=NAME_MAX, required=True)
    if customer_name is not UNSET:
        problems += check_text("customer_name", customer_name, max_length=NAME_MAX, required=True)
    if estimated_revenue is not UNSET:
        problems += check_money("estimated_revenue", estimated_revenue)
    if description is not UNSET:
        problems += check_text("description", description, max_length=DESCRIPTION_MAX)
    if status_reason is not UNSET:
        problems += check_choice("status_reason", status_reason, OPEN_REASONS)
    if forecast_category is not UNSET:
        problems += check_forecast("forecast_category", forecast_category)
    problems += check_required("is_revenue_system_calculated", is_revenue_system_calculated)
    raise_if_any(problems)

    async def work(repo: Repository) -> Opportunity:
        opportunity = await repo.lock_opportunity(opportunity_id, expected_version=expected_version)
        lines_total = None
        if is_revenue_system_calculated and not opportunity.is_revenue_system_calculated:
            lines_total = await line_repository.opportunity_lines_total(repo, opportunity_id)
        changes = transitions.edit_opportunity(
            opportunity,
            name=name,
            customer_name=customer_name,
            estimated_revenue=estimated_revenue,
            estimated_close_date=estimated_close_date,
            description=description,
            status_reason=status_reason,
            forecast_category=forecast_category,
            is_revenue_system_calculated=is_revenue_system_calculated,
            lines_total=lines_total,
        )
        await repo.update(opportunity, changes)
        return opportunity

    return await uow.run(work)


async def close_opportunity(
    uow: UnitOfWork,
    *,
    opportunity_id: int,
    outcome: CloseOutcome,
    status_reason: OpportunityStatusReason | None = None,
    actual_revenue: Decimal | None = None,
    close_date: date | None = None,
    competitor_id: int | None = None,
    description: str | None = None,
    close_open_quotes: bool = False,
    expected_version: int | None = None,
) -> OpportunityClosed:
    """Close an OPEN opportunity as WON or LOST, leaving a COMPLETED close record.

    Refused while any quote is open, unless ``close_open_quotes`` closes them (as LOST) in the
    same transaction. Codes: NOT_FOUND, CONCURRENCY_CONFLICT, OPPORTUNITY_ALREADY_CLOSED,
    OPPORTUNITY_HAS_OPEN_QUOTES, INVALID_STATUS_REASON, INVALID_VALUE.
    """
    reason = status_reason or CLOSE_REASONS[outcome][0]
    raise_if_any(
        check_close_input(
            outcome=outcome,
            status_reason=reason,
            actual_revenue=actual_revenue,
            description=description,
        )
    )

    async def competitor_known(repo: Repository) -> None:
        if competitor_id is not None and not await repo.competitor_exists(competitor_id):
            raise not_found(msg("No competitor has this id."), "competitor")

    def given(repo: Repository) -> transitions.CloseInput:
        return transitions.CloseInput(
            outcome=outcome,
            status_reason=reason,
            actual_revenue=actual_revenue,
            close_date=close_date or repo.today,
            competitor_id=competitor_id,
            description=description,
            close_open_quotes=close_open_quotes,
        )

    async def plan_close(
        repo: Repository, opportunity: OpportunityRecord
    ) -> transitions.OpportunityClosing:
        """The rules, on the opportunity as locked (or as read, unlocked)."""
        plan = transitions.close_opportunity(opportunity, given(repo))
        await competitor_known(repo)
        return plan

    async def unlocked(repo: Repository) -> OpportunityClosed | None:
        # One call that locks the opportunity first and closes it, where it can: anything
        # else (a refusal, a changed row, an open quote) the locked work answers. Changes that
        # depend on the opportunity's values are worked out on it as read, and the call locks
        # only the version read; others need no read, and the call locks the opportunity only
        # in the state the rules require.
        unread = transitions.close_opportunity_unread(opportunity_id, given(repo))
        if unread is not None:
            await competitor_known(repo)
            plan, version = unread, expected_version
        else:
            opportunity = await repo.opportunity_row(opportunity_id)
            if opportunity is None or expected_version not in (None, opportunity.version):
                return None
            plan, version = await plan_close(repo, opportunity), opportunity.version
        done = await repo.close_opportunity_unlocked(
            opportunity_id,
            version,
            plan.changes,
            plan.record,
            plan.quotes,
            if_open=unread is not None,
        )
        return None if done is None else _closed(*done)

    async def work(repo: Repository) -> OpportunityClosed:
        opportunity = await repo.lock_opportunity_row(
            opportunity_id, expected_version=expected_version
        )
        plan = await plan_close(repo, opportunity)
        # The invariant is checked by the UPDATE itself; the open quotes are read only to name
        # them when they block the close.
        done = await repo.close_opportunity(
            opportunity_id,
            plan.changes,
            plan.record,
            quotes=plan.quotes,
        )
        if done is None:
            # (ValidationFailedError refuses an empty list: no silent success if none is found.)
            blocking = check_no_open_quotes(await repo.open_quotes(opportunity_id))
            raise ValidationFailedError(blocking)
        return _closed(*done)

    return await uow.run(work, unlocked=unlocked)


def _closed(
    moved: OpportunityRecord,
    record: OpportunityCloseRecord,
    quotes: list[tuple[QuoteRecord, QuoteCloseRecord]],
) -> OpportunityClosed:
    return OpportunityClosed(moved, record, [ClosedQuote(q, r) for q, r in quotes])


async def reopen_opportunity(
    uow: UnitOfWork,
    *,
    opportunity_id: int,
    status_reason: OpportunityStatusReason = OpportunityStatusReason.IN_PROGRESS,
    expected_version: int | None = None,
) -> OpportunityReopened:
    """Reopen a WON or LOST opportunity; its completed close records become CANCELED.

    Codes: NOT_FOUND, CONCURRENCY_CONFLICT, OPPORTUNITY_NOT_CLOSED, INVALID_STATUS_REASON.
    """
    raise_if_any(check_choice("status_reason", status_reason, OPEN_REASONS))

    async def work(repo: Repository) -> OpportunityReopened:
        opportunity = await repo.lock_opportunity(opportunity_id, expected_version=expected_version)
        reopening = transitions.reopen_opportunity(opportunity, status_reason=status_reason)
        canceled = await repo.cancel_completed_closes(opportunity_id, reopening.closes)
        await repo.update(opportunity, reopening.changes)
        return OpportunityReopened(opportunity, canceled)

    return await uow.run(work)


@overload
async def close_quotes(
    uow: UnitOfWork,
    *,
    opportunity_id: int,
    status_reason: QuoteStatusReason = ...,
    close_date: date | None = ...,
    description: str | None = ...,
    expected_version: int | None = ...,
    changes_only: Literal[False] = ...,
) -> QuotesClosed[ClosedQuote]: ...


@overload
async def close_quotes(
    uow: UnitOfWork,
    *,
    opportunity_id: int,
    status_reason: QuoteStatusReason = ...,
    close_date: date | None = ...,
    description: str | None = ...,
    expected_version: int | None = ...,
    changes_only: Literal[True],
) -> QuotesClosed[QuoteChange]: ...


async def close_quotes(
    uow: UnitOfWork,
    *,
    opportunity_id: int,
    status_reason: QuoteStatusReason = QuoteStatusReason.LOST,
    close_date: date | None = None,
    description: str | None = None,
    expected_version: int | None = None,
    changes_only: bool = False,
) -> QuotesClosed[Any]:
    """Close every DRAFT and ACTIVE quote of an OPEN opportunity at once, all or nothing.

    The closed quotes share one batch id. Nothing open is a success with an empty list.
    ``changes_only``, for a caller that reads nothing of the closed quotes but what the close
    changed (records.QuoteChange): they may come as only that, without their close records,
    which the close writes all the same.
    Codes: NOT_FOUND, CONCURRENCY_CONFLICT, OPPORTUNITY_ALREADY_CLOSED, INVALID_STATUS_REASON,
    INVALID_VALUE.
    """
    raise_if_any(check_quote_close_input(status_reason, description))

    async def unlocked(repo: Repository) -> QuotesClosed[Any] | None:
        # One call that locks an open opportunity first and closes its quotes, where it can
        # (the changes never depend on its values): anything else the locked work answers.
        closing = transitions.close_quotes_unread(
            opportunity_id,
            status_reason=status_reason,
            close_date=close_date or repo.today,
            description=description,
        )
        if changes_only:
            changed = await repo.close_quotes_unlocked_changes(expected_version, closing)
            return None if changed is None else QuotesClosed(*changed)
        done = await repo.close_quotes_unlocked(expected_version, closing)
        if done is None:
            return None
        locked, closed = done
        return QuotesClosed(locked, [ClosedQuote(q, r) for q, r in closed])

    async def work(repo: Repository) -> QuotesClosed[Any]:
        opportunity = await repo.lock_opportunity_row(
            opportunity_id, expected_version=expected_version
        )
        closing = transitions.close_quotes(
            opportunity,
            status_reason=status_reason,
            close_date=close_date or repo.today,
            description=description,
        )
        closed = await quote_closing.close_open_quotes(repo, closing)
        if changes_only:
            return QuotesClosed(opportunity, [c.quote for c in closed])
        return QuotesClosed(opportunity, closed)

    return await uow.run(work, unlocked=unlocked)


async def create_competitor(
    uow: UnitOfWork, *, name: str, website: str | None = None, notes: str | None = None
) -> Competitor:
    """Register a competitor under a unique name. Codes: INVALID_VALUE."""
    raise_if_any(
        [
            *check_text("name", name, max_length=NAME_MAX, required=True),
            *check_text("website", website, max_length=URL_MAX),
            *check_text("notes", notes, max_length=DESCRIPTION_MAX),
        ]
    )

    async def work(repo: Repository) -> Competitor:
        taken = await repo.competitor_named(name.strip()) is not None
        raise_if_any(check_competitor_name_free(name.strip(), taken))
        competitor = Competitor(
            name=name.strip(),
            website=website,
            notes=notes,
            created_at=repo.now,
            created_by=repo.actor,
        )
        await repo.add(competitor)
        return competitor

    try:
        return await uow.run(work)
    except IntegrityError:
        # A concurrent request registered the same name between our check and our insert.
        raise ValidationFailedError(check_competitor_name_free(name.strip(), True)) from None
