"""Prebuilt statements' arguments (lean_statements.Prepared): looked up by a plan made once,
they must be what SQLAlchemy's construct_params gives. No database needed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect

from gql_service import lean_statements
from gql_service.models import Opportunity, OpportunityState, table_of
from gql_service.repositories import _LOCK_OPPORTUNITY


@pytest.mark.parametrize("driver", ["psycopg", "asyncpg"])
def test_a_statements_arguments_are_the_values_sqlalchemy_constructs(driver: str) -> None:
    """``Prepared.arguments`` looks the values up by a plan made once; they must be what
    SQLAlchemy's construct_params gives, processed, for statements with parameters of their own
    (constants), of the caller's, of SQLAlchemy's making, and a computed one."""
    dialect = asyncpg_dialect() if driver == "asyncpg" else psycopg_dialect()
    table = table_of(Opportunity)
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    closing = (
        table.update()
        .where(table.c.id == bindparam("p_id"), table.c.state == OpportunityState.OPEN)
        .values(state=OpportunityState.WON, modified_at=bindparam("p_now"), description="x")
        .returning(table.c.id, table.c.state)
    )
    computed = select(table.c.id).where(table.c.version == bindparam("p_v", callable_=lambda: 7))
    cases: list[tuple[Any, dict[str, Any], bool]] = [
        (_LOCK_OPPORTUNITY, {"p_id": 5, "p_now": now, "p_actor": "tester"}, True),
        (closing, {"p_id": 9, "p_now": now}, True),
        (computed, {}, False),
    ]
    lean = lean_statements.Lean(dialect)
    for statement, params, planned in cases:
        prepared = lean.prepared(statement, params)
        assert prepared is not None
        assert (prepared.plan is not None) is planned
        values = prepared.compiled.construct_params(params)
        expected = [
            values[name] if process is None else process(values[name])
            for name, process in prepared.binds
        ]
        assert prepared.arguments(params) == expected
        # Another call's values, not the first's.
        other = {
            key: value + 1 if isinstance(value, int) else value for key, value in params.items()
        }
        values = prepared.compiled.construct_params(other)
        assert prepared.arguments(other) == [
            values[name] if process is None else process(values[name])
            for name, process in prepared.binds
        ]
