"""The Query root: Relay node look-ups and the paginated lists."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import strawberry

from gql_service.graphql.contract_types import ContractLine, ProjectContract
from gql_service.graphql.enums import CloseOutcome, OrderDirection
from gql_service.graphql.errors import argument_error
from gql_service.graphql.ids import parse_id
from gql_service.graphql.inputs import (
    ContractFilter,
    OpportunityFilter,
    OpportunityOrder,
    QuoteListFilter,
)
from gql_service.graphql.labels import (
    EnumLabel,
    LabeledEnum,
    close_status_reasons,
    enum_labels,
)
from gql_service.graphql.localized import LocalizedGraphQLError
from gql_service.graphql.pagination import Connection, from_page, keyset_page, page_request
from gql_service.graphql.prefetch import prefetch_opportunity_relations
from gql_service.graphql.types import (
    Competitor,
    Info,
    Node,
    Opportunity,
    OpportunityClose,
    OpportunityLine,
    Quote,
    QuoteClose,
    QuoteLine,
)
from gql_service.messages import msg
from gql_service.models import NAME_MAX, OpportunityState
from gql_service.queries import ContractFilter as ContractQuery
from gql_service.queries import OpportunityFilter as OpportunityQuery
from gql_service.queries import Ordering
from gql_service.queries import QuoteFilter as QuoteQuery
from gql_service.rules import check_text


async def resolve_node(info: Info, global_id: str) -> Node | None:
    """The object behind a global id, or None when the id names nothing."""
    parsed = parse_id(global_id)
    if parsed is None:
        return None
    type_name, pk = parsed
    if type_name not in _NODE_TYPES:
        return None
    loader_name, build = _NODE_TYPES[type_name]
    found = await getattr(info.context.loaders, loader_name).load(pk)
    return build(found) if found is not None else None


# Global id type name -> (DataLoader on Context.loaders, GraphQL type builder).
_NODE_TYPES: dict[str, tuple[str, Any]] = {
    "Opportunity": ("opportunity", Opportunity.from_model),
    "Quote": ("quote", Quote.from_model),
    "Competitor": ("competitor", Competitor.from_model),
    "OpportunityClose": ("opportunity_close", OpportunityClose.from_model),
    "QuoteClose": ("quote_close_by_id", QuoteClose.from_model),
    "ProjectContract": ("contract", ProjectContract.from_model),
    "ContractLine": ("contract_line", ContractLine.from_model),
    "QuoteLine": ("quote_line", QuoteLine.from_model),
    "OpportunityLine": ("opportunity_line", OpportunityLine.from_model),
}


def opportunity_query(given: OpportunityFilter | None) -> OpportunityQuery:
    """The filter as the reader takes it; text that no stored name could contain is refused.

    A substring longer than the column never matches, and unbounded text would reach the
    database's LIKE (SQLite refuses patterns over 50,000 bytes; PostgreSQL refuses NUL).
    """
    if given is None:
        return OpportunityQuery()
    problems = [
        *check_text("customer_name", given.customer_name, max_length=NAME_MAX),
        *check_text("name_contains", given.name_contains, max_length=NAME_MAX),
        *check_text("customer", given.customer, max_length=NAME_MAX),
    ]
    if problems:
        raise argument_error("filter", problems[0])
    return OpportunityQuery(
        states=tuple(given.state or ()),
        customer_name=given.customer_name,
        customer=given.customer,
        name_contains=given.name_contains,
        has_open_quotes=given.has_open_quotes,
        outcome=None if given.outcome is None else OpportunityState(given.outcome.value),
        actual_close_from=given.actual_close_date_from,
        actual_close_to=given.actual_close_date_to,
    )


def quote_list_query(given: QuoteListFilter | None) -> QuoteQuery:
    """The top-level quotes filter as the reader takes it; an id that names no opportunity
    matches no quote (0 is no row's id)."""
    if given is None:
        return QuoteQuery()
    opportunity_id = None
    if given.opportunity_id is not None:
        parsed = parse_id(given.opportunity_id)
        opportunity_id = parsed[1] if parsed and parsed[0] == "Opportunity" else 0
    return QuoteQuery(
        states=tuple(given.state or ()), is_open=given.is_open, opportunity_id=opportunity_id
    )


def contract_query(given: ContractFilter | None) -> ContractQuery:
    """The contracts filter as the reader takes it; an id that names no opportunity matches
    no contract (0 is no row's id)."""
    if given is None:
        return ContractQuery()
    opportunity_id = None
    if given.opportunity_id is not None:
        parsed = parse_id(given.opportunity_id)
        opportunity_id = parsed[1] if parsed and parsed[0] == "Opportunity" else 0
    return ContractQuery(states=tuple(given.state or ()), opportunity_id=opportunity_id)


@strawberry.type(description="Reads: opportunities with their quotes and history, competitors.")
class Query:
    @strawberry.field(description="Any object by its global id; null when it names nothing.")
    async def node(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="A global id.")],
    ) -> Node | None:
        return await resolve_node(info, id)

    @strawberry.field(
        description="Objects by global ids, in order; null where an id names nothing."
    )
    async def nodes(
        self,
        info: Info,
        ids: Annotated[
            list[strawberry.ID], strawberry.argument(description="Global ids (at most 100).")
        ],
    ) -> list[Node | None]:
        if len(ids) > info.context.settings.max_page_size:
            raise LocalizedGraphQLError(
                msg(
                    "At most {maximum} ids per request.",
                    maximum=info.context.settings.max_page_size,
                ),
                extensions={"code": "PAGE_SIZE_EXCEEDED"},
            )
        # Resolved together, so that the DataLoaders batch them: one query per type.
        return list(await asyncio.gather(*(resolve_node(info, i) for i in ids)))

    @strawberry.field(description="One opportunity; null when the id names none.")
    async def opportunity(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="A global id.")],
    ) -> Opportunity | None:
        node = await resolve_node(info, id)
        return node if isinstance(node, Opportunity) else None

    @strawberry.field(description="One quote; null when the id names none.")
    async def quote(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="A global id.")],
    ) -> Quote | None:
        node = await resolve_node(info, id)
        return node if isinstance(node, Quote) else None

    @strawberry.field(description="Opportunities, filtered and ordered, one page at a time.")
    async def opportunities(
        self,
        info: Info,
        first: Annotated[
            int | None, strawberry.argument(description="Page size (forward).")
        ] = None,
        after: Annotated[str | None, strawberry.argument(description="Start after cursor.")] = None,
        last: Annotated[
            int | None, strawberry.argument(description="Page size (backward).")
        ] = None,
        before: Annotated[str | None, strawberry.argument(description="End before cursor.")] = None,
        filter: Annotated[
            OpportunityFilter | None, strawberry.argument(description="Which opportunities.")
        ] = None,
        order_by: Annotated[
            OpportunityOrder | None,
            strawberry.argument(description="Sort order; newest first by default."),
        ] = None,
    ) -> Connection[Opportunity]:
        request = page_request(
            info.context.settings, first=first, after=after, last=last, before=before
        )
        query = opportunity_query(filter)
        order = order_by or OpportunityOrder()
        ordering = Ordering(
            field=order.field.value, descending=order.direction is OrderDirection.DESC
        )
        page = await keyset_page(info.context.reader.opportunities(request, query, ordering))
        await prefetch_opportunity_relations(
            info.context, info.selected_fields[0].selections, [m.id or 0 for m in page.items]
        )
        return from_page(page, Opportunity.from_model)

    @strawberry.field(description="Quotes of every opportunity, oldest first, one page at a time.")
    async def quotes(
        self,
        info: Info,
        first: Annotated[
            int | None, strawberry.argument(description="Page size (forward).")
        ] = None,
        after: Annotated[str | None, strawberry.argument(description="Start after cursor.")] = None,
        last: Annotated[
            int | None, strawberry.argument(description="Page size (backward).")
        ] = None,
        before: Annotated[str | None, strawberry.argument(description="End before cursor.")] = None,
        filter: Annotated[
            QuoteListFilter | None, strawberry.argument(description="Which quotes.")
        ] = None,
    ) -> Connection[Quote]:
        request = page_request(
            info.context.settings, first=first, after=after, last=last, before=before
        )
        page = await keyset_page(info.context.reader.quotes(request, quote_list_query(filter)))
        return from_page(page, Quote.from_model)

    @strawberry.field(description="One project contract; null when the id names none.")
    async def contract(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="A global id.")],
    ) -> ProjectContract | None:
        node = await resolve_node(info, id)
        return node if isinstance(node, ProjectContract) else None

    @strawberry.field(
        description="Project contracts drafted by winning quotes, newest first, one page at a time."
    )
    async def contracts(
        self,
        info: Info,
        first: Annotated[
            int | None, strawberry.argument(description="Page size (forward).")
        ] = None,
        after: Annotated[str | None, strawberry.argument(description="Start after cursor.")] = None,
        last: Annotated[
            int | None, strawberry.argument(description="Page size (backward).")
        ] = None,
        before: Annotated[str | None, strawberry.argument(description="End before cursor.")] = None,
        filter: Annotated[
            ContractFilter | None, strawberry.argument(description="Which contracts.")
        ] = None,
    ) -> Connection[ProjectContract]:
        request = page_request(
            info.context.settings, first=first, after=after, last=last, before=before
        )
        page = await keyset_page(info.context.reader.contracts(request, contract_query(filter)))
        return from_page(page, ProjectContract.from_model)

    @strawberry.field(description="Competitors by name, one page at a time.")
    async def competitors(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description="Page size.")] = None,
        after: Annotated[str | None, strawberry.argument(description="Start after cursor.")] = None,
    ) -> Connection[Competitor]:
        request = page_request(info.context.settings, first=first, after=after)
        page = await keyset_page(info.context.reader.competitors(request))
        return from_page(page, Competitor.from_model)

    @strawberry.field(
        description="Display labels of an enum's values, in schema order, in the request's "
        "language (Accept-Language)."
    )
    def enum_labels(
        self,
        info: Info,
        enum: Annotated[LabeledEnum, strawberry.argument(description="Which enum.")],
    ) -> list[EnumLabel]:
        return enum_labels(enum, info.context.language)

    @strawberry.field(
        description="The status reasons a close with this outcome accepts, with their labels."
    )
    def close_status_reasons(
        self,
        info: Info,
        outcome: Annotated[CloseOutcome, strawberry.argument(description="WON or LOST.")],
    ) -> list[EnumLabel]:
        return close_status_reasons(outcome, info.context.language)
