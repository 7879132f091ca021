"""Mutation payloads and the error union of each mutation."""

from __future__ import annotations

from typing import Annotated

import strawberry

from gql_service.graphql.contract_types import ProjectContract
from gql_service.graphql.errors import (
    ConcurrencyConflictError,
    CurrencyMismatchError,
    InvalidStatusReasonError,
    InvalidValueError,
    NotFoundError,
    OpportunityAlreadyClosedError,
    OpportunityHasOpenQuotesError,
    OpportunityNotClosedError,
    QuoteNotOpenError,
    QuoteReadOnlyError,
)
from gql_service.graphql.types import Competitor, Opportunity, OpportunityClose, Quote

_ERRORS = "Errors this mutation can return; empty on success."

CreateOpportunityError = Annotated[
    InvalidValueError, strawberry.union("CreateOpportunityError", description=_ERRORS)
]
UpdateOpportunityError = Annotated[
    NotFoundError
    | ConcurrencyConflictError
    | OpportunityAlreadyClosedError
    | InvalidStatusReasonError
    | InvalidValueError,
    strawberry.union("UpdateOpportunityError", description=_ERRORS),
]
CloseOpportunityError = Annotated[
    NotFoundError
    | ConcurrencyConflictError
    | OpportunityAlreadyClosedError
    | OpportunityHasOpenQuotesError
    | InvalidStatusReasonError
    | InvalidValueError,
    strawberry.union("CloseOpportunityError", description=_ERRORS),
]
ReopenOpportunityError = Annotated[
    NotFoundError | ConcurrencyConflictError | OpportunityNotClosedError | InvalidStatusReasonError,
    strawberry.union("ReopenOpportunityError", description=_ERRORS),
]
CloseQuotesError = Annotated[
    NotFoundError
    | ConcurrencyConflictError
    | OpportunityAlreadyClosedError
    | InvalidStatusReasonError
    | InvalidValueError,
    strawberry.union("CloseQuotesError", description=_ERRORS),
]
CreateQuoteError = Annotated[
    NotFoundError | OpportunityAlreadyClosedError | CurrencyMismatchError | InvalidValueError,
    strawberry.union("CreateQuoteError", description=_ERRORS),
]
UpdateQuoteError = Annotated[
    NotFoundError
    | ConcurrencyConflictError
    | OpportunityAlreadyClosedError
    | QuoteReadOnlyError
    | InvalidValueError,
    strawberry.union("UpdateQuoteError", description=_ERRORS),
]
QuoteActionError = (
    NotFoundError | ConcurrencyConflictError | OpportunityAlreadyClosedError | QuoteNotOpenError
)
ActivateQuoteError = Annotated[
    QuoteActionError, strawberry.union("ActivateQuoteError", description=_ERRORS)
]
ReviseQuoteError = Annotated[
    QuoteActionError, strawberry.union("ReviseQuoteError", description=_ERRORS)
]
WinQuoteError = Annotated[
    QuoteActionError | InvalidValueError,
    strawberry.union("WinQuoteError", description=_ERRORS),
]
CloseQuoteError = Annotated[
    QuoteActionError | InvalidStatusReasonError | InvalidValueError,
    strawberry.union("CloseQuoteError", description=_ERRORS),
]
CreateCompetitorError = Annotated[
    InvalidValueError, strawberry.union("CreateCompetitorError", description=_ERRORS)
]


@strawberry.type(description="Result of createOpportunity.")
class CreateOpportunityPayload:
    opportunity: Opportunity | None = strawberry.field(default=None, description="Created.")
    errors: list[CreateOpportunityError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of updateOpportunity.")
class UpdateOpportunityPayload:
    opportunity: Opportunity | None = strawberry.field(default=None, description="Updated.")
    errors: list[UpdateOpportunityError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of closeOpportunity.")
class CloseOpportunityPayload:
    opportunity: Opportunity | None = strawberry.field(default=None, description="Closed.")
    opportunity_close: OpportunityClose | None = strawberry.field(
        default=None, description="The close record left by this close."
    )
    closed_quotes: list[Quote] = strawberry.field(
        default_factory=list, description="Quotes closed by closeOpenQuotes."
    )
    errors: list[CloseOpportunityError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of reopenOpportunity.")
class ReopenOpportunityPayload:
    opportunity: Opportunity | None = strawberry.field(default=None, description="Reopened.")
    canceled_closes: list[OpportunityClose] = strawberry.field(
        default_factory=list, description="Close records marked CANCELED."
    )
    errors: list[ReopenOpportunityError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of closeQuotes.")
class CloseQuotesPayload:
    opportunity: Opportunity | None = strawberry.field(default=None, description="The owner.")
    closed_quotes: list[Quote] = strawberry.field(
        default_factory=list, description="The quotes closed, sharing one batchId."
    )
    errors: list[CloseQuotesError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of createQuote.")
class CreateQuotePayload:
    quote: Quote | None = strawberry.field(default=None, description="The new draft.")
    errors: list[CreateQuoteError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of updateQuote.")
class UpdateQuotePayload:
    quote: Quote | None = strawberry.field(default=None, description="Updated.")
    errors: list[UpdateQuoteError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of activateQuote.")
class ActivateQuotePayload:
    quote: Quote | None = strawberry.field(default=None, description="Now ACTIVE.")
    errors: list[ActivateQuoteError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of reviseQuote.")
class ReviseQuotePayload:
    quote: Quote | None = strawberry.field(default=None, description="The new DRAFT revision.")
    revised_quote: Quote | None = strawberry.field(
        default=None, description="The revised quote, now CLOSED/REVISED."
    )
    errors: list[ReviseQuoteError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of winQuote.")
class WinQuotePayload:
    quote: Quote | None = strawberry.field(default=None, description="Now WON.")
    lost_quotes: list[Quote] = strawberry.field(
        default_factory=list, description="Other open quotes, now CLOSED/LOST."
    )
    contract: ProjectContract | None = strawberry.field(
        default=None,
        description="The DRAFT project contract drafted from the won quote, with its lines.",
    )
    errors: list[WinQuoteError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of closeQuote.")
class CloseQuotePayload:
    quote: Quote | None = strawberry.field(default=None, description="Now CLOSED.")
    errors: list[CloseQuoteError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of createCompetitor.")
class CreateCompetitorPayload:
    competitor: Competitor | None = strawberry.field(default=None, description="Created.")
    errors: list[CreateCompetitorError] = strawberry.field(description=_ERRORS)


# --- bulk close ---

CloseOpportunitiesError = Annotated[
    InvalidValueError, strawberry.union("CloseOpportunitiesError", description=_ERRORS)
]


@strawberry.type(
    description="One item of closeOpportunities: its position, the id it named, and what "
    "closeOpportunity would have answered for it alone."
)
class CloseOpportunityResult:
    index: int = strawberry.field(description="The item's position in input.items, from 0.")
    opportunity_id: strawberry.ID = strawberry.field(description="The item's id, as sent.")
    payload: CloseOpportunityPayload = strawberry.field(
        description="The item's own payload: the closed opportunity, its close record and "
        'closed quotes, or its errors, whose field paths lead into the item ("input", '
        '"items", "<index>", ...).'
    )


@strawberry.type(description="Result of closeOpportunities: one result per item, in input order.")
class CloseOpportunitiesPayload:
    results: list[CloseOpportunityResult] = strawberry.field(
        default_factory=list, description="One per item, in the order of input.items."
    )
    closed_count: int = strawberry.field(
        default=0, description="Items that closed their opportunity (dry runs never count)."
    )
    refused_count: int = strawberry.field(
        default=0, description="Items refused with errors; each is unchanged."
    )
    errors: list[CloseOpportunitiesError] = strawberry.field(
        description="Refusals of the whole request (nothing ran); empty otherwise, even when "
        "items were refused."
    )
