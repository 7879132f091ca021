"""Malformed requests get a 400 GraphQL error with a code, and the connection stays usable."""

from __future__ import annotations

import asyncio
import contextvars

import httpx
import pytest

from gql_service.graphql import request_body
from gql_service.graphql.localized import LocalizedHTTPError
from gql_service.graphql.request_body import decoded_request
from gql_service.settings import Settings
from tests.live_server import Connection, live_server
from tests.operations import cost

COUNT = b'{"query": "{ competitors { totalCount } }"}'
DEEP_VARIABLES = (
    b'{"query": "query($v: String) { __typename }", "variables": {"v": '
    + b"[" * 1000
    + b"]" * 1000
    + b"}}"
)

MALFORMED = {
    "null": b"null",
    "number": b"5",
    "string": b'"x"',
    "not-utf8": b'{"query": "{ __typename }", "x": "\xff\xfe"}',
    "lone-surrogate": (
        b'{"query": "query($v: String) { __typename }", "variables": {"v": "\\ud800"}}'
    ),
    "batch": b'[{"query": "{ __typename }"}]',
    "deep-variables": DEEP_VARIABLES,
    "empty": b"",
    "truncated": b'{"query": ',
    "query-not-a-string": b'{"query": 5}',
    "variables-not-an-object": b'{"query": "{ __typename }", "variables": [1]}',
    "extensions-not-an-object": b'{"query": "{ __typename }", "extensions": "x"}',
    "operation-name-not-a-string": b'{"query": "{ __typename }", "operationName": 5}',
    "no-query": b"{}",
}


def assert_bad_request(status: int, body: dict[str, object]) -> None:
    assert status == 400
    [error] = body["errors"]  # type: ignore[misc]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert error["message"]
    assert "Traceback" not in str(body)


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_body_gets_a_400_graphql_error(
    client: httpx.AsyncClient, body: bytes
) -> None:
    response = await client.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )

    assert_bad_request(response.status_code, response.json())
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-request-id"]


async def test_a_wrong_content_type_gets_a_400_graphql_error(client: httpx.AsyncClient) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"content-type": content_type} if content_type else {}
        response = await client.post("/graphql", content=COUNT, headers=headers)
        assert_bad_request(response.status_code, response.json())


async def test_malformed_get_parameters_get_a_400_graphql_error(client: httpx.AsyncClient) -> None:
    for params in (
        {"query": "{ __typename }", "variables": "[1]"},
        {"query": "{ __typename }", "variables": "{"},
        {"query": "{ __typename }", "extensions": "5"},
    ):
        response = await client.get("/graphql", params=params)
        assert_bad_request(response.status_code, response.json())


async def test_refusals_follow_the_negotiated_media_type(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql",
        content=b"null",
        headers={
            "content-type": "application/json",
            "accept": "application/graphql-response+json",
        },
    )

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/graphql-response+json")


async def test_a_mutation_over_get_is_405_with_a_code(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/graphql",
        params={"query": 'mutation { createCompetitor(input: {name: "X"}) { __typename } }'},
    )

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"


async def test_empty_get_variables_are_no_variables(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/graphql", params={"query": "{ __typename }", "variables": "", "extensions": ""}
    )

    assert response.json() == {"data": {"__typename": "Query"}, **cost(0)}


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
async def test_malformed_bodies_keep_the_keep_alive_connection_over_a_real_server(
    settings: Settings,
) -> None:
    async with live_server(settings) as port:
        connection = await Connection.open(port)
        try:
            for body in MALFORMED.values():
                response = await connection.request(
                    "POST", "/graphql", body, {"content-type": "application/json"}
                )
                assert_bad_request(response.status, response.json())  # type: ignore[arg-type]
                assert response.headers.get("connection") != "close"
            wrong_type = await connection.request(
                "POST", "/graphql", COUNT, {"content-type": "text/plain"}
            )
            assert wrong_type.status == 400
            fine = await connection.request(
                "POST", "/graphql", COUNT, {"content-type": "application/json"}
            )
        finally:
            await connection.close()

    assert fine.status == 200
    assert fine.json() == {"data": {"competitors": {"totalCount": 0}}, **cost(1)}


async def test_a_body_is_decoded_once_per_request() -> None:
    """The fast lane decodes a POST body before the normal path answers what it leaves: the
    same bytes give the same decoded request, other bytes (even equal ones) are decoded anew,
    and another request's task starts with nothing remembered."""
    body = b'{"query": "{ __typename }", "variables": {"a": [1, {"b": 2}]}}'
    first = decoded_request(body, max_depth=8)
    assert decoded_request(body, max_depth=8) is first
    assert (first.query, first.variables) == ("{ __typename }", {"a": [1, {"b": 2}]})

    again = bytes(bytearray(body))
    assert again == body
    assert again is not body
    assert decoded_request(again, max_depth=8) is not first

    async def elsewhere() -> object:
        return request_body._DECODED.get()

    assert await asyncio.create_task(elsewhere(), context=contextvars.Context()) is None
    with pytest.raises(LocalizedHTTPError):  # a malformed body is still refused every time
        decoded_request(b"[]", max_depth=8)


@pytest.mark.parametrize("depth", [1, 31, 32, 33, 40])
@pytest.mark.parametrize("padding", [0, 100])
def test_json_is_refused_exactly_past_its_nesting_limit(depth: int, padding: int) -> None:
    # Brackets inside strings count toward nothing but the quick bound: with ``padding`` of
    # them the depth is still walked, and told the same.
    text = (
        '{"s": "' + "[{" * padding + '", "v": ' + "[" * (depth - 1) + "1" + "]" * (depth - 1) + "}"
    )
    if depth > 32:
        with pytest.raises(LocalizedHTTPError):
            request_body.decode_json(text.encode(), max_depth=32)
    else:
        assert request_body.decode_json(text.encode(), max_depth=32)["s"].startswith("[{" * padding)
