"""GraphQL inputs of the line mutations (quote and opportunity lines)."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from gql_service.graphql.enums import BillingMethod, TransactionClass
from gql_service.graphql.inputs import MONEY_TEXT, NAME_LENGTH
from gql_service.models import MONEY_PLACES

QUANTITY = f"How many units; more than zero, at most {MONEY_PLACES} decimals."
UNIT_PRICE = f"Price of one unit; {MONEY_TEXT}."
DISCOUNT = (
    f"An amount of money off quantity x unitPrice, not more than it; {MONEY_TEXT}. The amount "
    "(quantity x unitPrice - discount, rounded half up) is calculated, never entered."
)
QUOTE_VERSION = (
    "The quote's version you last read; refused with CONCURRENCY_CONFLICT if it has moved on. "
    "Leave it out to skip the check."
)
OPPORTUNITY_VERSION = (
    "The opportunity's version you last read; refused with CONCURRENCY_CONFLICT if it has "
    "moved on. Leave it out to skip the check."
)


@strawberry.input(description="A new line of a DRAFT quote.")
class AddQuoteLineInput:
    quote_id: strawberry.ID = strawberry.field(description="The quote.")
    name: str = strawberry.field(description=NAME_LENGTH)
    billing_method: BillingMethod = strawberry.field(description="How it is billed.")
    transaction_class: TransactionClass | None = strawberry.field(
        default=None, description="What it is for."
    )
    quantity: Decimal = strawberry.field(description=QUANTITY)
    unit_price: Decimal = strawberry.field(description=UNIT_PRICE)
    discount: Decimal | None = strawberry.field(default=None, description=DISCOUNT)
    expected_version: int | None = strawberry.field(default=None, description=QUOTE_VERSION)


@strawberry.input(description="A new line of an OPEN opportunity.")
class AddOpportunityLineInput:
    opportunity_id: strawberry.ID = strawberry.field(description="The opportunity.")
    name: str = strawberry.field(description=NAME_LENGTH)
    billing_method: BillingMethod = strawberry.field(description="How it is billed.")
    transaction_class: TransactionClass | None = strawberry.field(
        default=None, description="What it is for."
    )
    quantity: Decimal = strawberry.field(description=QUANTITY)
    unit_price: Decimal = strawberry.field(description=UNIT_PRICE)
    discount: Decimal | None = strawberry.field(default=None, description=DISCOUNT)
    expected_version: int | None = strawberry.field(default=None, description=OPPORTUNITY_VERSION)


@strawberry.input(description="Changes to a line; omitted fields stay as they are.")
class UpdateLineFields:
    line_id: strawberry.ID = strawberry.field(description="The line.")
    name: str | None = strawberry.field(default=strawberry.UNSET, description="New name.")
    billing_method: BillingMethod | None = strawberry.field(
        default=strawberry.UNSET, description="New billing method."
    )
    transaction_class: TransactionClass | None = strawberry.field(
        default=strawberry.UNSET, description="New transaction class, or null."
    )
    quantity: Decimal | None = strawberry.field(
        default=strawberry.UNSET, description="New quantity. " + QUANTITY
    )
    unit_price: Decimal | None = strawberry.field(
        default=strawberry.UNSET, description="New unit price; " + MONEY_TEXT + "."
    )
    discount: Decimal | None = strawberry.field(
        default=strawberry.UNSET, description="New discount, or null. " + DISCOUNT
    )


@strawberry.input(description="Changes to a line of a DRAFT quote.")
class UpdateQuoteLineInput(UpdateLineFields):
    expected_version: int | None = strawberry.field(default=None, description=QUOTE_VERSION)


@strawberry.input(description="Changes to a line of an OPEN opportunity.")
class UpdateOpportunityLineInput(UpdateLineFields):
    expected_version: int | None = strawberry.field(default=None, description=OPPORTUNITY_VERSION)


@strawberry.input(description="Remove a line of a DRAFT quote.")
class RemoveQuoteLineInput:
    line_id: strawberry.ID = strawberry.field(description="The line.")
    expected_version: int | None = strawberry.field(default=None, description=QUOTE_VERSION)


@strawberry.input(description="Remove a line of an OPEN opportunity.")
class RemoveOpportunityLineInput:
    line_id: strawberry.ID = strawberry.field(description="The line.")
    expected_version: int | None = strawberry.field(default=None, description=OPPORTUNITY_VERSION)
