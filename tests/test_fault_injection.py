"""A failure midway through closeQuotes changes nothing, and reaches the client masked."""

from __future__ import annotations

import logging

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import GraphQLClient
from tests.operations import (
    CLOSE_QUOTES,
    activate_quote,
    create_opportunity,
    create_quote,
    read_opportunity,
)

# The database itself refuses the second close record of a batch: a real failure after the
# quotes were updated and the first record was written, inside the same transaction.
SQLITE_TRIGGER = """
CREATE TRIGGER fail_midway BEFORE INSERT ON quote_close
WHEN (SELECT count(*) FROM quote_close WHERE batch_id = NEW.batch_id) >= 1
BEGIN SELECT RAISE(ABORT, 'injected failure'); END
"""
POSTGRES_TRIGGER = [
    """
    CREATE FUNCTION fail_midway() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF (SELECT count(*) FROM quote_close WHERE batch_id = NEW.batch_id) >= 1 THEN
        RAISE EXCEPTION 'injected failure';
      END IF;
      RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER fail_midway BEFORE INSERT ON quote_close
    FOR EACH ROW EXECUTE FUNCTION fail_midway()
    """,
]


async def install_failure(engine: AsyncEngine) -> None:
    statements = [SQLITE_TRIGGER] if engine.dialect.name == "sqlite" else POSTGRES_TRIGGER
    async with engine.begin() as connection:
        for statement in statements:
            await connection.execute(text(statement))


async def test_a_failure_midway_through_close_quotes_changes_nothing(
    gql: GraphQLClient,
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    opportunity = await create_opportunity(gql)
    draft = await create_quote(gql, opportunity["id"])
    active = await activate_quote(gql, (await create_quote(gql, opportunity["id"]))["id"])
    before = await read_opportunity(gql, opportunity["id"])
    await install_failure(engine)

    with caplog.at_level(logging.ERROR, logger="gql_service.errors"):
        response = await client.post(
            "/graphql",
            json={
                "query": CLOSE_QUOTES,
                "variables": {"input": {"opportunityId": opportunity["id"]}},
            },
        )

    body = response.json()
    [error] = body["errors"]
    assert error["message"] == "Unexpected error."
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    request_id = error["extensions"]["requestId"]
    assert request_id == response.headers["x-request-id"]
    assert "injected failure" not in response.text
    assert "quote_close" not in response.text
    assert any(request_id in r.getMessage() for r in caplog.records)
    after = await read_opportunity(gql, opportunity["id"])
    assert after == before
    assert {q["id"]: q["state"] for q in after["quotes"]["nodes"]} == {
        draft["id"]: "DRAFT",
        active["id"]: "ACTIVE",
    }
    async with engine.connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM quote_close"))).scalar() == 0
