"""Pool sizes follow from workers and the database's connections; pools never overflow."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from gql_service.app import create_app
from gql_service.server import uvicorn_options
from gql_service.settings import Settings
from tests.conftest import GraphQLClient
from tests.operations import create_opportunity, read_opportunity


def test_each_worker_gets_its_share_of_the_database_connections() -> None:
    assert Settings.from_env({}).pool_size_per_worker == 20
    shared = {"DB_MAX_CONNECTIONS": "100", "DB_RESERVED_CONNECTIONS": "10"}
    assert Settings.from_env({**shared, "WORKERS": "4"}).pool_size_per_worker == 20
    assert Settings.from_env({**shared, "WORKERS": "12"}).pool_size_per_worker == 7
    assert (
        Settings.from_env({**shared, "WORKERS": "4", "DB_POOL_SIZE": "40"}).pool_size_per_worker
        == 22
    )
    assert Settings.from_env({**shared, "WORKERS": "200"}).pool_size_per_worker == 1
    tiny = {"DB_MAX_CONNECTIONS": "5", "DB_RESERVED_CONNECTIONS": "10", "WORKERS": "2"}
    assert Settings.from_env(tiny).pool_size_per_worker == 1


async def test_more_concurrent_requests_than_connections_open_no_extra_connection(
    settings: Settings,
) -> None:
    settings = replace(settings, db_pool_size=2, db_pool_timeout_ms=10_000)
    app = create_app(settings)
    engine = app.state.engine
    connects: list[Any] = []
    event.listen(engine.sync_engine.pool, "connect", lambda *args: connects.append(args))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        gql = GraphQLClient(http)
        pk = (await create_opportunity(gql))["id"]
        for _ in range(3):
            found = await asyncio.gather(*(read_opportunity(gql, pk) for _ in range(12)))
            assert {o["id"] for o in found} == {pk}
        checked_out = engine.sync_engine.pool.checkedout()
    await engine.dispose()

    # Requests queue for the two pooled connections instead of opening (and closing) more.
    assert len(connects) <= 2
    assert checked_out == 0


def test_the_event_loop_setting_reaches_uvicorn_and_refuses_unknown_loops() -> None:
    for given, expected in ((None, "auto"), ("asyncio", "asyncio"), (" UVLOOP ", "uvloop")):
        env = {} if given is None else {"EVENT_LOOP": given}
        settings = Settings.from_env(env)
        assert settings.event_loop == expected
        assert uvicorn_options(settings)["loop"] == expected
    with pytest.raises(ValueError, match="EVENT_LOOP must be one of auto, uvloop, asyncio"):
        Settings.from_env({"EVENT_LOOP": "trio"})
