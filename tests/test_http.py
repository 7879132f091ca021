"""HTTP behaviour: health, GraphQL over HTTP negotiation, limits, masking."""

from __future__ import annotations

import logging
from dataclasses import replace

import httpx
import pytest

from gql_service.app import create_app
from gql_service.settings import Settings
from tests.conftest import GraphQLClient
from tests.operations import (
    CLOSE_OPPORTUNITY,
    CLOSE_QUOTE,
    CREATE_COMPETITOR,
    create_opportunity,
    create_quote,
)

LIST = "query($first: Int) { opportunities(first: $first) { totalCount nodes { id } } }"


async def test_health_and_readiness_answer_ok(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ok"}


async def test_readiness_fails_when_the_database_is_unreachable() -> None:
    settings = Settings(database_url="postgresql+psycopg://nobody@127.0.0.1:9/none")
    app = create_app(settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}


async def test_graphiql_is_served_to_browsers(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"accept": "text/html"})

    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_queries_work_over_get_and_mutations_do_not(client: httpx.AsyncClient) -> None:
    query = await client.get("/graphql", params={"query": "{ competitors { totalCount } }"})
    mutation = await client.get(
        "/graphql",
        params={
            "query": 'mutation { createCompetitor(input: {name: "X"}) { errors { __typename } } }'
        },
    )

    assert query.json() == {
        "data": {"competitors": {"totalCount": 0}},
        "extensions": {"cost": {"requested": 1, "maximum": 10_000}},
    }
    assert mutation.status_code == 405


async def test_content_negotiation_follows_graphql_over_http(client: httpx.AsyncClient) -> None:
    bad = {"query": "{ nope }"}
    plain = await client.post("/graphql", json=bad)
    modern = await client.post(
        "/graphql", json=bad, headers={"accept": "application/graphql-response+json"}
    )
    fine = await client.post(
        "/graphql",
        json={"query": "{ competitors { totalCount } }"},
        headers={"accept": "application/graphql-response+json"},
    )

    assert plain.status_code == 200
    assert plain.headers["content-type"].startswith("application/json")
    assert modern.status_code == 400
    assert modern.headers["content-type"].startswith("application/graphql-response+json")
    assert "data" not in modern.json()
    assert fine.status_code == 200
    assert fine.headers["content-type"].startswith("application/graphql-response+json")
    assert plain.headers["x-request-id"]


async def test_page_size_is_capped_with_a_clear_error(gql: GraphQLClient) -> None:
    body = await gql(LIST, first=101)

    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "PAGE_SIZE_EXCEEDED"
    assert "100" in body["errors"][0]["message"]


async def test_a_forged_cursor_is_a_clear_error(gql: GraphQLClient) -> None:
    body = await gql('{ opportunities(after: "bogus") { totalCount } }')

    assert body["errors"][0]["extensions"]["code"] == "BAD_CURSOR"


async def test_pages_follow_each_other_forwards_and_backwards(gql: GraphQLClient) -> None:
    names = [f"Deal {i}" for i in range(5)]
    for name in names:
        await create_opportunity(gql, name=name)
    page = """
    query($first: Int, $after: String, $last: Int, $before: String) {
      opportunities(first: $first, after: $after, last: $last, before: $before,
                    orderBy: {field: NAME, direction: ASC}) {
        totalCount
        edges { cursor node { name } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      }
    }"""

    first = (await gql(page, first=2))["data"]["opportunities"]
    second = (await gql(page, first=2, after=first["pageInfo"]["endCursor"]))["data"][
        "opportunities"
    ]
    back = (await gql(page, last=2, before=second["pageInfo"]["startCursor"]))["data"][
        "opportunities"
    ]

    assert [e["node"]["name"] for e in first["edges"]] == names[:2]
    assert [e["node"]["name"] for e in second["edges"]] == names[2:4]
    assert [e["node"]["name"] for e in back["edges"]] == names[:2]
    assert first["totalCount"] == 5
    assert (first["pageInfo"]["hasNextPage"], first["pageInfo"]["hasPreviousPage"]) == (
        True,
        False,
    )
    assert second["pageInfo"]["hasPreviousPage"] is True


async def test_filters_narrow_the_list(gql: GraphQLClient) -> None:
    await create_opportunity(gql, name="Alpha", customerName="Contoso")
    await create_opportunity(gql, name="Beta", customerName="Fabrikam")
    query = """
    query($filter: OpportunityFilter) {
      opportunities(filter: $filter) { totalCount nodes { name } }
    }"""

    by_customer = await gql(query, filter={"customerName": "fabri"})
    by_state = await gql(query, filter={"state": ["WON"]})
    by_name = await gql(query, filter={"nameContains": "alp", "hasOpenQuotes": False})

    assert by_customer["data"]["opportunities"]["nodes"] == [{"name": "Beta"}]
    assert by_state["data"]["opportunities"]["totalCount"] == 0
    assert by_name["data"]["opportunities"]["nodes"] == [{"name": "Alpha"}]


async def test_node_resolves_every_kind_of_id(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)
    competitor = (await gql(CREATE_COMPETITOR, input={"name": "Trey"}))["data"]["createCompetitor"][
        "competitor"
    ]

    quote = await create_quote(gql, opportunity["id"])
    closed = (
        await gql(
            CLOSE_OPPORTUNITY,
            input={"opportunityId": opportunity["id"], "outcome": "LOST", "closeOpenQuotes": True},
        )
    )["data"]["closeOpportunity"]
    close_id = closed["opportunityClose"]["id"]
    record_id = (
        await gql("query($id: ID!) { quote(id: $id) { closeRecord { id } } }", id=quote["id"])
    )["data"]["quote"]["closeRecord"]["id"]

    body = await gql(
        """query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }""",
        ids=[opportunity["id"], competitor["id"], "bogus", quote["id"], close_id, record_id],
    )

    assert body["data"]["nodes"] == [
        {"__typename": "Opportunity", "id": opportunity["id"]},
        {"__typename": "Competitor", "id": competitor["id"]},
        None,
        {"__typename": "Quote", "id": quote["id"]},
        {"__typename": "OpportunityClose", "id": close_id},
        {"__typename": "QuoteClose", "id": record_id},
    ]


async def test_deep_queries_are_refused(gql: GraphQLClient) -> None:
    nested = "opportunity { name }"
    for _ in range(4):
        nested = f"opportunity {{ quotes {{ nodes {{ {nested} }} }} }}"
    deep = f"{{ opportunities {{ nodes {{ quotes {{ nodes {{ {nested} }} }} }} }} }}"

    body = await gql(deep)

    assert body.get("data") is None
    assert "depth" in body["errors"][0]["message"].lower()


async def test_too_many_aliases_are_refused(gql: GraphQLClient) -> None:
    aliases = " ".join(f"a{i}: competitors {{ totalCount }}" for i in range(40))

    body = await gql(f"{{ {aliases} }}")

    assert "aliases" in body["errors"][0]["message"].lower()


async def test_oversized_bodies_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", json={"query": "{ competitors { totalCount } }", "pad": "x" * 1_100_000}
    )

    assert response.status_code == 413


async def test_overlong_documents_are_refused_by_the_token_limit(gql: GraphQLClient) -> None:
    fields = " ".join("totalCount" for _ in range(2100))

    body = await gql(f"{{ competitors {{ {fields} }} }}")

    assert body.get("data") is None
    assert "token" in body["errors"][0]["message"].lower()


async def test_cross_origin_requests_are_allowed_only_from_configured_origins(
    settings: Settings,
) -> None:
    app = create_app(replace(settings, cors_origins=("https://app.example",)))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        allowed = await http.options(
            "/graphql",
            headers={
                "origin": "https://app.example",
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type",
            },
        )
        other = await http.post(
            "/graphql",
            json={"query": "{ competitors { totalCount } }"},
            headers={"origin": "https://evil.example"},
        )
    await app.state.engine.dispose()

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in other.headers


async def test_nested_lists_answer_the_same_through_fragments_aliases_and_filters(
    gql: GraphQLClient,
) -> None:
    opportunity = await create_opportunity(gql, name="Nested")
    draft = await create_quote(gql, opportunity["id"])
    closed = await create_quote(gql, opportunity["id"])
    await gql(CLOSE_QUOTE, input={"quoteId": closed["id"]})
    query = """
    fragment Item on Opportunity {
      openQuoteCount
      open: quotes(filter: {isOpen: true}) { totalCount nodes { id closeRecord { id } } }
      all: quotes { totalCount nodes { id closeRecord { statusReason } } }
      closeHistory { id }
    }
    query {
      opportunities { edges { node { ...Item } } nodes { ... on Opportunity { name } } }
    }"""

    body = await gql(query)

    assert "errors" not in body, body
    [edge] = body["data"]["opportunities"]["edges"]
    item = edge["node"]
    assert item["openQuoteCount"] == 1
    assert item["open"] == {"totalCount": 1, "nodes": [{"id": draft["id"], "closeRecord": None}]}
    assert item["all"]["totalCount"] == 2
    assert [q["closeRecord"] for q in item["all"]["nodes"]] == [None, {"statusReason": "LOST"}]
    assert item["closeHistory"] == []
    assert body["data"]["opportunities"]["nodes"] == [{"name": "Nested"}]


async def test_every_operation_is_logged_with_its_request_id(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="gql_service.operations"):
        response = await client.post(
            "/graphql", json={"query": "query Count { competitors { totalCount } }"}
        )
        await client.post("/graphql", json={"query": "{ nope }"})

    [ok_line, bad_line] = [r.getMessage() for r in caplog.records]
    assert f"request={response.headers['x-request-id']}" in ok_line
    assert "operation=Count type=query" in ok_line
    assert "errors=0" in ok_line
    assert "operation=- type=query" in bad_line
    assert "errors=1" in bad_line
