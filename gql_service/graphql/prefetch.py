"""Look-ahead for lists: load the relations a page asks for before its items are resolved.

With the values in the DataLoaders' caches, the items' relation fields resolve synchronously
(``now_or_later``), which spares graphql-core an awaitable, a task and a loop turn per field.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection

from gql_service.graphql.context import Context
from gql_service.queries import QuoteFilter

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
R = TypeVar("R")


def now_or_later(loader: DataLoader[K, V], key: K, convert: Callable[[V], R]) -> R:
    """``convert(value)`` now when the loader already holds it, else an awaitable of it.

    graphql-core awaits an awaitable that a resolver returns, so resolvers that use this stay
    plain functions; the declared return type is what the awaitable yields.
    """
    cached = loader.cache_map.get(key) if loader.cache else None
    if cached is not None and cached.done() and cached.exception() is None:
        return convert(cached.result())

    async def later() -> R:
        return convert(await loader.load(key))

    result: Any = later()
    return result  # type: ignore[no-any-return]


def _flatten(selections: Iterable[Selection]) -> list[SelectedField]:
    fields: list[SelectedField] = []
    for selection in selections:
        if isinstance(selection, FragmentSpread | InlineFragment):
            fields += _flatten(selection.selections)
        else:
            fields.append(selection)
    return fields


def item_fields(connection_selections: Iterable[Selection]) -> dict[str, SelectedField]:
    """The fields selected on a connection's items, through ``nodes`` and ``edges { node }``."""
    items: dict[str, SelectedField] = {}
    for field in _flatten(connection_selections):
        if field.name == "nodes":
            items.update((f.name, f) for f in _flatten(field.selections))
        elif field.name == "edges":
            for edge_field in _flatten(field.selections):
                if edge_field.name == "node":
                    items.update((f.name, f) for f in _flatten(edge_field.selections))
    return items


async def prefetch_opportunity_relations(
    context: Context, selections: Iterable[Selection], pks: list[int]
) -> None:
    """Load what a page of opportunities will ask for: one batch per relation, up front."""
    if not pks:
        return
    fields = item_fields(selections)
    loaders = context.loaders
    jobs: list[Awaitable[Any]] = []
    if "openQuoteCount" in fields:
        jobs.append(loaders.open_quote_count.load_many(pks))
    quotes = fields.get("quotes")
    if (
        quotes is not None
        and not quotes.arguments.get("after")
        and not quotes.arguments.get("filter")
    ):
        jobs.append(loaders.quotes(QuoteFilter()).load_many(pks))
    history = fields.get("closeHistory")
    if history is not None:
        jobs.append(_history_with_competitors(context, history, pks))
    await asyncio.gather(*jobs)


async def _history_with_competitors(
    context: Context, history: SelectedField, pks: list[int]
) -> None:
    closes = await context.loaders.close_history.load_many(pks)
    if any(f.name == "competitor" for f in _flatten(history.selections)):
        ids = {c.competitor_id for records in closes for c in records if c.competitor_id}
        await context.loaders.competitor.load_many(ids)
