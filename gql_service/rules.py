"""Pure rule functions: state and input in, every violation out. No I/O."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal, localcontext

from gql_service.currencies import ISO_4217_CODES
from gql_service.errors import (
    ConcurrencyConflict,
    CurrencyMismatch,
    ErrorCode,
    InvalidStatusReason,
    OpenQuotesBlock,
    Violation,
)
from gql_service.messages import Message, msg, plural_msg
from gql_service.models import (
    DESCRIPTION_MAX,
    MONEY_LIMIT,
    MONEY_PLACES,
    MONEY_PRECISION,
    MONEY_QUANTUM,
    NAME_MAX,
    BillingMethod,
    CloseOutcome,
    ForecastCategory,
    Opportunity,
    OpportunityState,
    OpportunityStatusReason,
    Quote,
    QuoteState,
    QuoteStatusReason,
    TransactionClass,
)
from gql_service.records import OpportunityRecord, QuoteRecord
from gql_service.unset import UNSET, Unset

OPEN_REASONS = (OpportunityStatusReason.IN_PROGRESS, OpportunityStatusReason.ON_HOLD)
CLOSE_REASONS: dict[CloseOutcome, tuple[OpportunityStatusReason, ...]] = {
    CloseOutcome.WON: (OpportunityStatusReason.WON,),
    CloseOutcome.LOST: (OpportunityStatusReason.CANCELED, OpportunityStatusReason.OUT_SOLD),
}
# Digits enough for a product of two amounts (quantity x unit price) without rounding.
LINE_PRECISION = 2 * MONEY_PRECISION + 2
QUOTE_CLOSE_REASONS = (QuoteStatusReason.LOST, QuoteStatusReason.CANCELED)
OPEN_FORECASTS = (
    ForecastCategory.PIPELINE,
    ForecastCategory.BEST_CASE,
    ForecastCategory.COMMITTED,
    ForecastCategory.OMITTED,
)


# Separate texts, not one with the entity's name: Latvian nouns have genders.
_CONFLICT = {
    "opportunity": lambda expected, actual: msg(
        "The opportunity was changed by someone else: expected version {expected}, "
        "it is now {actual}.",
        expected=expected,
        actual=actual,
    ),
    "quote": lambda expected, actual: msg(
        "The quote was changed by someone else: expected version {expected}, it is now {actual}.",
        expected=expected,
        actual=actual,
    ),
}


def _invalid(field: str, message: Message) -> Violation:
    return Violation(ErrorCode.INVALID_VALUE, message, field)


def check_money(field: str, value: Decimal | None) -> list[Violation]:
    """Money is finite, not negative, below 10^15 and has at most four decimals."""
    if value is None:
        return []
    if not value.is_finite():
        return [_invalid(field, msg("Must be a finite number."))]
    problems = []
    if value < 0:
        problems.append(_invalid(field, msg("Must not be negative.")))
    # copy_abs and decimal_places never round in the decimal context, which would overflow
    # (1e999999999) or fail (40 digits beyond the context's precision) on hostile input.
    if value.copy_abs() >= MONEY_LIMIT:
        problems.append(_invalid(field, msg("Must be less than 1,000,000,000,000,000.")))
    if decimal_places(value) > MONEY_PLACES:
        problems.append(
            _invalid(field, msg("Must have at most {places} decimal places.", places=MONEY_PLACES))
        )
    return problems


def decimal_places(value: Decimal) -> int:
    """The fractional digits of a finite decimal that matter: "1.2300" has 2, "1E+3" none."""
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int), "a finite decimal"
    significant = "".join(map(str, digits)).rstrip("0")
    if not significant:
        return 0
    return max(0, -(exponent + len(digits) - len(significant)))


def as_money(value: Decimal | None) -> Decimal | None:
    """Money at the column's scale, as the database returns it ("12.5" -> "12.5000")."""
    return None if value is None else value.quantize(MONEY_QUANTUM)


def check_required(field: str, value: object) -> list[Violation]:
    """A field that may be left out of an update but not set to null."""
    return [_invalid(field, msg("Must not be empty."))] if value is None else []


def check_line_values(
    *,
    name: str | Unset = UNSET,
    billing_method: BillingMethod | Unset = UNSET,
    transaction_class: TransactionClass | Unset | None = UNSET,
    quantity: Decimal | Unset = UNSET,
    unit_price: Decimal | Unset = UNSET,
    discount: Decimal | Unset | None = UNSET,
) -> list[Violation]:
    """The given fields of a quote or opportunity line, each on its own (every violation)."""
    problems: list[Violation] = []
    if name is not UNSET:
        problems += check_text("name", name, max_length=NAME_MAX, required=True)
    if billing_method is not UNSET and billing_method not in list(BillingMethod):
        problems.append(_invalid("billing_method", msg("Unknown billing method.")))
    if transaction_class not in (UNSET, None, *TransactionClass):
        problems.append(_invalid("transaction_class", msg("Unknown transaction class.")))
    if quantity is not UNSET:
        found = check_required("quantity", quantity) or check_money("quantity", quantity)
        if not found and quantity <= 0:
            found = [_invalid("quantity", msg("Must be greater than zero."))]
        problems += found
    if unit_price is not UNSET:
        problems += check_required("unit_price", unit_price) or check_money(
            "unit_price", unit_price
        )
    if discount is not UNSET:
        problems += check_money("discount", discount)
    return problems


def check_line_amount(
    quantity: Decimal, unit_price: Decimal, discount: Decimal | None, amount: Decimal
) -> list[Violation]:
    """A line's discount is at most quantity x unit price, and its amount (lines.line_amount)
    fits the money column.

    The values are each valid already (``check_line_values``); only their combination is
    checked here, exactly (the product is not rounded).
    """
    problems = []
    with localcontext(prec=LINE_PRECISION):
        if discount is not None and discount > quantity * unit_price:
            problems.append(
                _invalid("discount", msg("Must not be more than quantity times unit price."))
            )
    if amount >= MONEY_LIMIT:
        problems.append(
            _invalid("quantity", msg("The line's amount must be less than 1,000,000,000,000,000."))
        )
    return problems


def check_lines_total(field: str, fits: bool) -> list[Violation]:
    """The sum of a quote's or opportunity's lines fits the money column, as each line does."""
    if fits:
        return []
    return [_invalid(field, msg("The lines would add up to 1,000,000,000,000,000 or more."))]


def check_not_calculated(field: str, calculated: bool) -> list[Violation]:
    """A calculated amount (a quote's total with lines, a system-calculated estimated revenue)
    is never entered."""
    if not calculated:
        return []
    return [_invalid(field, msg("This amount is calculated from its lines; it cannot be entered."))]


def is_storable_text(value: str) -> bool:
    """Text both engines store as given: no NUL character (PostgreSQL refuses it) and no lone
    surrogate (which has no UTF-8 encoding)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_text(
    field: str, value: str | None, *, max_length: int, required: bool = False
) -> list[Violation]:
    """Text fits its length, holds no NUL or lone surrogate; required text is not blank."""
    if value is None:
        return [_invalid(field, msg("Must not be empty."))] if required else []
    if not is_storable_text(value):
        return [_invalid(field, msg("Must not contain NUL characters or unpaired surrogates."))]
    if required and not value.strip():
        return [_invalid(field, msg("Must not be empty."))]
    if len(value) > max_length:
        return [
            _invalid(
                field,
                msg(
                    "Must be at most {maximum} characters (got {length}).",
                    maximum=max_length,
                    length=len(value),
                ),
            )
        ]
    return []


def check_currency(field: str, code: str | None) -> list[Violation]:
    if code is None or code not in ISO_4217_CODES:
        return [_invalid(field, msg("Unknown ISO 4217 currency code {code}.", code=repr(code)))]
    return []


def check_period(field: str, start: date | None, end: date | None) -> list[Violation]:
    if start is not None and end is not None and end < start:
        return [_invalid(field, msg("effectiveTo must not be before effectiveFrom."))]
    return []


def check_choice(field: str, value: str, allowed: Sequence[str]) -> list[Violation]:
    """A status reason (or similar) belongs to the allowed set of its target state."""
    if value in allowed:
        return []
    names = tuple(str(a) for a in allowed)
    return [
        InvalidStatusReason(
            ErrorCode.INVALID_STATUS_REASON,
            msg(
                "Status reason {value} is not allowed here; allowed: {allowed}.",
                value=str(value),
                allowed=", ".join(names),
            ),
            field,
            allowed=names,
        )
    ]


def check_forecast(field: str, value: ForecastCategory) -> list[Violation]:
    if value in OPEN_FORECASTS:
        return []
    return [
        _invalid(field, msg("WON and LOST are set by closing the opportunity, not by an edit."))
    ]


def check_version(entity: str, expected: int | None, actual: int) -> list[Violation]:
    if expected is None or expected == actual:
        return []
    return [
        ConcurrencyConflict(
            ErrorCode.CONCURRENCY_CONFLICT,
            _CONFLICT[entity](expected, actual),
            "version",
            expected_version=expected,
            actual_version=actual,
        )
    ]


# The one state ``check_opportunity_open`` accepts (an unread close's lock requires it in SQL:
# repositories.py).
OPEN_STATE = OpportunityState.OPEN


def check_opportunity_open(opportunity: OpportunityRecord) -> list[Violation]:
    """A WON or LOST opportunity is read-only until reopened."""
    if opportunity.state is OPEN_STATE:
        return []
    return [
        Violation(
            ErrorCode.OPPORTUNITY_ALREADY_CLOSED,
            msg("The opportunity is {state}; reopen it first.", state=str(opportunity.state)),
        )
    ]


def check_opportunity_closed(opportunity: Opportunity) -> list[Violation]:
    if opportunity.state is not OpportunityState.OPEN:
        return []
    return [Violation(ErrorCode.OPPORTUNITY_NOT_CLOSED, msg("The opportunity is already open."))]


def check_no_open_quotes(open_quotes: Iterable[QuoteRecord]) -> list[Violation]:
    """The central invariant: an opportunity closes only when none of its quotes is open."""
    blocking = tuple(open_quotes)
    if not blocking:
        return []
    numbers = tuple(
        msg("{number} rev {revision}", number=q.quote_number, revision=q.revision_number)
        for q in blocking
    )
    return [
        OpenQuotesBlock(
            ErrorCode.OPPORTUNITY_HAS_OPEN_QUOTES,
            plural_msg(
                "{count} open quote must be closed first: {quotes}.",
                "{count} open quotes must be closed first: {quotes}.",
                len(blocking),
                quotes=numbers,
            ),
            open_quotes=blocking,
        )
    ]


def check_quote_open(quote: Quote) -> list[Violation]:
    if quote.is_open:
        return []
    return [
        Violation(
            ErrorCode.QUOTE_NOT_OPEN,
            msg(
                "Quote {number} is {state}; closed and won quotes are final.",
                number=quote.quote_number,
                state=str(quote.state),
            ),
        )
    ]


def check_quote_draft(quote: Quote, *, code: ErrorCode) -> list[Violation]:
    if quote.state is QuoteState.DRAFT:
        return []
    return [
        Violation(
            code,
            msg(
                "Quote {number} is {state}; only drafts qualify.",
                number=quote.quote_number,
                state=str(quote.state),
            ),
        )
    ]


def check_quote_revisable(quote: Quote) -> list[Violation]:
    """Only an ACTIVE quote is revised; a draft is edited, a final quote stays as it is."""
    if quote.state is QuoteState.ACTIVE:
        return []
    if quote.is_open:
        return [
            Violation(
                ErrorCode.QUOTE_NOT_OPEN,
                msg(
                    "Quote {number} is a draft: edit it instead of revising.",
                    number=quote.quote_number,
                ),
            )
        ]
    return check_quote_open(quote)


def check_competitor_name_free(name: str, taken: bool) -> list[Violation]:
    if not taken:
        return []
    return [_invalid("name", msg("A competitor named {name} exists already.", name=repr(name)))]


def check_quote_currency(opportunity: Opportunity, currency_code: str) -> list[Violation]:
    if currency_code == opportunity.currency_code:
        return []
    return [
        CurrencyMismatch(
            ErrorCode.CURRENCY_MISMATCH,
            msg(
                "The quote's currency {actual} differs from the opportunity's {expected}.",
                actual=currency_code,
                expected=opportunity.currency_code,
            ),
            "currency_code",
            expected_currency=opportunity.currency_code,
            actual_currency=currency_code,
        )
    ]


def check_close_input(
    *,
    outcome: CloseOutcome,
    status_reason: OpportunityStatusReason,
    actual_revenue: Decimal | None,
    description: str | None,
) -> list[Violation]:
    """Input of closeOpportunity: a reason that fits the outcome, sane money and text."""
    return [
        *check_choice("status_reason", status_reason, CLOSE_REASONS[outcome]),
        *check_money("actual_revenue", actual_revenue),
        *check_text("description", description, max_length=DESCRIPTION_MAX),
    ]
