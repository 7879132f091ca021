"""Reading what users sort and filter by: opportunities by customer, outcome and close-date
range, and the top-level quotes list by state and opportunity, paged both ways."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import GraphQLClient
from tests.operations import (
    CLOSE_OPPORTUNITY,
    activate_quote,
    create_opportunity,
    create_quote,
    ok,
)

OPPORTUNITIES = """
query($filter: OpportunityFilter) {
  opportunities(first: 100, filter: $filter, orderBy: {field: NAME, direction: ASC}) {
    totalCount nodes { name }
  }
}"""

QUOTES = """
query($first: Int, $after: String, $last: Int, $before: String, $filter: QuoteListFilter) {
  quotes(first: $first, after: $after, last: $last, before: $before, filter: $filter) {
    totalCount
    edges { cursor node { id name state opportunity { id } closeRecord { statusReason } } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""


async def closed_deals(gql: GraphQLClient) -> None:
    """Five opportunities: two won, two lost on different days, one open."""
    deals = [
        ("A won early", "Contoso", "WON", "2026-01-15"),
        ("B won late", "Contoso Ltd", "WON", "2026-03-31"),
        ("C lost early", "Contoso", "LOST", "2026-01-31"),
        ("D lost late", "Fabrikam", "LOST", "2026-04-01"),
        ("E open", "Contoso", None, None),
    ]
    for name, customer, outcome, day in deals:
        opportunity = await create_opportunity(gql, name=name, customerName=customer)
        if outcome is not None:
            given = {"opportunityId": opportunity["id"], "outcome": outcome, "closeDate": day}
            ok(await gql(CLOSE_OPPORTUNITY, input=given), "closeOpportunity")


async def names(gql: GraphQLClient, **conditions: Any) -> list[str]:
    body = await gql(OPPORTUNITIES, filter=conditions)
    assert "errors" not in body, body
    found = body["data"]["opportunities"]
    assert found["totalCount"] == len(found["nodes"])
    return [node["name"] for node in found["nodes"]]


async def test_opportunities_filter_by_exact_customer_outcome_and_close_date_range(
    gql: GraphQLClient,
) -> None:
    await closed_deals(gql)

    assert await names(gql, customer="Contoso") == ["A won early", "C lost early", "E open"]
    assert await names(gql, customerName="contoso") == [
        "A won early",
        "B won late",
        "C lost early",
        "E open",
    ]
    assert await names(gql, outcome="WON") == ["A won early", "B won late"]
    assert await names(gql, outcome="LOST") == ["C lost early", "D lost late"]
    # Both ends of the range are included; the open one has no close date.
    assert await names(gql, actualCloseDateFrom="2026-01-31", actualCloseDateTo="2026-03-31") == [
        "B won late",
        "C lost early",
    ]
    assert await names(gql, actualCloseDateFrom="2026-04-01") == ["D lost late"]
    assert await names(gql, actualCloseDateTo="2026-01-15") == ["A won early"]
    assert await names(gql, actualCloseDateFrom="2026-02-01", actualCloseDateTo="2026-01-01") == []
    assert await names(gql, customer="Contoso", outcome="WON", actualCloseDateTo="2026-12-31") == [
        "A won early"
    ]


async def test_a_customer_filter_no_stored_name_could_match_is_refused(
    gql: GraphQLClient,
) -> None:
    body = await gql(OPPORTUNITIES, filter={"customer": "x" * 5000})

    assert body["errors"][0]["extensions"]["code"] == "INVALID_VALUE", body
    assert body["errors"][0]["extensions"]["field"] == ["filter", "customer"]


async def quotes_of_two_opportunities(gql: GraphQLClient) -> tuple[str, str, list[str]]:
    first = await create_opportunity(gql, name="First")
    second = await create_opportunity(gql, name="Second")
    created = []
    for index in range(7):
        owner = first if index % 2 else second
        quote = await create_quote(gql, owner["id"], name=f"Quote {index}")
        if index % 3 == 0:
            await activate_quote(gql, quote["id"])
        created.append(quote["id"])
    return first["id"], second["id"], created


async def walk(gql: GraphQLClient, size: int, flt: dict[str, Any], forwards: bool) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        if forwards:
            body = await gql(QUOTES, first=size, after=cursor, filter=flt)
        else:
            body = await gql(QUOTES, last=size, before=cursor, filter=flt)
        assert "errors" not in body, body
        page = body["data"]["quotes"]
        ids = [edge["node"]["id"] for edge in page["edges"]]
        info = page["pageInfo"]
        assert len(ids) <= size
        if forwards:
            assert info["hasPreviousPage"] is (cursor is not None)
            seen += ids
            if not info["hasNextPage"]:
                return seen
            cursor = info["endCursor"]
        else:
            assert info["hasNextPage"] is (cursor is not None)
            seen = ids + seen
            if not info["hasPreviousPage"]:
                return seen
            cursor = info["startCursor"]


async def test_all_quotes_page_forwards_and_backwards_oldest_first_by_state_and_opportunity(
    gql: GraphQLClient,
) -> None:
    first, second, created = await quotes_of_two_opportunities(gql)
    active = [q for index, q in enumerate(created) if index % 3 == 0]
    of_first = [q for index, q in enumerate(created) if index % 2]

    for flt, expected in (
        ({}, created),
        ({"state": ["ACTIVE"]}, active),
        ({"state": ["DRAFT", "ACTIVE"]}, created),
        ({"isOpen": False}, []),
        ({"opportunityId": first}, of_first),
        ({"opportunityId": first, "state": ["ACTIVE"]}, [q for q in of_first if q in active]),
    ):
        body = await gql(QUOTES, first=100, filter=flt)
        assert body["data"]["quotes"]["totalCount"] == len(expected), flt
        for size in (1, 2, 3):
            assert await walk(gql, size, flt, forwards=True) == expected, (flt, size)
            assert await walk(gql, size, flt, forwards=False) == expected, (flt, size)
    assert second


@pytest.mark.parametrize("opportunity_id", ["nonsense", "UXVvdGU6MQ", "T3Bwb3J0dW5pdHk6OTk5"])
async def test_quotes_of_an_id_that_names_no_opportunity_are_none(
    gql: GraphQLClient, opportunity_id: str
) -> None:
    await quotes_of_two_opportunities(gql)

    body = await gql(QUOTES, first=10, filter={"opportunityId": opportunity_id})

    assert body["data"]["quotes"]["totalCount"] == 0, body
    assert body["data"]["quotes"]["edges"] == []


async def test_a_forged_quotes_cursor_is_refused_with_bad_cursor(gql: GraphQLClient) -> None:
    body = await gql(QUOTES, first=2, after="bm90IGEgY3Vyc29y")

    assert body["errors"][0]["extensions"]["code"] == "BAD_CURSOR", body
