"""Fixtures: every service and GraphQL test runs on SQLite and on a throwaway PostgreSQL."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gql_service.app import create_app
from gql_service.database import create_engine, reads_engine
from gql_service.migrations import upgrade_to_head
from gql_service.settings import Settings
from gql_service.unit_of_work import UnitOfWork
from tests.postgres import find_pg_bin, throwaway_cluster

# Browser fixtures (Chromium through Playwright) live in their own module.
pytest_plugins = ["tests.browser"]

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
TEMPLATE_DB = "gql_template"


@pytest.fixture(scope="session")
def postgres_base_url() -> Iterator[str | None]:
    """Base URL of the session's PostgreSQL cluster; None (tests skipped) only outside CI."""
    if os.environ.get("TEST_POSTGRES_URL"):
        yield os.environ["TEST_POSTGRES_URL"]
        return
    if find_pg_bin() is None:
        if IN_CI:
            pytest.fail("PostgreSQL 15 is required under CI=true but initdb was not found")
        yield None
        return
    with throwaway_cluster() as url:
        yield url


@pytest.fixture(scope="session")
async def postgres_template(postgres_base_url: str | None) -> str | None:
    """A migrated template database; each test copies it (CREATE DATABASE ... TEMPLATE)."""
    if postgres_base_url is None:
        return None
    admin = create_async_engine(f"{postgres_base_url}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f"DROP DATABASE IF EXISTS {TEMPLATE_DB}"))
        await connection.execute(text(f"CREATE DATABASE {TEMPLATE_DB}"))
    await admin.dispose()
    engine = create_engine(Settings(database_url=f"{postgres_base_url}/{TEMPLATE_DB}"))
    await upgrade_to_head(engine)
    await engine.dispose()
    return postgres_base_url


@pytest.fixture(scope="session")
async def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3"
    engine = create_engine(Settings(database_url=f"sqlite+aiosqlite:///{path}"))
    await upgrade_to_head(engine)
    await engine.dispose()
    return path


# A test's ``driver`` parameter: each WRITES_DRIVER a PostgreSQL user can pick.
BOTH_WRITE_DRIVERS = pytest.mark.parametrize(
    "driver",
    [
        pytest.param("psycopg", marks=pytest.mark.writes_driver("psycopg")),
        pytest.param("asyncpg", marks=pytest.mark.writes_driver("asyncpg")),
    ],
)


@pytest.fixture(params=["sqlite", "postgres"])
async def settings(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sqlite_template: Path,
    postgres_template: str | None,
) -> AsyncIterator[Settings]:
    """Settings on a fresh, migrated database of each engine."""
    if request.param == "sqlite":
        path = tmp_path / "test.sqlite3"
        shutil.copyfile(sqlite_template, path)
        yield Settings(database_url=f"sqlite+aiosqlite:///{path}", acting_user="tester")
        return
    if postgres_template is None:
        pytest.skip("PostgreSQL is not installed here (set CI=true to make this a failure)")
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(f"{postgres_template}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}"))
    marked = request.node.get_closest_marker("writes_driver")
    writes_driver = marked.args[0] if marked else Settings.writes_driver
    try:
        yield Settings(
            database_url=f"{postgres_template}/{name}",
            acting_user="tester",
            writes_driver=writes_driver,
        )
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        await admin.dispose()


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture
def uow(engine: AsyncEngine) -> UnitOfWork:
    return UnitOfWork(engine, actor="tester")


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http
    await app.state.engine.dispose()


class GraphQLClient:
    """Posts operations with variables; returns the decoded body."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        response = await self.http.post("/graphql", json={"query": query, "variables": variables})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def gql(client: httpx.AsyncClient) -> GraphQLClient:
    return GraphQLClient(client)


def sync_engines(engine: AsyncEngine) -> list[Engine]:
    """``engine`` and, on PostgreSQL at READ COMMITTED, its companion for reads: where a test
    listens for statements, checkouts or connections of the app's database."""
    return list(dict.fromkeys((engine.sync_engine, reads_engine(engine).sync_engine)))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Report how many tests ran on each engine, so a skipped PostgreSQL half is visible."""
    counts: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "failed", "skipped", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", "call") != "call" and outcome != "skipped":
                continue
            params = getattr(report, "nodeid", "").partition("[")[2].rstrip("]").split("-")
            engine = next((p for p in params if p in {"sqlite", "postgres"}), None)
            if engine is None:
                continue
            counts.setdefault(engine, {}).setdefault(outcome, 0)
            counts[engine][outcome] += 1
    for engine in ("sqlite", "postgres"):
        figures = ", ".join(f"{n} {k}" for k, n in sorted(counts.get(engine, {}).items()))
        terminalreporter.write_line(f"{engine} tests: {figures or 'none'}")
