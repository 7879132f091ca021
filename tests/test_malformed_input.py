"""Malformed input gets a typed error or a GraphQL validation error: never a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import GraphQLClient
from tests.operations import (
    CLOSE_OPPORTUNITY,
    CREATE_COMPETITOR,
    CREATE_OPPORTUNITY,
    CREATE_QUOTE,
    OPPORTUNITY,
    create_opportunity,
    create_quote,
    error_codes,
    payload,
    read_opportunity,
)


@pytest.mark.parametrize(
    "bad_id",
    ["", "not-base64!", "T3Bwb3J0dW5pdHk6OTk5OTk", "UXVvdGU6MQ", "T3Bwb3J0dW5pdHk6LTE"],
    ids=["empty", "garbage", "unknown", "quote-id", "negative"],
)
async def test_a_bad_opportunity_id_is_not_found(gql: GraphQLClient, bad_id: str) -> None:
    result = payload(
        await gql(CLOSE_OPPORTUNITY, input={"opportunityId": bad_id, "outcome": "WON"}),
        "closeOpportunity",
    )

    assert error_codes(result) == ["NOT_FOUND"]
    assert result["errors"][0]["field"] == ["input", "opportunityId"]


async def test_an_opportunity_id_given_as_a_quote_id_is_not_found(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)
    from tests.operations import CLOSE_QUOTE

    result = payload(await gql(CLOSE_QUOTE, input={"quoteId": opportunity["id"]}), "closeQuote")

    assert error_codes(result) == ["NOT_FOUND"]
    assert result["errors"][0]["field"] == ["input", "quoteId"]


async def test_reading_an_unknown_or_malformed_id_gives_null(gql: GraphQLClient) -> None:
    for bad_id in ("nope", "T3Bwb3J0dW5pdHk6OTk5OTk", "UXVvdGU6MQ"):
        body = await gql(OPPORTUNITY, id=bad_id)
        assert body == {
            "data": {"opportunity": None},
            "extensions": {"cost": {"requested": 122, "maximum": 10_000}},
        }


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("outcome", "MAYBE", "outcome"),
        ("actualRevenue", "12,5", "Decimal"),
        ("actualRevenue", "abc", "Decimal"),
        ("closeDate", "2026-02-30", "Date"),
        ("closeDate", "yesterday", "Date"),
        ("expectedVersion", "one", "Int"),
    ],
)
async def test_bad_scalars_and_enums_are_graphql_validation_errors(
    client: httpx.AsyncClient, field: str, value: str, fragment: str
) -> None:
    variables = {"input": {"opportunityId": "x", "outcome": "WON", field: value}}
    response = await client.post(
        "/graphql",
        json={"query": CLOSE_OPPORTUNITY, "variables": variables},
        headers={"accept": "application/graphql-response+json"},
    )

    assert response.status_code == 400
    body = response.json()
    assert "data" not in body
    assert fragment in body["errors"][0]["message"]


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"currencyCode": "XYZ"}, "currencyCode"),
        ({"currencyCode": "eur"}, "currencyCode"),
        ({"name": "   "}, "name"),
        ({"name": "n" * 201}, "name"),
        ({"estimatedRevenue": "1.23456"}, "estimatedRevenue"),
        ({"estimatedRevenue": "1e20"}, "estimatedRevenue"),
        ({"estimatedRevenue": "NaN"}, "estimatedRevenue"),
        ({"estimatedRevenue": "-Infinity"}, "estimatedRevenue"),
    ],
)
async def test_out_of_range_values_are_typed_invalid_value_errors(
    gql: GraphQLClient, fields: dict[str, str], bad: str
) -> None:
    data = {"name": "N", "customerName": "C", "currencyCode": "EUR", **fields}

    result = payload(await gql(CREATE_OPPORTUNITY, input=data), "createOpportunity")

    assert error_codes(result) == ["INVALID_VALUE"]
    assert result["errors"][0]["field"] == ["input", bad]
    assert result["opportunity"] is None


async def test_every_invalid_field_is_reported_at_once(gql: GraphQLClient) -> None:
    data = {"name": "", "customerName": "", "currencyCode": "??", "estimatedRevenue": "-5"}

    result = payload(await gql(CREATE_OPPORTUNITY, input=data), "createOpportunity")

    assert [e["field"][1] for e in result["errors"]] == [
        "name",
        "customerName",
        "currencyCode",
        "estimatedRevenue",
    ]


async def test_trailing_zeros_beyond_four_decimals_are_accepted(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql, estimatedRevenue="10.500000")

    assert opportunity["estimatedRevenue"] == "10.5000"


async def test_a_bad_quote_changes_nothing(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)
    await create_quote(gql, opportunity["id"])

    result = payload(
        await gql(
            CREATE_QUOTE,
            input={
                "opportunityId": opportunity["id"],
                "name": "",
                "totalAmount": "-1",
                "effectiveFrom": "2026-05-01",
                "effectiveTo": "2026-04-01",
            },
        ),
        "createQuote",
    )

    assert [e["field"][1] for e in result["errors"]] == ["name", "totalAmount", "effectiveTo"]
    after = await read_opportunity(gql, opportunity["id"])
    assert after["quotes"]["totalCount"] == 1
    assert after["version"] == opportunity["version"] + 1


async def test_a_duplicate_competitor_name_is_refused(gql: GraphQLClient) -> None:
    await gql(CREATE_COMPETITOR, input={"name": "Proseware"})

    result = payload(await gql(CREATE_COMPETITOR, input={"name": "proseware "}), "createCompetitor")

    assert error_codes(result) == ["INVALID_VALUE"]
    assert result["errors"][0]["field"] == ["input", "name"]
