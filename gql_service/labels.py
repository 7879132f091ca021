"""Display labels of the enums users see, one Message per value (messages.py translates them).

Each label's context is its enum's name: "Won" of an opportunity and of a quote are different
words in Latvian (iegūta, iegūts).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from gql_service.languages import Language
from gql_service.messages import Message, label
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
from gql_service.rules import CLOSE_REASONS

LABELS: Mapping[type[StrEnum], Mapping[str, Message]] = {
    OpportunityState: {
        OpportunityState.OPEN: label("OpportunityState", "Open"),
        OpportunityState.WON: label("OpportunityState", "Won"),
        OpportunityState.LOST: label("OpportunityState", "Lost"),
    },
    OpportunityStatusReason: {
        OpportunityStatusReason.IN_PROGRESS: label("OpportunityStatusReason", "In progress"),
        OpportunityStatusReason.ON_HOLD: label("OpportunityStatusReason", "On hold"),
        OpportunityStatusReason.WON: label("OpportunityStatusReason", "Won"),
        OpportunityStatusReason.CANCELED: label("OpportunityStatusReason", "Canceled"),
        OpportunityStatusReason.OUT_SOLD: label("OpportunityStatusReason", "Out-sold"),
    },
    CloseOutcome: {
        CloseOutcome.WON: label("CloseOutcome", "Won"),
        CloseOutcome.LOST: label("CloseOutcome", "Lost"),
    },
    ForecastCategory: {
        ForecastCategory.PIPELINE: label("ForecastCategory", "Pipeline"),
        ForecastCategory.BEST_CASE: label("ForecastCategory", "Best case"),
        ForecastCategory.COMMITTED: label("ForecastCategory", "Committed"),
        ForecastCategory.OMITTED: label("ForecastCategory", "Omitted"),
        ForecastCategory.WON: label("ForecastCategory", "Won"),
        ForecastCategory.LOST: label("ForecastCategory", "Lost"),
    },
    QuoteState: {
        QuoteState.DRAFT: label("QuoteState", "Draft"),
        QuoteState.ACTIVE: label("QuoteState", "Active"),
        QuoteState.WON: label("QuoteState", "Won"),
        QuoteState.CLOSED: label("QuoteState", "Closed"),
    },
    QuoteStatusReason: {
        QuoteStatusReason.IN_PROGRESS: label("QuoteStatusReason", "In progress"),
        QuoteStatusReason.OPEN: label("QuoteStatusReason", "Open"),
        QuoteStatusReason.WON: label("QuoteStatusReason", "Won"),
        QuoteStatusReason.LOST: label("QuoteStatusReason", "Lost"),
        QuoteStatusReason.CANCELED: label("QuoteStatusReason", "Canceled"),
        QuoteStatusReason.REVISED: label("QuoteStatusReason", "Revised"),
    },
    CloseRecordState: {
        CloseRecordState.COMPLETED: label("CloseRecordState", "Completed"),
        CloseRecordState.CANCELED: label("CloseRecordState", "Canceled"),
    },
    ContractState: {
        ContractState.DRAFT: label("ContractState", "Draft"),
    },
    BillingMethod: {
        BillingMethod.TIME_AND_MATERIAL: label("BillingMethod", "Time and material"),
        BillingMethod.FIXED_PRICE: label("BillingMethod", "Fixed price"),
    },
    TransactionClass: {
        TransactionClass.TIME: label("TransactionClass", "Time"),
        TransactionClass.EXPENSE: label("TransactionClass", "Expense"),
        TransactionClass.FEE: label("TransactionClass", "Fee"),
    },
}


def labels_of(values: type[StrEnum], language: Language) -> list[tuple[str, str]]:
    """(value, label) of every value of an enum, in its declared order."""
    texts = LABELS[values]
    return [(value.value, texts[value].translate(language)) for value in values]


def close_status_reasons(outcome: CloseOutcome, language: Language) -> list[tuple[str, str]]:
    """(value, label) of the status reasons a close with ``outcome`` accepts."""
    texts = LABELS[OpportunityStatusReason]
    return [(reason.value, texts[reason].translate(language)) for reason in CLOSE_REASONS[outcome]]
