"""Inputs that once ended in "Unexpected error.": each now gets a typed answer on both engines."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import GraphQLClient
from tests.operations import (
    CLOSE_OPPORTUNITY,
    CLOSE_QUOTE,
    CLOSE_QUOTES,
    CREATE_COMPETITOR,
    CREATE_OPPORTUNITY,
    CREATE_QUOTE,
    OPPORTUNITY,
    UPDATE_OPPORTUNITY,
    UPDATE_QUOTE,
    WIN_QUOTE,
    cost,
    create_opportunity,
    create_quote,
    error_codes,
    payload,
    read_opportunity,
)

NODE = "query($id: ID!) { node(id: $id) { id } }"
NODES = "query($ids: [ID!]!) { nodes(ids: $ids) { id } }"
FILTERED = """
query($filter: OpportunityFilter) { opportunities(filter: $filter) { totalCount nodes { id } } }
"""


def global_id(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


UNREAL_IDS = {
    "above-int4": global_id("Opportunity:2147483648"),
    "far-above": global_id("Opportunity:99999999999999999999999"),
    "superscript": global_id("Opportunity:\u00b2"),
    "arabic-indic-one": global_id("Opportunity:\u0661"),
    "fullwidth-one": global_id("Opportunity:\uff11"),
    "leading-zero": global_id("Opportunity:01"),
    "plus-sign": global_id("Opportunity:+1"),
}


@pytest.mark.parametrize("bad_id", list(UNREAL_IDS.values()), ids=list(UNREAL_IDS))
async def test_an_id_we_never_issued_names_nothing(gql: GraphQLClient, bad_id: str) -> None:
    await create_opportunity(gql)  # opportunity 1 exists: Arabic-Indic 1 must not reach it

    closed = payload(
        await gql(CLOSE_OPPORTUNITY, input={"opportunityId": bad_id, "outcome": "WON"}),
        "closeOpportunity",
    )
    assert error_codes(closed) == ["NOT_FOUND"]
    assert closed["errors"][0]["field"] == ["input", "opportunityId"]
    assert await gql(OPPORTUNITY, id=bad_id) == {"data": {"opportunity": None}, **cost(122)}
    assert await gql(NODE, id=bad_id) == {"data": {"node": None}, **cost(1)}
    assert await gql(NODES, ids=[bad_id]) == {"data": {"nodes": [None]}, **cost(1)}


async def test_quote_and_competitor_ids_above_int4_are_not_found(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)
    big_quote = global_id("Quote:2147483648")
    big_competitor = global_id("Competitor:4294967296")

    quote = payload(await gql(CLOSE_QUOTE, input={"quoteId": big_quote}), "closeQuote")
    closed = payload(
        await gql(
            CLOSE_OPPORTUNITY,
            input={
                "opportunityId": opportunity["id"],
                "outcome": "LOST",
                "competitorId": big_competitor,
            },
        ),
        "closeOpportunity",
    )

    assert error_codes(quote) == ["NOT_FOUND"]
    assert error_codes(closed) == ["NOT_FOUND"]
    assert closed["errors"][0]["field"] == ["input", "competitorId"]
    assert (await read_opportunity(gql, opportunity["id"]))["state"] == "OPEN"


Case = tuple[str, str, Callable[[dict[str, str]], dict[str, Any]], str]

NUL = "bad\u0000text"
SURROGATE = "bad\ud800text"

# (operation, payload name, input from the ids of an open opportunity and its draft quote, field)
TEXT_INPUTS: list[Case] = [
    (
        CREATE_OPPORTUNITY,
        "createOpportunity",
        lambda ids: {"name": "{}", "customerName": "Fabrikam", "currencyCode": "EUR"},
        "name",
    ),
    (
        CREATE_OPPORTUNITY,
        "createOpportunity",
        lambda ids: {"name": "Deal", "customerName": "{}", "currencyCode": "EUR"},
        "customerName",
    ),
    (
        CREATE_OPPORTUNITY,
        "createOpportunity",
        lambda ids: {"name": "Deal", "customerName": "Fabrikam", "currencyCode": "{}"},
        "currencyCode",
    ),
    (
        CREATE_OPPORTUNITY,
        "createOpportunity",
        lambda ids: {
            "name": "Deal",
            "customerName": "Fabrikam",
            "currencyCode": "EUR",
            "description": "{}",
        },
        "description",
    ),
    (
        UPDATE_OPPORTUNITY,
        "updateOpportunity",
        lambda ids: {"opportunityId": ids["opportunity"], "name": "{}"},
        "name",
    ),
    (
        UPDATE_OPPORTUNITY,
        "updateOpportunity",
        lambda ids: {"opportunityId": ids["opportunity"], "customerName": "{}"},
        "customerName",
    ),
    (
        UPDATE_OPPORTUNITY,
        "updateOpportunity",
        lambda ids: {"opportunityId": ids["opportunity"], "description": "{}"},
        "description",
    ),
    (
        CLOSE_OPPORTUNITY,
        "closeOpportunity",
        lambda ids: {
            "opportunityId": ids["opportunity"],
            "outcome": "LOST",
            "closeOpenQuotes": True,
            "description": "{}",
        },
        "description",
    ),
    (
        CLOSE_QUOTES,
        "closeQuotes",
        lambda ids: {"opportunityId": ids["opportunity"], "description": "{}"},
        "description",
    ),
    (
        CREATE_QUOTE,
        "createQuote",
        lambda ids: {"opportunityId": ids["opportunity"], "name": "{}"},
        "name",
    ),
    (
        CREATE_QUOTE,
        "createQuote",
        lambda ids: {"opportunityId": ids["opportunity"], "name": "Q", "currencyCode": "{}"},
        "currencyCode",
    ),
    (UPDATE_QUOTE, "updateQuote", lambda ids: {"quoteId": ids["quote"], "name": "{}"}, "name"),
    (
        WIN_QUOTE,
        "winQuote",
        lambda ids: {"quoteId": ids["quote"], "description": "{}"},
        "description",
    ),
    (
        CLOSE_QUOTE,
        "closeQuote",
        lambda ids: {"quoteId": ids["quote"], "description": "{}"},
        "description",
    ),
    (CREATE_COMPETITOR, "createCompetitor", lambda ids: {"name": "{}"}, "name"),
    (
        CREATE_COMPETITOR,
        "createCompetitor",
        lambda ids: {"name": "Proseware", "website": "{}"},
        "website",
    ),
    (
        CREATE_COMPETITOR,
        "createCompetitor",
        lambda ids: {"name": "Proseware", "notes": "{}"},
        "notes",
    ),
]


async def send(client: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    """Post with JSON escapes, so that a lone surrogate travels as JSON allows ("\\ud800")."""
    body = json.dumps({"query": query, "variables": variables})
    response = await client.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def fill(data: dict[str, Any], text: str) -> dict[str, Any]:
    return {k: text if v == "{}" else v for k, v in data.items()}


# A lone surrogate never gets this far: the JSON body is refused at the door with a coded 400
# (tests/test_request_bodies.py and test_a_lone_surrogate_is_refused_before_anything_runs).
@pytest.mark.parametrize("text", [NUL], ids=["nul"])
@pytest.mark.parametrize(
    "case", TEXT_INPUTS, ids=[f"{name}.{field}" for _, name, _, field in TEXT_INPUTS]
)
async def test_unstorable_text_is_invalid_value_naming_the_field(
    gql: GraphQLClient, client: httpx.AsyncClient, case: Case, text: str
) -> None:
    operation, name, build, field = case
    opportunity = await create_opportunity(gql)
    quote = await create_quote(gql, opportunity["id"])
    ids = {"opportunity": opportunity["id"], "quote": quote["id"]}

    result = payload(await send(client, operation, input=fill(build(ids), text)), name)

    assert "INVALID_VALUE" in error_codes(result), result
    assert ["input", field] in [e["field"] for e in result["errors"]], result
    after = await read_opportunity(gql, opportunity["id"])
    assert after["version"] == opportunity["version"] + 1  # the quote's creation, nothing more
    assert after["quotes"]["totalCount"] == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("nameContains", NUL),
        ("customerName", NUL),
        ("nameContains", "x" * 50_000),
        ("customerName", "x" * 50_000),
        ("nameContains", "%" * 201),
    ],
    ids=["name-nul", "customer-nul", "name-50k", "customer-50k", "name-201"],
)
async def test_unusable_filter_text_is_a_top_level_invalid_value(
    gql: GraphQLClient, client: httpx.AsyncClient, field: str, value: str
) -> None:
    await create_opportunity(gql)

    body = await send(client, FILTERED, filter={field: value})

    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "INVALID_VALUE"
    assert error["extensions"]["field"] == ["filter", field]
    assert field in error["message"]


async def test_filter_text_up_to_the_column_length_still_filters(gql: GraphQLClient) -> None:
    name = "N" * 200
    await create_opportunity(gql, name=name)
    await create_opportunity(gql, name="Other")

    body = await gql(FILTERED, filter={"nameContains": name.lower()})

    assert body["data"]["opportunities"]["totalCount"] == 1


async def test_a_lone_surrogate_is_refused_before_anything_runs(
    gql: GraphQLClient, client: httpx.AsyncClient
) -> None:
    body = json.dumps(
        {
            "query": CREATE_COMPETITOR,
            "variables": {"input": {"name": SURROGATE}},
        }
    )
    response = await client.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    listed = await gql("{ competitors { totalCount } }")

    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert listed["data"]["competitors"]["totalCount"] == 0
