"""Idempotency-Key: a retried mutation runs once and gets the first response back."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gql_service.app import create_app
from gql_service.idempotency import IdempotencyStore, request_hash
from gql_service.settings import Settings
from tests.conftest import GraphQLClient
from tests.operations import (
    CLOSE_OPPORTUNITY,
    CLOSE_QUOTES,
    CREATE_OPPORTUNITY,
    create_opportunity,
    create_quote,
    ok,
    read_opportunity,
)

KEY = "0b6f8f0e-6e8a-4d1e-9a55-3a1f4c2f9d10"
LIST = "{ opportunities(first: 100) { totalCount nodes { name createdBy } } }"
COMPETITORS = "{ competitors(first: 100) { totalCount } }"
TWO_FIELDS = """
mutation($close: CloseOpportunityInput!, $competitor: CreateCompetitorInput!) {
  closeOpportunity(input: $close) { opportunity { state version } errors { __typename } }
  createCompetitor(input: $competitor) { competitor { name } errors { __typename } }
}"""
NEW_OPPORTUNITY = {"name": "Retried deal", "customerName": "Fabrikam", "currencyCode": "EUR"}


def body_of(query: str, **variables: Any) -> bytes:
    return orjson.dumps({"query": query, "variables": variables})


async def post(
    client: httpx.AsyncClient, body: bytes, key: str | None = KEY, **headers: str
) -> httpx.Response:
    sent = {"content-type": "application/json", **headers}
    if key is not None:
        sent["idempotency-key"] = key
    return await client.post("/graphql", content=body, headers=sent)


def replayed(response: httpx.Response) -> bool:
    return response.headers.get("idempotent-replayed") == "true"


async def count(engine: AsyncEngine, sql: str, **params: Any) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text(sql), params)).scalar_one())


async def test_ten_concurrent_identical_closes_execute_once_and_replay_nine(
    client: httpx.AsyncClient, gql: GraphQLClient, engine: AsyncEngine
) -> None:
    opportunity = await create_opportunity(gql)
    body = body_of(
        CLOSE_OPPORTUNITY,
        input={"opportunityId": opportunity["id"], "outcome": "WON", "description": "Signed"},
    )

    responses = await asyncio.gather(*(post(client, body) for _ in range(10)))

    assert [r.status_code for r in responses] == [200] * 10
    assert len({r.content for r in responses}) == 1, "every caller sees the same body"
    assert sorted(replayed(r) for r in responses) == [False] + [True] * 9
    ok(responses[0].json(), "closeOpportunity")
    after = await read_opportunity(gql, opportunity["id"])
    assert after["state"] == "WON"
    assert after["version"] == opportunity["version"] + 1
    assert len(after["closeHistory"]) == 1
    assert await count(engine, "SELECT count(*) FROM opportunity_close") == 1
    assert await count(engine, "SELECT count(*) FROM idempotency_key") == 1


async def test_a_retried_create_replays_the_first_response_and_creates_once(
    client: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    body = body_of(CREATE_OPPORTUNITY, input=NEW_OPPORTUNITY)

    first = await post(client, body)
    # Same request, other spelling: key order and whitespace do not make it another request.
    respelled = orjson.dumps(
        {
            "variables": {"input": dict(reversed(NEW_OPPORTUNITY.items()))},
            "query": CREATE_OPPORTUNITY,
        },
        option=orjson.OPT_INDENT_2,
    )
    second = await post(client, respelled)

    assert not replayed(first)
    assert replayed(second)
    assert (second.status_code, second.content) == (first.status_code, first.content)
    assert second.headers["content-type"].startswith("application/json")
    assert (await gql(LIST))["data"]["opportunities"]["totalCount"] == 1


async def test_a_replay_follows_the_media_type_the_retry_accepts(client: httpx.AsyncClient) -> None:
    body = body_of(CREATE_OPPORTUNITY, input=NEW_OPPORTUNITY)
    first = await post(client, body)

    second = await post(client, body, accept="application/graphql-response+json")

    assert replayed(second)
    assert second.content == first.content
    assert second.headers["content-type"].startswith("application/graphql-response+json")


async def test_the_same_key_with_another_request_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    opportunity = await create_opportunity(gql)
    lost = {"opportunityId": opportunity["id"], "outcome": "LOST"}
    await post(client, body_of(CLOSE_OPPORTUNITY, input=lost))
    before = await read_opportunity(gql, opportunity["id"])

    for accept in ("application/json", "application/graphql-response+json"):
        refused = await post(
            client, body_of(CLOSE_OPPORTUNITY, input={**lost, "outcome": "WON"}), accept=accept
        )
        assert refused.status_code == 422
        assert refused.json() == {
            "errors": [
                {
                    "message": refused.json()["errors"][0]["message"],
                    "extensions": {"code": "IDEMPOTENCY_KEY_REUSED"},
                }
            ]
        }
        assert not replayed(refused)
    assert await read_opportunity(gql, opportunity["id"]) == before


async def test_a_refused_mutation_leaves_its_key_unspent(
    client: httpx.AsyncClient, gql: GraphQLClient, engine: AsyncEngine
) -> None:
    opportunity = await create_opportunity(gql)
    await create_quote(gql, opportunity["id"])
    body = body_of(CLOSE_OPPORTUNITY, input={"opportunityId": opportunity["id"], "outcome": "WON"})

    refused = (await post(client, body)).json()
    assert refused["data"]["closeOpportunity"]["errors"][0]["code"] == "OPPORTUNITY_HAS_OPEN_QUOTES"
    assert await count(engine, "SELECT count(*) FROM idempotency_key") == 0
    ok(await gql(CLOSE_QUOTES, input={"opportunityId": opportunity["id"]}), "closeQuotes")

    retried = await post(client, body)

    assert not replayed(retried)
    ok(retried.json(), "closeOpportunity")
    assert (await read_opportunity(gql, opportunity["id"]))["state"] == "WON"


async def test_an_expired_key_runs_the_request_again(
    client: httpx.AsyncClient, gql: GraphQLClient, engine: AsyncEngine
) -> None:
    body = body_of(CREATE_OPPORTUNITY, input=NEW_OPPORTUNITY)
    await post(client, body)
    async with engine.begin() as connection:
        await connection.execute(
            text("UPDATE idempotency_key SET expires_at = :past"),
            {"past": _stored(engine, datetime.now(UTC) - timedelta(seconds=1))},
        )

    again = await post(client, body)

    assert not replayed(again)
    ok(again.json(), "createOpportunity")
    assert (await gql(LIST))["data"]["opportunities"]["totalCount"] == 2
    assert await count(engine, "SELECT count(*) FROM idempotency_key") == 1


async def test_expired_keys_are_purged_and_live_ones_kept(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    for key in ("old-1", "old-2", "live"):
        await post(client, body_of(CREATE_OPPORTUNITY, input=NEW_OPPORTUNITY), key=key)
    async with engine.begin() as connection:
        await connection.execute(
            text("UPDATE idempotency_key SET expires_at = :past WHERE key LIKE 'old-%'"),
            {"past": _stored(engine, datetime.now(UTC) - timedelta(seconds=1))},
        )

    purged = await IdempotencyStore(engine).purge_expired(datetime.now(UTC))

    assert purged == 2
    assert await count(engine, "SELECT count(*) FROM idempotency_key WHERE key = 'live'") == 1
    assert await count(engine, "SELECT count(*) FROM idempotency_key") == 1


@pytest.fixture
async def other_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """Another principal on the same database (until authentication names callers)."""
    app = create_app(dataclasses.replace(settings, acting_user="someone-else"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http
    await app.state.engine.dispose()


async def test_another_principal_with_the_same_key_is_independent(
    client: httpx.AsyncClient, other_client: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    body = body_of(CREATE_OPPORTUNITY, input=NEW_OPPORTUNITY)

    mine = await post(client, body)
    theirs = await post(other_client, body)

    assert not replayed(mine)
    assert not replayed(theirs)
    creators = sorted(n["createdBy"] for n in (await gql(LIST))["data"]["opportunities"]["nodes"])
    assert creators == ["someone-else", "tester"]


async def test_a_query_ignores_the_key(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    first = await post(client, body_of(LIST))
    second = await post(client, body_of(COMPETITORS))

    assert first.status_code == second.status_code == 200
    assert not replayed(second)
    assert "competitors" in second.json()["data"]
    assert await count(engine, "SELECT count(*) FROM idempotency_key") == 0


async def test_a_document_with_two_mutations_spends_the_key_once_for_both(
    client: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    opportunity = await create_opportunity(gql)
    await create_quote(gql, opportunity["id"])
    # The close is refused (open quote) and rolls back; the claim commits with the competitor.
    body = body_of(
        TWO_FIELDS,
        close={"opportunityId": opportunity["id"], "outcome": "WON"},
        competitor={"name": "Proseware"},
    )

    first = await post(client, body)
    second = await post(client, body)

    result = first.json()["data"]
    assert result["closeOpportunity"]["errors"] == [{"__typename": "OpportunityHasOpenQuotesError"}]
    assert result["createCompetitor"]["errors"] == []
    assert replayed(second)
    assert second.content == first.content
    assert (await gql(COMPETITORS))["data"]["competitors"]["totalCount"] == 1


@pytest.mark.parametrize(
    "header",
    [b"", b"   ", b"x" * 256, b"has space", b'"unterminated', b"caf\xc3\xa9", b"tab\there"],
    ids=["empty", "blank", "too-long", "space", "quote", "non-ascii", "control"],
)
async def test_a_malformed_key_is_refused_with_400_before_anything_runs(
    client: httpx.AsyncClient, gql: GraphQLClient, header: bytes
) -> None:
    response = await client.post(
        "/graphql",
        content=body_of(CREATE_OPPORTUNITY, input=NEW_OPPORTUNITY),
        headers=[(b"content-type", b"application/json"), (b"idempotency-key", header)],
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "IDEMPOTENCY_KEY_INVALID"
    assert "data" not in response.json()
    assert (await gql(LIST))["data"]["opportunities"]["totalCount"] == 0


async def test_two_keys_in_one_request_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql",
        content=body_of(LIST),
        headers=[
            (b"content-type", b"application/json"),
            (b"idempotency-key", b"a"),
            (b"idempotency-key", b"b"),
        ],
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "IDEMPOTENCY_KEY_INVALID"


async def test_a_quoted_key_and_a_bare_key_are_the_same_key(client: httpx.AsyncClient) -> None:
    body = body_of(CREATE_OPPORTUNITY, input=NEW_OPPORTUNITY)

    first = await post(client, body, key=KEY)
    second = await post(client, body, key=f'"{KEY}"')

    assert replayed(second)
    assert second.content == first.content


@pytest.fixture
async def impatient_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(dataclasses.replace(settings, idempotency_wait_ms=0))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http
    await app.state.engine.dispose()


async def test_a_twin_of_an_unfinished_request_gets_409_after_the_wait(
    impatient_client: httpx.AsyncClient, engine: AsyncEngine, gql: GraphQLClient
) -> None:
    body = body_of(CREATE_OPPORTUNITY, input=NEW_OPPORTUNITY)
    # A request that claimed the key and has not stored its response (yet).
    now = datetime.now(UTC)
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO idempotency_key (principal, key, request_hash, created_at, expires_at)"
                " VALUES ('tester', :key, :hash, :now, :later)"
            ),
            {
                "key": KEY,
                "hash": request_hash(body),
                "now": _stored(engine, now),
                "later": _stored(engine, now + timedelta(hours=1)),
            },
        )

    response = await post(impatient_client, body)

    assert response.status_code == 409
    error = response.json()["errors"][0]
    assert error["extensions"] == {"code": "IDEMPOTENCY_KEY_IN_PROGRESS", "retryAfter": 1}
    assert response.headers["retry-after"] == "1"
    assert (await gql(LIST))["data"]["opportunities"]["totalCount"] == 0


def _stored(engine: AsyncEngine, moment: datetime) -> Any:
    # Raw SQL bypasses the column type: SQLite keeps the text SQLAlchemy would have written.
    if engine.dialect.name == "sqlite":
        return moment.replace(tzinfo=None).isoformat(sep=" ")
    return moment


def test_the_request_hash_ignores_spelling_but_not_meaning() -> None:
    a = request_hash(b'{"query": "mutation { x }", "variables": {"a": 1, "b": 2}}')
    b = request_hash(b'{"variables":{"b":2,"a":1},"query":"mutation { x }"}')
    c = request_hash(b'{"query": "mutation { x }", "variables": {"a": 1, "b": 3}}')
    persisted = request_hash(
        orjson.dumps(
            {
                "extensions": {
                    "persistedQuery": {
                        "version": 1,
                        "sha256Hash": hashlib.sha256(b"mutation { x }").hexdigest(),
                    }
                },
                "variables": {"a": 1, "b": 2},
            }
        )
    )

    assert a == b == persisted
    assert a != c
    assert request_hash(b"not json") != request_hash(b"not json either")
