"""The pool recovers when PostgreSQL kills the service's sessions."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from gql_service.settings import Settings
from tests.conftest import GraphQLClient
from tests.operations import create_opportunity, read_opportunity


@pytest.mark.parametrize("settings", ["postgres"], indirect=True)
async def test_requests_succeed_after_the_server_killed_every_session(
    settings: Settings, gql: GraphQLClient
) -> None:
    opportunity = await create_opportunity(gql)
    base, _, database = settings.database_url.rpartition("/")
    admin = create_async_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        killed = (
            await connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = :database AND pid <> pg_backend_pid()"
                ),
                {"database": database},
            )
        ).scalar()
    await admin.dispose()
    assert killed

    assert (await read_opportunity(gql, opportunity["id"]))["id"] == opportunity["id"]
    assert (await create_opportunity(gql))["state"] == "OPEN"
