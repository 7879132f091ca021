"""GraphQL input types: mutation inputs, filters and orderings."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import strawberry

from gql_service.bulk_closing import BULK_CLOSE_MAX
from gql_service.graphql.enums import (
    CloseOutcome,
    ContractState,
    ForecastCategory,
    OpportunityOrderField,
    OpportunityState,
    OpportunityStatusReason,
    OrderDirection,
    QuoteState,
    QuoteStatusReason,
)
from gql_service.models import DESCRIPTION_MAX, MONEY_PLACES, NAME_MAX

NAME_LENGTH = f"Name, 1-{NAME_MAX} characters."
UP_TO_DESCRIPTION_MAX = f"Up to {DESCRIPTION_MAX} chars."
MONEY_TEXT = f"at most {MONEY_PLACES} decimals, not negative"
EXPECTED_VERSION = (
    "The version you last read; the change is refused with CONCURRENCY_CONFLICT if the record "
    "has moved on since. Leave it out to skip the check."
)
DRY_RUN = (
    "Check only: run every check of the real call on the current data, under the same lock, "
    "and answer with the same errors or the payload the call would return, then roll back. "
    "Nothing is written, no subscriber hears of it, and an Idempotency-Key is neither spent "
    "nor stored. A later real call can still fail or answer differently, because others may "
    "change the opportunity or its quotes in between (send expectedVersion to notice). Ids "
    "of records the dry run would create are not kept, and fields read through the payload's "
    "objects (such as opportunity.quotes) show the data as committed."
)


@strawberry.input(description="Filter on opportunities; all given conditions must hold.")
class OpportunityFilter:
    state: list[OpportunityState] | None = strawberry.field(
        default=None, description="Only opportunities in one of these states."
    )
    customer_name: str | None = strawberry.field(
        default=None, description="Customer name contains this text (case-insensitive)."
    )
    name_contains: str | None = strawberry.field(
        default=None, description="Opportunity name contains this text (case-insensitive)."
    )
    has_open_quotes: bool | None = strawberry.field(
        default=None, description="Only those with (true) or without (false) an open quote."
    )
    customer: str | None = strawberry.field(
        default=None, description="Customer name equals this text exactly."
    )
    outcome: CloseOutcome | None = strawberry.field(
        default=None, description="Only those closed with this outcome (state WON or LOST)."
    )
    actual_close_date_from: date | None = strawberry.field(
        default=None, description="Only those whose actual close date is on or after this day."
    )
    actual_close_date_to: date | None = strawberry.field(
        default=None, description="Only those whose actual close date is on or before this day."
    )


@strawberry.input(description="Ordering of opportunities; ties are broken by id.")
class OpportunityOrder:
    field: OpportunityOrderField = strawberry.field(
        default=OpportunityOrderField.CREATED_AT, description="The field to sort by."
    )
    direction: OrderDirection = strawberry.field(
        default=OrderDirection.DESC, description="The sort direction."
    )


@strawberry.input(description="Filter on quotes; all given conditions must hold.")
class QuoteFilter:
    state: list[QuoteState] | None = strawberry.field(
        default=None, description="Only quotes in one of these states."
    )
    is_open: bool | None = strawberry.field(
        default=None, description="Only open (DRAFT, ACTIVE) or only final quotes."
    )


@strawberry.input(description="Filter on the list of all quotes; all given conditions must hold.")
class QuoteListFilter:
    state: list[QuoteState] | None = strawberry.field(
        default=None, description="Only quotes in one of these states."
    )
    is_open: bool | None = strawberry.field(
        default=None, description="Only open (DRAFT, ACTIVE) or only final quotes."
    )
    opportunity_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only the quotes of this opportunity."
    )


@strawberry.input(description="A new opportunity, created OPEN / IN_PROGRESS.")
class CreateOpportunityInput:
    name: str = strawberry.field(description=NAME_LENGTH)
    customer_name: str = strawberry.field(
        description=f"The prospective customer, 1-{NAME_MAX} chars."
    )
    currency_code: str = strawberry.field(description="ISO 4217 currency code, e.g. EUR.")
    estimated_revenue: Decimal | None = strawberry.field(
        default=None, description=f"Expected revenue; {MONEY_TEXT}."
    )
    estimated_close_date: date | None = strawberry.field(
        default=None, description="When the deal is expected to close."
    )
    description: str | None = strawberry.field(default=None, description=UP_TO_DESCRIPTION_MAX)
    is_revenue_system_calculated: bool = strawberry.field(
        default=False,
        description="True: estimatedRevenue is the sum of its lines (0.0000 until it has "
        "some) and must not be given.",
    )


@strawberry.input(description="Changes to an OPEN opportunity; omitted fields stay as they are.")
class UpdateOpportunityInput:
    opportunity_id: strawberry.ID = strawberry.field(description="The opportunity to change.")
    name: str | None = strawberry.field(default=strawberry.UNSET, description="New name.")
    customer_name: str | None = strawberry.field(
        default=strawberry.UNSET, description="New customer name."
    )
    estimated_revenue: Decimal | None = strawberry.field(
        default=strawberry.UNSET, description="New estimated revenue, or null to clear it."
    )
    estimated_close_date: date | None = strawberry.field(
        default=strawberry.UNSET, description="New estimated close date, or null."
    )
    description: str | None = strawberry.field(
        default=strawberry.UNSET, description="New description, or null."
    )
    status_reason: OpportunityStatusReason | None = strawberry.field(
        default=strawberry.UNSET, description="IN_PROGRESS or ON_HOLD."
    )
    forecast_category: ForecastCategory | None = strawberry.field(
        default=strawberry.UNSET, description="Any category but WON and LOST."
    )
    is_revenue_system_calculated: bool | None = strawberry.field(
        default=strawberry.UNSET,
        description="Switched on, estimatedRevenue becomes the sum of its lines and must not "
        "be given; switched off, it keeps its value, now entered by the user.",
    )
    expected_version: int | None = strawberry.field(default=None, description=EXPECTED_VERSION)


@strawberry.input(description="Close an OPEN opportunity as WON or LOST.")
class CloseOpportunityInput:
    opportunity_id: strawberry.ID = strawberry.field(description="The opportunity to close.")
    outcome: CloseOutcome = strawberry.field(description="WON or LOST.")
    status_reason: OpportunityStatusReason | None = strawberry.field(
        default=None,
        description="Must fit the outcome: WON -> WON; LOST -> CANCELED (default) or OUT_SOLD.",
    )
    actual_revenue: Decimal | None = strawberry.field(
        default=None,
        description="Actual revenue; for WON it defaults to the estimated revenue.",
    )
    close_date: date | None = strawberry.field(
        default=None, description="Date of the close; defaults to today (UTC)."
    )
    competitor_id: strawberry.ID | None = strawberry.field(
        default=None, description="The competitor won (or lost) against."
    )
    description: str | None = strawberry.field(default=None, description=UP_TO_DESCRIPTION_MAX)
    close_open_quotes: bool = strawberry.field(
        default=False,
        description="Also close every open quote (as LOST) in the same transaction.",
    )
    expected_version: int | None = strawberry.field(default=None, description=EXPECTED_VERSION)
    dry_run: bool = strawberry.field(default=False, description=DRY_RUN)


@strawberry.input(description="Close all DRAFT and ACTIVE quotes of an opportunity at once.")
class CloseQuotesInput:
    opportunity_id: strawberry.ID = strawberry.field(description="The opportunity.")
    status_reason: QuoteStatusReason = strawberry.field(
        default=QuoteStatusReason.LOST, description="LOST (default) or CANCELED."
    )
    close_date: date | None = strawberry.field(
        default=None, description="Close date of the quotes; defaults to today (UTC)."
    )
    description: str | None = strawberry.field(default=None, description=UP_TO_DESCRIPTION_MAX)
    expected_version: int | None = strawberry.field(
        default=None, description="The opportunity's version you last read. " + EXPECTED_VERSION
    )
    dry_run: bool = strawberry.field(default=False, description=DRY_RUN)


@strawberry.input(description="Reopen a WON or LOST opportunity.")
class ReopenOpportunityInput:
    opportunity_id: strawberry.ID = strawberry.field(description="The opportunity to reopen.")
    status_reason: OpportunityStatusReason = strawberry.field(
        default=OpportunityStatusReason.IN_PROGRESS, description="IN_PROGRESS or ON_HOLD."
    )
    expected_version: int | None = strawberry.field(default=None, description=EXPECTED_VERSION)


@strawberry.input(description="A new DRAFT quote for an OPEN opportunity.")
class CreateQuoteInput:
    opportunity_id: strawberry.ID = strawberry.field(description="The opportunity quoted for.")
    name: str = strawberry.field(description=NAME_LENGTH)
    currency_code: str | None = strawberry.field(
        default=None, description="Defaults to, and must equal, the opportunity's currency."
    )
    total_amount: Decimal | None = strawberry.field(
        default=None, description=f"Total amount; {MONEY_TEXT}."
    )
    effective_from: date | None = strawberry.field(default=None, description="Valid from.")
    effective_to: date | None = strawberry.field(
        default=None, description="Valid until; not before effectiveFrom."
    )


@strawberry.input(description="Changes to a DRAFT quote; omitted fields stay as they are.")
class UpdateQuoteInput:
    quote_id: strawberry.ID = strawberry.field(description="The quote to change.")
    name: str | None = strawberry.field(default=strawberry.UNSET, description="New name.")
    total_amount: Decimal | None = strawberry.field(
        default=strawberry.UNSET, description="New total amount, or null."
    )
    effective_from: date | None = strawberry.field(
        default=strawberry.UNSET, description="New start of validity, or null."
    )
    effective_to: date | None = strawberry.field(
        default=strawberry.UNSET, description="New end of validity, or null."
    )
    expected_version: int | None = strawberry.field(default=None, description=EXPECTED_VERSION)


@strawberry.input(description="Identifies a quote for a state change.")
class QuoteActionInput:
    quote_id: strawberry.ID = strawberry.field(description="The quote.")
    expected_version: int | None = strawberry.field(default=None, description=EXPECTED_VERSION)


@strawberry.input(description="Activate a DRAFT quote.")
class ActivateQuoteInput(QuoteActionInput):
    pass


@strawberry.input(description="Revise an ACTIVE quote into a new DRAFT revision.")
class ReviseQuoteInput(QuoteActionInput):
    pass


@strawberry.input(description="Mark an open quote as won; the other open quotes become LOST.")
class WinQuoteInput(QuoteActionInput):
    close_date: date | None = strawberry.field(default=None, description="Defaults to today (UTC).")
    description: str | None = strawberry.field(default=None, description=UP_TO_DESCRIPTION_MAX)
    dry_run: bool = strawberry.field(default=False, description=DRY_RUN)


@strawberry.input(description="Close one open quote as LOST or CANCELED.")
class CloseQuoteInput(QuoteActionInput):
    status_reason: QuoteStatusReason = strawberry.field(
        default=QuoteStatusReason.LOST, description="LOST (default) or CANCELED."
    )
    close_date: date | None = strawberry.field(default=None, description="Defaults to today (UTC).")
    description: str | None = strawberry.field(default=None, description=UP_TO_DESCRIPTION_MAX)


@strawberry.input(description="A new competitor.")
class CreateCompetitorInput:
    name: str = strawberry.field(description=f"Unique name, 1-{NAME_MAX} characters.")
    website: str | None = strawberry.field(default=None, description="Web address.")
    notes: str | None = strawberry.field(default=None, description=UP_TO_DESCRIPTION_MAX)


# --- bulk close ---


@strawberry.input(
    description=f"Close up to {BULK_CLOSE_MAX} opportunities, each as closeOpportunity would."
)
class CloseOpportunitiesInput:
    items: list[CloseOpportunityInput] = strawberry.field(
        description=f"1-{BULK_CLOSE_MAX} closes, each with its own dryRun and expectedVersion. "
        "The same opportunity twice: the later item is refused as the data then says "
        "(OPPORTUNITY_ALREADY_CLOSED once the earlier one closed it)."
    )


@strawberry.input(description="Filter on project contracts; all given conditions must hold.")
class ContractFilter:
    state: list[ContractState] | None = strawberry.field(
        default=None, description="Only contracts in one of these states."
    )
    opportunity_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only the contracts of this opportunity."
    )
