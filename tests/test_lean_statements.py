"""Prebuilt statements on psycopg itself (lean_statements.py): the rows and the failures that
SQLAlchemy's path gives, on real PostgreSQL, with WRITES_DRIVER=psycopg."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy import Integer, TypeDecorator, bindparam, cast, event, insert, literal, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gql_service import deadlines, lean_statements
from gql_service.database import (
    create_engine,
    driver_writes,
    is_dead_connection,
    is_unavailable,
    outcome_unknown,
)
from gql_service.deadlines import DatabaseTimeoutError
from gql_service.errors import ValidationFailedError
from gql_service.models import CloseOutcome, Competitor, table_of
from gql_service.quote_services import create_quote
from gql_service.repositories import _LOCK_OPPORTUNITY
from gql_service.services import close_opportunity, create_opportunity
from gql_service.settings import Settings
from gql_service.unit_of_work import UnitOfWork
from tests.conftest import BOTH_WRITE_DRIVERS, GraphQLClient
from tests.operations import CLOSE_OPPORTUNITY, ok
from tests.operations import create_opportunity as create_through_api
from tests.postgres import terminate_sessions

# The units of work here run on SQLAlchemy's connection with psycopg (test_driver_writes.py
# has the same cases on asyncpg, where they run first by default; the cases marked
# _BOTH_DRIVERS run on each).
pytestmark = [
    pytest.mark.parametrize("settings", ["postgres"], indirect=True),
    pytest.mark.writes_driver("psycopg"),
]


async def _opportunity(engine: AsyncEngine, name: str = "Lean") -> int:
    created = await create_opportunity(
        UnitOfWork(engine, actor="tester"),
        name=name,
        customer_name="Contoso",
        currency_code="EUR",
    )
    return created.id


async def _failing_close(engine: AsyncEngine, pk: int, outcome: CloseOutcome) -> DBAPIError:
    """The database error a close of ``pk`` fails with."""
    with pytest.raises(DBAPIError) as raised:
        await close_opportunity(
            UnitOfWork(engine, actor="tester"), opportunity_id=pk, outcome=outcome
        )
    return raised.value


async def test_a_prebuilt_statement_returns_the_rows_sqlalchemy_returns(
    engine: AsyncEngine,
) -> None:
    pk = await _opportunity(engine)
    params = {"p_id": pk, "p_now": datetime.now(UTC), "p_actor": "tester"}
    async with engine.connect() as connection, connection.begin() as transaction:
        runner = await lean_statements.runner(connection)
        assert runner is not None
        served = runner.lean.served
        (lean,) = await runner.rows(_LOCK_OPPORTUNITY, params)
        assert runner.lean.served == served + 1
        (plain,) = (await connection.execute(_LOCK_OPPORTUNITY, params)).all()
        await transaction.rollback()
    assert lean._fields == plain._fields
    for key in plain._fields:
        if key == "version":  # each statement bumped it
            assert plain.version == lean.version + 1
            continue
        # Enum members, UTC timestamps and money come back as SQLAlchemy's types make them.
        assert getattr(lean, key) == getattr(plain, key), key
        assert type(getattr(lean, key)) is type(getattr(plain, key)), key


async def test_a_server_error_is_raised_as_sqlalchemy_raises_it(engine: AsyncEngine) -> None:
    competitor = table_of(Competitor)
    values = {"name": "Proseware", "created_at": datetime.now(UTC), "created_by": "tester"}
    statement = insert(competitor).returning(competitor.c.id)
    async with engine.connect() as connection:
        async with connection.begin():
            runner = await lean_statements.runner(connection)
            assert runner is not None
            await runner.rows(statement, values)
        transaction = await connection.begin()
        runner = await lean_statements.runner(connection)
        assert runner is not None
        with pytest.raises(IntegrityError) as raised:
            await runner.rows(statement, values)
        await transaction.rollback()
        assert getattr(raised.value.orig, "sqlstate", None) == "23505"
        assert not raised.value.connection_invalidated
        # The connection is still good for the next transaction.
        assert (await connection.execute(text("SELECT 1"))).scalar() == 1


async def test_a_close_succeeds_after_the_server_killed_every_session(
    settings: Settings, gql: GraphQLClient
) -> None:
    first = await create_through_api(gql)
    second = await create_through_api(gql)
    close = {"outcome": "LOST", "closeDate": "2025-06-30"}
    # The pool now holds connections; the server ends them all.
    ok(
        await gql(CLOSE_OPPORTUNITY, input={"opportunityId": first["id"], **close}),
        "closeOpportunity",
    )
    killed = await terminate_sessions(settings.database_url)
    assert killed
    # The lean statement meets a dead connection: retried once on a fresh one, as on
    # SQLAlchemy's path (unit_of_work.py).
    closed = ok(
        await gql(CLOSE_OPPORTUNITY, input={"opportunityId": second["id"], **close}),
        "closeOpportunity",
    )
    assert closed["opportunity"]["state"] == "LOST"


@BOTH_WRITE_DRIVERS
async def test_the_deadline_cuts_a_close_off(engine: AsyncEngine, driver: str) -> None:
    # (The unit of work runs on asyncpg there, on psycopg here: test_driver_writes.py.)
    on_asyncpg = driver_writes(engine)
    assert (on_asyncpg is not None) is (driver == "asyncpg")
    pk = await _opportunity(engine)
    async with engine.connect() as blocker, blocker.begin():
        # Another transaction holds the row lock the close's first statement waits for.
        await blocker.execute(
            text("SELECT 1 FROM opportunity WHERE id = :id FOR UPDATE"), {"id": pk}
        )
        started = time.monotonic()
        with deadlines.deadline(0.3), pytest.raises(DBAPIError) as raised:
            await close_opportunity(
                UnitOfWork(engine, actor="tester"), opportunity_id=pk, outcome=CloseOutcome.LOST
            )
        elapsed = time.monotonic() - started
    assert isinstance(raised.value.orig, DatabaseTimeoutError)
    assert raised.value.connection_invalidated
    assert is_unavailable(raised.value)
    assert not is_dead_connection(raised.value)  # not sent again
    assert elapsed < 2
    if on_asyncpg is not None:
        assert on_asyncpg.connections.size() == 0  # terminated, not given back
    # The cut-off connection went nowhere: the next close gets a good one.
    closed = await close_opportunity(
        UnitOfWork(engine, actor="tester"), opportunity_id=pk, outcome=CloseOutcome.LOST
    )
    assert closed.opportunity.state == "LOST"


async def test_statements_someone_listens_to_take_sqlalchemys_path(engine: AsyncEngine) -> None:
    pk = await _opportunity(engine)
    seen: list[str] = []

    def listen(*args: Any) -> None:
        seen.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", listen)
    try:
        async with engine.connect() as connection:
            assert await lean_statements.runner(connection) is None
        await close_opportunity(
            UnitOfWork(engine, actor="tester"), opportunity_id=pk, outcome=CloseOutcome.WON
        )
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", listen)
    assert any(statement.startswith("UPDATE opportunity") for statement in seen)
    assert any("INSERT INTO opportunity_close" in statement for statement in seen)


async def test_concurrent_closes_on_the_lean_path_close_each_once(engine: AsyncEngine) -> None:
    pks = [await _opportunity(engine, f"Race {i}") for i in range(4)]

    async def close(pk: int, outcome: CloseOutcome) -> str:
        try:
            done = await close_opportunity(
                UnitOfWork(engine, actor="tester"), opportunity_id=pk, outcome=outcome
            )
        except Exception as exc:  # the loser: already closed, as a typed error
            return type(exc).__name__
        return str(done.opportunity.state)

    results = await asyncio.gather(
        *(close(pk, outcome) for pk in pks for outcome in (CloseOutcome.WON, CloseOutcome.LOST))
    )
    for index in range(len(pks)):
        pair = results[2 * index : 2 * index + 2]
        assert sorted(r in ("WON", "LOST") for r in pair) == [False, True], pair
        assert "ValidationFailedError" in pair, pair  # OPPORTUNITY_ALREADY_CLOSED


async def test_a_transaction_on_a_connection_the_server_ended_is_retried_once(
    settings: Settings, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = await _opportunity(engine, "First"), await _opportunity(engine, "Second")
    await close_opportunity(
        UnitOfWork(engine, actor="tester"), opportunity_id=first, outcome=CloseOutcome.WON
    )
    async with engine.connect() as connection:
        pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar()
    # The pool's one connection (the close's, and this one's) ends on the server.
    assert await terminate_sessions(settings.database_url, pid) == 1
    with caplog.at_level(logging.INFO, logger="gql_service.unit_of_work"):
        closed = await close_opportunity(
            UnitOfWork(engine, actor="tester"), opportunity_id=second, outcome=CloseOutcome.LOST
        )
    assert closed.opportunity.state == "LOST"
    assert any("fresh connection" in r.getMessage() for r in caplog.records)


async def test_a_statement_on_a_connection_the_server_ended_says_so(
    settings: Settings, engine: AsyncEngine
) -> None:
    pk = await _opportunity(engine)
    params = {"p_id": pk, "p_now": datetime.now(UTC), "p_actor": "tester"}
    async with engine.connect() as connection:
        pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar()
        await connection.commit()
        assert await terminate_sessions(settings.database_url, pid) == 1
        transaction = await connection.begin()
        runner = await lean_statements.runner(connection)
        assert runner is not None
        with pytest.raises(DBAPIError) as raised:
            await runner.rows(_LOCK_OPPORTUNITY, params)
        # As SQLAlchemy raises it: a dead connection, invalidated, for the unit of work to
        # retry on a fresh one (and the pool's older connections are replaced).
        assert raised.value.connection_invalidated
        assert is_dead_connection(raised.value)
        assert connection.invalidated
        await transaction.rollback()


async def test_a_statement_the_deadline_cut_off_says_so(engine: AsyncEngine) -> None:
    pk = await _opportunity(engine)
    params = {"p_id": pk, "p_now": datetime.now(UTC), "p_actor": "tester"}
    lock = text("SELECT 1 FROM opportunity WHERE id = :id FOR UPDATE")
    async with engine.connect() as blocker, blocker.begin(), engine.connect() as connection:
        await blocker.execute(lock, {"id": pk})
        transaction = await connection.begin()
        runner = await lean_statements.runner(connection)
        assert runner is not None
        with deadlines.deadline(0.3), pytest.raises(DBAPIError) as raised:
            await runner.rows(_LOCK_OPPORTUNITY, params)
        assert isinstance(raised.value.orig, DatabaseTimeoutError)
        assert raised.value.connection_invalidated  # never back to the pool
        assert connection.invalidated
        assert not is_dead_connection(raised.value)  # not sent again
        await transaction.rollback()


async def test_statements_a_named_tuple_or_a_fixed_text_cannot_carry_go_to_sqlalchemy(
    engine: AsyncEngine,
) -> None:
    keyword = select(literal(1).label("class"), literal(2).label("_hidden"))
    expanding = select(literal(3).label("three")).where(literal(1).in_([1, 2]))
    plain = select(literal(4).label("four"))
    async with engine.connect() as connection:
        runner = await lean_statements.runner(connection)
        assert runner is not None
        served = runner.lean.served
        (row,) = await runner.rows(keyword, {})
        assert tuple(row) == (1, 2)
        assert [tuple(r) for r in await runner.rows(expanding, {})] == [(3,)]
        assert runner.lean.served == served  # both through SQLAlchemy
        (row,) = await runner.rows(plain, {})
        assert row.four == 4
        assert runner.lean.served == served + 1


@BOTH_WRITE_DRIVERS
async def test_a_statement_timeout_is_unavailable_and_keeps_the_connection(
    settings: Settings, driver: str
) -> None:
    engine = create_engine(replace(settings, statement_timeout_ms=200))
    assert (driver_writes(engine) is not None) is (driver == "asyncpg")
    try:
        pk = await _opportunity(engine)
        lock = text("SELECT 1 FROM opportunity WHERE id = :id FOR UPDATE")
        async with engine.connect() as blocker, blocker.begin():
            await blocker.execute(lock, {"id": pk})
            failure = await _failing_close(engine, pk, CloseOutcome.WON)
        # The server's own time-out: SQLSTATE 57014, unavailable (503), not sent again, and
        # the connection, still sound, stays in the pool.
        assert getattr(failure.orig, "sqlstate", None) == "57014"
        assert is_unavailable(failure)
        assert not failure.connection_invalidated
        assert not is_dead_connection(failure)
        closed = await close_opportunity(
            UnitOfWork(engine, actor="tester"), opportunity_id=pk, outcome=CloseOutcome.WON
        )
        assert closed.opportunity.state == "WON"
    finally:
        await engine.dispose()


class _NoneAsZero(TypeDecorator[int]):
    """A column type whose bind processor gives None a value (as a TypeDecorator may)."""

    impl = Integer
    cache_ok = True

    def process_bind_param(self, value: int | None, dialect: Any) -> int:
        return 0 if value is None else value


async def test_parameters_go_through_their_type_even_when_none(engine: AsyncEngine) -> None:
    statement = select(cast(bindparam("v", type_=_NoneAsZero()), Integer).label("v"))
    async with engine.connect() as connection:
        runner = await lean_statements.runner(connection)
        assert runner is not None
        served = runner.lean.served
        (lean,) = await runner.rows(statement, {"v": None})
        assert runner.lean.served == served + 1
        (plain,) = (await connection.execute(statement, {"v": None})).all()
    assert lean.v == plain.v == 0


# A deferred trigger that fails the COMMIT.
_FAILING_COMMIT = [
    """
    CREATE FUNCTION failing_close_commit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'refused at commit'; END $$
    """,
    """
    CREATE CONSTRAINT TRIGGER failing_close_commit AFTER INSERT ON opportunity_close
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION failing_close_commit()
    """,
]


async def _version(engine: AsyncEngine, pk: int) -> int:
    async with engine.connect() as connection:
        query = text("SELECT version FROM opportunity WHERE id = :id")
        version: int = (await connection.execute(query, {"id": pk})).scalar_one()
        return version


async def test_a_close_commits_on_psycopg_and_a_session_joins_the_same_transaction(
    engine: AsyncEngine,
) -> None:
    pk = await _opportunity(engine)
    commits: list[object] = []

    def committed(connection: object) -> None:
        commits.append(connection)

    async with engine.connect() as connection:
        runner = await lean_statements.runner(connection)
        assert runner is not None
        async with lean_statements.Transaction(runner) as transaction:
            await runner.rows(
                _LOCK_OPPORTUNITY, {"p_id": pk, "p_now": datetime.now(UTC), "p_actor": "tester"}
            )
            # Nothing of SQLAlchemy's has begun: the commit will be psycopg's alone.
            assert not connection.in_transaction()
            event.listen(engine.sync_engine, "commit", committed)
            runner.join_sqlalchemy()
            assert connection.in_transaction()
        event.remove(engine.sync_engine, "commit", committed)
        assert transaction._ended
    # The session's (or a fallback statement's) transaction was SQLAlchemy's to commit, and
    # it carried the lean statement's change with it.
    assert len(commits) == 1
    assert await _version(engine, pk) == 2


async def test_a_refused_close_on_the_lean_path_leaves_nothing_behind(engine: AsyncEngine) -> None:
    pk = await _opportunity(engine)
    await create_quote(UnitOfWork(engine, actor="tester"), opportunity_id=pk, name="Open")
    version = await _version(engine, pk)
    with pytest.raises(ValidationFailedError) as refused:
        await close_opportunity(
            UnitOfWork(engine, actor="tester"), opportunity_id=pk, outcome=CloseOutcome.LOST
        )
    assert refused.value.violations[0].code == "OPPORTUNITY_HAS_OPEN_QUOTES"
    # The locking UPDATE ran and was rolled back when the connection went back to the pool.
    assert await _version(engine, pk) == version
    async with engine.connect() as connection:
        state = (await connection.get_raw_connection()).driver_connection.info.transaction_status
        assert state == psycopg.pq.TransactionStatus.IDLE


@BOTH_WRITE_DRIVERS
async def test_a_close_after_a_migration_changed_a_returned_column_succeeds(
    engine: AsyncEngine, driver: str
) -> None:
    assert (driver_writes(engine) is not None) is (driver == "asyncpg")
    pks = [await _opportunity(engine) for _ in range(8)]
    # Enough closes for every driver to have prepared the statements on the server.
    for pk in pks[:7]:
        await close_opportunity(
            UnitOfWork(engine, actor="tester"), opportunity_id=pk, outcome=CloseOutcome.LOST
        )
    async with engine.begin() as connection:
        await connection.execute(
            text("ALTER TABLE opportunity ALTER COLUMN modified_by TYPE varchar(300)")
        )
    # The prepared statements return a column of another type now: the server refuses them
    # ("cached plan must not change result type"), and the close is run again, not failed.
    closed = await close_opportunity(
        UnitOfWork(engine, actor="tester"), opportunity_id=pks[7], outcome=CloseOutcome.LOST
    )
    assert closed.opportunity.state == "LOST"


@BOTH_WRITE_DRIVERS
async def test_a_failed_commit_is_raised_as_a_failed_commit(
    engine: AsyncEngine, driver: str
) -> None:
    assert (driver_writes(engine) is not None) is (driver == "asyncpg")
    pk = await _opportunity(engine)
    version = await _version(engine, pk)
    async with engine.begin() as connection:
        for statement in _FAILING_COMMIT:
            await connection.execute(text(statement))
    failure = await _failing_close(engine, pk, CloseOutcome.LOST)
    # Raised as SQLAlchemy's commit raises it, marked as a failure of the COMMIT (for a broken
    # connection, the client is told the close may or may not have been applied).
    assert getattr(failure.orig, "sqlstate", None) == "P0001"
    assert outcome_unknown(failure)
    assert not failure.connection_invalidated
    assert await _version(engine, pk) == version
