"""Compiled reads on asyncpg (PostgreSQL): the same answers, and failures with the same meaning.

Real PostgreSQL throughout: a lock held by another connection makes a statement wait, a
terminated backend ends a connection, and an argument asyncpg will not encode is a real one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench import scenarios
from gql_service.app import create_app
from gql_service.asyncpg_urls import asyncpg_target
from gql_service.database import create_engine, driver_reads, driver_writes, reads_engine
from gql_service.driver_reads import (
    APPLICATION_NAME,
    STATEMENTS,
    Connections,
    DriverReads,
    Unserved,
    to_numbered,
)
from gql_service.seed import seed_demo
from gql_service.settings import Settings
from tests.hostile_operations import raw_id
from tests.subprocess_server import live_server

on_postgres = pytest.mark.parametrize("settings", ["postgres"], indirect=True)

OPPORTUNITY_1 = raw_id("Opportunity:1")
R1 = {"query": scenarios.R1, "variables": {"id": OPPORTUNITY_1}}


@dataclasses.dataclass
class Served:
    http: httpx.AsyncClient
    on_asyncpg: DriverReads | None
    engine: AsyncEngine

    @property
    def reads(self) -> DriverReads:
        assert self.on_asyncpg is not None
        return self.on_asyncpg

    async def r1(self) -> httpx.Response:
        return await self.http.post("/graphql", json=R1)


async def serve(settings: Settings, *, seed: bool = True) -> AsyncIterator[Served]:
    app = create_app(settings)
    if seed:
        await seed_demo(app.state.engine)
    reads = driver_reads(reads_engine(app.state.engine))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        yield Served(http, reads, app.state.engine)
    await app.state.engine.dispose()


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[Served]:
    async for each in serve(settings):
        yield each


async def admin(settings: Settings, statement: str) -> Any:
    engine = create_async_engine(settings.database_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            return await connection.scalar(text(statement))
    finally:
        await engine.dispose()


def test_placeholders_become_numbered_in_order_of_first_use() -> None:
    assert to_numbered("SELECT %(p1)s, %(p0)s, %(p1)s, '100%%'") == (
        "SELECT $1, $2, $1, '100%'",
        ("p1", "p0"),
    )


@on_postgres
async def test_compiled_reads_run_on_asyncpg_and_answer_as_on_psycopg(
    served: Served, settings: Settings
) -> None:
    first = await served.r1()
    second = await served.r1()  # the fast lane's
    assert served.reads.served == 2
    assert served.reads.unserved == 0
    async for on_psycopg in serve(
        dataclasses.replace(settings, compiled_reads_driver="psycopg"), seed=False
    ):
        assert on_psycopg.on_asyncpg is None
        theirs = [await on_psycopg.r1() for _ in range(2)]
    assert [r.content for r in theirs] == [first.content, second.content]
    assert first.json()["data"]["opportunity"]["id"] == OPPORTUNITY_1
    named = await admin(
        settings,
        f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{APPLICATION_NAME}'",
    )
    assert named == 1  # one connection opened, reused; named for operators


@on_postgres
async def test_a_connection_the_server_ended_costs_a_read_no_error(
    served: Served, settings: Settings
) -> None:
    first = await served.r1()
    killed = await admin(
        settings,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        f"WHERE application_name = '{APPLICATION_NAME}'",
    )
    assert killed == 1
    again = [await served.r1() for _ in range(3)]
    assert all(r.content == first.content for r in again)
    # After the one that met the ended connection (answered by psycopg, or on a new asyncpg
    # connection if asyncpg noticed first), asyncpg answers again.
    assert served.reads.served >= 3


@on_postgres
async def test_a_statement_past_the_deadline_is_cut_off_and_service_unavailable(
    settings: Settings,
) -> None:
    settings = dataclasses.replace(settings, db_deadline_ms=300, statement_timeout_ms=0)
    async for served in serve(settings):
        assert (await served.r1()).status_code == 200  # opens the pool's connection
        holder = create_async_engine(settings.database_url)
        try:
            async with holder.connect() as connection, connection.begin():
                await connection.execute(text("LOCK TABLE opportunity IN ACCESS EXCLUSIVE MODE"))
                started = time.monotonic()
                response = await served.r1()
                elapsed = time.monotonic() - started
        finally:
            await holder.dispose()
        after = await served.r1()
        unserved = served.reads.unserved
    assert response.status_code == 503, response.text
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    assert elapsed < 2.0  # the deadline (0.3 s), not the lock's holder, ended the wait
    assert unserved == 0  # not sent again on psycopg: that would wait as long again
    assert after.status_code == 200
    assert after.json()["data"]["opportunity"] is not None


@on_postgres
async def test_a_server_side_error_keeps_its_sqlstate(settings: Settings) -> None:
    settings = dataclasses.replace(settings, statement_timeout_ms=200, db_deadline_ms=5_000)
    async for served in serve(settings):
        holder = create_async_engine(settings.database_url)
        try:
            async with holder.connect() as connection, connection.begin():
                await connection.execute(text("LOCK TABLE opportunity IN ACCESS EXCLUSIVE MODE"))
                response = await served.r1()
        finally:
            await holder.dispose()
        unserved = served.reads.unserved
    # The server's statement timeout (57014): the database could not answer now.
    assert response.status_code == 503, response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    assert unserved == 0


@on_postgres
async def test_an_argument_asyncpg_will_not_encode_is_left_to_psycopg_for_good(
    served: Served,
) -> None:
    sql = "SELECT (%(p0)s::int + 1)::text"
    for _ in range(2):
        with pytest.raises(Unserved):
            await served.reads.fetch_row(sql, {"p0": "41"})  # asyncpg wants an int here
    assert served.reads.unserved == 2
    with pytest.raises(Unserved):  # not offered to asyncpg again, whatever the arguments
        await served.reads.fetch_row(sql, {"p0": 41})
    other = "SELECT (%(p0)s::int + 2)::text"
    assert tuple(await served.reads.fetch_row(other, {"p0": 40})) == ("42",)
    assert served.reads.size() == 1  # the connection was not given up for it


def _connections(settings: Settings, size: int) -> Connections:
    dsn = make_url(settings.database_url).set(drivername="postgresql")
    return Connections(lambda: asyncpg.connect(dsn.render_as_string(hide_password=False)), size)


async def _one_held(
    settings: Settings, waiters: int
) -> tuple[Connections, asyncpg.Connection, list[asyncio.Task[asyncpg.Connection]]]:
    """One connection, taken, and ``waiters`` tasks waiting in line for it."""
    connections = _connections(settings, 1)
    held = await connections.take(10)
    waiting = [asyncio.create_task(connections.take(10)) for _ in range(waiters)]
    await asyncio.sleep(0.01)  # they wait
    return connections, held, waiting


@on_postgres
async def test_the_connections_never_exceed_their_number_and_every_waiter_gets_one(
    settings: Settings,
) -> None:
    connections = _connections(settings, 2)
    seen: set[int] = set()
    busy = 0
    most = 0

    async def use() -> None:
        nonlocal busy, most
        connection = await connections.take(10)
        busy += 1
        most = max(most, busy)
        seen.add(id(connection))
        assert await connection.fetchval("SELECT 1") == 1
        await asyncio.sleep(0.01)
        busy -= 1
        connections.give(connection)

    await asyncio.gather(*(use() for _ in range(12)))
    assert most == 2
    assert len(seen) == 2  # reused, never more opened
    assert len(connections) == 2
    connections.terminate()
    assert len(connections) == 0


@on_postgres
async def test_a_wait_past_its_time_fails_and_leaves_the_connections_as_they_were(
    settings: Settings,
) -> None:
    connections = _connections(settings, 1)
    held = await connections.take(10)
    with pytest.raises(TimeoutError):
        await connections.take(0.05)
    connections.give(held)
    again = await connections.take(0.05)  # the one idle connection, at once
    assert again is held
    assert len(connections) == 1
    # A connection that comes back closed frees its slot for a new one.
    again.terminate()
    connections.give(again)
    assert len(connections) == 0
    fresh = await connections.take(10)
    assert fresh is not held
    assert await fresh.fetchval("SELECT 2") == 2
    connections.give(fresh)
    connections.terminate()


@on_postgres
async def test_a_woken_waiter_that_leaves_passes_its_turn_on(settings: Settings) -> None:
    connections, held, (first, second) = await _one_held(settings, 2)
    connections.give(held)  # wakes the first ...
    first.cancel()  # ... which leaves before it runs
    assert await asyncio.wait_for(second, 5) is held
    with pytest.raises(asyncio.CancelledError):
        await first
    connections.give(held)
    connections.terminate()


@on_postgres
async def test_a_connection_given_back_goes_to_the_longest_waiter_not_to_a_newcomer(
    settings: Settings,
) -> None:
    connections, held, (waiting,) = await _one_held(settings, 1)
    connections.give(held)  # handed to it, before it has run again
    with pytest.raises(TimeoutError):
        await connections.take(0.05)  # the newcomer waits its turn, and gives up
    assert await waiting is held
    connections.give(held)
    connections.terminate()
    assert len(connections) == 0


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+psycopg://u:p@db:5433/app", ("postgresql://u:p@db:5433/app", {})),
        (
            "postgresql+psycopg://u@db/app?sslmode=require&target_session_attrs=read-write",
            ("postgresql://u@db/app?sslmode=require&target_session_attrs=read-write", {}),
        ),
        (
            "postgresql+psycopg://u@/app?host=/run/postgresql&application_name=mine",
            ("postgresql://u@/app?host=%2Frun%2Fpostgresql", {}),  # asyncpg unquotes it
        ),
        (
            "postgresql+psycopg://u@db/app?options=-c%20search_path%3Dsales%20-cwork_mem%3D8MB",
            ("postgresql://u@db/app", {"search_path": "sales", "work_mem": "8MB"}),
        ),
        (
            "postgresql+psycopg://u@db/app?options=--lock-timeout%3D5s",
            ("postgresql://u@db/app", {"lock_timeout": "5s"}),
        ),
        ("postgresql+psycopg://u@db/app?connect_timeout=5", None),  # libpq's own
        ("postgresql+psycopg://u@db/app?keepalives=1", None),
        ("postgresql+psycopg://u@db/app?options=-e", None),  # not a setting
    ],
)
def test_a_database_url_becomes_asyncpgs_or_keeps_compiled_reads_on_psycopg(
    url: str, expected: tuple[str, dict[str, str]] | None
) -> None:
    assert asyncpg_target(url) == expected


def test_a_url_asyncpg_cannot_take_leaves_the_engine_without_asyncpg(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(database_url="postgresql+psycopg://u@127.0.0.1:9/app?connect_timeout=5")
    # Neither counted in the connection budget nor made, and said at start.
    assert not settings.compiled_reads_on_asyncpg
    assert settings.pools_per_worker == 2
    with caplog.at_level(logging.WARNING, logger="gql_service.database"):
        engine = create_engine(settings)
    assert driver_reads(reads_engine(engine)) is None
    assert driver_writes(engine) is None
    assert any("asyncpg cannot take" in r.getMessage() for r in caplog.records)


@on_postgres
async def test_after_a_failed_connect_compiled_reads_rest_on_psycopg(
    settings: Settings,
) -> None:
    closed = make_url(settings.database_url).set(port=9)  # nothing listens there
    reads = DriverReads(
        dataclasses.replace(settings, database_url=closed.render_as_string(hide_password=False))
    )
    for _ in range(3):
        with pytest.raises(Unserved):
            await reads.fetch_row("SELECT 1::text", {})
    assert reads.failed_connects == 1  # tried once, then left to psycopg for REST_SECONDS
    assert reads.unserved == 3
    reads.terminate()


@on_postgres
async def test_the_statements_remembered_stay_bounded(served: Served) -> None:
    """Every distinct selection is a distinct statement text: a client sending ever new
    queries must not grow what the pool remembers without bound."""
    for index in range(STATEMENTS + 20):
        row = await served.reads.fetch_row(f"SELECT '{index}'::text", {})
        assert tuple(row) == (str(index),)
    assert served.reads.remembered == STATEMENTS


@on_postgres
@pytest.mark.parametrize("warm", [True, False])
async def test_a_server_opens_its_asyncpg_connections_before_requests_need_them(
    settings: Settings, tmp_path: Path, warm: bool
) -> None:
    """DB_POOL_WARM (the default): the worker opens every connection its asyncpg pool may
    hold at start-up, so that load does not wait for new server processes; off, none until
    a request needs one."""
    expected = Settings.from_env({"DATABASE_URL": settings.database_url}).pool_size_per_worker
    named = f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{APPLICATION_NAME}'"
    env = {} if warm else {"DB_POOL_WARM": "false"}
    with live_server(settings.database_url, tmp_path / "server.log", **env):
        opened = 0
        for _ in range(100 if warm else 10):  # up to ~5 s: the warm-up runs beside the start
            await asyncio.sleep(0.05)
            opened = await admin(settings, named)
            if opened == expected:
                break
        assert opened == (expected if warm else 0)
