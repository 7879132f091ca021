"""Compiled reads on asyncpg (PostgreSQL): the same answers, and failures with the same meaning.

Real PostgreSQL throughout: a lock held by another connection makes a statement wait, a
terminated backend ends a connection, and an argument asyncpg will not encode is a real one.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench import scenarios
from gql_service.app import create_app
from gql_service.database import driver_reads, reads_engine
from gql_service.driver_reads import APPLICATION_NAME, DriverReads, Unserved, to_numbered
from gql_service.seed import seed_demo
from gql_service.settings import Settings
from tests.hostile_operations import raw_id

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
