"""Typed user errors: the UserError interface, one type per code, and the mapping to them."""

from __future__ import annotations

from collections.abc import Sequence

import strawberry
from graphql import GraphQLError

from gql_service import errors as domain
from gql_service.graphql.enums import ErrorCode
from gql_service.graphql.localized import LocalizedGraphQLError
from gql_service.graphql.types import Quote
from gql_service.languages import Language
from gql_service.messages import msg


@strawberry.interface(description="An expected failure: a broken rule or bad input.")
class UserError:
    code: ErrorCode = strawberry.field(description="Stable code; clients branch on it.")
    message: str = strawberry.field(description="Human-readable explanation.")
    field: list[str] | None = strawberry.field(
        description='Path of the offending input field, e.g. ["input", "actualRevenue"].'
    )


@strawberry.type(description="NOT_FOUND: the id names no object of the expected type.")
class NotFoundError(UserError):
    pass


@strawberry.type(description="CONCURRENCY_CONFLICT: the record changed since you read it.")
class ConcurrencyConflictError(UserError):
    expected_version: int = strawberry.field(description="The version you sent.")
    actual_version: int = strawberry.field(description="The version it has now.")


@strawberry.type(description="OPPORTUNITY_ALREADY_CLOSED: WON or LOST; reopen it first.")
class OpportunityAlreadyClosedError(UserError):
    pass


@strawberry.type(description="OPPORTUNITY_NOT_CLOSED: only WON or LOST ones can be reopened.")
class OpportunityNotClosedError(UserError):
    pass


@strawberry.type(description="OPPORTUNITY_HAS_OPEN_QUOTES: close (or win) these quotes first.")
class OpportunityHasOpenQuotesError(UserError):
    open_quotes: list[Quote] = strawberry.field(description="The DRAFT and ACTIVE quotes.")


@strawberry.type(description="INVALID_STATUS_REASON: the reason does not fit the target state.")
class InvalidStatusReasonError(UserError):
    allowed: list[str] = strawberry.field(description="The status reasons that would fit.")


@strawberry.type(description="QUOTE_NOT_OPEN: the quote is not in a state that allows this.")
class QuoteNotOpenError(UserError):
    pass


@strawberry.type(description="QUOTE_READ_ONLY: only DRAFT quotes can be edited.")
class QuoteReadOnlyError(UserError):
    pass


@strawberry.type(description="CURRENCY_MISMATCH: a quote must use its opportunity's currency.")
class CurrencyMismatchError(UserError):
    expected_currency: str = strawberry.field(description="The opportunity's currency.")
    actual_currency: str = strawberry.field(description="The currency given.")


@strawberry.type(description="INVALID_VALUE: a field is out of range, too long or malformed.")
class InvalidValueError(UserError):
    pass


ERROR_TYPES: tuple[type[UserError], ...] = (
    NotFoundError,
    ConcurrencyConflictError,
    OpportunityAlreadyClosedError,
    OpportunityNotClosedError,
    OpportunityHasOpenQuotesError,
    InvalidStatusReasonError,
    QuoteNotOpenError,
    QuoteReadOnlyError,
    CurrencyMismatchError,
    InvalidValueError,
)

_PLAIN: dict[domain.ErrorCode, type[UserError]] = {
    domain.ErrorCode.NOT_FOUND: NotFoundError,
    domain.ErrorCode.OPPORTUNITY_ALREADY_CLOSED: OpportunityAlreadyClosedError,
    domain.ErrorCode.OPPORTUNITY_NOT_CLOSED: OpportunityNotClosedError,
    domain.ErrorCode.QUOTE_NOT_OPEN: QuoteNotOpenError,
    domain.ErrorCode.QUOTE_READ_ONLY: QuoteReadOnlyError,
    domain.ErrorCode.INVALID_VALUE: InvalidValueError,
}


# The domain names its own fields (a violation's ``field``); the inputs that carry them are
# named here, in one place. Any other field is its input's name in camelCase.
_INPUT_FIELDS = {
    "opportunity": "opportunityId",
    "quote": "quoteId",
    "competitor": "competitorId",
    "line": "lineId",
    "version": "expectedVersion",
}


def input_name(field: str) -> str:
    """The GraphQL input field that carries the domain's ``field``."""
    if field in _INPUT_FIELDS:
        return _INPUT_FIELDS[field]
    head, *rest = field.split("_")
    return head + "".join(part.title() for part in rest)


# Where a mutation's fields sit: its ``input`` argument, or one item of a list in it.
INPUT: tuple[str, ...] = ("input",)


def field_path(field: str | None, within: Sequence[str] = INPUT) -> list[str] | None:
    """The input path of the domain's ``field``, inside the input object at ``within``
    (e.g. ["input", "items", "3"] for one item of a bulk close)."""
    return None if field is None else [*within, input_name(field)]


def user_error(v: domain.Violation, language: Language, within: Sequence[str] = INPUT) -> UserError:
    """The GraphQL error object for one domain violation, its message in ``language``."""
    code, message, path = v.code, v.message.translate(language), field_path(v.field, within)
    match v:
        case domain.ConcurrencyConflict():
            return ConcurrencyConflictError(
                code=code,
                message=message,
                field=path,
                expected_version=v.expected_version,
                actual_version=v.actual_version,
            )
        case domain.OpenQuotesBlock():
            return OpportunityHasOpenQuotesError(
                code=code,
                message=message,
                field=path,
                open_quotes=[Quote.from_model(q) for q in v.open_quotes],
            )
        case domain.InvalidStatusReason():
            return InvalidStatusReasonError(
                code=code, message=message, field=path, allowed=list(v.allowed)
            )
        case domain.CurrencyMismatch():
            return CurrencyMismatchError(
                code=code,
                message=message,
                field=path,
                expected_currency=v.expected_currency,
                actual_currency=v.actual_currency,
            )
        case _:
            return _PLAIN[v.code](code=code, message=message, field=path)


def argument_error(argument: str, v: domain.Violation) -> GraphQLError:
    """A top-level error for a violation in a query argument (no payload to carry it)."""
    path = [argument, input_name(v.field)] if v.field else [argument]
    return LocalizedGraphQLError(
        msg("{path}: {message}", path=".".join(path), message=v.message),
        extensions={"code": str(v.code), "field": path},
    )


def user_errors(
    exc: domain.ValidationFailedError, language: Language, within: Sequence[str] = INPUT
) -> list[UserError]:
    return [user_error(v, language, within) for v in exc.violations]
