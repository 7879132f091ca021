"""Bulk close: how many items one call takes, and the order in which they run.

A bulk close is many single closes (``services.close_opportunity``), each in its own
transaction, so one refusal never undoes another item. Items run in ascending opportunity id
(ties in input order), each transaction locking its one opportunity first: a bulk holds at most
one opportunity lock at a time, and overlapping bulks take their locks in the same direction,
so they never wait on each other in a cycle, whatever order their clients listed the items in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from gql_service.errors import ErrorCode, Violation, raise_if_any
from gql_service.messages import msg

R = TypeVar("R")

# The most items one bulk close takes; the query cost prices every bulk close at this many.
BULK_CLOSE_MAX = 100


def check_bulk_size(field: str, count: int) -> list[Violation]:
    """A bulk close takes 1 to ``BULK_CLOSE_MAX`` items."""
    if 1 <= count <= BULK_CLOSE_MAX:
        return []
    message = msg(
        "A bulk close takes 1 to {maximum} items, not {count}.", maximum=BULK_CLOSE_MAX, count=count
    )
    return [Violation(ErrorCode.INVALID_VALUE, message, field)]


def execution_order(opportunity_ids: Sequence[int | None]) -> list[int]:
    """The positions of the items in the order they run: ids that name no opportunity first
    (their refusal locks nothing), then ascending opportunity id, ties in input order."""
    return sorted(
        range(len(opportunity_ids)),
        key=lambda i: (opportunity_ids[i] is not None, opportunity_ids[i] or 0),
    )


async def close_opportunities(
    opportunity_ids: Sequence[int | None], close: Callable[[int], Awaitable[R]]
) -> list[R]:
    """Run ``close`` for each item (by position), one after another in ``execution_order``;
    their outcomes in input order.

    ``close`` is one ``services.close_opportunity`` in its own transaction, its refusal
    being its outcome; ``opportunity_ids`` are the items' opportunities (None for an id that
    names none). Codes: INVALID_VALUE.
    """
    raise_if_any(check_bulk_size("items", len(opportunity_ids)))
    outcomes: dict[int, R] = {}
    for index in execution_order(opportunity_ids):
        outcomes[index] = await close(index)
    return [outcomes[index] for index in range(len(opportunity_ids))]
