"""Mutations: each turns its input into plain values, calls one service, maps the outcome."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated, Any, TypeVar

import strawberry
from graphql import GraphQLError

from gql_service import metrics, quote_services, services
from gql_service.errors import ValidationFailedError
from gql_service.graphql.errors import user_errors
from gql_service.graphql.ids import decode_id, decode_optional_id
from gql_service.graphql.inputs import (
    ActivateQuoteInput,
    CloseOpportunityInput,
    CloseQuoteInput,
    CloseQuotesInput,
    CreateCompetitorInput,
    CreateOpportunityInput,
    CreateQuoteInput,
    ReopenOpportunityInput,
    ReviseQuoteInput,
    UpdateOpportunityInput,
    UpdateQuoteInput,
    WinQuoteInput,
)
from gql_service.graphql.payloads import (
    ActivateQuotePayload,
    CloseOpportunityPayload,
    CloseQuotePayload,
    CloseQuotesPayload,
    CreateCompetitorPayload,
    CreateOpportunityPayload,
    CreateQuotePayload,
    ReopenOpportunityPayload,
    ReviseQuotePayload,
    UpdateOpportunityPayload,
    UpdateQuotePayload,
    WinQuotePayload,
)
from gql_service.graphql.types import Competitor, Info, Opportunity, OpportunityClose, Quote
from gql_service.idempotency import IdempotencyKeyTakenError
from gql_service.quote_closing import ClosedQuote
from gql_service.records import OpportunityRecord
from gql_service.unit_of_work import UnitOfWork
from gql_service.unset import UNSET

P = TypeVar("P")
R = TypeVar("R")


def given(value: Any) -> Any:
    """Strawberry's UNSET (field left out) as the service layer's UNSET."""
    return UNSET if value is strawberry.UNSET else value


async def respond(
    info: Info,
    payload: Callable[..., P],
    call: Callable[[UnitOfWork], Awaitable[R]],
    present: Callable[[R], dict[str, Any]],
    *,
    dry_run: bool = False,
) -> P:
    """Run one service call and build its payload: the result, or its typed errors.

    A ``dry_run`` runs the same call in a transaction that rolls back (unit_of_work.py).
    """
    claim = info.context.idempotency
    try:
        if claim is not None and claim.taken:
            # An earlier field of this document found the key taken: run nothing more.
            raise IdempotencyKeyTakenError(claim.key)
        result = await call(info.context.unit_of_work(dry_run=dry_run))
    except ValidationFailedError as exc:
        metrics.note_user_errors([v.code.name for v in exc.violations])
        return payload(errors=user_errors(exc, info.context.language))
    except IdempotencyKeyTakenError as exc:
        # The HTTP layer answers with the stored response instead of this execution's.
        raise GraphQLError(str(exc), extensions={"code": "IDEMPOTENCY_KEY_TAKEN"}) from exc
    info.context.refresh()
    return payload(errors=[], **present(result))


def _opportunity_id(value: str) -> int:
    return decode_id(value, "Opportunity", field="opportunity")


def _quote_id(value: str) -> int:
    return decode_id(value, "Quote", field="quote")


_INPUT = strawberry.argument(description="What to do; see the input type.")
_DRY_RUN = (
    "With dryRun it only checks and commits nothing; a later real call can still fail, since "
    "others may change the data in between."
)


def _closed(closed: ClosedQuote) -> Quote:
    """A closed quote with its close record, both as the close's statements returned them."""
    return Quote.from_model(closed.quote, closed.record)


def _all_closed(closed: Iterable[ClosedQuote]) -> list[Quote]:
    return [_closed(c) for c in closed]


def _without_open_quotes(info: Info, record: OpportunityRecord, dry_run: bool) -> Opportunity:
    """An opportunity whose open quotes a close (or closeQuotes) closed.

    After a dry run the database still holds them: its openQuoteCount is given as the call
    would leave it, none.
    """
    opportunity = Opportunity.from_model(record)
    if dry_run:
        info.context.loaders.open_quote_count.prime(opportunity.pk, 0)
    return opportunity


@strawberry.type(description="Changes to opportunities, quotes and competitors.")
class Mutation:
    @strawberry.mutation(description="Create an OPEN opportunity.")
    async def create_opportunity(
        self,
        info: Info,
        input: Annotated[CreateOpportunityInput, _INPUT],
    ) -> CreateOpportunityPayload:
        return await respond(
            info,
            CreateOpportunityPayload,
            lambda uow: services.create_opportunity(
                uow,
                name=input.name,
                customer_name=input.customer_name,
                currency_code=input.currency_code,
                estimated_revenue=input.estimated_revenue,
                estimated_close_date=input.estimated_close_date,
                description=input.description,
                is_revenue_system_calculated=input.is_revenue_system_calculated,
            ),
            lambda o: {"opportunity": Opportunity.from_model(o)},
        )

    @strawberry.mutation(description="Edit an OPEN opportunity; its state never changes here.")
    async def update_opportunity(
        self,
        info: Info,
        input: Annotated[UpdateOpportunityInput, _INPUT],
    ) -> UpdateOpportunityPayload:
        return await respond(
            info,
            UpdateOpportunityPayload,
            lambda uow: services.update_opportunity(
                uow,
                opportunity_id=_opportunity_id(input.opportunity_id),
                name=given(input.name),
                customer_name=given(input.customer_name),
                estimated_revenue=given(input.estimated_revenue),
                estimated_close_date=given(input.estimated_close_date),
                description=given(input.description),
                status_reason=given(input.status_reason),
                forecast_category=given(input.forecast_category),
                is_revenue_system_calculated=given(input.is_revenue_system_calculated),
                expected_version=input.expected_version,
            ),
            lambda o: {"opportunity": Opportunity.from_model(o)},
        )

    @strawberry.mutation(
        description="Close an OPEN opportunity as WON or LOST. Refused while any of its quotes "
        "is DRAFT or ACTIVE (OPPORTUNITY_HAS_OPEN_QUOTES lists them), unless closeOpenQuotes. "
        + _DRY_RUN
    )
    async def close_opportunity(
        self,
        info: Info,
        input: Annotated[CloseOpportunityInput, _INPUT],
    ) -> CloseOpportunityPayload:
        return await respond(
            info,
            CloseOpportunityPayload,
            lambda uow: services.close_opportunity(
                uow,
                opportunity_id=_opportunity_id(input.opportunity_id),
                outcome=input.outcome,
                status_reason=input.status_reason,
                actual_revenue=input.actual_revenue,
                close_date=input.close_date,
                competitor_id=decode_optional_id(
                    input.competitor_id, "Competitor", field="competitor"
                ),
                description=input.description,
                close_open_quotes=input.close_open_quotes,
                expected_version=input.expected_version,
            ),
            lambda r: {
                "opportunity": _without_open_quotes(info, r.opportunity, input.dry_run),
                "opportunity_close": OpportunityClose.from_model(r.close),
                "closed_quotes": _all_closed(r.closed_quotes),
            },
            dry_run=input.dry_run,
        )

    @strawberry.mutation(description="Reopen a WON or LOST opportunity; cancels its close record.")
    async def reopen_opportunity(
        self,
        info: Info,
        input: Annotated[ReopenOpportunityInput, _INPUT],
    ) -> ReopenOpportunityPayload:
        return await respond(
            info,
            ReopenOpportunityPayload,
            lambda uow: services.reopen_opportunity(
                uow,
                opportunity_id=_opportunity_id(input.opportunity_id),
                status_reason=input.status_reason,
                expected_version=input.expected_version,
            ),
            lambda r: {
                "opportunity": Opportunity.from_model(r.opportunity),
                "canceled_closes": [OpportunityClose.from_model(c) for c in r.canceled_closes],
            },
        )

    @strawberry.mutation(
        description="Close every DRAFT and ACTIVE quote of an opportunity at once, atomically. "
        + _DRY_RUN
    )
    async def close_quotes(
        self,
        info: Info,
        input: Annotated[CloseQuotesInput, _INPUT],
    ) -> CloseQuotesPayload:
        return await respond(
            info,
            CloseQuotesPayload,
            lambda uow: services.close_quotes(
                uow,
                opportunity_id=_opportunity_id(input.opportunity_id),
                status_reason=input.status_reason,
                close_date=input.close_date,
                description=input.description,
                expected_version=input.expected_version,
            ),
            lambda r: {
                "opportunity": _without_open_quotes(info, r.opportunity, input.dry_run),
                "closed_quotes": _all_closed(r.closed_quotes),
            },
            dry_run=input.dry_run,
        )

    @strawberry.mutation(description="Add a DRAFT quote to an OPEN opportunity.")
    async def create_quote(
        self,
        info: Info,
        input: Annotated[CreateQuoteInput, _INPUT],
    ) -> CreateQuotePayload:
        return await respond(
            info,
            CreateQuotePayload,
            lambda uow: quote_services.create_quote(
                uow,
                opportunity_id=_opportunity_id(input.opportunity_id),
                name=input.name,
                currency_code=input.currency_code,
                total_amount=input.total_amount,
                effective_from=input.effective_from,
                effective_to=input.effective_to,
            ),
            lambda q: {"quote": Quote.from_model(q)},
        )

    @strawberry.mutation(description="Edit a DRAFT quote.")
    async def update_quote(
        self,
        info: Info,
        input: Annotated[UpdateQuoteInput, _INPUT],
    ) -> UpdateQuotePayload:
        return await respond(
            info,
            UpdateQuotePayload,
            lambda uow: quote_services.update_quote(
                uow,
                quote_id=_quote_id(input.quote_id),
                name=given(input.name),
                total_amount=given(input.total_amount),
                effective_from=given(input.effective_from),
                effective_to=given(input.effective_to),
                expected_version=input.expected_version,
            ),
            lambda q: {"quote": Quote.from_model(q)},
        )

    @strawberry.mutation(description="Activate a DRAFT quote; it becomes read-only.")
    async def activate_quote(
        self,
        info: Info,
        input: Annotated[ActivateQuoteInput, _INPUT],
    ) -> ActivateQuotePayload:
        return await respond(
            info,
            ActivateQuotePayload,
            lambda uow: quote_services.activate_quote(
                uow, quote_id=_quote_id(input.quote_id), expected_version=input.expected_version
            ),
            lambda q: {"quote": Quote.from_model(q)},
        )

    @strawberry.mutation(
        description="Revise an ACTIVE quote: it becomes CLOSED/REVISED and a new DRAFT with the "
        "same quote number and the next revision number takes its place."
    )
    async def revise_quote(
        self,
        info: Info,
        input: Annotated[ReviseQuoteInput, _INPUT],
    ) -> ReviseQuotePayload:
        return await respond(
            info,
            ReviseQuotePayload,
            lambda uow: quote_services.revise_quote(
                uow, quote_id=_quote_id(input.quote_id), expected_version=input.expected_version
            ),
            lambda r: {
                "quote": Quote.from_model(r.quote),
                "revised_quote": Quote.from_model(r.revised_quote),
            },
        )

    @strawberry.mutation(
        description="Mark an open quote WON; the other open quotes of its opportunity become "
        "CLOSED/LOST. The opportunity stays OPEN. " + _DRY_RUN
    )
    async def win_quote(
        self,
        info: Info,
        input: Annotated[WinQuoteInput, _INPUT],
    ) -> WinQuotePayload:
        return await respond(
            info,
            WinQuotePayload,
            lambda uow: quote_services.win_quote(
                uow,
                quote_id=_quote_id(input.quote_id),
                close_date=input.close_date,
                description=input.description,
                expected_version=input.expected_version,
            ),
            lambda r: {"quote": _closed(r.quote), "lost_quotes": _all_closed(r.lost_quotes)},
            dry_run=input.dry_run,
        )

    @strawberry.mutation(description="Close one open quote as LOST or CANCELED.")
    async def close_quote(
        self,
        info: Info,
        input: Annotated[CloseQuoteInput, _INPUT],
    ) -> CloseQuotePayload:
        return await respond(
            info,
            CloseQuotePayload,
            lambda uow: quote_services.close_quote(
                uow,
                quote_id=_quote_id(input.quote_id),
                status_reason=input.status_reason,
                close_date=input.close_date,
                description=input.description,
                expected_version=input.expected_version,
            ),
            lambda c: {"quote": _closed(c)},
        )

    @strawberry.mutation(description="Register a competitor.")
    async def create_competitor(
        self,
        info: Info,
        input: Annotated[CreateCompetitorInput, _INPUT],
    ) -> CreateCompetitorPayload:
        return await respond(
            info,
            CreateCompetitorPayload,
            lambda uow: services.create_competitor(
                uow, name=input.name, website=input.website, notes=input.notes
            ),
            lambda c: {"competitor": Competitor.from_model(c)},
        )
