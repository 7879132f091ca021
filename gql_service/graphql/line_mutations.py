"""Mutations of quote and opportunity lines: each calls one service and maps its outcome."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from gql_service import line_services
from gql_service.graphql.ids import decode_id
from gql_service.graphql.line_inputs import (
    AddOpportunityLineInput,
    AddQuoteLineInput,
    RemoveOpportunityLineInput,
    RemoveQuoteLineInput,
    UpdateLineFields,
    UpdateOpportunityLineInput,
    UpdateQuoteLineInput,
)
from gql_service.graphql.line_payloads import (
    AddOpportunityLinePayload,
    AddQuoteLinePayload,
    RemoveOpportunityLinePayload,
    RemoveQuoteLinePayload,
    UpdateOpportunityLinePayload,
    UpdateQuoteLinePayload,
)
from gql_service.graphql.mutations import given, respond
from gql_service.graphql.types import Info, Opportunity, OpportunityLine, Quote, QuoteLine
from gql_service.line_services import OpportunityLineChanged, QuoteLineChanged

_INPUT = strawberry.argument(description="What to do; see the input type.")


def _changes(input: UpdateLineFields) -> dict[str, Any]:
    """The line fields an update gives (left-out ones stay UNSET)."""
    return {
        "name": given(input.name),
        "billing_method": given(input.billing_method),
        "transaction_class": given(input.transaction_class),
        "quantity": given(input.quantity),
        "unit_price": given(input.unit_price),
        "discount": given(input.discount),
    }


def _quote_line(r: QuoteLineChanged) -> dict[str, Any]:
    return {"line": QuoteLine.from_model(r.line), "quote": Quote.from_model(r.quote)}


def _opportunity_line(r: OpportunityLineChanged) -> dict[str, Any]:
    return {
        "line": OpportunityLine.from_model(r.line),
        "opportunity": Opportunity.from_model(r.opportunity),
    }


@strawberry.type(description="Changes to quote and opportunity lines.")
class LineMutation:
    @strawberry.mutation(
        description="Add a line to a DRAFT quote; the quote's totalAmount becomes the sum of "
        "its lines."
    )
    async def add_quote_line(
        self, info: Info, input: Annotated[AddQuoteLineInput, _INPUT]
    ) -> AddQuoteLinePayload:
        return await respond(
            info,
            AddQuoteLinePayload,
            lambda uow: line_services.add_quote_line(
                uow,
                quote_id=decode_id(input.quote_id, "Quote", field="quote"),
                name=input.name,
                billing_method=input.billing_method,
                transaction_class=input.transaction_class,
                quantity=input.quantity,
                unit_price=input.unit_price,
                discount=input.discount,
                expected_version=input.expected_version,
            ),
            _quote_line,
        )

    @strawberry.mutation(
        description="Change a line of a DRAFT quote; its amount and the quote's total follow."
    )
    async def update_quote_line(
        self, info: Info, input: Annotated[UpdateQuoteLineInput, _INPUT]
    ) -> UpdateQuoteLinePayload:
        return await respond(
            info,
            UpdateQuoteLinePayload,
            lambda uow: line_services.update_quote_line(
                uow,
                line_id=decode_id(input.line_id, "QuoteLine", field="line"),
                expected_version=input.expected_version,
                **_changes(input),
            ),
            _quote_line,
        )

    @strawberry.mutation(
        description="Remove a line of a DRAFT quote. Without lines left, its totalAmount is "
        "null (nothing to sum), and may be entered again."
    )
    async def remove_quote_line(
        self, info: Info, input: Annotated[RemoveQuoteLineInput, _INPUT]
    ) -> RemoveQuoteLinePayload:
        return await respond(
            info,
            RemoveQuoteLinePayload,
            lambda uow: line_services.remove_quote_line(
                uow,
                line_id=decode_id(input.line_id, "QuoteLine", field="line"),
                expected_version=input.expected_version,
            ),
            _quote_line,
        )

    @strawberry.mutation(
        description="Add a line to an OPEN opportunity; a system-calculated estimatedRevenue "
        "follows its lines."
    )
    async def add_opportunity_line(
        self, info: Info, input: Annotated[AddOpportunityLineInput, _INPUT]
    ) -> AddOpportunityLinePayload:
        return await respond(
            info,
            AddOpportunityLinePayload,
            lambda uow: line_services.add_opportunity_line(
                uow,
                opportunity_id=decode_id(input.opportunity_id, "Opportunity", field="opportunity"),
                name=input.name,
                billing_method=input.billing_method,
                transaction_class=input.transaction_class,
                quantity=input.quantity,
                unit_price=input.unit_price,
                discount=input.discount,
                expected_version=input.expected_version,
            ),
            _opportunity_line,
        )

    @strawberry.mutation(
        description="Change a line of an OPEN opportunity; its amount and a system-calculated "
        "estimatedRevenue follow."
    )
    async def update_opportunity_line(
        self, info: Info, input: Annotated[UpdateOpportunityLineInput, _INPUT]
    ) -> UpdateOpportunityLinePayload:
        return await respond(
            info,
            UpdateOpportunityLinePayload,
            lambda uow: line_services.update_opportunity_line(
                uow,
                line_id=decode_id(input.line_id, "OpportunityLine", field="line"),
                expected_version=input.expected_version,
                **_changes(input),
            ),
            _opportunity_line,
        )

    @strawberry.mutation(
        description="Remove a line of an OPEN opportunity; a system-calculated "
        "estimatedRevenue becomes the sum of the others (0.0000 without lines)."
    )
    async def remove_opportunity_line(
        self, info: Info, input: Annotated[RemoveOpportunityLineInput, _INPUT]
    ) -> RemoveOpportunityLinePayload:
        return await respond(
            info,
            RemoveOpportunityLinePayload,
            lambda uow: line_services.remove_opportunity_line(
                uow,
                line_id=decode_id(input.line_id, "OpportunityLine", field="line"),
                expected_version=input.expected_version,
            ),
            _opportunity_line,
        )
