"""Relay connections: PageInfo, generic Connection/Edge, and page-size limits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar, cast

import strawberry

from gql_service.cursors import InvalidCursorError, offset_cursor, offset_position
from gql_service.graphql.localized import LocalizedGraphQLError
from gql_service.messages import msg
from gql_service.queries import Page, PageRequest
from gql_service.settings import Settings

NodeT = TypeVar("NodeT")
ItemT = TypeVar("ItemT")


@strawberry.type(description="Where a page sits in its connection.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More items follow this page.")
    has_previous_page: bool = strawberry.field(description="Items precede this page.")
    start_cursor: str | None = strawberry.field(description="Cursor of the first item.")
    end_cursor: str | None = strawberry.field(description="Cursor of the last item.")


@strawberry.type(description="An item in a connection, with its cursor.")
class Edge(Generic[NodeT]):
    cursor: str = strawberry.field(description="Opaque cursor for after/before.")
    node: NodeT = strawberry.field(description="The item.")


@strawberry.type(description="A page of items (Relay cursor connection).")
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]] = strawberry.field(description="The items with their cursors.")
    nodes: list[NodeT] = strawberry.field(description="The items.")
    page_info: PageInfo = strawberry.field(description="Pagination details.")
    count: strawberry.Private[int | Callable[[], Awaitable[int]]]

    @strawberry.field(description="Number of items matching the filter, over all pages.")
    def total_count(self) -> int:
        # A known count is returned as is; otherwise the query's awaitable, which graphql-core
        # awaits. A plain resolver costs no task per connection.
        return self.count if isinstance(self.count, int) else cast(int, self.count())


def connection(
    nodes: Sequence[NodeT],
    cursors: Sequence[str],
    *,
    has_next_page: bool,
    has_previous_page: bool,
    count: int | Callable[[], Awaitable[int]],
) -> Connection[NodeT]:
    return Connection(
        edges=[Edge(cursor=c, node=n) for c, n in zip(cursors, nodes, strict=True)],
        nodes=list(nodes),
        page_info=PageInfo(
            has_next_page=has_next_page,
            has_previous_page=has_previous_page,
            start_cursor=cursors[0] if cursors else None,
            end_cursor=cursors[-1] if cursors else None,
        ),
        count=count,
    )


async def keyset_page(read: Awaitable[Page[ItemT]]) -> Page[ItemT]:
    """A top-level list's page from the read side; a cursor it refused is BAD_CURSOR."""
    try:
        return await read
    except InvalidCursorError as exc:
        raise cursor_error(exc) from exc


def from_page(page: Page[ItemT], convert: Callable[[ItemT], NodeT]) -> Connection[NodeT]:
    return connection(
        [convert(item) for item in page.items],
        page.cursors,
        has_next_page=page.has_next_page,
        has_previous_page=page.has_previous_page,
        count=page.count,
    )


def nested_page(
    settings: Settings,
    everything: Sequence[ItemT],
    pk: Callable[[ItemT], int],
    convert: Callable[[ItemT], NodeT],
    *,
    first: int | None,
    after: str | None,
) -> Connection[NodeT]:
    """A forward page of a parent's children, all loaded at once by one batched statement.

    Nested connections (an opportunity's quotes, a quote's lines, a contract's lines) load every
    child of a page of parents in one statement per relation and page here, by id: the cursor
    is ``offset_cursor(id)``, as the compiled path computes it in SQL.
    """
    limit = page_request(settings, first=first, after=after).first or 0
    start = after_id(after)
    remaining = [item for item in everything if start is None or pk(item) > start]
    shown = remaining[:limit]
    return connection(
        [convert(item) for item in shown],
        [offset_cursor(pk(item)) for item in shown],
        has_next_page=len(remaining) > limit,
        has_previous_page=start is not None and len(remaining) < len(everything),
        count=len(everything),
    )


def page_request(
    settings: Settings,
    *,
    first: int | None,
    after: str | None,
    last: int | None = None,
    before: str | None = None,
) -> PageRequest:
    """Check the page arguments against the configured cap; a bad one is a GraphQL error."""
    if first is not None and last is not None:
        raise LocalizedGraphQLError(
            msg("Pass either first or last, not both."), extensions={"code": "BAD_PAGE_ARGUMENTS"}
        )
    for name, size in (("first", first), ("last", last)):
        if size is not None and not 0 <= size <= settings.max_page_size:
            raise LocalizedGraphQLError(
                msg(
                    "{name} must be between 0 and {maximum}, got {size}.",
                    name=name,
                    maximum=settings.max_page_size,
                    size=size,
                ),
                extensions={"code": "PAGE_SIZE_EXCEEDED", "maxPageSize": settings.max_page_size},
            )
    if first is None and last is None:
        first = settings.default_page_size
    return PageRequest(first=first, after=after, last=last, before=before)


def cursor_error(exc: InvalidCursorError) -> LocalizedGraphQLError:
    """A keyset cursor the read side refused, as the top-level BAD_CURSOR error."""
    return LocalizedGraphQLError(exc.message, extensions={"code": "BAD_CURSOR"})


def after_id(cursor: str | None) -> int | None:
    """The id behind a nested connection's ``after`` cursor; a forged one is BAD_CURSOR."""
    if cursor is None:
        return None
    try:
        return offset_position(cursor)
    except InvalidCursorError as exc:
        raise cursor_error(exc) from exc
