"""GraphQL object types: Relay nodes built from the domain's tables."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from operator import attrgetter
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import strawberry
from strawberry.types.private import is_private

from gql_service import models
from gql_service.graphql.context import Context
from gql_service.graphql.enums import (
    BillingMethod,
    CloseOutcome,
    CloseRecordState,
    ForecastCategory,
    OpportunityState,
    OpportunityStatusReason,
    QuoteState,
    QuoteStatusReason,
    TransactionClass,
)
from gql_service.graphql.ids import encode_id
from gql_service.graphql.inputs import QuoteFilter
from gql_service.graphql.loaders import QuoteRow
from gql_service.graphql.pagination import Connection, nested_page
from gql_service.graphql.prefetch import now_or_later
from gql_service.queries import QuoteFilter as QuoteQuery
from gql_service.records import (
    CompetitorRecord,
    ContractRecord,
    LineRecord,
    OpportunityCloseRecord,
    OpportunityLineRecord,
    OpportunityRecord,
    QuoteCloseRecord,
    QuoteLineRecord,
    QuoteRecord,
)
from gql_service.unset import UNSET, Unset

if TYPE_CHECKING:
    from gql_service.graphql.contract_types import ProjectContract

Info = strawberry.Info[Context, None]
# contract_types.py builds on Node; its types are resolved when the schema is built.
_CONTRACTS = "gql_service.graphql.contract_types"
NodeT = TypeVar("NodeT")


class FromRecord:
    """How the public fields of one type read its record (records.py), said once: ``id`` is
    the global id of the record's ``id``, a field given here is computed so, and every other
    field is the record's column of the same name. ``from_model`` builds the object by it,
    and the fast lane renders the fields a write selected straight from the records it
    returned, without building the objects (fast_writes.py)."""

    def __init__(self, type_name: str, **computed: Callable[[Any], Any]) -> None:
        self.type_name = type_name
        self.computed = computed
        self._readers: tuple[tuple[str, Callable[[Any], Any]], ...] | None = None

    def reader(self, name: str) -> Callable[[Any], Any]:
        """How the field of Python name ``name`` reads the record."""
        if name == "id":
            type_name = self.type_name
            return lambda m: strawberry.ID(encode_id(type_name, m.id))
        return self.computed.get(name) or attrgetter(name)

    def values(self, cls: type, m: Any) -> dict[str, Any]:
        """The values of ``cls``'s public fields (those without a resolver) for record ``m``."""
        readers = self._readers
        if readers is None:
            names = [
                field.python_name
                for field in cls.__strawberry_definition__.fields  # type: ignore[attr-defined]
                if field.base_resolver is None and not is_private(field.type_annotation.annotation)
            ]
            readers = self._readers = tuple((name, self.reader(name)) for name in names)
        return {name: read(m) for name, read in readers}


@strawberry.interface(description="An object with a globally unique, opaque id.")
class Node:
    id: strawberry.ID = strawberry.field(description="Opaque global id; pass it to node(id:).")


@strawberry.type(description="A rival bidder that an opportunity was won or lost against.")
class Competitor(Node):
    pk: strawberry.Private[int]
    name: str = strawberry.field(description="Unique name.")
    website: str | None = strawberry.field(description="Web address.")
    notes: str | None = strawberry.field(description="Free notes.")
    created_at: datetime = strawberry.field(description="When it was registered (UTC).")
    created_by: str = strawberry.field(description="Who registered it.")

    @classmethod
    def from_model(cls, m: CompetitorRecord) -> Competitor:
        assert m.id is not None
        return cls(pk=m.id, **COMPETITOR.values(cls, m))


COMPETITOR = FromRecord("Competitor")


@strawberry.type(description="One close of an opportunity, as WON or LOST; kept as history.")
class OpportunityClose(Node):
    pk: strawberry.Private[int]
    opportunity_pk: strawberry.Private[int]
    competitor_pk: strawberry.Private[int | None]
    outcome: CloseOutcome = strawberry.field(description="WON or LOST.")
    status_reason: OpportunityStatusReason = strawberry.field(description="Why it closed so.")
    actual_revenue: Decimal | None = strawberry.field(description="Actual revenue at close.")
    close_date: date = strawberry.field(description="Date of the close.")
    description: str | None = strawberry.field(description="Notes given at close.")
    state: CloseRecordState = strawberry.field(
        description="COMPLETED, or CANCELED once the opportunity was reopened."
    )
    created_at: datetime = strawberry.field(description="When it was closed (UTC).")
    created_by: str = strawberry.field(description="Who closed it.")
    canceled_at: datetime | None = strawberry.field(description="When it was reopened (UTC).")
    canceled_by: str | None = strawberry.field(description="Who reopened it.")

    @strawberry.field(description="The closed opportunity.")
    async def opportunity(self, info: Info) -> Opportunity:
        found = await info.context.loaders.opportunity.load(self.opportunity_pk)
        assert found is not None
        return Opportunity.from_model(found)

    @strawberry.field(description="The competitor named at close, if any.")
    def competitor(self, info: Info) -> Competitor | None:
        if self.competitor_pk is None:
            return None
        return now_or_later(
            info.context.loaders.competitor,
            self.competitor_pk,
            lambda found: Competitor.from_model(found) if found else None,
        )

    @classmethod
    def from_model(cls, m: OpportunityCloseRecord) -> OpportunityClose:
        assert m.id is not None
        return cls(
            pk=m.id,
            opportunity_pk=m.opportunity_id,
            competitor_pk=m.competitor_id,
            **OPPORTUNITY_CLOSE.values(cls, m),
        )


OPPORTUNITY_CLOSE = FromRecord("OpportunityClose")


@strawberry.type(description="The record left by closing (or winning) one quote.")
class QuoteClose(Node):
    quote_number: str = strawberry.field(description="Number of the closed quote.")
    revision_number: int = strawberry.field(description="Revision of the closed quote.")
    status_reason: QuoteStatusReason = strawberry.field(description="WON, LOST or CANCELED.")
    close_date: date = strawberry.field(description="Date of the close.")
    description: str | None = strawberry.field(description="Notes given at close.")
    batch_id: str = strawberry.field(
        description="Shared by all quotes closed by one request (closeQuotes, winQuote)."
    )
    created_at: datetime = strawberry.field(description="When it was closed (UTC).")
    created_by: str = strawberry.field(description="Who closed it.")

    @classmethod
    def from_model(cls, m: QuoteCloseRecord) -> QuoteClose:
        assert m.id is not None
        return cls(
            id=strawberry.ID(encode_id("QuoteClose", m.id)),
            quote_number=m.quote_number,
            revision_number=m.revision_number,
            status_reason=m.status_reason,
            close_date=m.close_date,
            description=m.description,
            batch_id=m.batch_id,
            created_at=m.created_at,
            created_by=m.created_by,
        )


def _quote_close(found: QuoteCloseRecord | None) -> QuoteClose | None:
    return QuoteClose.from_model(found) if found else None


def _contract(found: ContractRecord | None) -> ProjectContract | None:
    from gql_service.graphql.contract_types import contract_or_none

    return contract_or_none(found)


# Not in the schema itself: the fields QuoteLine and OpportunityLine share.
@strawberry.type(description="What every line holds; amount = quantity x unitPrice - discount.")
class LineFields(Node):
    pk: strawberry.Private[int]
    name: str = strawberry.field(description="What is sold.")
    billing_method: BillingMethod = strawberry.field(description="How it is billed.")
    transaction_class: TransactionClass | None = strawberry.field(description="What it is for.")
    quantity: Decimal = strawberry.field(description="How many units; more than zero.")
    unit_price: Decimal = strawberry.field(description="Price of one unit.")
    discount: Decimal | None = strawberry.field(
        description="An amount of money off quantity x unitPrice."
    )
    amount: Decimal = strawberry.field(
        description="quantity x unitPrice - discount, rounded half up to 4 decimals; "
        "calculated, never entered."
    )
    version: int = strawberry.field(description="Grows by one on every change.")
    created_at: datetime = strawberry.field(description="Creation time (UTC).")
    created_by: str = strawberry.field(description="Who created it.")
    modified_at: datetime = strawberry.field(description="Last change (UTC).")
    modified_by: str = strawberry.field(description="Who changed it last.")


def line_fields(type_name: str, m: LineRecord) -> dict[str, Any]:
    return {
        "id": strawberry.ID(encode_id(type_name, m.id)),
        "pk": m.id,
        "name": m.name,
        "billing_method": m.billing_method,
        "transaction_class": m.transaction_class,
        "quantity": m.quantity,
        "unit_price": m.unit_price,
        "discount": m.discount,
        "amount": m.amount,
        "version": m.version,
        "created_at": m.created_at,
        "created_by": m.created_by,
        "modified_at": m.modified_at,
        "modified_by": m.modified_by,
    }


@strawberry.type(description="A line of a quote; it changes only while the quote is DRAFT.")
class QuoteLine(LineFields):
    quote_pk: strawberry.Private[int]

    @strawberry.field(description="The quote this line belongs to.")
    async def quote(self, info: Info) -> Quote:
        found = await info.context.loaders.quote.load(self.quote_pk)
        assert found is not None
        return Quote.from_model(found)

    @classmethod
    def from_model(cls, m: QuoteLineRecord) -> QuoteLine:
        return cls(quote_pk=m.quote_id, **line_fields("QuoteLine", m))


@strawberry.type(
    description="A line of an opportunity; it changes only while the opportunity is OPEN."
)
class OpportunityLine(LineFields):
    opportunity_pk: strawberry.Private[int]

    @strawberry.field(description="The opportunity this line belongs to.")
    async def opportunity(self, info: Info) -> Opportunity:
        found = await info.context.loaders.opportunity.load(self.opportunity_pk)
        assert found is not None
        return Opportunity.from_model(found)

    @classmethod
    def from_model(cls, m: OpportunityLineRecord) -> OpportunityLine:
        return cls(opportunity_pk=m.opportunity_id, **line_fields("OpportunityLine", m))


def _lines_page(
    info: Info,
    rows: list[Any],
    convert: Callable[[Any], NodeT],
    first: int | None,
    after: str | None,
) -> Connection[NodeT]:
    return nested_page(
        info.context.settings, rows, lambda row: row.id, convert, first=first, after=after
    )


_LINES_FIRST = strawberry.argument(description="Page size.")
_LINES_AFTER = strawberry.argument(description="Cursor.")


@strawberry.type(description="A priced offer to the customer of an opportunity.")
class Quote(Node):
    pk: strawberry.Private[int]
    opportunity_pk: strawberry.Private[int]
    close: strawberry.Private[QuoteCloseRecord | Unset | None]
    quote_number: str = strawberry.field(description="Shared by all revisions of this quote.")
    revision_number: int = strawberry.field(description="0 for the first; +1 per revision.")
    name: str = strawberry.field(description="Name.")
    currency_code: str = strawberry.field(description="ISO 4217; the opportunity's currency.")
    total_amount: Decimal | None = strawberry.field(description="Total amount.")
    state: QuoteState = strawberry.field(description="Lifecycle state.")
    status_reason: QuoteStatusReason = strawberry.field(description="Why it is in its state.")
    is_open: bool = strawberry.field(description="True while DRAFT or ACTIVE.")
    effective_from: date | None = strawberry.field(description="Valid from.")
    effective_to: date | None = strawberry.field(description="Valid until.")
    closed_on: date | None = strawberry.field(description="When it was won or closed.")
    version: int = strawberry.field(description="Grows by one on every change.")
    created_at: datetime = strawberry.field(description="Creation time (UTC).")
    created_by: str = strawberry.field(description="Who created it.")
    modified_at: datetime = strawberry.field(description="Last change (UTC).")
    modified_by: str = strawberry.field(description="Who changed it last.")

    @strawberry.field(description="The opportunity this quote belongs to.")
    async def opportunity(self, info: Info) -> Opportunity:
        found = await info.context.loaders.opportunity.load(self.opportunity_pk)
        assert found is not None
        return Opportunity.from_model(found)

    @strawberry.field(
        description="Its lines, oldest first. While it has any, totalAmount is their sum."
    )
    def lines(
        self,
        info: Info,
        first: Annotated[int | None, _LINES_FIRST] = None,
        after: Annotated[str | None, _LINES_AFTER] = None,
    ) -> Connection[QuoteLine]:
        return now_or_later(
            info.context.loaders.quote_lines,
            self.pk,
            lambda rows: _lines_page(info, rows, QuoteLine.from_model, first, after),
        )

    @strawberry.field(description="The close record, once the quote was closed or won.")
    def close_record(self, info: Info) -> QuoteClose | None:
        # Quotes listed under an opportunity come with their close record.
        if self.close is UNSET:
            return now_or_later(info.context.loaders.quote_close, self.pk, _quote_close)
        return _quote_close(self.close)

    @strawberry.field(
        description="The draft project contract that winning this quote created; null unless "
        "the quote is WON."
    )
    def contract(
        self, info: Info
    ) -> Annotated[ProjectContract, strawberry.lazy(_CONTRACTS)] | None:
        if self.state is not models.QuoteState.WON:
            return None
        return now_or_later(info.context.loaders.contract_of_quote, self.pk, _contract)

    @classmethod
    def from_model(cls, m: QuoteRecord, close: QuoteCloseRecord | Unset | None = UNSET) -> Quote:
        assert m.id is not None
        return cls(pk=m.id, opportunity_pk=m.opportunity_id, close=close, **QUOTE.values(cls, m))


QUOTE = FromRecord("Quote", is_open=lambda m: m.state in models.OPEN_QUOTE_STATES)


@strawberry.type(description="A project sales opportunity, closed as WON or LOST at the end.")
class Opportunity(Node):
    pk: strawberry.Private[int]
    name: str = strawberry.field(description="Name.")
    customer_name: str = strawberry.field(description="The prospective customer.")
    currency_code: str = strawberry.field(description="ISO 4217 currency of all its quotes.")
    estimated_revenue: Decimal | None = strawberry.field(description="Expected revenue.")
    estimated_close_date: date | None = strawberry.field(description="Expected close date.")
    state: OpportunityState = strawberry.field(description="OPEN, WON or LOST.")
    status_reason: OpportunityStatusReason = strawberry.field(description="Why in its state.")
    forecast_category: ForecastCategory = strawberry.field(description="Forecast bucket.")
    actual_revenue: Decimal | None = strawberry.field(description="Revenue at the last close.")
    actual_close_date: date | None = strawberry.field(description="Date of the last close.")
    description: str | None = strawberry.field(description="Free description.")
    is_revenue_system_calculated: bool = strawberry.field(
        description="True: estimatedRevenue is the sum of its lines (0 without lines) and is "
        "never entered. False: estimatedRevenue is entered by the user."
    )
    is_closed: bool = strawberry.field(description="True when WON or LOST.")
    version: int = strawberry.field(
        description="Grows by one on every change, including changes to its quotes."
    )
    created_at: datetime = strawberry.field(description="Creation time (UTC).")
    created_by: str = strawberry.field(description="Who created it.")
    modified_at: datetime = strawberry.field(description="Last change (UTC).")
    modified_by: str = strawberry.field(description="Who changed it last.")

    @strawberry.field(description="Number of its DRAFT and ACTIVE quotes.")
    def open_quote_count(self, info: Info) -> int:
        return now_or_later(info.context.loaders.open_quote_count, self.pk, int)

    @strawberry.field(description="Its quotes, oldest first.")
    def quotes(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description="Page size.")] = None,
        after: Annotated[str | None, strawberry.argument(description="Cursor.")] = None,
        filter: Annotated[
            QuoteFilter | None, strawberry.argument(description="Which quotes.")
        ] = None,
    ) -> Connection[Quote]:
        query = QuoteQuery(
            states=tuple(filter.state or ()) if filter else (),
            is_open=filter.is_open if filter else None,
        )

        def page(everything: list[QuoteRow]) -> Connection[Quote]:
            return nested_page(
                info.context.settings,
                everything,
                lambda row: row[0].id or 0,
                lambda row: Quote.from_model(*row),
                first=first,
                after=after,
            )

        return now_or_later(info.context.loaders.quotes(query), self.pk, page)

    @strawberry.field(description="Its lines, oldest first.")
    def lines(
        self,
        info: Info,
        first: Annotated[int | None, _LINES_FIRST] = None,
        after: Annotated[str | None, _LINES_AFTER] = None,
    ) -> Connection[OpportunityLine]:
        return now_or_later(
            info.context.loaders.opportunity_lines,
            self.pk,
            lambda rows: _lines_page(info, rows, OpportunityLine.from_model, first, after),
        )

    @strawberry.field(
        description="Every close of this opportunity, newest first, canceled ones included."
    )
    def close_history(self, info: Info) -> list[OpportunityClose]:
        return now_or_later(
            info.context.loaders.close_history,
            self.pk,
            lambda records: [OpportunityClose.from_model(r) for r in records],
        )

    @strawberry.field(
        description="Project contracts drafted by winning its quotes, oldest first. A reopen "
        "leaves them as they are."
    )
    def contracts(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description="Page size.")] = None,
        after: Annotated[str | None, strawberry.argument(description="Cursor.")] = None,
    ) -> Connection[Annotated[ProjectContract, strawberry.lazy(_CONTRACTS)]]:
        from gql_service.graphql.contract_types import ProjectContract

        def page(everything: list[ContractRecord]) -> Connection[ProjectContract]:
            return nested_page(
                info.context.settings,
                everything,
                lambda contract: contract.id or 0,
                ProjectContract.from_model,
                first=first,
                after=after,
            )

        return now_or_later(info.context.loaders.contracts_of_opportunity, self.pk, page)

    @classmethod
    def from_model(cls, m: OpportunityRecord) -> Opportunity:
        assert m.id is not None
        return cls(pk=m.id, **OPPORTUNITY.values(cls, m))


OPPORTUNITY = FromRecord(
    "Opportunity",
    is_revenue_system_calculated=lambda m: bool(m.is_revenue_system_calculated),
    is_closed=lambda m: m.state is not models.OpportunityState.OPEN,
)
# By GraphQL type name, the types whose fields read a record so.
FROM_RECORD = {spec.type_name: spec for spec in (COMPETITOR, OPPORTUNITY_CLOSE, QUOTE, OPPORTUNITY)}
