"""psycopg, trimmed (psycopg_tuning.py): lean column descriptions, long statements' parsing
kept."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import _queries
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gql_service.psycopg_tuning import LeanCursor


async def _driver_connection(engine: AsyncEngine, run: Any) -> Any:
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        return await run(raw.driver_connection)


async def test_result_columns_are_described_by_name_and_type_as_psycopg_would(
    engine: AsyncEngine,
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("psycopg is the PostgreSQL driver")

    async def describe(connection: Any) -> Any:
        lean = connection.cursor()
        assert isinstance(lean, LeanCursor)
        plain = psycopg.AsyncCursor(connection)
        query = "SELECT 1 AS one, 'x'::text, now() AS \"Zeit ü\", NULL::numeric(10, 2) AS money"
        await lean.execute(query)
        await plain.execute(query)
        described = (lean.description, [(c.name, c.type_code) for c in plain.description])
        await lean.execute("SELECT")  # rows of no column: psycopg says []
        no_columns = lean.description
        await lean.execute("SET application_name = 'tuning test'")  # no rows: None
        no_rows = lean.description
        return described, no_columns, no_rows

    (lean, plain), no_columns, no_rows = await _driver_connection(engine, describe)
    assert [(name, code) for name, code, *_ in lean] == plain
    assert [name for name, *_ in lean] == ["one", "text", "Zeit ü", "money"]
    assert all(type(column) is tuple and len(column) == 7 for column in lean)  # PEP 249
    assert no_columns == []
    assert no_rows is None


async def test_a_long_statement_is_parsed_once(engine: AsyncEngine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("psycopg is the PostgreSQL driver")
    # Longer than psycopg's own limit (4,096), as the close with its open quotes is.
    # (Under its other limit, of 50 parameters, as the close's are.)
    columns = ", ".join(f":v{i % 20} AS column_number_{i}" for i in range(200))
    statement = text(f"SELECT {columns}")
    assert len(str(statement)) > 4096
    params = {f"v{i}": i for i in range(20)}
    async with engine.connect() as connection:
        before = _queries._query2pg.cache_info()
        for _ in range(3):
            row = (await connection.execute(statement, params)).one()
            assert row.column_number_7 == 7
        after = _queries._query2pg.cache_info()
    assert after.hits - before.hits >= 2  # parsed at most once: fails at psycopg's limit
