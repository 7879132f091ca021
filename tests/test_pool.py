"""Pool sizes follow from workers and the database's connections; pools never overflow."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from gql_service.app import create_app
from gql_service.database import driver_reads, reads_engine
from gql_service.server import uvicorn_options
from gql_service.settings import Settings
from tests.conftest import GraphQLClient, sync_engines
from tests.operations import create_opportunity, read_opportunity


def test_each_worker_gets_its_share_of_the_database_connections() -> None:
    assert Settings.from_env({}).pool_size_per_worker == 3
    assert Settings.from_env({"WORKERS": "8"}).pool_size_per_worker == 3
    # On PostgreSQL, three pools a worker: 10 workers' pools of 3 fill the 90 connections.
    postgres = {"DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:9/none"}
    assert Settings.from_env({**postgres, "WORKERS": "10"}).pool_size_per_worker == 3
    assert Settings.from_env({**postgres, "WORKERS": "11"}).pool_size_per_worker == 2
    shared = {"DB_MAX_CONNECTIONS": "100", "DB_RESERVED_CONNECTIONS": "10", "DB_POOL_SIZE": "20"}
    assert Settings.from_env({**shared, "WORKERS": "4"}).pool_size_per_worker == 20
    assert Settings.from_env({**shared, "WORKERS": "12"}).pool_size_per_worker == 7
    assert (
        Settings.from_env({**shared, "WORKERS": "4", "DB_POOL_SIZE": "40"}).pool_size_per_worker
        == 22
    )
    assert Settings.from_env({**shared, "WORKERS": "200"}).pool_size_per_worker == 1
    tiny = {"DB_MAX_CONNECTIONS": "5", "DB_RESERVED_CONNECTIONS": "10", "WORKERS": "2"}
    assert Settings.from_env(tiny).pool_size_per_worker == 1


def test_on_postgresql_at_read_committed_each_worker_splits_its_share_between_its_pools() -> None:
    postgres = {
        "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:9/none",
        "DB_MAX_CONNECTIONS": "100",
        "DB_RESERVED_CONNECTIONS": "10",
        "DB_POOL_SIZE": "20",
    }
    # Transactions, plain reads, and compiled reads on asyncpg (the default) or on psycopg.
    sizes = {
        3: (("1", 20), ("2", 15), ("4", 7), ("8", 3), ("50", 1)),
        2: (("1", 20), ("2", 20), ("4", 11), ("8", 5), ("50", 1)),
    }
    for pools, extra in ((3, {}), (2, {"COMPILED_READS_DRIVER": "psycopg"})):
        for workers, size in sizes[pools]:
            settings = Settings.from_env({**postgres, **extra, "WORKERS": workers})
            assert settings.compiled_reads_on_asyncpg == (pools == 3)
            assert settings.pools_per_worker == pools
            assert settings.pool_size_per_worker == size, workers
            if size > 1:  # the pools together fit the connections the service may use
                assert int(workers) * pools * size <= 90
    without_compiled_reads = Settings.from_env({**postgres, "COMPILED_READS": "false"})
    assert without_compiled_reads.pools_per_worker == 2
    # A URL asyncpg cannot take (a libpq-only parameter) keeps everything on psycopg, and the
    # budget counts the two pools there are.
    libpq_only = {**postgres, "WORKERS": "4"}
    libpq_only["DATABASE_URL"] += "?connect_timeout=5"
    settings = Settings.from_env(libpq_only)
    assert not settings.compiled_reads_on_asyncpg
    assert (settings.pools_per_worker, settings.pool_size_per_worker) == (2, 11)
    for level in ("REPEATABLE READ", "SERIALIZABLE"):  # reads share one transaction's pool
        settings = Settings.from_env({**postgres, "WORKERS": "4", "DB_ISOLATION_LEVEL": level})
        assert (settings.pools_per_worker, settings.pool_size_per_worker) == (1, 20)
        assert not settings.compiled_reads_on_asyncpg
    assert Settings.from_env({"WORKERS": "4"}).pools_per_worker == 1  # SQLite
    with pytest.raises(ValueError, match="COMPILED_READS_DRIVER must be one of asyncpg, psycopg"):
        Settings.from_env({**postgres, "COMPILED_READS_DRIVER": "pg8000"})


async def test_more_concurrent_requests_than_connections_open_no_extra_connection(
    settings: Settings,
) -> None:
    settings = replace(settings, db_pool_size=2, db_pool_timeout_ms=10_000)
    app = create_app(settings)
    engine = app.state.engine
    pools = [each.pool for each in sync_engines(engine)]
    connects: dict[Any, list[Any]] = {pool: [] for pool in pools}
    for pool in pools:
        event.listen(pool, "connect", lambda *args, pool=pool: connects[pool].append(args))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        gql = GraphQLClient(http)
        pk = (await create_opportunity(gql))["id"]
        for _ in range(3):
            found = await asyncio.gather(*(read_opportunity(gql, pk) for _ in range(12)))
            assert {o["id"] for o in found} == {pk}
        checked_out = [pool.checkedout() for pool in pools]
        on_asyncpg = driver_reads(reads_engine(engine))
        asyncpg_connections = 0 if on_asyncpg is None else on_asyncpg.size()
    await engine.dispose()

    # Requests queue for the two pooled connections of each pool (reads and, on PostgreSQL at
    # READ COMMITTED, transactions) instead of opening (and closing) more.
    assert all(len(opened) <= 2 for opened in connects.values()), connects
    assert asyncpg_connections <= 2  # compiled reads' own pool (PostgreSQL), no more than that
    assert checked_out == [0] * len(pools)


def test_the_event_loop_setting_reaches_uvicorn_and_refuses_unknown_loops() -> None:
    for given, expected in ((None, "auto"), ("asyncio", "asyncio"), (" UVLOOP ", "uvloop")):
        env = {} if given is None else {"EVENT_LOOP": given}
        settings = Settings.from_env(env)
        assert settings.event_loop == expected
        assert uvicorn_options(settings)["loop"] == expected
    with pytest.raises(ValueError, match="EVENT_LOOP must be one of auto, uvloop, asyncio"):
        Settings.from_env({"EVENT_LOOP": "trio"})


def test_uvicorn_works_out_access_lines_only_when_the_log_level_lets_them_through() -> None:
    for level, logged in (("DEBUG", True), ("info", True), ("WARNING", False), ("ERROR", False)):
        settings = Settings.from_env({"LOG_LEVEL": level})
        assert uvicorn_options(settings)["access_log"] is logged, level
