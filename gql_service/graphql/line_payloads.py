"""Payloads and error unions of the line mutations."""

from __future__ import annotations

from typing import Annotated

import strawberry

from gql_service.graphql.errors import (
    ConcurrencyConflictError,
    InvalidValueError,
    NotFoundError,
    OpportunityAlreadyClosedError,
    QuoteReadOnlyError,
)
from gql_service.graphql.types import Opportunity, OpportunityLine, Quote, QuoteLine

_ERRORS = "Errors this mutation can return; empty on success."

QuoteLineError = (
    NotFoundError | ConcurrencyConflictError | OpportunityAlreadyClosedError | QuoteReadOnlyError
)
OpportunityLineError = NotFoundError | ConcurrencyConflictError | OpportunityAlreadyClosedError
AddQuoteLineError = Annotated[
    QuoteLineError | InvalidValueError, strawberry.union("AddQuoteLineError", description=_ERRORS)
]
UpdateQuoteLineError = Annotated[
    QuoteLineError | InvalidValueError,
    strawberry.union("UpdateQuoteLineError", description=_ERRORS),
]
RemoveQuoteLineError = Annotated[
    QuoteLineError, strawberry.union("RemoveQuoteLineError", description=_ERRORS)
]
AddOpportunityLineError = Annotated[
    OpportunityLineError | InvalidValueError,
    strawberry.union("AddOpportunityLineError", description=_ERRORS),
]
UpdateOpportunityLineError = Annotated[
    OpportunityLineError | InvalidValueError,
    strawberry.union("UpdateOpportunityLineError", description=_ERRORS),
]
RemoveOpportunityLineError = Annotated[
    OpportunityLineError, strawberry.union("RemoveOpportunityLineError", description=_ERRORS)
]

_QUOTE = "The line's quote, with its new totalAmount (the sum of its lines; null without lines)."
_OPPORTUNITY = (
    "The line's opportunity; a system-calculated estimatedRevenue is the sum of its lines."
)


@strawberry.type(description="Result of addQuoteLine.")
class AddQuoteLinePayload:
    line: QuoteLine | None = strawberry.field(default=None, description="The new line.")
    quote: Quote | None = strawberry.field(default=None, description=_QUOTE)
    errors: list[AddQuoteLineError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of updateQuoteLine.")
class UpdateQuoteLinePayload:
    line: QuoteLine | None = strawberry.field(default=None, description="The changed line.")
    quote: Quote | None = strawberry.field(default=None, description=_QUOTE)
    errors: list[UpdateQuoteLineError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of removeQuoteLine.")
class RemoveQuoteLinePayload:
    line: QuoteLine | None = strawberry.field(
        default=None, description="The removed line, as it was; its id names nothing now."
    )
    quote: Quote | None = strawberry.field(default=None, description=_QUOTE)
    errors: list[RemoveQuoteLineError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of addOpportunityLine.")
class AddOpportunityLinePayload:
    line: OpportunityLine | None = strawberry.field(default=None, description="The new line.")
    opportunity: Opportunity | None = strawberry.field(default=None, description=_OPPORTUNITY)
    errors: list[AddOpportunityLineError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of updateOpportunityLine.")
class UpdateOpportunityLinePayload:
    line: OpportunityLine | None = strawberry.field(default=None, description="The changed line.")
    opportunity: Opportunity | None = strawberry.field(default=None, description=_OPPORTUNITY)
    errors: list[UpdateOpportunityLineError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of removeOpportunityLine.")
class RemoveOpportunityLinePayload:
    line: OpportunityLine | None = strawberry.field(
        default=None, description="The removed line, as it was; its id names nothing now."
    )
    opportunity: Opportunity | None = strawberry.field(default=None, description=_OPPORTUNITY)
    errors: list[RemoveOpportunityLineError] = strawberry.field(description=_ERRORS)
