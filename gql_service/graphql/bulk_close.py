"""closeOpportunities in GraphQL terms: items' ids, their errors' paths, the payload's fields."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gql_service.bulk_closing import BULK_CLOSE_MAX
from gql_service.graphql.errors import INPUT
from gql_service.graphql.ids import parse_id
from gql_service.graphql.inputs import CloseOpportunityInput
from gql_service.graphql.payloads import CloseOpportunityPayload, CloseOpportunityResult

DESCRIPTION = (
    f"Close up to {BULK_CLOSE_MAX} opportunities, each item exactly as closeOpportunity "
    "would, in its own transaction: partial success is normal, and each item's result (in "
    "input order) holds its payload or its errors. Items run in ascending opportunity id, "
    "each transaction locking only its own opportunity first, so overlapping bulk closes "
    "never deadlock, whatever order they list their items in. With an Idempotency-Key, the "
    "first item that commits spends the key and a retry gets the whole response back without "
    "running any item again; if every item is refused, nothing is spent. Its query cost is "
    f"that of {BULK_CLOSE_MAX} closeOpportunity calls selecting what each result selects, "
    "whatever the number of items."
)


def opportunity_pks(items: Sequence[CloseOpportunityInput]) -> list[int | None]:
    """The opportunity each item names, or None for an id that names none (refused unlocked)."""
    pks: list[int | None] = []
    for item in items:
        parsed = parse_id(item.opportunity_id)
        pks.append(parsed[1] if parsed is not None and parsed[0] == "Opportunity" else None)
    return pks


def item_path(index: int) -> tuple[str, ...]:
    """Where the fields of item ``index`` sit, for its errors' ``field`` paths."""
    return (*INPUT, "items", str(index))


def payload_fields(
    items: Sequence[CloseOpportunityInput], payloads: Sequence[CloseOpportunityPayload]
) -> dict[str, Any]:
    """The results, in input order, and their counts."""
    results = [
        CloseOpportunityResult(index=i, opportunity_id=item.opportunity_id, payload=payload)
        for i, (item, payload) in enumerate(zip(items, payloads, strict=True))
    ]
    refused = sum(1 for p in payloads if p.errors)
    closed = sum(1 for i, p in zip(items, payloads, strict=True) if not p.errors and not i.dry_run)
    return {"results": results, "closed_count": closed, "refused_count": refused}
