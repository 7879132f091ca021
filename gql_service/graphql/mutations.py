"""Mutations: each turns its input into plain values, calls one service, maps the outcome."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

import strawberry
from graphql import GraphQLError

from gql_service import bulk_closing, metrics, models, quote_services, services
from gql_service.errors import ValidationFailedError
from gql_service.graphql import bulk_close
from gql_service.graphql.contract_types import ProjectContract
from gql_service.graphql.errors import INPUT, user_errors
from gql_service.graphql.ids import decode_id, decode_optional_id
from gql_service.graphql.inputs import (
    ActivateQuoteInput,
    CloseOpportunitiesInput,
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
    CloseOpportunitiesPayload,
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
from gql_service.quote_services import QuoteRevised, QuoteWon
from gql_service.records import QUOTE_CHANGE, QuoteChange
from gql_service.services import OpportunityClosed, OpportunityReopened, QuotesClosed
from gql_service.unit_of_work import UnitOfWork
from gql_service.unset import UNSET

In = TypeVar("In")
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
    within: Sequence[str] = INPUT,
) -> P:
    """Run one service call and build its payload: the result, or its typed errors.

    A ``dry_run`` runs the same call in a transaction that rolls back (unit_of_work.py).
    ``within`` is where the call's input sits, for the errors' field paths.
    """
    claim = info.context.idempotency
    try:
        if claim is not None and claim.taken:
            # An earlier field of this document found the key taken: run nothing more.
            raise IdempotencyKeyTakenError(claim.key)
        attempted = info.context.take_attempted()
        if attempted is not None:
            raise attempted  # the fast lane ran this call, and it failed so
        result = await call(info.context.unit_of_work(dry_run=dry_run))
    except ValidationFailedError as exc:
        metrics.note_user_errors([v.code.name for v in exc.violations])
        return payload(errors=user_errors(exc, info.context.language, within))
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


def _quotes_of(closed: Iterable[ClosedQuote]) -> list[Any]:
    """The closed quotes' records, as the fast lane renders them."""
    return [c.quote for c in closed]


def _prime_no_open_quotes(info: Info, opportunity: Opportunity | None) -> None:
    """After a dry run the database still holds the open quotes its close (or closeQuotes)
    closed: the opportunity's openQuoteCount is given as the call would leave it, none."""
    if opportunity is not None:
        info.context.loaders.open_quote_count.prime(opportunity.pk, 0)


@dataclass(frozen=True)
class Write(Generic[In, R, P]):
    """A mutation apart from GraphQL execution: the service call its input makes, and the
    payload fields its result gives. The resolver runs it through ``respond``; the fast lane
    (fast_writes.py) runs the same call for a known document, and renders the same fields
    from ``records``."""

    payload: Callable[..., P]
    call: Callable[[In], Callable[[UnitOfWork], Awaitable[R]]]
    # The payload's fields (but errors): the GraphQL objects...
    present: Callable[[R], dict[str, Any]]
    # ... and the records they are built from (types.FromRecord), for the fast lane.
    records: Callable[[R], dict[str, Any]]
    # For the fast lane, a call that returns less, where the document reads no more.
    lean: Lean[In, Any] | None = None

    @staticmethod
    def dry_run(input: In) -> bool:
        """Whether the input asks for a dry run (closeOpportunity and closeQuotes offer one)."""
        return bool(getattr(input, "dry_run", False))

    async def respond(self, info: Info, input: In, *, within: Sequence[str] = INPUT) -> P:
        dry_run = self.dry_run(input)

        def present(result: R) -> dict[str, Any]:
            fields = self.present(result)
            if dry_run:
                _prime_no_open_quotes(info, fields.get("opportunity"))
            return fields

        return await respond(
            info, self.payload, self.call(input), present, dry_run=dry_run, within=within
        )


Call = Callable[[UnitOfWork], Awaitable[R]]


@dataclass(frozen=True)
class Lean(Generic[In, R]):
    """A Write's call that returns the items of one payload list as only some of their
    records' attributes: the fast lane makes it in place of the Write's own where the
    document reads nothing else of those items (fast_writes.plan_write)."""

    field: str  # the payload's list, by its GraphQL name
    holds: frozenset[str]  # the attributes (Python names) each of its items has
    call: Callable[[In], Call[R]]
    records: Callable[[R], dict[str, Any]]


def _close_opportunity_call(input: CloseOpportunityInput) -> Call[OpportunityClosed]:
    return lambda uow: services.close_opportunity(
        uow,
        opportunity_id=_opportunity_id(input.opportunity_id),
        outcome=input.outcome,
        status_reason=input.status_reason,
        actual_revenue=input.actual_revenue,
        close_date=input.close_date,
        competitor_id=decode_optional_id(input.competitor_id, "Competitor", field="competitor"),
        description=input.description,
        close_open_quotes=input.close_open_quotes,
        expected_version=input.expected_version,
    )


def _close_quotes_given(input: CloseQuotesInput) -> dict[str, Any]:
    return {
        "opportunity_id": _opportunity_id(input.opportunity_id),
        "status_reason": input.status_reason,
        "close_date": input.close_date,
        "description": input.description,
        "expected_version": input.expected_version,
    }


def _close_quotes_call(input: CloseQuotesInput) -> Call[QuotesClosed[ClosedQuote]]:
    return lambda uow: services.close_quotes(uow, **_close_quotes_given(input))


def _close_quotes_changes_call(input: CloseQuotesInput) -> Call[QuotesClosed[QuoteChange]]:
    return lambda uow: services.close_quotes(uow, **_close_quotes_given(input), changes_only=True)


CLOSE_OPPORTUNITY = Write(
    CloseOpportunityPayload,
    _close_opportunity_call,
    lambda r: {
        "opportunity": Opportunity.from_model(r.opportunity),
        "opportunity_close": OpportunityClose.from_model(r.close),
        "closed_quotes": _all_closed(r.closed_quotes),
    },
    lambda r: {
        "opportunity": r.opportunity,
        "opportunity_close": r.close,
        "closed_quotes": _quotes_of(r.closed_quotes),
    },
)
CLOSE_QUOTES = Write(
    CloseQuotesPayload,
    _close_quotes_call,
    lambda r: {
        "opportunity": Opportunity.from_model(r.opportunity),
        "closed_quotes": _all_closed(r.closed_quotes),
    },
    lambda r: {"opportunity": r.opportunity, "closed_quotes": _quotes_of(r.closed_quotes)},
    Lean(
        "closedQuotes",
        frozenset(QUOTE_CHANGE),
        _close_quotes_changes_call,
        lambda r: {"opportunity": r.opportunity, "closed_quotes": r.closed_quotes},
    ),
)


def _create_opportunity_call(input: CreateOpportunityInput) -> Call[models.Opportunity]:
    return lambda uow: services.create_opportunity(
        uow,
        name=input.name,
        customer_name=input.customer_name,
        currency_code=input.currency_code,
        estimated_revenue=input.estimated_revenue,
        estimated_close_date=input.estimated_close_date,
        description=input.description,
        is_revenue_system_calculated=input.is_revenue_system_calculated,
    )


CREATE_OPPORTUNITY = Write(
    CreateOpportunityPayload,
    _create_opportunity_call,
    lambda o: {"opportunity": Opportunity.from_model(o)},
    lambda o: {"opportunity": o},
)


def _update_opportunity_call(input: UpdateOpportunityInput) -> Call[models.Opportunity]:
    return lambda uow: services.update_opportunity(
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
    )


UPDATE_OPPORTUNITY = Write(
    UpdateOpportunityPayload,
    _update_opportunity_call,
    lambda o: {"opportunity": Opportunity.from_model(o)},
    lambda o: {"opportunity": o},
)


def _reopen_opportunity_call(input: ReopenOpportunityInput) -> Call[OpportunityReopened]:
    return lambda uow: services.reopen_opportunity(
        uow,
        opportunity_id=_opportunity_id(input.opportunity_id),
        status_reason=input.status_reason,
        expected_version=input.expected_version,
    )


REOPEN_OPPORTUNITY = Write(
    ReopenOpportunityPayload,
    _reopen_opportunity_call,
    lambda r: {
        "opportunity": Opportunity.from_model(r.opportunity),
        "canceled_closes": [OpportunityClose.from_model(c) for c in r.canceled_closes],
    },
    lambda r: {"opportunity": r.opportunity, "canceled_closes": r.canceled_closes},
)


def _create_quote_call(input: CreateQuoteInput) -> Call[models.Quote]:
    return lambda uow: quote_services.create_quote(
        uow,
        opportunity_id=_opportunity_id(input.opportunity_id),
        name=input.name,
        currency_code=input.currency_code,
        total_amount=input.total_amount,
        effective_from=input.effective_from,
        effective_to=input.effective_to,
    )


CREATE_QUOTE = Write(
    CreateQuotePayload,
    _create_quote_call,
    lambda q: {"quote": Quote.from_model(q)},
    lambda q: {"quote": q},
)


def _update_quote_call(input: UpdateQuoteInput) -> Call[models.Quote]:
    return lambda uow: quote_services.update_quote(
        uow,
        quote_id=_quote_id(input.quote_id),
        name=given(input.name),
        total_amount=given(input.total_amount),
        effective_from=given(input.effective_from),
        effective_to=given(input.effective_to),
        expected_version=input.expected_version,
    )


UPDATE_QUOTE = Write(
    UpdateQuotePayload,
    _update_quote_call,
    lambda q: {"quote": Quote.from_model(q)},
    lambda q: {"quote": q},
)


def _activate_quote_call(input: ActivateQuoteInput) -> Call[models.Quote]:
    return lambda uow: quote_services.activate_quote(
        uow, quote_id=_quote_id(input.quote_id), expected_version=input.expected_version
    )


ACTIVATE_QUOTE = Write(
    ActivateQuotePayload,
    _activate_quote_call,
    lambda q: {"quote": Quote.from_model(q)},
    lambda q: {"quote": q},
)


def _revise_quote_call(input: ReviseQuoteInput) -> Call[QuoteRevised]:
    return lambda uow: quote_services.revise_quote(
        uow, quote_id=_quote_id(input.quote_id), expected_version=input.expected_version
    )


REVISE_QUOTE = Write(
    ReviseQuotePayload,
    _revise_quote_call,
    lambda r: {
        "quote": Quote.from_model(r.quote),
        "revised_quote": Quote.from_model(r.revised_quote),
    },
    lambda r: {"quote": r.quote, "revised_quote": r.revised_quote},
)


def _close_quote_call(input: CloseQuoteInput) -> Call[ClosedQuote]:
    return lambda uow: quote_services.close_quote(
        uow,
        quote_id=_quote_id(input.quote_id),
        status_reason=input.status_reason,
        close_date=input.close_date,
        description=input.description,
        expected_version=input.expected_version,
    )


CLOSE_QUOTE = Write(
    CloseQuotePayload,
    _close_quote_call,
    lambda c: {"quote": _closed(c)},
    lambda c: {"quote": c.quote},
)


def _create_competitor_call(input: CreateCompetitorInput) -> Call[models.Competitor]:
    return lambda uow: services.create_competitor(
        uow, name=input.name, website=input.website, notes=input.notes
    )


CREATE_COMPETITOR = Write(
    CreateCompetitorPayload,
    _create_competitor_call,
    lambda c: {"competitor": Competitor.from_model(c)},
    lambda c: {"competitor": c},
)


# The mutations the fast lane may answer, by field name: those whose payload is what their
# call returned (winQuote's shows its contract through the loaders; a bulk close runs each
# item as a mutation). The lane leaves dry runs and idempotency keys to execution.
FAST_WRITES: dict[str, Write[Any, Any, Any]] = {
    "createOpportunity": CREATE_OPPORTUNITY,
    "updateOpportunity": UPDATE_OPPORTUNITY,
    "closeOpportunity": CLOSE_OPPORTUNITY,
    "reopenOpportunity": REOPEN_OPPORTUNITY,
    "closeQuotes": CLOSE_QUOTES,
    "createQuote": CREATE_QUOTE,
    "updateQuote": UPDATE_QUOTE,
    "activateQuote": ACTIVATE_QUOTE,
    "reviseQuote": REVISE_QUOTE,
    "closeQuote": CLOSE_QUOTE,
    "createCompetitor": CREATE_COMPETITOR,
}


async def _close_opportunity(
    info: Info, input: CloseOpportunityInput, within: Sequence[str] = INPUT
) -> CloseOpportunityPayload:
    """closeOpportunity for one input, on its own or as one item of a bulk close."""
    return await CLOSE_OPPORTUNITY.respond(info, input, within=within)


async def _close_opportunities(
    info: Info, input: CloseOpportunitiesInput
) -> CloseOpportunitiesPayload:
    """Each item as closeOpportunity, in its own transaction, in lock order (bulk_closing.py)."""
    items = input.items

    def present(payloads: list[CloseOpportunityPayload]) -> dict[str, Any]:
        # Each success forgot what the request had loaded, the dry runs' open-quote counts too.
        for item, done in zip(items, payloads, strict=True):
            if item.dry_run:
                _prime_no_open_quotes(info, done.opportunity)
        return bulk_close.payload_fields(items, payloads)

    return await respond(
        info,
        CloseOpportunitiesPayload,
        # Each item runs its own units of work; this call itself writes nothing.
        lambda _: bulk_closing.close_opportunities(
            bulk_close.opportunity_pks(items),
            lambda i: _close_opportunity(info, items[i], bulk_close.item_path(i)),
        ),
        present,
    )


def _won(info: Info, won: QuoteWon) -> dict[str, Any]:
    """winQuote's payload. Its contract comes with the lines its write returned, and the
    request's loaders hold what it wrote, so that the payload shows the contract as the win
    made it, a dry run's too (whose rows were rolled back)."""
    contract = won.contract.contract
    loaders = info.context.loaders
    loaders.contract_of_quote.prime(contract.quote_id, contract)
    loaders.quote.prime(contract.quote_id, won.quote.quote)
    return {
        "quote": _closed(won.quote),
        "lost_quotes": _all_closed(won.lost_quotes),
        "contract": ProjectContract.from_model(contract, won.contract.lines),
    }


@strawberry.type(description="Changes to opportunities, quotes and competitors.")
class Mutation:
    @strawberry.mutation(description="Create an OPEN opportunity.")
    async def create_opportunity(
        self,
        info: Info,
        input: Annotated[CreateOpportunityInput, _INPUT],
    ) -> CreateOpportunityPayload:
        return await CREATE_OPPORTUNITY.respond(info, input)

    @strawberry.mutation(description="Edit an OPEN opportunity; its state never changes here.")
    async def update_opportunity(
        self,
        info: Info,
        input: Annotated[UpdateOpportunityInput, _INPUT],
    ) -> UpdateOpportunityPayload:
        return await UPDATE_OPPORTUNITY.respond(info, input)

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
        return await _close_opportunity(info, input)

    @strawberry.mutation(
        description="Reopen a WON or LOST opportunity; cancels its close record. Its quotes stay "
        "as they are, and so do the project contracts drafted from its won quotes: they stay "
        "DRAFT and linked (see ProjectContract)."
    )
    async def reopen_opportunity(
        self,
        info: Info,
        input: Annotated[ReopenOpportunityInput, _INPUT],
    ) -> ReopenOpportunityPayload:
        return await REOPEN_OPPORTUNITY.respond(info, input)

    @strawberry.mutation(
        description="Close every DRAFT and ACTIVE quote of an opportunity at once, atomically. "
        + _DRY_RUN
    )
    async def close_quotes(
        self,
        info: Info,
        input: Annotated[CloseQuotesInput, _INPUT],
    ) -> CloseQuotesPayload:
        return await CLOSE_QUOTES.respond(info, input)

    @strawberry.mutation(description="Add a DRAFT quote to an OPEN opportunity.")
    async def create_quote(
        self,
        info: Info,
        input: Annotated[CreateQuoteInput, _INPUT],
    ) -> CreateQuotePayload:
        return await CREATE_QUOTE.respond(info, input)

    @strawberry.mutation(description="Edit a DRAFT quote.")
    async def update_quote(
        self,
        info: Info,
        input: Annotated[UpdateQuoteInput, _INPUT],
    ) -> UpdateQuotePayload:
        return await UPDATE_QUOTE.respond(info, input)

    @strawberry.mutation(description="Activate a DRAFT quote; it becomes read-only.")
    async def activate_quote(
        self,
        info: Info,
        input: Annotated[ActivateQuoteInput, _INPUT],
    ) -> ActivateQuotePayload:
        return await ACTIVATE_QUOTE.respond(info, input)

    @strawberry.mutation(
        description="Revise an ACTIVE quote: it becomes CLOSED/REVISED and a new DRAFT with the "
        "same quote number and the next revision number takes its place."
    )
    async def revise_quote(
        self,
        info: Info,
        input: Annotated[ReviseQuoteInput, _INPUT],
    ) -> ReviseQuotePayload:
        return await REVISE_QUOTE.respond(info, input)

    @strawberry.mutation(
        description="Mark an open quote WON; the other open quotes of its opportunity become "
        "CLOSED/LOST, and a DRAFT project contract is drafted from the won quote and its lines. "
        "The opportunity stays OPEN. " + _DRY_RUN
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
            lambda r: _won(info, r),
            dry_run=input.dry_run,
        )

    @strawberry.mutation(description="Close one open quote as LOST or CANCELED.")
    async def close_quote(
        self,
        info: Info,
        input: Annotated[CloseQuoteInput, _INPUT],
    ) -> CloseQuotePayload:
        return await CLOSE_QUOTE.respond(info, input)

    @strawberry.mutation(description="Register a competitor.")
    async def create_competitor(
        self,
        info: Info,
        input: Annotated[CreateCompetitorInput, _INPUT],
    ) -> CreateCompetitorPayload:
        return await CREATE_COMPETITOR.respond(info, input)

    @strawberry.mutation(description=bulk_close.DESCRIPTION)
    async def close_opportunities(
        self,
        info: Info,
        input: Annotated[CloseOpportunitiesInput, _INPUT],
    ) -> CloseOpportunitiesPayload:
        return await _close_opportunities(info, input)
