"""GraphQL types of project contracts: ProjectContract and ContractLine, Relay nodes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import strawberry

from gql_service.graphql.context import Context
from gql_service.graphql.enums import ContractState
from gql_service.graphql.ids import encode_id
from gql_service.graphql.pagination import Connection, nested_page
from gql_service.graphql.prefetch import now_or_later
from gql_service.graphql.types import LineFields, Node, line_fields
from gql_service.records import ContractLineRecord, ContractRecord, OpportunityRecord, QuoteRecord
from gql_service.unset import UNSET, Unset

if TYPE_CHECKING:
    from gql_service.graphql.types import Opportunity, Quote

Info = strawberry.Info[Context, None]

CONTRACT_DESCRIPTION = (
    "A project contract, drafted when a quote is won: the opportunity's customer, the quote's "
    "name, currency and total, and a copy of each of the quote's lines. It is a commercial "
    "document of its own, derived from the won quote: reopening the opportunity cancels its "
    "close records only and leaves its quotes as they are, so the contract stays DRAFT and "
    "linked to the opportunity and the quote."
)


@strawberry.type(description="One line of a project contract, copied from a line of the won quote.")
class ContractLine(LineFields):
    @classmethod
    def from_model(cls, m: ContractLineRecord) -> ContractLine:
        return cls(**line_fields("ContractLine", m))


def _opportunity(found: OpportunityRecord | None) -> Opportunity:
    from gql_service.graphql.types import Opportunity

    assert found is not None
    return Opportunity.from_model(found)


def _quote(found: QuoteRecord | None) -> Quote:
    from gql_service.graphql.types import Quote

    assert found is not None
    return Quote.from_model(found)


@strawberry.type(description=CONTRACT_DESCRIPTION)
class ProjectContract(Node):
    pk: strawberry.Private[int]
    opportunity_pk: strawberry.Private[int]
    quote_pk: strawberry.Private[int]
    # The lines as the write that made the contract returned them (a winQuote payload).
    written_lines: strawberry.Private[list[ContractLineRecord] | Unset]
    contract_number: str = strawberry.field(description="Unique number, e.g. CON-1F2E3D4C.")
    name: str = strawberry.field(description="Name, from the won quote.")
    state: ContractState = strawberry.field(description="Lifecycle state; DRAFT when created.")
    customer_name: str = strawberry.field(description="The opportunity's customer.")
    currency_code: str = strawberry.field(description="ISO 4217; the quote's currency.")
    total_amount: Decimal | None = strawberry.field(description="The won quote's total amount.")
    version: int = strawberry.field(description="Grows by one on every change.")
    created_at: datetime = strawberry.field(description="When the quote was won (UTC).")
    created_by: str = strawberry.field(description="Who won the quote.")
    modified_at: datetime = strawberry.field(description="Last change (UTC).")
    modified_by: str = strawberry.field(description="Who changed it last.")

    @strawberry.field(description="The opportunity whose quote was won.")
    def opportunity(
        self, info: Info
    ) -> Annotated[Opportunity, strawberry.lazy("gql_service.graphql.types")]:
        return now_or_later(info.context.loaders.opportunity, self.opportunity_pk, _opportunity)

    @strawberry.field(description="The won quote this contract was drafted from.")
    def quote(self, info: Info) -> Annotated[Quote, strawberry.lazy("gql_service.graphql.types")]:
        return now_or_later(info.context.loaders.quote, self.quote_pk, _quote)

    @strawberry.field(description="Its lines, one per line of the won quote, in the quote's order.")
    def lines(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description="Page size.")] = None,
        after: Annotated[str | None, strawberry.argument(description="Cursor.")] = None,
    ) -> Connection[ContractLine]:
        def page(everything: list[ContractLineRecord]) -> Connection[ContractLine]:
            return nested_page(
                info.context.settings,
                everything,
                lambda line: line.id or 0,
                ContractLine.from_model,
                first=first,
                after=after,
            )

        if self.written_lines is not UNSET:
            return page(self.written_lines)
        return now_or_later(info.context.loaders.contract_lines, self.pk, page)

    @classmethod
    def from_model(
        cls, m: ContractRecord, lines: list[ContractLineRecord] | Unset = UNSET
    ) -> ProjectContract:
        assert m.id is not None
        return cls(
            id=strawberry.ID(encode_id("ProjectContract", m.id)),
            pk=m.id,
            opportunity_pk=m.opportunity_id,
            quote_pk=m.quote_id,
            written_lines=lines,
            contract_number=m.contract_number,
            name=m.name,
            state=m.state,
            customer_name=m.customer_name,
            currency_code=m.currency_code,
            total_amount=m.total_amount,
            version=m.version,
            created_at=m.created_at,
            created_by=m.created_by,
            modified_at=m.modified_at,
            modified_by=m.modified_by,
        )


def contract_or_none(found: ContractRecord | None) -> ProjectContract | None:
    return ProjectContract.from_model(found) if found is not None else None
