"""Clean failures when the database is not there: SERVICE_UNAVAILABLE, a retry hint, one line.

The faults that need a cluster of their own (stopped, frozen) are in test_postgres_outage.py.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gql_service.app import create_app
from gql_service.database import create_engine, driver_reads, reads_engine
from gql_service.graphql import fast_writes
from gql_service.outages import OutageGuard, OutageLog
from gql_service.settings import Settings
from tests.conftest import GraphQLClient
from tests.operations import CREATE_OPPORTUNITY, cost, create_opportunity, read_opportunity
from tests.postgres import terminate_sessions

# Port 9 (discard) has no listener on loopback: every connection attempt is refused.
REFUSED_URL = "postgresql+psycopg://nobody@127.0.0.1:9/none"
LIST = "{ opportunities(first: 5) { totalCount nodes { id name } } }"
CREATE = {"input": {"name": "Retry me", "customerName": "Contoso", "currencyCode": "EUR"}}
GRAPHQL_RESPONSE = {"accept": "application/graphql-response+json"}


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Starlette]]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http, app
    await app.state.engine.dispose()


def assert_service_unavailable(response: httpx.Response, retry_after: int = 2) -> str:
    """The response is a clean SERVICE_UNAVAILABLE; returns its message."""
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == str(retry_after)
    body = response.json()
    [error] = body["errors"]
    assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    assert error["extensions"]["retryAfter"] == retry_after
    assert error["extensions"]["requestId"] == response.headers["x-request-id"]
    assert body.get("data") is None
    for leak in ("Traceback", "psycopg", "sqlalchemy", "SELECT", "INSERT", "127.0.0.1"):
        assert leak not in response.text
    message: str = error["message"]
    return message


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Warnings and errors, less the development-mode banner that every start-up logs."""
    return [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING and not r.getMessage().startswith("!!! DEVELOPMENT MODE")
    ]


@pytest.mark.parametrize("settings", ["postgres"], indirect=True)
async def test_requests_succeed_after_the_server_killed_every_session(
    settings: Settings, gql: GraphQLClient
) -> None:
    opportunity = await create_opportunity(gql)
    killed = await terminate_sessions(settings.database_url)
    assert killed

    assert (await read_opportunity(gql, opportunity["id"]))["id"] == opportunity["id"]
    assert (await create_opportunity(gql))["state"] == "OPEN"


async def test_a_refused_connection_is_service_unavailable_logged_once_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(database_url=REFUSED_URL)
    with caplog.at_level(logging.INFO):
        async with serve(settings) as (http, _):
            queries = [
                await http.post("/graphql", json={"query": LIST}, headers=GRAPHQL_RESPONSE)
                for _ in range(20)
            ]
            mutations = [
                await http.post("/graphql", json={"query": CREATE_OPPORTUNITY, "variables": CREATE})
                for _ in range(20)
            ]
            ready = await http.get("/readyz")

    for response in queries:
        message = assert_service_unavailable(response)
        assert message == (
            "The service is unavailable: its database did not answer. Retry after 2 seconds."
        )
    for response in mutations:
        message = assert_service_unavailable(response)
        assert "the mutation was not applied" in message
        assert "Idempotency-Key" in message
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable"}
    lines = outage_lines(caplog)
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert lines[0].exc_info is None
    assert "Connection refused" in lines[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)


@pytest.mark.parametrize("settings", ["postgres"], indirect=True)
async def test_a_statement_timeout_is_service_unavailable(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = replace(settings, statement_timeout_ms=200)
    async with serve(settings) as (http, app), app.state.engine.connect() as blocker:
        # Another session holds a lock that every read of the table waits for.
        await blocker.execute(text("LOCK TABLE opportunity IN ACCESS EXCLUSIVE MODE"))
        with caplog.at_level(logging.WARNING):
            response = await http.post("/graphql", json={"query": LIST})
        await blocker.rollback()
        after = await http.post("/graphql", json={"query": LIST})

    assert_service_unavailable(response)
    [line] = outage_lines(caplog)
    assert "57014" in line.getMessage()
    assert after.status_code == 200
    assert "errors" not in after.json()


SLOW_COMMIT = [
    """
    CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_sleep(10); RETURN NULL; END $$
    """,
    """
    CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON opportunity
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()
    """,
]


@pytest.mark.parametrize("settings", ["postgres"], indirect=True)
async def test_a_failure_while_committing_says_the_outcome_is_unknown(settings: Settings) -> None:
    settings = replace(settings, statement_timeout_ms=200)
    async with serve(settings) as (http, app):
        async with app.state.engine.begin() as connection:
            for statement in SLOW_COMMIT:
                await connection.execute(text(statement))
        response = await http.post(
            "/graphql", json={"query": CREATE_OPPORTUNITY, "variables": CREATE}
        )

    message = assert_service_unavailable(response)
    assert "may or may not have been applied" in message
    assert "same Idempotency-Key" in message


# Plain, so that the fast lane answers it once it has been executed (graphql/fast_writes.py).
PLAIN_CREATE = """mutation($input: CreateOpportunityInput!) {
  createOpportunity(input: $input) { opportunity { id name } errors { __typename } }
}"""


@pytest.mark.parametrize("settings", ["postgres"], indirect=True)
async def test_the_fast_lane_hands_an_unknown_outcome_over_without_running_again(
    settings: Settings,
) -> None:
    """The lane's commit fails: the resolver answers with that failure, and the write is not
    sent a second time (it may have been applied)."""
    settings = replace(settings, statement_timeout_ms=200)
    async with serve(settings) as (http, app):
        await http.post("/graphql", json={"query": PLAIN_CREATE, "variables": CREATE})
        async with app.state.engine.begin() as connection:
            for statement in SLOW_COMMIT:
                await connection.execute(text(statement))
        inserts: list[str] = []

        def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            if statement.startswith("INSERT INTO opportunity "):
                inserts.append(statement)

        handed_over = fast_writes.STATS.handed_over
        event.listen(app.state.engine.sync_engine, "before_cursor_execute", seen)
        response = await http.post("/graphql", json={"query": PLAIN_CREATE, "variables": CREATE})
        event.remove(app.state.engine.sync_engine, "before_cursor_execute", seen)

    message = assert_service_unavailable(response)
    assert "may or may not have been applied" in message
    assert fast_writes.STATS.handed_over == handed_over + 1
    assert len(inserts) == 1


async def test_a_pool_checkout_timeout_is_service_unavailable(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = replace(settings, db_pool_size=1, db_pool_timeout_ms=100)
    async with serve(settings) as (http, app), AsyncExitStack() as held:
        # Take every connection the pools may hand out (pools never overflow): the one for
        # transactions and, on PostgreSQL at READ COMMITTED, the one for reads and the one for
        # compiled reads.
        engine = app.state.engine
        for each in dict.fromkeys((engine, reads_engine(engine))):
            await held.enter_async_context(each.connect())
        on_asyncpg = driver_reads(reads_engine(engine))  # compiled reads' own, if any
        if on_asyncpg is not None:
            await held.enter_async_context(on_asyncpg.connection())
        with caplog.at_level(logging.WARNING):
            response = await http.post("/graphql", json={"query": LIST})
            ready = await http.get("/readyz")
        await held.aclose()
        after = await http.post("/graphql", json={"query": LIST})

    assert_service_unavailable(response)
    assert ready.status_code == 503
    [line] = outage_lines(caplog)
    assert "pool timeout" in line.getMessage()
    assert after.status_code == 200


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
async def test_a_locked_sqlite_database_is_service_unavailable_and_nothing_is_written(
    settings: Settings, gql: GraphQLClient
) -> None:
    settings = replace(settings, db_deadline_ms=100, transaction_retries=2)
    path = settings.sqlite_path()
    assert path is not None
    locker = sqlite3.connect(path, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        async with serve(settings) as (http, _):
            response = await http.post(
                "/graphql", json={"query": CREATE_OPPORTUNITY, "variables": CREATE}
            )
            read = await http.post("/graphql", json={"query": LIST})
        locker.execute("ROLLBACK")
    finally:
        locker.close()

    assert "the mutation was not applied" in assert_service_unavailable(response)
    # WAL readers do not wait for the writer's lock.
    assert read.json() == {
        "data": {"opportunities": {"totalCount": 0, "nodes": []}},
        **cost(6),
    }
    assert (await create_opportunity(gql))["state"] == "OPEN"


async def test_readiness_answers_within_its_timeout_when_nothing_answers() -> None:
    # A listener that accepts and never answers, like a frozen server.
    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = Settings(
        database_url=f"postgresql+psycopg://nobody@127.0.0.1:{port}/none",
        readiness_timeout_ms=300,
        db_deadline_ms=300,
        db_connect_timeout_ms=10_000,
    )
    try:
        async with serve(settings) as (http, _):
            started = asyncio.get_running_loop().time()
            ready = await http.get("/readyz")
            elapsed = asyncio.get_running_loop().time() - started
            query = await http.post("/graphql", json={"query": LIST})
    finally:
        server.close()

    assert ready.status_code == 503
    assert elapsed < 2.0  # generous over the 300 ms timeout; the connect timeout is 10 s
    assert_service_unavailable(query)


async def test_an_outage_outside_graphql_execution_is_still_a_clean_503() -> None:
    engine = create_engine(Settings(database_url=REFUSED_URL))

    async def route(_: Request) -> JSONResponse:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return JSONResponse({})  # pragma: no cover - the database is never there

    async def broken(_: Request) -> JSONResponse:
        raise RuntimeError("a bug, not an outage")

    guard = Middleware(OutageGuard, deadline_ms=1000, retry_after=3, outages=OutageLog())
    app = Starlette(routes=[Route("/db", route), Route("/bug", broken)], middleware=[guard])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/db")
        bug = await http.get("/bug")
    await engine.dispose()

    assert response.status_code == 503
    assert response.headers["retry-after"] == "3"
    assert response.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    assert bug.status_code == 500


def test_the_outage_log_writes_one_line_then_a_count_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    outages = OutageLog(interval=10.0, clock=lambda: now[0])
    failure = ConnectionRefusedError("Connection refused")
    with caplog.at_level(logging.WARNING, logger="gql_service.outages"):
        for _ in range(500):
            outages.report(failure)
            now[0] += 0.01
        now[0] = 111.0
        outages.report(failure, request_id="abc")

    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "database unavailable [request -]: Connection refused",
        "database unavailable [request abc]: Connection refused; "
        "499 more failures in the last 10 s",
    ]
    assert all(r.exc_info is None for r in caplog.records)


async def test_an_api_key_checked_during_an_outage_is_service_unavailable_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(database_url=REFUSED_URL)
    key = "gqs_0123456789abcdef_" + "k" * 43
    with caplog.at_level(logging.INFO):
        async with serve(settings) as (http, _):
            responses = [
                await http.post(
                    "/graphql", json={"query": LIST}, headers={"authorization": f"Bearer {key}"}
                )
                for _ in range(5)
            ]

    for response in responses:
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == str(settings.db_retry_after_seconds)
        [error] = response.json()["errors"]
        assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE"
        assert error["extensions"]["retryAfter"] == settings.db_retry_after_seconds
    lines = outage_lines(caplog)
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert lines[0].name == "gql_service.outages"
    assert not any(r.exc_info for r in caplog.records)
