"""Display labels of enum values, in the request's language: EnumLabel and LabeledEnum."""

from __future__ import annotations

from enum import Enum, StrEnum

import strawberry

from gql_service import labels
from gql_service.languages import Language
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


@strawberry.type(description="A display label of one enum value, in the request's language.")
class EnumLabel:
    value: str = strawberry.field(description="The enum value as the schema spells it.")
    label: str = strawberry.field(description="What to show a person, in their language.")


@strawberry.enum(description="Enums whose values have display labels.")
class LabeledEnum(Enum):
    OPPORTUNITY_STATE = strawberry.enum_value("OPPORTUNITY_STATE", description="OpportunityState.")
    OPPORTUNITY_STATUS_REASON = strawberry.enum_value(
        "OPPORTUNITY_STATUS_REASON", description="OpportunityStatusReason."
    )
    CLOSE_OUTCOME = strawberry.enum_value("CLOSE_OUTCOME", description="CloseOutcome.")
    FORECAST_CATEGORY = strawberry.enum_value("FORECAST_CATEGORY", description="ForecastCategory.")
    QUOTE_STATE = strawberry.enum_value("QUOTE_STATE", description="QuoteState.")
    QUOTE_STATUS_REASON = strawberry.enum_value(
        "QUOTE_STATUS_REASON", description="QuoteStatusReason."
    )
    CLOSE_RECORD_STATE = strawberry.enum_value(
        "CLOSE_RECORD_STATE", description="CloseRecordState."
    )
    CONTRACT_STATE = strawberry.enum_value("CONTRACT_STATE", description="ContractState.")
    BILLING_METHOD = strawberry.enum_value("BILLING_METHOD", description="BillingMethod.")
    TRANSACTION_CLASS = strawberry.enum_value("TRANSACTION_CLASS", description="TransactionClass.")


_ENUMS: dict[LabeledEnum, type[StrEnum]] = {
    LabeledEnum.OPPORTUNITY_STATE: OpportunityState,
    LabeledEnum.OPPORTUNITY_STATUS_REASON: OpportunityStatusReason,
    LabeledEnum.CLOSE_OUTCOME: CloseOutcome,
    LabeledEnum.FORECAST_CATEGORY: ForecastCategory,
    LabeledEnum.QUOTE_STATE: QuoteState,
    LabeledEnum.QUOTE_STATUS_REASON: QuoteStatusReason,
    LabeledEnum.CLOSE_RECORD_STATE: CloseRecordState,
    LabeledEnum.CONTRACT_STATE: ContractState,
    LabeledEnum.BILLING_METHOD: BillingMethod,
    LabeledEnum.TRANSACTION_CLASS: TransactionClass,
}


def enum_labels(enum: LabeledEnum, language: Language) -> list[EnumLabel]:
    return [EnumLabel(value=v, label=t) for v, t in labels.labels_of(_ENUMS[enum], language)]


def close_status_reasons(outcome: CloseOutcome, language: Language) -> list[EnumLabel]:
    pairs = labels.close_status_reasons(outcome, language)
    return [EnumLabel(value=v, label=t) for v, t in pairs]
