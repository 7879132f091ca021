"""Query cost: computed before execution, refused over the maximum, reported on every response."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx

from gql_service.app import create_app
from gql_service.settings import Settings
from tests.conftest import GraphQLClient
from tests.operations import (
    CLOSE_OPPORTUNITY,
    CLOSE_QUOTE,
    REOPEN_OPPORTUNITY,
    create_opportunity,
    create_quote,
    ok,
    read_opportunity,
)

COUNT = "{ competitors { totalCount } }"
NODES_OF_COMPETITORS = "{ competitors { nodes { id } } }"
PAGES = """
query($n: Int) {
  opportunities(first: $n) { totalCount nodes { id quotes(first: 3) { nodes { id } } } }
}"""
LAST = "{ opportunities(last: 7) { edges { node { id } } pageInfo { hasPreviousPage } } }"
NODES = "query($ids: [ID!]!) { nodes(ids: $ids) { id } }"
CREATE_COMPETITOR = """
mutation { createCompetitor(input: {name: "Litware"}) { competitor { id } errors { __typename } } }
"""
# A 50-row page with each row's quotes (default page size), their close records and the
# close history: what a partner's list screen asks for.
LIST = """
query($first: Int) {
  opportunities(first: $first) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges {
      cursor
      node {
        id name customerName state statusReason estimatedRevenue version
        quotes {
          totalCount
          edges { node { id quoteNumber revisionNumber state statusReason totalAmount
            closeRecord { statusReason closeDate batchId description } } }
        }
        closeHistory { id outcome statusReason closeDate state description competitor { name } }
      }
    }
  }
}"""
HUNDREDS = """{
  opportunities(first: 100) { nodes { quotes(first: 100) { nodes {
    opportunity { quotes(first: 100) { nodes { id } } }
  } } } }
}"""
HEAVY_CLOSE = """
mutation($input: CloseOpportunityInput!) {
  closeOpportunity(input: $input) {
    opportunity { quotes(first: 100) { nodes { opportunity { quotes(first: 100) { nodes {
      opportunity { id } } } } } } }
    errors { __typename }
  }
}"""
SCHEMAS = "{ " + " ".join(f"s{i}: __schema {{ types {{ name }} }}" for i in range(30)) + " }"


def cost(requested: int, maximum: int = 10_000) -> dict[str, Any]:
    return {"cost": {"requested": requested, "maximum": maximum}}


async def test_every_response_carries_its_cost(gql: GraphQLClient) -> None:
    success = await gql(COUNT)
    failure = await gql("{ nope }")

    assert success == {"data": {"competitors": {"totalCount": 0}}, "extensions": cost(1)}
    # Refused before it could be priced: nothing was requested.
    assert failure["extensions"] == cost(0)


async def test_a_connection_multiplies_what_it_holds_by_its_page_size(
    gql: GraphQLClient,
) -> None:
    five = await gql(PAGES, n=5)
    default = await gql(PAGES)
    last = await gql(LAST)

    # 1 for the connection, then per row: the node, the quotes connection and 3 quotes.
    assert five["extensions"] == cost(1 + 5 * (1 + 1 + 3))
    assert default["extensions"] == cost(1 + 20 * (1 + 1 + 3))
    # pageInfo is not multiplied; each edge and its node are.
    assert last["extensions"] == cost(1 + 1 + 7 * 2)


async def test_pages_over_the_maximum_page_size_are_priced_at_the_maximum(
    gql: GraphQLClient,
) -> None:
    body = await gql(PAGES, n=5_000)

    assert body["extensions"] == cost(1 + 100 * (1 + 1 + 3))
    assert body["errors"][0]["extensions"]["code"] == "PAGE_SIZE_EXCEEDED"


async def test_nodes_is_priced_by_its_ids(gql: GraphQLClient) -> None:
    body = await gql(NODES, ids=["a", "b", "c"])

    assert body["extensions"] == cost(3)


async def test_a_mutation_has_a_base_cost(gql: GraphQLClient) -> None:
    body = await gql(CREATE_COMPETITOR)

    ok(body, "createCompetitor")
    # Base 10, the payload 1, the competitor 1, the errors list 10 x 1.
    assert body["extensions"] == cost(10 + 1 + 1 + 10)


async def test_a_fifty_row_list_with_quotes_close_records_and_close_history_passes(
    gql: GraphQLClient,
) -> None:
    for i in range(49):
        await create_opportunity(gql, name=f"Row {i:02}")
    busy = await create_opportunity(gql, name="Busy")
    quote = await create_quote(gql, busy["id"])
    await create_quote(gql, busy["id"])
    ok(await gql(CLOSE_QUOTE, input={"quoteId": quote["id"]}), "closeQuote")
    close = {"opportunityId": busy["id"], "outcome": "LOST", "closeOpenQuotes": True}
    ok(await gql(CLOSE_OPPORTUNITY, input=close), "closeOpportunity")
    ok(await gql(REOPEN_OPPORTUNITY, input={"opportunityId": busy["id"]}), "reopenOpportunity")

    body = await gql(LIST, first=50)

    assert "errors" not in body, body
    assert len(body["data"]["opportunities"]["edges"]) == 50
    assert body["data"]["opportunities"]["totalCount"] == 50
    # 1 + pageInfo 1 + 50 rows x (edge 1 + node 1 + quotes 1 + 20 x (edge, node, close
    # record) + closeHistory 10 x (close, competitor)).
    assert body["extensions"] == cost(1 + 1 + 50 * (1 + 1 + 1 + 20 * 3 + 10 * 2))
    rows = {e["node"]["name"]: e["node"] for e in body["data"]["opportunities"]["edges"]}
    assert [c["state"] for c in rows["Busy"]["closeHistory"]] == ["CANCELED"]
    closed = [e["node"]["closeRecord"] for e in rows["Busy"]["quotes"]["edges"]]
    assert [r["statusReason"] for r in closed] == ["LOST", "LOST"]


async def test_100_x_100_x_100_nested_connections_are_refused_with_their_cost(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/graphql",
        json={"query": HUNDREDS},
        headers={"accept": "application/graphql-response+json"},
    )

    assert response.status_code == 400
    body = response.json()
    assert "data" not in body
    requested = 1 + 100 * (1 + 1 + 100 * (1 + 1 + 1 + 100))
    [error] = body["errors"]
    assert error["extensions"] == {
        "code": "QUERY_TOO_COMPLEX",
        "cost": {"requested": requested, "maximum": 10_000},
    }
    assert body["extensions"] == cost(requested)


async def test_a_refused_mutation_runs_no_resolver(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)

    body = await gql(HEAVY_CLOSE, input={"opportunityId": opportunity["id"], "outcome": "LOST"})

    assert body.get("data") is None
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    after = await read_opportunity(gql, opportunity["id"])
    assert after["state"] == "OPEN"
    assert after["version"] == opportunity["version"]


async def test_thirty_schema_introspections_under_aliases_are_refused(gql: GraphQLClient) -> None:
    body = await gql(SCHEMAS)

    assert body["errors"][0]["extensions"] == {
        "code": "QUERY_TOO_COMPLEX",
        "cost": {"requested": 30_000, "maximum": 10_000},
    }


async def test_the_maximum_follows_its_setting(settings: Settings) -> None:
    app = create_app(replace(settings, max_query_cost=20))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        cheap = (await http.post("/graphql", json={"query": COUNT})).json()
        dear = (await http.post("/graphql", json={"query": NODES_OF_COMPETITORS})).json()
    await app.state.engine.dispose()

    assert cheap == {"data": {"competitors": {"totalCount": 0}}, "extensions": cost(1, 20)}
    assert dear["errors"][0]["extensions"]["cost"] == {"requested": 21, "maximum": 20}
    assert dear["extensions"] == cost(21, 20)
