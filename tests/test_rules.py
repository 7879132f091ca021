"""Pure rules: no database, no fixtures."""

from __future__ import annotations

from decimal import Decimal

from gql_service.errors import ErrorCode, InvalidStatusReason, OpenQuotesBlock, Violation
from gql_service.messages import msg
from gql_service.models import (
    CloseOutcome,
    Opportunity,
    OpportunityState,
    OpportunityStatusReason,
    Quote,
    QuoteState,
)
from gql_service.rules import (
    as_money,
    check_close_input,
    check_currency,
    check_money,
    check_no_open_quotes,
    check_opportunity_open,
    check_period,
    check_text,
    check_version,
)


def test_money_must_be_finite_non_negative_small_and_at_most_four_decimals() -> None:
    assert check_money("m", Decimal("0")) == []
    assert check_money("m", Decimal("999999999999999.9999")) == []
    assert check_money("m", Decimal("1.230000")) == []
    assert [v.code for v in check_money("m", Decimal("-0.01"))] == [ErrorCode.INVALID_VALUE]
    assert len(check_money("m", Decimal("1.00001"))) == 1
    assert len(check_money("m", Decimal("1E+15"))) == 1
    assert len(check_money("m", Decimal("NaN"))) == 1
    assert len(check_money("m", Decimal("-Infinity"))) == 1


def test_money_checks_survive_numbers_beyond_the_decimal_context() -> None:
    # Found by the hostile-input suite: abs() and quantize() round in the context and raised
    # decimal.Overflow / InvalidOperation, which became "Unexpected error.".
    huge = check_money("m", Decimal("1e999999999"))
    negative_huge = check_money("m", Decimal("-1e999999999"))
    long_fraction = check_money("m", Decimal("1" * 40 + ".00001"))

    assert [str(v.message) for v in huge] == ["Must be less than 1,000,000,000,000,000."]
    assert [v.code for v in negative_huge] == [ErrorCode.INVALID_VALUE] * 2
    assert len(long_fraction) == 2
    assert check_money("m", Decimal("1e-999999999")) == [
        Violation(
            ErrorCode.INVALID_VALUE,
            msg("Must have at most {places} decimal places.", places=4),
            "m",
        )
    ]
    assert str(check_money("m", Decimal("1.00001"))[0].message) == (
        "Must have at most 4 decimal places."
    )
    assert check_money("m", Decimal("12.34560000000")) == []
    assert check_money("m", None) == []


def test_money_is_kept_at_four_decimals() -> None:
    assert as_money(Decimal("12.5")) == Decimal("12.5000")
    assert str(as_money(Decimal("12.5"))) == "12.5000"
    assert as_money(None) is None


def test_required_text_is_not_blank_and_fits_its_length() -> None:
    assert check_text("n", "ok", max_length=2, required=True) == []
    assert len(check_text("n", " ", max_length=2, required=True)) == 1
    assert len(check_text("n", None, max_length=2, required=True)) == 1
    assert len(check_text("n", "abc", max_length=2)) == 1
    assert check_text("n", None, max_length=2) == []


def test_currency_codes_are_iso_4217() -> None:
    assert check_currency("c", "EUR") == []
    assert len(check_currency("c", "EURO")) == 1
    assert len(check_currency("c", "usd")) == 1


def test_effective_to_may_not_precede_effective_from() -> None:
    from datetime import date

    assert check_period("t", date(2026, 1, 2), date(2026, 1, 2)) == []
    assert len(check_period("t", date(2026, 1, 2), date(2026, 1, 1))) == 1
    assert check_period("t", None, date(2026, 1, 1)) == []


def test_a_close_reason_must_fit_the_outcome_and_lists_the_allowed_ones() -> None:
    [violation] = check_close_input(
        outcome=CloseOutcome.LOST,
        status_reason=OpportunityStatusReason.WON,
        actual_revenue=None,
        description=None,
    )
    assert isinstance(violation, InvalidStatusReason)
    assert violation.allowed == ("CANCELED", "OUT_SOLD")
    assert violation.field == "status_reason"


def test_close_input_reports_every_problem_at_once() -> None:
    violations = check_close_input(
        outcome=CloseOutcome.WON,
        status_reason=OpportunityStatusReason.ON_HOLD,
        actual_revenue=Decimal("-1"),
        description="x" * 2001,
    )
    assert [v.field for v in violations] == ["status_reason", "actual_revenue", "description"]


def test_open_quotes_block_a_close_and_are_named() -> None:
    draft = Quote(id=1, quote_number="QUO-1", state=QuoteState.DRAFT)
    active = Quote(id=2, quote_number="QUO-2", state=QuoteState.ACTIVE)

    [violation] = check_no_open_quotes([draft, active])

    assert isinstance(violation, OpenQuotesBlock)
    assert violation.code is ErrorCode.OPPORTUNITY_HAS_OPEN_QUOTES
    assert violation.open_quotes == (draft, active)
    assert check_no_open_quotes([]) == []


def test_a_closed_opportunity_is_read_only() -> None:
    assert check_opportunity_open(Opportunity(state=OpportunityState.OPEN)) == []
    [violation] = check_opportunity_open(Opportunity(state=OpportunityState.LOST))
    assert violation.code is ErrorCode.OPPORTUNITY_ALREADY_CLOSED


def test_a_version_check_passes_when_no_version_is_expected() -> None:
    assert check_version("quote", None, 7) == []
    assert check_version("quote", 7, 7) == []
    [conflict] = check_version("quote", 6, 7)
    assert conflict.code is ErrorCode.CONCURRENCY_CONFLICT
