"""A read request holds one pooled connection and at most one read transaction; none leaks.

Nothing pings a pooled connection before use: a connection that died in the pool costs the
client nothing, because the read (or the write) meets it on its first statement and is retried
once on a fresh one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from gql_service.app import create_app
from gql_service.database import create_engine, reads_engine
from gql_service.read_session import ReadSession, reads_autocommit
from gql_service.settings import Settings
from tests.asgi import graphql_post_scope
from tests.conftest import GraphQLClient, sync_engines
from tests.operations import (
    CLOSE_OPPORTUNITY,
    OPPORTUNITY,
    create_competitor,
    create_opportunity,
    create_quote,
    ok,
    read_opportunity,
)

# Five SELECTs: the opportunity, its quotes with their close records, their total count, its
# close history, and the competitors named there, from DataLoaders that run concurrently.
TREE = OPPORTUNITY


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[tuple[GraphQLClient, Starlette]]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield GraphQLClient(http), app
    await app.state.engine.dispose()


async def closed_deal(gql: GraphQLClient) -> str:
    """An opportunity with quotes, a close record and a competitor: every loader has work."""
    opportunity = await create_opportunity(gql)
    await create_quote(gql, opportunity["id"])
    rival = await create_competitor(gql)
    closing = {
        "opportunityId": opportunity["id"],
        "outcome": "LOST",
        "closeOpenQuotes": True,
        "competitorId": rival["id"],
    }
    ok(await gql(CLOSE_OPPORTUNITY, input=closing), "closeOpportunity")
    return str(opportunity["id"])


class Traffic:
    """Pool checkouts, transactions begun and statements sent on one engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.checkouts = 0
        self.begins = 0
        self.statements: list[str] = []
        # For each connection checked out on PostgreSQL: was it in autocommit already?
        self.autocommit_at_checkout: list[bool] = []
        for each in sync_engines(engine):
            event.listen(each.pool, "checkout", self._checkout)
            event.listen(each, "begin", self._begin)
            event.listen(each, "before_cursor_execute", self._statement)

    def _checkout(self, dbapi_connection: Any, *_: Any) -> None:
        self.checkouts += 1
        driver = dbapi_connection.driver_connection
        if hasattr(driver, "autocommit"):  # psycopg
            self.autocommit_at_checkout.append(driver.autocommit)

    def _begin(self, *_: Any) -> None:
        self.begins += 1

    def _statement(self, *args: Any) -> None:
        self.statements.append(str(args[2]).split()[0].upper())

    def clear(self) -> None:
        self.checkouts = self.begins = 0
        self.statements.clear()


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "plain"])
async def test_a_read_request_uses_one_connection_and_at_most_one_transaction(
    settings: Settings, compiled: bool
) -> None:
    async with serve(replace(settings, compiled_reads=compiled)) as (gql, app):
        pk = await closed_deal(gql)
        traffic = Traffic(app.state.engine)
        opportunity = await read_opportunity(gql, pk)
        assert opportunity["closeHistory"][0]["competitor"]["name"] == "Proseware"
        assert opportunity["quotes"]["nodes"][0]["closeRecord"] is not None

    assert traffic.checkouts == 1
    assert traffic.begins == 1
    # Its SELECTs (one when compiled), and on SQLite the BEGIN of its one read transaction;
    # nothing else (no pings, no second BEGIN). PostgreSQL reads at READ COMMITTED need no
    # transaction.
    selects = [s for s in traffic.statements if s == "SELECT"]
    assert len(selects) == (1 if compiled else 5), traffic.statements
    expected_begins = 1 if settings.is_sqlite else 0
    assert traffic.statements.count("BEGIN") == expected_begins, traffic.statements
    assert len(traffic.statements) == len(selects) + expected_begins, traffic.statements
    # ... on a connection that was in autocommit before the request took it: switching a
    # pooled connection there and back cost a fifth of a compiled read's CPU.
    assert traffic.autocommit_at_checkout == ([] if settings.is_sqlite else [True])


@pytest.mark.parametrize("settings", ["postgres"], indirect=True)
async def test_transactions_never_get_a_connection_in_autocommit(settings: Settings) -> None:
    async with serve(settings) as (gql, app):
        await closed_deal(gql)  # reads and writes, in turn, on both pools
        autocommit: list[bool] = []
        event.listen(
            app.state.engine.sync_engine.pool,
            "checkout",
            lambda dbapi_connection, *_: autocommit.append(
                dbapi_connection.driver_connection.autocommit
            ),
        )
        await create_opportunity(gql, name="In a transaction")

    assert autocommit == [False]


@pytest.mark.parametrize("settings", ["postgres"], indirect=True)
async def test_reads_above_read_committed_share_one_transaction(settings: Settings) -> None:
    settings = replace(settings, isolation_level="REPEATABLE READ")
    async with serve(settings) as (gql, app):
        pk = await closed_deal(gql)
        traffic = Traffic(app.state.engine)
        opportunity = await read_opportunity(gql, pk)
        autocommit = reads_autocommit(app.state.engine)

    assert opportunity["id"] == pk
    assert not autocommit  # one REPEATABLE READ transaction: one snapshot for every batch
    assert traffic.checkouts == 1
    assert traffic.begins == 1


def test_only_postgresql_at_read_committed_reads_in_autocommit(tmp_path: Path) -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:9/none"
    cases = {
        (url, None): True,
        (url, "READ COMMITTED"): True,
        (url, "SERIALIZABLE"): False,
        (f"sqlite+aiosqlite:///{tmp_path / 'reads.sqlite3'}", None): False,
    }
    for (database_url, level), expected in cases.items():
        engine = create_engine(Settings(database_url=database_url, isolation_level=level))
        assert reads_autocommit(engine) is expected, (database_url, level)


async def test_many_reads_on_a_pool_of_one_connection_leak_nothing(settings: Settings) -> None:
    settings = replace(settings, db_pool_size=1, db_pool_timeout_ms=5_000)
    async with serve(settings) as (gql, app):
        pk = await closed_deal(gql)
        bodies = await asyncio.gather(*(gql(TREE, id=pk) for _ in range(30)))
        pool = app.state.engine.sync_engine.pool
        checked_out = pool.checkedout()
        after = await read_opportunity(gql, pk)

    assert all("errors" not in body for body in bodies), bodies
    assert {body["data"]["opportunity"]["id"] for body in bodies} == {pk}
    assert checked_out == 0
    assert after["id"] == pk


async def test_a_request_that_fails_or_is_cancelled_returns_its_connection(
    settings: Settings,
) -> None:
    settings = replace(settings, db_pool_size=1, db_pool_timeout_ms=5_000)
    async with serve(settings) as (gql, app):
        pk = await closed_deal(gql)
        pool = app.state.engine.sync_engine.pool
        body = json.dumps({"query": TREE, "variables": {"id": pk}}).encode()

        # The client goes away: sending the response fails.
        async def gone(message: dict[str, Any]) -> None:
            raise OSError("connection reset by peer")

        for _ in range(5):
            with pytest.raises(OSError, match="reset by peer"):
                await app(graphql_post_scope(), _receive(body), gone)
        assert pool.checkedout() == 0

        # The request is cancelled while its reads hold the connection.
        for _ in range(5):
            started = asyncio.Event()

            async def holding(message: dict[str, Any], started: asyncio.Event = started) -> None:
                started.set()
                await asyncio.sleep(10)

            task = asyncio.create_task(app(graphql_post_scope(), _receive(body), holding))
            await asyncio.wait_for(started.wait(), timeout=10)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert pool.checkedout() == 0

        # A client that disconnects before its body arrives.
        async def disconnect() -> dict[str, Any]:
            return {"type": "http.disconnect"}

        sent: list[dict[str, Any]] = []

        async def record(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(graphql_post_scope(), disconnect, record)
        assert pool.checkedout() == 0
        assert (await read_opportunity(gql, pk))["id"] == pk


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "plain"])
async def test_a_slow_reader_of_the_response_holds_no_connection(
    settings: Settings, compiled: bool
) -> None:
    """The response is complete before it is written: its connection is back in the pool, so
    a client that reads slowly (or never) keeps no one else from the database, even with a
    pool of one. Compiled reads are sent twice, so the fast lane answers the slow one."""
    settings = replace(settings, db_pool_size=1, db_pool_timeout_ms=3_000, compiled_reads=compiled)
    async with serve(settings) as (gql, app):
        pk = await closed_deal(gql)
        await read_opportunity(gql, pk)
        body = json.dumps({"query": TREE, "variables": {"id": pk}}).encode()
        writing, written = asyncio.Event(), asyncio.Event()

        async def slow(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                writing.set()
                await written.wait()

        task = asyncio.create_task(app(graphql_post_scope(), _receive(body), slow))
        await asyncio.wait_for(writing.wait(), timeout=10)
        engine = app.state.engine
        held = [each.sync_engine.pool.checkedout() for each in {engine, reads_engine(engine)}]
        meanwhile = await asyncio.wait_for(read_opportunity(gql, pk), timeout=10)
        written.set()
        await task

    assert held == [0] * len(held)
    assert meanwhile["id"] == pk


def _receive(body: bytes) -> Any:
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.sleep(30)
        return {"type": "http.disconnect"}

    return receive


async def _terminate_other_backends(engine: AsyncEngine) -> int:
    """Kill every other server process on this database, as a restart or a proxy would."""
    async with engine.connect() as connection:
        killed = (
            await connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        ).scalar()
        # Take this connection out of the pool too: every pooled connection is dead now.
        await connection.invalidate()
    return int(killed or 0)


@pytest.mark.parametrize("settings", ["postgres"], indirect=True)
async def test_a_dead_pooled_connection_costs_a_read_no_error(settings: Settings) -> None:
    async with serve(settings) as (gql, app):
        pk = await closed_deal(gql)
        # Fill the pool with idle connections, then kill them all behind its back.
        await asyncio.gather(*(read_opportunity(gql, pk) for _ in range(4)))
        assert await _terminate_other_backends(app.state.engine) >= 1
        traffic = Traffic(app.state.engine)
        body = await gql(TREE, id=pk)

    assert "errors" not in body, body
    assert body["data"]["opportunity"]["id"] == pk
    assert traffic.checkouts == 2  # the dead one, then a fresh one


@pytest.mark.parametrize("settings", ["postgres"], indirect=True)
async def test_a_dead_pooled_connection_costs_a_mutation_no_error(settings: Settings) -> None:
    async with serve(settings) as (gql, app):
        first = await create_opportunity(gql)
        await asyncio.gather(*(read_opportunity(gql, first["id"]) for _ in range(4)))
        assert await _terminate_other_backends(app.state.engine) >= 1
        created = await create_opportunity(gql, name="After the restart")
        body = await gql(TREE, id=created["id"])

    assert created["name"] == "After the restart"
    assert body["data"]["opportunity"]["name"] == "After the restart"


async def test_a_mutation_payload_reads_what_it_wrote_after_earlier_reads(
    settings: Settings,
) -> None:
    """The read transaction ends before a write, so later payloads' reads see the write."""
    async with serve(settings) as (gql, _):
        opportunity = await create_opportunity(gql)
        document = (
            "mutation($quote: CreateQuoteInput!, $close: CloseOpportunityInput!) {"
            " createQuote(input: $quote) { quote { state opportunity { state } } }"
            " closeOpportunity(input: $close) {"
            "  opportunity { state quotes(first: 5) { nodes { state } } } errors { __typename } }"
            "}"
        )
        body = await gql(
            document,
            quote={"opportunityId": opportunity["id"], "name": "Q", "totalAmount": "10"},
            close={"opportunityId": opportunity["id"], "outcome": "LOST", "closeOpenQuotes": True},
        )

    assert "errors" not in body, body
    created, closed = body["data"]["createQuote"], body["data"]["closeOpportunity"]
    assert created["quote"]["opportunity"]["state"] == "OPEN"
    assert closed["errors"] == []
    assert closed["opportunity"]["state"] == "LOST"
    assert [q["state"] for q in closed["opportunity"]["quotes"]["nodes"]] == ["CLOSED"]


@pytest.mark.parametrize("settings", ["postgres"], indirect=True)
async def test_a_leased_connection_goes_back_unless_it_broke(settings: Settings) -> None:
    """ReadSession.lease (a compiled read's one statement on a connection of its own): a
    connection that answered, even with an error, goes back to the pool; one that broke under
    its statement is closed, never handed to the next request; a cancelled statement does not
    hold up the next one."""
    engine = create_engine(replace(settings, db_pool_size=1, db_pool_timeout_ms=5_000))
    pool = reads_engine(engine).sync_engine.pool
    assert ReadSession(engine).leases

    async def run(sql: str, connection: Any) -> Any:
        async with connection.cursor() as cursor:
            await cursor.execute(sql)
            return await cursor.fetchone()

    async def lease(sql: str) -> Any:
        return await asyncio.wait_for(ReadSession(engine).lease(partial(run, sql)), timeout=5)

    try:
        [pid] = await lease("SELECT pg_backend_pid()")
        with pytest.raises(psycopg.errors.DivisionByZero):
            await lease("SELECT 1 / 0")
        assert pool.checkedout() == 0
        assert await lease("SELECT pg_backend_pid()") == (pid,)  # the same connection

        sleeping = asyncio.create_task(lease("SELECT pg_sleep(30)"))
        await asyncio.sleep(0.5)
        sleeping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sleeping
        assert pool.checkedout() == 0
        [pid] = await lease("SELECT pg_backend_pid()")  # at once, not after the sleep

        sleeping = asyncio.create_task(lease("SELECT pg_sleep(30)"))
        await asyncio.sleep(0.5)
        killer = await psycopg.AsyncConnection.connect(
            settings.database_url.replace("+psycopg", ""), autocommit=True
        )
        async with killer:
            await killer.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(psycopg.OperationalError):
            await sleeping
        assert pool.checkedout() == 0
        [fresh] = await lease("SELECT pg_backend_pid()")
        assert fresh != pid
    finally:
        await engine.dispose()
