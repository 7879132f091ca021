"""SQLModel tables and the state and status-reason enums of the domain."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel


class OpportunityState(enum.StrEnum):
    OPEN = "OPEN"
    WON = "WON"
    LOST = "LOST"


class OpportunityStatusReason(enum.StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    ON_HOLD = "ON_HOLD"
    WON = "WON"
    CANCELED = "CANCELED"
    OUT_SOLD = "OUT_SOLD"


class CloseOutcome(enum.StrEnum):
    WON = "WON"
    LOST = "LOST"


class ForecastCategory(enum.StrEnum):
    PIPELINE = "PIPELINE"
    BEST_CASE = "BEST_CASE"
    COMMITTED = "COMMITTED"
    OMITTED = "OMITTED"
    WON = "WON"
    LOST = "LOST"


class QuoteState(enum.StrEnum):
    DRAFT = "DRAFT"
    ACTIVE = "ACTIVE"
    WON = "WON"
    CLOSED = "CLOSED"


class QuoteStatusReason(enum.StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    OPEN = "OPEN"
    WON = "WON"
    LOST = "LOST"
    CANCELED = "CANCELED"
    REVISED = "REVISED"


class CloseRecordState(enum.StrEnum):
    COMPLETED = "COMPLETED"
    CANCELED = "CANCELED"


class BillingMethod(enum.StrEnum):
    TIME_AND_MATERIAL = "TIME_AND_MATERIAL"
    FIXED_PRICE = "FIXED_PRICE"


class TransactionClass(enum.StrEnum):
    TIME = "TIME"
    EXPENSE = "EXPENSE"
    FEE = "FEE"


class ContractState(enum.StrEnum):
    DRAFT = "DRAFT"


OPEN_QUOTE_STATES = (QuoteState.DRAFT, QuoteState.ACTIVE)

# Facts of the domain, written once: the columns, the rules and the schema's texts read them.
NAME_MAX = 200
DESCRIPTION_MAX = 2000
URL_MAX = 500
MONEY_PRECISION = 19
MONEY_PLACES = 4
MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_PLACES)
# The largest amount the column holds is below 10 ** (precision - places).
MONEY_LIMIT = Decimal(10) ** (MONEY_PRECISION - MONEY_PLACES)


class Money(sa.types.TypeDecorator[Decimal]):
    """Exact decimal money: NUMERIC(19, 4) on PostgreSQL, text on SQLite (which has no decimal)."""

    impl = sa.Numeric(MONEY_PRECISION, MONEY_PLACES)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(40))
        return dialect.type_descriptor(sa.Numeric(MONEY_PRECISION, MONEY_PLACES, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return str(value.quantize(MONEY_QUANTUM))
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        # Both engines answer with the column's scale: "125000.5000".
        return Decimal(value).quantize(MONEY_QUANTUM)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timestamps stored in UTC and always returned timezone-aware."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _enum(cls: type[enum.Enum]) -> sa.Enum:
    longest = max(len(str(member.value)) for member in cls)
    return sa.Enum(cls, native_enum=False, length=max(16, longest), validate_strings=True)


# Primary keys are INTEGER (int4) on PostgreSQL: a larger number names no row on any engine.
MAX_ID = 2**31 - 1


class Entity(SQLModel):
    """A table with an integer primary key."""

    id: int | None = Field(default=None, primary_key=True)


class Competitor(Entity, table=True):
    __tablename__ = "competitor"

    name: str = Field(sa_column=sa.Column(sa.String(NAME_MAX), nullable=False, unique=True))
    website: str | None = Field(default=None, sa_column=sa.Column(sa.String(URL_MAX)))
    notes: str | None = Field(default=None, sa_column=sa.Column(sa.String(DESCRIPTION_MAX)))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    created_by: str = Field(sa_column=sa.Column(sa.String(NAME_MAX), nullable=False))


class Opportunity(Entity, table=True):
    __tablename__ = "opportunity"
    # Open opportunities by estimated close date (nulls last, then id) is an index scan; the
    # leading state column serves the state filter on its own as well.
    __table_args__ = (
        sa.Index("ix_opportunity_state_close_date", "state", "estimated_close_date", "id"),
    )

    name: str = Field(sa_column=sa.Column(sa.String(NAME_MAX), nullable=False))
    customer_name: str = Field(sa_column=sa.Column(sa.String(NAME_MAX), nullable=False))
    currency_code: str = Field(sa_column=sa.Column(sa.String(3), nullable=False))
    estimated_revenue: Decimal | None = Field(default=None, sa_column=sa.Column(Money()))
    estimated_close_date: date | None = Field(default=None, sa_column=sa.Column(sa.Date()))
    state: OpportunityState = Field(
        default=OpportunityState.OPEN,
        sa_column=sa.Column(_enum(OpportunityState), nullable=False),
    )
    status_reason: OpportunityStatusReason = Field(
        default=OpportunityStatusReason.IN_PROGRESS,
        sa_column=sa.Column(_enum(OpportunityStatusReason), nullable=False),
    )
    forecast_category: ForecastCategory = Field(
        default=ForecastCategory.PIPELINE,
        sa_column=sa.Column(_enum(ForecastCategory), nullable=False),
    )
    actual_revenue: Decimal | None = Field(default=None, sa_column=sa.Column(Money()))
    actual_close_date: date | None = Field(default=None, sa_column=sa.Column(sa.Date()))
    description: str | None = Field(default=None, sa_column=sa.Column(sa.String(DESCRIPTION_MAX)))
    # True: estimated_revenue is the sum of the opportunity's lines; False: entered by the user.
    is_revenue_system_calculated: bool = Field(
        default=False,
        sa_column=sa.Column(sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    version: int = Field(default=1, sa_column=sa.Column(sa.Integer(), nullable=False))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False, index=True))
    created_by: str = Field(sa_column=sa.Column(sa.String(NAME_MAX), nullable=False))
    modified_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    modified_by: str = Field(sa_column=sa.Column(sa.String(NAME_MAX), nullable=False))


class Quote(Entity, table=True):
    __tablename__ = "quote"
    __table_args__ = (
        sa.UniqueConstraint("quote_number", "revision_number", name="uq_quote_number_revision"),
        sa.Index("ix_quote_opportunity_state", "opportunity_id", "state"),
    )

    opportunity_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("opportunity.id"), nullable=False)
    )
    quote_number: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    revision_number: int = Field(default=0, sa_column=sa.Column(sa.Integer(), nullable=False))
    name: str = Field(sa_column=sa.Column(sa.String(NAME_MAX), nullable=False))
    currency_code: str = Field(sa_column=sa.Column(sa.String(3), nullable=False))
    total_amount: Decimal | None = Field(default=None, sa_column=sa.Column(Money()))
    state: QuoteState = Field(
        default=QuoteState.DRAFT, sa_column=sa.Column(_enum(QuoteState), nullable=False)
    )
    status_reason: QuoteStatusReason = Field(
        default=QuoteStatusReason.IN_PROGRESS,
        sa_column=sa.Column(_enum(QuoteStatusReason), nullable=False),
    )
    effective_from: date | None = Field(default=None, sa_column=sa.Column(sa.Date()))
    effective_to: date | None = Field(default=None, sa_column=sa.Column(sa.Date()))
    closed_on: date | None = Field(default=None, sa_column=sa.Column(sa.Date()))
    version: int = Field(default=1, sa_column=sa.Column(sa.Integer(), nullable=False))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    created_by: str = Field(sa_column=sa.Column(sa.String(NAME_MAX), nullable=False))
    modified_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    modified_by: str = Field(sa_column=sa.Column(sa.String(NAME_MAX), nullable=False))

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_QUOTE_STATES


class OpportunityClose(Entity, table=True):
    __tablename__ = "opportunity_close"

    opportunity_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("opportunity.id"), nullable=False, index=True)
    )
    outcome: CloseOutcome = Field(sa_column=sa.Column(_enum(CloseOutcome), nullable=False))
    status_reason: OpportunityStatusReason = Field(
        sa_column=sa.Column(_enum(OpportunityStatusReason), nullable=False)
    )
    actual_revenue: Decimal | None = Field(default=None, sa_column=sa.Column(Money()))
    close_date: date = Field(sa_column=sa.Column(sa.Date(), nullable=False))
    competitor_id: int | None = Field(
        default=None, sa_column=sa.Column(sa.ForeignKey("competitor.id"), nullable=True)
    )
    description: str | None = Field(default=None, sa_column=sa.Column(sa.String(DESCRIPTION_MAX)))
    state: CloseRecordState = Field(
        default=CloseRecordState.COMPLETED,
        sa_column=sa.Column(_enum(CloseRecordState), nullable=False),
    )
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    created_by: str = Field(sa_column=sa.Column(sa.String(NAME_MAX), nullable=False))
    canceled_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))
    canceled_by: str | None = Field(default=None, sa_column=sa.Column(sa.String(NAME_MAX)))


class QuoteClose(Entity, table=True):
    __tablename__ = "quote_close"

    quote_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("quote.id"), nullable=False, unique=True)
    )
    quote_number: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    revision_number: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    status_reason: QuoteStatusReason = Field(
        sa_column=sa.Column(_enum(QuoteStatusReason), nullable=False)
    )
    close_date: date = Field(sa_column=sa.Column(sa.Date(), nullable=False))
    description: str | None = Field(default=None, sa_column=sa.Column(sa.String(DESCRIPTION_MAX)))
    batch_id: str = Field(sa_column=sa.Column(sa.String(36), nullable=False, index=True))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    created_by: str = Field(sa_column=sa.Column(sa.String(NAME_MAX), nullable=False))


class Line(Entity):
    """What every line holds: quote, opportunity and contract lines have the same shape.

    ``amount`` is calculated (quantity x unit price - discount, at the money scale), never
    entered. Quantities are exact decimals at the money scale as well. Lines list in the order
    they were added (by id).
    """

    name: str = Field(sa_type=sa.String(NAME_MAX), nullable=False)
    billing_method: BillingMethod = Field(sa_type=_enum(BillingMethod), nullable=False)
    transaction_class: TransactionClass | None = Field(
        default=None, sa_type=_enum(TransactionClass), nullable=True
    )
    quantity: Decimal = Field(sa_type=Money, nullable=False)
    unit_price: Decimal = Field(sa_type=Money, nullable=False)
    discount: Decimal | None = Field(default=None, sa_type=Money, nullable=True)
    amount: Decimal = Field(sa_type=Money, nullable=False)
    version: int = Field(default=1, nullable=False)
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    created_by: str = Field(sa_type=sa.String(NAME_MAX), nullable=False)
    modified_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    modified_by: str = Field(sa_type=sa.String(NAME_MAX), nullable=False)


class QuoteLine(Line, table=True):
    __tablename__ = "quote_line"

    quote_id: int = Field(foreign_key="quote.id", nullable=False, index=True)


class OpportunityLine(Line, table=True):
    __tablename__ = "opportunity_line"

    opportunity_id: int = Field(foreign_key="opportunity.id", nullable=False, index=True)


class ProjectContract(Entity, table=True):
    """The draft project contract that winning a quote creates, from the quote's lines."""

    __tablename__ = "project_contract"

    contract_number: str = Field(sa_column=sa.Column(sa.String(32), nullable=False, unique=True))
    name: str = Field(sa_column=sa.Column(sa.String(NAME_MAX), nullable=False))
    state: ContractState = Field(
        default=ContractState.DRAFT, sa_column=sa.Column(_enum(ContractState), nullable=False)
    )
    customer_name: str = Field(sa_column=sa.Column(sa.String(NAME_MAX), nullable=False))
    currency_code: str = Field(sa_column=sa.Column(sa.String(3), nullable=False))
    total_amount: Decimal | None = Field(default=None, sa_column=sa.Column(Money()))
    opportunity_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("opportunity.id"), nullable=False, index=True)
    )
    # One contract per won quote.
    quote_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("quote.id"), nullable=False, unique=True)
    )
    version: int = Field(default=1, sa_column=sa.Column(sa.Integer(), nullable=False))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False, index=True))
    created_by: str = Field(sa_column=sa.Column(sa.String(NAME_MAX), nullable=False))
    modified_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    modified_by: str = Field(sa_column=sa.Column(sa.String(NAME_MAX), nullable=False))


class ContractLine(Line, table=True):
    __tablename__ = "contract_line"

    contract_id: int = Field(foreign_key="project_contract.id", nullable=False, index=True)
    # The quote line it was made from.
    quote_line_id: int | None = Field(default=None, foreign_key="quote_line.id", nullable=True)


class ApiKey(Entity, table=True):
    """A partner's API key. Only a hash of its secret is stored; ``key_id`` is its public part."""

    __tablename__ = "api_key"

    name: str = Field(sa_column=sa.Column(sa.String(NAME_MAX), nullable=False, unique=True))
    key_id: str = Field(sa_column=sa.Column(sa.String(32), nullable=False, unique=True))
    secret_hash: str = Field(sa_column=sa.Column(sa.String(128), nullable=False))
    scopes: str = Field(sa_column=sa.Column(sa.String(500), nullable=False))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    created_by: str = Field(sa_column=sa.Column(sa.String(NAME_MAX), nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))
    revoked_by: str | None = Field(default=None, sa_column=sa.Column(sa.String(NAME_MAX)))


class IdempotencyKey(Entity, table=True):
    """A claimed ``Idempotency-Key``: who sent it, what it was for, and the stored response."""

    __tablename__ = "idempotency_key"
    __table_args__ = (sa.UniqueConstraint("principal", "key", name="uq_idempotency_principal_key"),)

    principal: str = Field(sa_column=sa.Column(sa.String(NAME_MAX), nullable=False))
    key: str = Field(sa_column=sa.Column(sa.String(255), nullable=False))
    request_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    status_code: int | None = Field(default=None, sa_column=sa.Column(sa.Integer()))
    response: str | None = Field(default=None, sa_column=sa.Column(sa.Text()))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False, index=True))


class PersistedQuery(Entity, table=True):
    """A document registered by Apollo's automatic persisted queries, by its SHA-256."""

    __tablename__ = "persisted_query"

    sha256: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    document: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))


class AnnouncementListener(SQLModel, table=True):
    """A worker's connection that LISTENs for announcements (listener.py), by its server
    process id. Writes send their NOTIFY only while a row is here (PostgreSQL's
    ``announce_change``, migration 0005); a row whose process is gone is removed by the next
    listener to start."""

    __tablename__ = "announcement_listener"

    pid: int = Field(sa_column=sa.Column(sa.Integer(), primary_key=True, autoincrement=False))
    since: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))


def table_of(model: type[SQLModel]) -> sa.Table:
    """The Core table behind a SQLModel class."""
    table = sa.inspect(model).local_table
    assert isinstance(table, sa.Table)
    return table
