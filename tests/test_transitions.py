"""Pure transitions: guards through the rules, changes in the domain's own fields. No fixtures."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from gql_service import audit, transitions
from gql_service.errors import ErrorCode, ValidationFailedError
from gql_service.models import (
    CloseOutcome,
    CloseRecordState,
    ContractState,
    ForecastCategory,
    Opportunity,
    OpportunityState,
    OpportunityStatusReason,
    Quote,
    QuoteState,
    QuoteStatusReason,
)

TODAY = date(2025, 3, 31)


def _opportunity(state: OpportunityState = OpportunityState.OPEN) -> Opportunity:
    return Opportunity(id=7, state=state, estimated_revenue=Decimal("1000.0000"))


def _quote(state: QuoteState = QuoteState.DRAFT) -> Quote:
    return Quote(
        id=3, opportunity_id=7, quote_number="QUO-1", revision_number=0, name="A", state=state
    )


def _codes(exc: pytest.ExceptionInfo[ValidationFailedError]) -> list[ErrorCode]:
    return [v.code for v in exc.value.violations]


def test_a_won_close_takes_the_estimate_as_actual_revenue_and_leaves_a_completed_record() -> None:
    closing = transitions.close_opportunity(
        _opportunity(),
        transitions.CloseInput(
            outcome=CloseOutcome.WON,
            status_reason=OpportunityStatusReason.WON,
            actual_revenue=None,
            close_date=TODAY,
            competitor_id=None,
            description=None,
            close_open_quotes=False,
        ),
    )
    assert closing.changes == {
        "state": OpportunityState.WON,
        "status_reason": OpportunityStatusReason.WON,
        "forecast_category": ForecastCategory.WON,
        "actual_revenue": Decimal("1000.0000"),
        "actual_close_date": TODAY,
    }
    assert closing.record["state"] is CloseRecordState.COMPLETED
    assert closing.quotes is None


@pytest.mark.parametrize(
    ("outcome", "revenue", "quotes"),
    [
        (CloseOutcome.LOST, None, False),
        (CloseOutcome.LOST, Decimal("12.5"), True),
        (CloseOutcome.WON, Decimal("900"), False),
        (CloseOutcome.WON, Decimal("900"), True),
    ],
)
def test_a_close_that_needs_no_read_plans_what_the_read_one_plans(
    outcome: CloseOutcome, revenue: Decimal | None, quotes: bool
) -> None:
    """Worked out without the opportunity, a close's changes are those worked out on an open
    one (the unlocked call locks it only if it is open); WON without a revenue needs it."""
    given = transitions.CloseInput(
        outcome=outcome,
        status_reason=OpportunityStatusReason.CANCELED,
        actual_revenue=revenue,
        close_date=TODAY,
        competitor_id=5,
        description="x",
        close_open_quotes=quotes,
    )
    unread = transitions.close_opportunity_unread(7, given)
    assert unread == transitions.close_opportunity(_opportunity(), given)
    needing = replace(given, outcome=CloseOutcome.WON, actual_revenue=None)
    assert transitions.close_opportunity_unread(7, needing) is None


def test_a_lost_close_that_closes_open_quotes_closes_them_as_lost_on_the_same_date() -> None:
    closing = transitions.close_opportunity(
        _opportunity(),
        transitions.CloseInput(
            outcome=CloseOutcome.LOST,
            status_reason=OpportunityStatusReason.OUT_SOLD,
            actual_revenue=Decimal("12.5"),
            close_date=TODAY,
            competitor_id=None,
            description="lost",
            close_open_quotes=True,
        ),
    )
    assert closing.changes["actual_revenue"] == Decimal("12.5000")
    assert closing.quotes == transitions.QuoteClosing(
        7, status_reason=QuoteStatusReason.LOST, close_date=TODAY, description="lost"
    )


def test_a_closed_opportunity_refuses_every_transition_but_reopen() -> None:
    lost = _opportunity(OpportunityState.LOST)
    with pytest.raises(ValidationFailedError) as refused:
        transitions.activate_quote(lost, _quote())
    assert _codes(refused) == [ErrorCode.OPPORTUNITY_ALREADY_CLOSED]
    reopening = transitions.reopen_opportunity(lost, status_reason=OpportunityStatusReason.ON_HOLD)
    assert reopening.changes == {
        "state": OpportunityState.OPEN,
        "status_reason": OpportunityStatusReason.ON_HOLD,
        "forecast_category": ForecastCategory.PIPELINE,
    }
    assert reopening.closes == {"state": CloseRecordState.CANCELED}
    with pytest.raises(ValidationFailedError) as refused:
        transitions.reopen_opportunity(
            _opportunity(), status_reason=OpportunityStatusReason.IN_PROGRESS
        )
    assert _codes(refused) == [ErrorCode.OPPORTUNITY_NOT_CLOSED]


def test_only_a_draft_is_edited_and_only_the_given_fields_change() -> None:
    changes = transitions.edit_quote(_opportunity(), _quote(), name="  B ")
    assert changes == {"name": "B", "effective_from": None, "effective_to": None}
    with pytest.raises(ValidationFailedError) as refused:
        transitions.edit_quote(_opportunity(), _quote(QuoteState.ACTIVE), name="B")
    assert _codes(refused) == [ErrorCode.QUOTE_READ_ONLY]


def test_a_revision_closes_the_quote_and_drafts_the_next_revision() -> None:
    revision = transitions.revise_quote(_opportunity(), _quote(QuoteState.ACTIVE), today=TODAY)
    assert revision.changes["status_reason"] is QuoteStatusReason.REVISED
    assert revision.draft["quote_number"] == "QUO-1"
    assert revision.draft["revision_number"] == 1


def test_winning_names_the_winner_and_final_quotes_stay_final() -> None:
    closing = transitions.win_quote(_opportunity(), _quote(), close_date=TODAY, description=None)
    assert (closing.winner_id, closing.quote_id) == (3, None)
    with pytest.raises(ValidationFailedError) as refused:
        transitions.close_quote(
            _opportunity(),
            _quote(QuoteState.WON),
            status_reason=QuoteStatusReason.LOST,
            close_date=TODAY,
            description=None,
        )
    assert _codes(refused) == [ErrorCode.QUOTE_NOT_OPEN]


def test_a_stamp_bumps_the_version_and_records_when_and_who() -> None:
    quote = _quote()
    quote.version = 4
    moment = datetime(2025, 3, 31, 12, tzinfo=UTC)
    audit.stamp(quote, moment, "ann")
    assert (quote.version, quote.modified_at, quote.modified_by) == (5, moment, "ann")


def test_a_won_quote_drafts_its_contract_from_the_quote_and_the_customer() -> None:
    opportunity = _opportunity()
    opportunity.customer_name = "Contoso"
    quote = _quote()
    quote.currency_code, quote.total_amount = "EUR", Decimal("15950.0000")
    contract = transitions.draft_contract(opportunity, quote, contract_number="CON-1")
    assert contract == {
        "contract_number": "CON-1",
        "name": "A",
        "state": ContractState.DRAFT,
        "customer_name": "Contoso",
        "currency_code": "EUR",
        "total_amount": Decimal("15950.0000"),
        "opportunity_id": 7,
        "quote_id": 3,
    }
