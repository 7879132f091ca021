"""The Subscription root: committed changes of one opportunity and of its quotes.

Each resolver checks the id and that changes can arrive, then returns a stream that registers
with the worker's broker before it reads the baseline, so no change committed after that read
is missed. Every event is read after its commit, with fresh DataLoaders, on a read connection
that is returned before the stream waits again: an idle subscription holds no connection.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry
from graphql import GraphQLError

from gql_service import outages
from gql_service.announcements import Broker, BrokerUnavailableError
from gql_service.graphql.ids import parse_id
from gql_service.graphql.localized import LocalizedGraphQLError, localized
from gql_service.graphql.types import Info, Opportunity, Quote
from gql_service.messages import Message, msg
from gql_service.models import Opportunity as OpportunityModel
from gql_service.records import OpportunityRecord


def _error(info: Info, message: Message, extensions: dict[str, object]) -> GraphQLError:
    """A top-level error in the subscriber's language."""
    return localized(LocalizedGraphQLError(message, extensions=extensions), info.context.language)


def _opportunity_pk(info: Info, global_id: str) -> int:
    parsed = parse_id(global_id)
    if parsed is None or parsed[0] != "Opportunity":
        raise _error(info, msg("No opportunity has this id."), {"code": "NOT_FOUND"})
    return parsed[1]


async def _read(info: Info, pk: int) -> OpportunityRecord | None:
    info.context.refresh()
    found: OpportunityRecord | None = (
        await info.context.reader.by_ids(OpportunityModel, [pk])
    ).get(pk)
    return found


async def _ready(info: Info, global_id: str) -> tuple[Broker, int, OpportunityRecord]:
    """The broker, the opportunity's key and row; a coded error when it cannot be watched."""
    broker = info.context.broker
    if broker is None:
        raise _error(
            info,
            msg("Subscriptions are switched off on this server."),
            {"code": "SUBSCRIPTIONS_DISABLED"},
        )
    pk = _opportunity_pk(info, global_id)
    found = await _read(info, pk)
    await info.context.reads.release()
    if found is None:
        raise _error(info, msg("No opportunity has this id."), {"code": "NOT_FOUND"})
    try:
        await broker.start()
    except BrokerUnavailableError as exc:
        retry_after = info.context.settings.db_retry_after_seconds
        raise _error(
            info,
            outages.message(retry_after, mutation=False),
            outages.extensions(retry_after, info.context.request_id),
        ) from exc
    return broker, pk, found


async def _opportunity_changes(
    info: Info, broker: Broker, pk: int
) -> AsyncGenerator[Opportunity, None]:
    async with broker.subscribe(pk) as changes:
        baseline = await _read(info, pk)
        version = baseline.version if baseline is not None else 0
        await info.context.reads.release()
        async for _ in changes:
            current = await _read(info, pk)
            # Announcements that arrive after the state they announce was already shown (or a
            # resync that finds nothing new) show nothing twice.
            if current is not None and current.version > version:
                version = current.version
                yield Opportunity.from_model(current)
            await info.context.reads.release()


async def _quote_changes(info: Info, broker: Broker, pk: int) -> AsyncGenerator[list[Quote], None]:
    async with broker.subscribe(pk) as changes:
        async for change in changes:
            if change.stamp is None:
                continue  # which quotes changed while announcements were lost is unknown
            info.context.refresh()
            rows = await info.context.reader.quotes_stamped(pk, change.stamp)
            if rows:
                yield [Quote.from_model(quote, close) for quote, close in rows]
            await info.context.reads.release()


_ID = strawberry.argument(description="The opportunity's global id.")


@strawberry.type(
    description="Live updates, over WebSocket on /graphql (graphql-transport-ws). Each event "
    "is read after its change committed."
)
class Subscription:
    @strawberry.subscription(
        description="The opportunity as committed, after every change to it (close, reopen, "
        "edit, its quotes' changes)."
    )
    async def opportunity_changed(
        self, info: Info, id: Annotated[strawberry.ID, _ID]
    ) -> AsyncGenerator[Opportunity, None]:
        broker, pk, _ = await _ready(info, id)
        return _opportunity_changes(info, broker, pk)

    @strawberry.subscription(
        description="The quotes of the opportunity that one committed change created or changed."
    )
    async def quotes_changed(
        self, info: Info, opportunity_id: Annotated[strawberry.ID, _ID]
    ) -> AsyncGenerator[list[Quote], None]:
        broker, pk, _ = await _ready(info, opportunity_id)
        return _quote_changes(info, broker, pk)
