"""Parse, validation and limit refusals: every top-level error carries a code."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
import pytest
from graphql import get_introspection_query

from gql_service.app import create_app
from gql_service.settings import Settings
from tests.conftest import GraphQLClient

MODERN = {"accept": "application/graphql-response+json"}
COUNT = "{ competitors { totalCount } }"
UNKNOWN_FRAGMENT = "{ ...Missing }"
SYNTAX_ERROR = "{ competitors { totalCount }"
UNKNOWN_FIELD = "{ competitors { totalCont } }"
TWO_OPERATIONS = "query Count { competitors { totalCount } } query Name { __typename }"
FRAGMENT_CYCLE = "fragment A on Query { ...B } fragment B on Query { ...A } { ...A }"
ONLY_A_FRAGMENT = "fragment A on Query { __typename }"
LIST = "query($first: Int!) { opportunities(first: $first) { totalCount } }"
ORDERED = "query($order: OpportunityOrder) { opportunities(orderBy: $order) { totalCount } }"
BAD_ENUM_LITERAL = "{ opportunities(orderBy: {field: NAMEE}) { totalCount } }"
INTROSPECTION = "{ __schema { queryType { name } } }"
TYPE_INTROSPECTION = '{ __type(name: "Opportunity") { name } }'
TYPENAME = "{ __typename }"
NESTED_TOO_DEEP = (
    "{ opportunities { nodes { "
    + ("quotes { nodes { opportunity { " * 33 + "id" + " } } }" * 33)
    + " } } }"
)
DEEP_THROUGH_FRAGMENTS = """
fragment Q on Opportunity { quotes { nodes { opportunity { ...R } } } }
fragment R on Opportunity { quotes { nodes { opportunity { ...S } } } }
fragment S on Opportunity { quotes { nodes { opportunity { name } } } }
{ opportunities { nodes { ...Q } } }
"""
ALIASES_THROUGH_FRAGMENTS = """
fragment Names on Query { a: __typename b: __typename c: __typename d: __typename }
{ ...Names x1: competitors { ...More } x2: competitors { ...More } x3: competitors { ...More } }
fragment More on CompetitorConnection {
  t1: totalCount t2: totalCount t3: totalCount t4: totalCount t5: totalCount t6: totalCount
  t7: totalCount t8: totalCount t9: totalCount t10: totalCount t11: totalCount t12: totalCount
}
"""
DUPLICATE_FIELDS = "{ competitors { " + " ".join(["totalCount"] * 1900) + " } }"
TEN_THOUSAND_ALIASES = "{ " + " ".join(f"a{i}: __typename" for i in range(10_000)) + " }"
FRAGMENT_CHAIN = (
    "fragment F0 on Query { competitors { totalCount } }\n"
    + "\n".join(f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, 31))
    + "\n{ ...F30 }"
)


def codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body["errors"]]


async def test_an_unknown_fragment_is_a_validation_error_not_a_missing_key(
    gql: GraphQLClient,
) -> None:
    body = await gql(UNKNOWN_FRAGMENT)

    assert body.get("data") is None
    assert codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
    assert body["errors"][0]["message"] == "Unknown fragment 'Missing'."


async def test_syntax_errors_are_coded_and_answered_400_under_graphql_response_json(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/graphql", json={"query": SYNTAX_ERROR}, headers=MODERN)

    assert response.status_code == 400
    body = response.json()
    assert codes(body) == ["GRAPHQL_PARSE_FAILED"]
    assert body["errors"][0]["message"].startswith("Syntax Error:")
    assert body["errors"][0]["locations"] == [{"line": 1, "column": 29}]


async def test_validation_errors_are_coded(gql: GraphQLClient) -> None:
    body = await gql(UNKNOWN_FIELD)

    assert codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
    assert "Did you mean 'totalCount'?" in body["errors"][0]["message"]


async def test_variables_that_do_not_coerce_are_bad_user_input(gql: GraphQLClient) -> None:
    missing = await gql(LIST)
    wrong = await gql(LIST, first="many")

    assert missing.get("data") is None
    assert codes(missing) == ["BAD_USER_INPUT"]
    assert codes(wrong) == ["BAD_USER_INPUT"]
    assert "$first" in wrong["errors"][0]["message"]


async def test_an_unknown_operation_name_is_a_coded_graphql_error(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/graphql", json={"query": TWO_OPERATIONS, "operationName": "Nope"}, headers=MODERN
    )

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/graphql-response+json"
    body = response.json()
    assert codes(body) == ["OPERATION_RESOLUTION_FAILURE"]
    assert body["errors"][0]["message"] == "Unknown operation named 'Nope'."


async def test_several_operations_without_an_operation_name_is_a_coded_graphql_error(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/graphql", json={"query": TWO_OPERATIONS})
    chosen = await client.post("/graphql", json={"query": TWO_OPERATIONS, "operationName": "Name"})

    assert response.status_code == 200
    assert codes(response.json()) == ["OPERATION_RESOLUTION_FAILURE"]
    assert chosen.json()["data"] == {"__typename": "Query"}


async def test_a_document_without_an_operation_is_a_validation_error(gql: GraphQLClient) -> None:
    body = await gql(ONLY_A_FRAGMENT)

    assert codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
    assert body["errors"][0]["message"] == "Fragment 'A' is never used."


async def test_fragment_cycles_are_validation_errors(gql: GraphQLClient) -> None:
    body = await gql(FRAGMENT_CYCLE)

    assert set(codes(body)) == {"GRAPHQL_VALIDATION_FAILED"}
    assert "Cannot spread fragment 'A' within itself" in body["errors"][0]["message"]


async def test_the_token_limit_is_coded(gql: GraphQLClient) -> None:
    body = await gql(TEN_THOUSAND_ALIASES)

    assert codes(body) == ["TOO_MANY_TOKENS"]
    assert body["errors"][0]["extensions"]["maximum"] == 2_000
    assert "tokens" in body["errors"][0]["message"]


async def test_comments_count_towards_the_token_limit(gql: GraphQLClient) -> None:
    padded = await gql("# padding\n" * 2_500 + "{ __typename }")
    short = await gql("# padding\n" * 100 + "{ __typename }")

    assert codes(padded) == ["TOO_MANY_TOKENS"]
    assert short["data"] == {"__typename": "Query"}


async def test_depth_100_is_refused_with_its_depth(gql: GraphQLClient) -> None:
    body = await gql(NESTED_TOO_DEEP)

    assert body.get("data") is None
    [error] = body["errors"]
    assert error["extensions"] == {"code": "QUERY_TOO_DEEP", "requested": 101, "maximum": 10}


async def test_depth_counts_through_fragments(gql: GraphQLClient) -> None:
    body = await gql(DEEP_THROUGH_FRAGMENTS)

    assert codes(body) == ["QUERY_TOO_DEEP"]
    assert body["errors"][0]["extensions"]["requested"] == 11


async def test_aliases_count_every_fragment_spread(gql: GraphQLClient) -> None:
    body = await gql(ALIASES_THROUGH_FRAGMENTS)

    assert codes(body) == ["TOO_MANY_ALIASES"]
    assert body["errors"][0]["extensions"]["requested"] == 4 + 3 + 3 * 12


async def test_a_field_repeated_1900_times_is_refused_before_validation(
    gql: GraphQLClient,
) -> None:
    body = await gql(DUPLICATE_FIELDS)

    [error] = body["errors"]
    assert error["extensions"] == {
        "code": "TOO_MANY_REPEATED_FIELDS",
        "field": "totalCount",
        "requested": 1900,
        "maximum": 10,
    }


async def test_a_chain_of_fragments_each_spreading_the_previous_twice_is_refused(
    gql: GraphQLClient,
) -> None:
    body = await gql(FRAGMENT_CHAIN)

    [error] = body["errors"]
    assert error["extensions"]["code"] == "TOO_MANY_REPEATED_FIELDS"
    assert error["extensions"]["requested"] == 2**30


async def test_limits_follow_their_settings(settings: Settings) -> None:
    tight = replace(settings, max_query_depth=1, max_aliases=0, max_field_repeats=1)
    app = create_app(tight)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        deep = await http.post("/graphql", json={"query": "{ competitors { nodes { id } } }"})
        aliased = await http.post("/graphql", json={"query": "{ n: __typename }"})
        repeated = await http.post("/graphql", json={"query": "{ __typename __typename }"})
        fine = await http.post("/graphql", json={"query": COUNT})
    await app.state.engine.dispose()

    assert codes(deep.json()) == ["QUERY_TOO_DEEP"]
    assert codes(aliased.json()) == ["TOO_MANY_ALIASES"]
    assert codes(repeated.json()) == ["TOO_MANY_REPEATED_FIELDS"]
    assert fine.json()["data"] == {"competitors": {"totalCount": 0}}


@pytest.fixture
async def locked_down(settings: Settings) -> Any:
    """A client on an app with introspection and field suggestions off."""
    app = create_app(replace(settings, introspection=False, field_suggestions=False))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        yield GraphQLClient(http)
    await app.state.engine.dispose()


async def test_introspection_is_refused_when_switched_off(locked_down: GraphQLClient) -> None:
    schema = await locked_down(INTROSPECTION)
    type_ = await locked_down(TYPE_INTROSPECTION)
    typename = await locked_down(TYPENAME)

    assert set(codes(schema)) == {"GRAPHQL_VALIDATION_FAILED"}
    assert "introspection" in schema["errors"][0]["message"]
    assert set(codes(type_)) == {"GRAPHQL_VALIDATION_FAILED"}
    assert typename == {
        "data": {"__typename": "Query"},
        "extensions": {"cost": {"requested": 0, "maximum": 10_000}},
    }


async def test_the_standard_introspection_query_is_answered_by_default(
    gql: GraphQLClient,
) -> None:
    body = await gql(get_introspection_query())

    assert "errors" not in body
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"
    assert body["extensions"]["cost"]["requested"] == 1_000


async def test_no_suggestions_when_switched_off(locked_down: GraphQLClient) -> None:
    field = await locked_down(UNKNOWN_FIELD)
    literal = await locked_down(BAD_ENUM_LITERAL)
    variable = await locked_down(ORDERED, order={"field": "NAMEE"})

    assert field["errors"][0]["message"] == (
        "Cannot query field 'totalCont' on type 'CompetitorConnection'."
    )
    assert codes(field) == ["GRAPHQL_VALIDATION_FAILED"]
    assert codes(literal) == ["GRAPHQL_VALIDATION_FAILED"]
    assert codes(variable) == ["BAD_USER_INPUT"]
    for body in (literal, variable):
        assert "NAMEE" in body["errors"][0]["message"]
        assert "Did you mean" not in body["errors"][0]["message"]


async def test_suggestions_are_given_by_default(gql: GraphQLClient) -> None:
    variable = await gql(ORDERED, order={"field": "NAMEE"})

    assert codes(variable) == ["BAD_USER_INPUT"]
    assert "Did you mean the enum value 'NAME'?" in variable["errors"][0]["message"]
