"""The domain's enums exposed to GraphQL, each value described."""

from __future__ import annotations

from enum import Enum, StrEnum
from typing import TypeVar

import strawberry

from gql_service.errors import ErrorCode
from gql_service.models import (
    BillingMethod,
    CloseOutcome,
    CloseRecordState,
    ContractState,
    ForecastCategory,
    OpportunityState,
    OpportunityStatusReason,
    QuoteState,
    QuoteStatusReason,
    TransactionClass,
)

E = TypeVar("E", bound=type[Enum])

__all__ = [
    "BillingMethod",
    "CloseOutcome",
    "CloseRecordState",
    "ContractState",
    "ErrorCode",
    "ForecastCategory",
    "OpportunityOrderField",
    "OpportunityState",
    "OpportunityStatusReason",
    "OrderDirection",
    "QuoteState",
    "QuoteStatusReason",
    "TransactionClass",
]


def _describe(cls: E, description: str, values: dict[str, str]) -> E:
    strawberry.enum(cls, description=description)
    definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
    missing = {v.name for v in definition.values} - values.keys()
    if missing:  # pragma: no cover - guards the schema's "descriptions everywhere" promise
        raise RuntimeError(f"{cls.__name__} values without a description: {sorted(missing)}")
    for value in definition.values:
        value.description = values[value.name]
    return cls


_describe(
    CloseOutcome,
    "How an opportunity is closed.",
    {"WON": "The customer bought.", "LOST": "The customer did not buy."},
)
_describe(
    OpportunityState,
    "Lifecycle state of an opportunity.",
    {
        "OPEN": "Being worked on; editable, accepts quotes.",
        "WON": "Closed as won; read-only until reopened.",
        "LOST": "Closed as lost; read-only until reopened.",
    },
)
_describe(
    OpportunityStatusReason,
    "Why an opportunity is in its state. OPEN: IN_PROGRESS, ON_HOLD; WON: WON; "
    "LOST: CANCELED, OUT_SOLD.",
    {
        "IN_PROGRESS": "Open and being worked on.",
        "ON_HOLD": "Open but paused.",
        "WON": "Won.",
        "CANCELED": "Lost because the customer canceled.",
        "OUT_SOLD": "Lost to a competitor.",
    },
)
_describe(
    ForecastCategory,
    "Forecast bucket of an opportunity. WON and LOST are set by closing it.",
    {
        "PIPELINE": "Early stage.",
        "BEST_CASE": "Likely, not certain.",
        "COMMITTED": "Expected to close as won.",
        "OMITTED": "Left out of the forecast.",
        "WON": "Closed as won.",
        "LOST": "Closed as lost.",
    },
)
_describe(
    QuoteState,
    "Lifecycle state of a quote. DRAFT and ACTIVE quotes are open.",
    {
        "DRAFT": "Editable; open.",
        "ACTIVE": "Issued to the customer, read-only; open.",
        "WON": "Accepted by the customer; final.",
        "CLOSED": "Lost, canceled or revised; final.",
    },
)
_describe(
    QuoteStatusReason,
    "Why a quote is in its state. DRAFT: IN_PROGRESS; ACTIVE: IN_PROGRESS, OPEN; WON: WON; "
    "CLOSED: LOST, CANCELED, REVISED.",
    {
        "IN_PROGRESS": "Being prepared.",
        "OPEN": "Issued and awaiting the customer.",
        "WON": "Accepted.",
        "LOST": "Not accepted.",
        "CANCELED": "Withdrawn.",
        "REVISED": "Replaced by a newer revision.",
    },
)
_describe(
    CloseRecordState,
    "State of an opportunity close record.",
    {
        "COMPLETED": "The close stands.",
        "CANCELED": "The opportunity was reopened after this close.",
    },
)
_describe(
    ContractState,
    "Lifecycle state of a project contract. Winning a quote creates its contract as DRAFT.",
    {"DRAFT": "Drafted from the won quote; not yet confirmed."},
)
_describe(
    BillingMethod,
    "How a line is billed.",
    {
        "TIME_AND_MATERIAL": "Billed as the work is done, at the line's unit price.",
        "FIXED_PRICE": "Billed at an agreed price, whatever the effort.",
    },
)
_describe(
    TransactionClass,
    "What a line is for.",
    {"TIME": "Work time.", "EXPENSE": "Expenses.", "FEE": "Fees."},
)
_describe(
    ErrorCode,
    "Stable codes of expected failures. Codes are added, never renamed or reused.",
    {
        "NOT_FOUND": "The id names no object of the expected type.",
        "CONCURRENCY_CONFLICT": "expectedVersion was given and the record has moved on.",
        "OPPORTUNITY_ALREADY_CLOSED": "The opportunity is WON or LOST, hence read-only.",
        "OPPORTUNITY_NOT_CLOSED": "Reopen of an opportunity that is OPEN.",
        "OPPORTUNITY_HAS_OPEN_QUOTES": "Close while DRAFT or ACTIVE quotes exist.",
        "INVALID_STATUS_REASON": "The status reason does not belong to the target state.",
        "QUOTE_NOT_OPEN": "The quote is WON or CLOSED, or not in the state the action needs.",
        "QUOTE_READ_ONLY": "Edit of a quote that is not a DRAFT.",
        "CURRENCY_MISMATCH": "The quote's currency differs from its opportunity's.",
        "INVALID_VALUE": "A field is out of range, too long, malformed or empty.",
    },
)


class OrderDirection(StrEnum):
    ASC = "ASC"
    DESC = "DESC"


class OpportunityOrderField(StrEnum):
    CREATED_AT = "created_at"
    MODIFIED_AT = "modified_at"
    NAME = "name"
    ESTIMATED_CLOSE_DATE = "estimated_close_date"
    ESTIMATED_REVENUE = "estimated_revenue"
    ACTUAL_CLOSE_DATE = "actual_close_date"


_describe(OrderDirection, "Sort direction.", {"ASC": "Ascending.", "DESC": "Descending."})
_describe(
    OpportunityOrderField,
    "Fields by which opportunities can be sorted.",
    {
        "CREATED_AT": "Creation time.",
        "MODIFIED_AT": "Last change.",
        "NAME": "Name.",
        "ESTIMATED_CLOSE_DATE": "Expected close date; those without one come last either way.",
        "ESTIMATED_REVENUE": "Estimated revenue (as a number); those without one come last "
        "either way.",
        "ACTUAL_CLOSE_DATE": "Date of the last close; those never closed come last either way.",
    },
)
