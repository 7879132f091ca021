"""Units of work on asyncpg (driver_writes.py): the results and the failures that SQLAlchemy's
path gives, on real PostgreSQL, and the way back to it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from sqlalchemy import Integer, bindparam, event, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine

from gql_service import deadlines
from gql_service.database import (
    WRITE_OPTION,
    create_engine,
    driver_writes,
    is_dead_connection,
    outcome_unknown,
)
from gql_service.deadlines import DatabaseTimeoutError
from gql_service.driver_reads import APPLICATION_NAME
from gql_service.driver_writes import DriverWrites
from gql_service.errors import OpenQuotesBlock, ValidationFailedError
from gql_service.lean_statements import NeedsSqlAlchemy
from gql_service.models import CloseOutcome, OpportunityStatusReason
from gql_service.quote_services import create_quote
from gql_service.records import QUOTE_CHANGE, OpportunityRecord
from gql_service.repositories import Repository
from gql_service.services import (
    close_opportunity,
    close_quotes,
    create_competitor,
    create_opportunity,
    reopen_opportunity,
)
from gql_service.settings import Settings
from gql_service.unit_of_work import UnitOfWork
from tests.conftest import BOTH_WRITE_DRIVERS
from tests.test_lean_statements import _version

pytestmark = pytest.mark.parametrize("settings", ["postgres"], indirect=True)


def _uow(engine: AsyncEngine, **options: Any) -> UnitOfWork:
    return UnitOfWork(engine, actor="tester", **options)


def _driver(engine: AsyncEngine) -> DriverWrites:
    driver = driver_writes(engine)
    assert driver is not None
    return driver


async def _opportunity(engine: AsyncEngine, quotes: int = 0) -> int:
    created = await create_opportunity(
        _uow(engine), name="Driver", customer_name="Contoso", currency_code="EUR"
    )
    for number in range(quotes):
        await create_quote(_uow(engine), opportunity_id=created.id, name=f"Quote {number}")
    return created.id


@asynccontextmanager
async def _row_locked(engine: AsyncEngine, pk: int) -> AsyncIterator[None]:
    """Another transaction holds the row lock a close's first statement waits for."""
    async with engine.connect() as blocker, blocker.begin():
        await blocker.execute(
            text("SELECT 1 FROM opportunity WHERE id = :id FOR UPDATE"), {"id": pk}
        )
        yield


def _comparable(value: Any) -> Any:
    """A result's attributes without what differs between two closes: ids, names, and the
    clock's readings (of which the type and time zone are kept)."""
    fields = getattr(value, "_fields", None) or getattr(value, "__dataclass_fields__", None)
    if fields is None:
        if isinstance(value, datetime):
            return (type(value), value.utcoffset())
        return [_comparable(item) for item in value] if isinstance(value, list) else value
    return {
        name: _comparable(getattr(value, name))
        for name in fields
        if name not in {"id", "name"} and not name.endswith(("_id", "quote_number"))
    }


async def test_closes_run_on_asyncpg_and_return_what_sqlalchemys_path_returns(
    settings: Settings, engine: AsyncEngine
) -> None:
    on_psycopg = create_engine(replace(settings, writes_driver="psycopg"))
    assert driver_writes(on_psycopg) is None
    driver = _driver(engine)
    try:
        results = []
        for target in (engine, on_psycopg):
            one_step = await _opportunity(engine, quotes=2)
            quoted = await _opportunity(engine, quotes=3)
            plain = await _opportunity(engine)
            committed = driver.committed
            results.append(
                [
                    await close_opportunity(
                        _uow(target),
                        opportunity_id=one_step,
                        outcome=CloseOutcome.LOST,
                        close_open_quotes=True,
                    ),
                    await close_quotes(_uow(target), opportunity_id=quoted),
                    await close_opportunity(
                        _uow(target),
                        opportunity_id=plain,
                        outcome=CloseOutcome.WON,
                        actual_revenue=Decimal("1234.50"),
                        status_reason=OpportunityStatusReason.WON,
                    ),
                ]
            )
            # Three transactions here on asyncpg; none on psycopg's engine.
            assert driver.committed - committed == (3 if target is engine else 0)
        on_asyncpg, on_sqlalchemy = results
        assert _comparable(on_asyncpg) == _comparable(on_sqlalchemy)
        closed = on_asyncpg[0]
        assert closed.opportunity.state == "LOST"
        assert [q.quote.state for q in closed.closed_quotes] == ["CLOSED", "CLOSED"]
        assert on_asyncpg[2].opportunity.actual_revenue == Decimal("1234.50")
    finally:
        await on_psycopg.dispose()


async def test_work_that_needs_the_session_runs_again_on_sqlalchemy_from_the_start(
    engine: AsyncEngine,
) -> None:
    driver = _driver(engine)
    competitor = await create_competitor(_uow(engine), name="Fabrikam")
    pk = await _opportunity(engine)
    version = await _version(engine, pk)
    handed_back, committed = driver.handed_back, driver.committed
    # The competitor is looked up by a prebuilt statement: the close stays on asyncpg.
    closed = await close_opportunity(
        _uow(engine), opportunity_id=pk, outcome=CloseOutcome.LOST, competitor_id=competitor.id
    )
    assert closed.close.competitor_id == competitor.id
    assert (driver.handed_back, driver.committed) == (handed_back, committed + 1)
    assert await _version(engine, pk) == version + 1
    # Reopening locks through the ORM session from its first statement: handed back, and the
    # version moves once, by the run on SQLAlchemy's path.
    reopened = await reopen_opportunity(_uow(engine), opportunity_id=pk)
    assert reopened.opportunity.state == "OPEN"
    assert (driver.handed_back, driver.committed) == (handed_back + 1, committed + 1)
    assert await _version(engine, pk) == version + 2


@BOTH_WRITE_DRIVERS
async def test_an_unknown_competitor_a_stale_version_or_an_unknown_id_is_refused(
    engine: AsyncEngine, driver: str
) -> None:
    on_asyncpg = driver_writes(engine)
    assert (on_asyncpg is not None) is (driver == "asyncpg")
    pk = await _opportunity(engine)
    version = await _version(engine, pk)
    handed_back = on_asyncpg.handed_back if on_asyncpg is not None else 0
    codes = []
    for target, expected, competitor in (
        (pk, None, 10**6),
        (pk, version + 5, None),
        (10**6, None, None),
    ):
        with pytest.raises(ValidationFailedError) as refused:
            await close_opportunity(
                _uow(engine),
                opportunity_id=target,
                outcome=CloseOutcome.LOST,
                expected_version=expected,
                competitor_id=competitor,
            )
        codes.append(refused.value.violations[0].code)
    assert codes == ["NOT_FOUND", "CONCURRENCY_CONFLICT", "NOT_FOUND"]
    # Told apart by prebuilt statements: on asyncpg, without running again elsewhere.
    if on_asyncpg is not None:
        assert on_asyncpg.handed_back == handed_back
    assert await _version(engine, pk) == version


async def test_a_refused_close_on_asyncpg_leaves_nothing_behind(engine: AsyncEngine) -> None:
    pk = await _opportunity(engine, quotes=1)
    version = await _version(engine, pk)
    driver = _driver(engine)
    committed, handed_back = driver.committed, driver.handed_back
    relocked = driver.relocked
    with pytest.raises(ValidationFailedError) as refused:
        await close_opportunity(_uow(engine), opportunity_id=pk, outcome=CloseOutcome.LOST)
    violation = refused.value.violations[0]
    assert violation.code == "OPPORTUNITY_HAS_OPEN_QUOTES"
    assert [q.name for q in getattr(violation, "open_quotes", ())] == ["Quote 0"]
    # The unlocked call's close found the quote open and undid its lock; the locked work
    # named it by a prebuilt statement on asyncpg too (no rerun on SQLAlchemy's path), and
    # its locking UPDATE was rolled back.
    assert driver.relocked == relocked + 1
    assert driver.handed_back == handed_back
    assert driver.committed == committed
    assert await _version(engine, pk) == version
    # The connection went back idle, outside any transaction.
    async with driver.connections.connection() as connection:
        assert not connection.is_in_transaction()


async def test_a_dry_run_on_asyncpg_writes_nothing(engine: AsyncEngine) -> None:
    pk = await _opportunity(engine, quotes=2)
    version = await _version(engine, pk)
    closed = await close_opportunity(
        _uow(engine, dry_run=True),
        opportunity_id=pk,
        outcome=CloseOutcome.LOST,
        close_open_quotes=True,
    )
    assert closed.opportunity.state == "LOST"
    assert len(closed.closed_quotes) == 2
    assert await _version(engine, pk) == version
    async with engine.connect() as connection:
        states = (
            await connection.execute(
                text("SELECT state FROM quote WHERE opportunity_id = :id"), {"id": pk}
            )
        ).scalars()
        assert set(states) == {"DRAFT"}


async def test_a_server_error_keeps_its_sqlstate_and_the_connection(engine: AsyncEngine) -> None:
    pk = await _opportunity(engine)
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "CREATE FUNCTION refuse_close() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN RAISE EXCEPTION 'no' USING ERRCODE = '23514'; END $$"
            )
        )
        await connection.execute(
            text(
                "CREATE TRIGGER refuse_close BEFORE INSERT ON opportunity_close "
                "FOR EACH ROW EXECUTE FUNCTION refuse_close()"
            )
        )
    driver = _driver(engine)
    with pytest.raises(DBAPIError) as raised:
        await close_opportunity(_uow(engine), opportunity_id=pk, outcome=CloseOutcome.LOST)
    assert raised.value.orig is not None
    assert getattr(raised.value.orig, "sqlstate", None) == "23514"
    assert type(raised.value).__name__ == "IntegrityError"  # as SQLAlchemy names class 23
    assert not raised.value.connection_invalidated
    assert not outcome_unknown(raised.value)
    # The connection was rolled back and kept.
    assert driver.connections.size() >= 1
    async with driver.connections.connection() as connection:
        assert not connection.is_in_transaction()


# The server ends the session of the first transaction that locks an opportunity (a sequence
# counts across rolled-back transactions), as a restart or an administrator would.
_ENDED_ONCE = [
    "CREATE SEQUENCE ended_once",
    """
    CREATE FUNCTION end_once() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF nextval('ended_once') = 1 THEN
        PERFORM pg_terminate_backend(pg_backend_pid());
        PERFORM pg_sleep(5);
      END IF;
      RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER end_once BEFORE UPDATE ON opportunity
    FOR EACH ROW EXECUTE FUNCTION end_once()
    """,
]


async def test_a_transaction_on_a_connection_the_server_ended_is_retried_once(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    pks = [await _opportunity(engine) for _ in range(3)]
    # Two closes at once leave two idle asyncpg connections.
    await asyncio.gather(
        *(
            close_opportunity(_uow(engine), opportunity_id=pk, outcome=CloseOutcome.WON)
            for pk in pks[:2]
        )
    )
    driver = _driver(engine)
    assert driver.connections.size() == 2
    before = await _asyncpg_sessions(engine)
    assert len(before) == 2
    async with engine.begin() as connection:
        for statement in _ENDED_ONCE:
            await connection.execute(text(statement))
    committed = driver.committed
    version = await _version(engine, pks[2])

    async def lock(repo: Repository) -> OpportunityRecord:
        # A transaction whose first statement dies with its connection (a close's unlocked
        # call commits itself; see the next test).
        return await repo.lock_opportunity_row(pks[2], expected_version=None)

    with caplog.at_level(logging.INFO, logger="gql_service.unit_of_work"):
        locked = await _uow(engine).run(lock)
    # Retried once, on asyncpg, on a fresh connection: the other idle one was let go with the
    # dead one (the server may have restarted), as SQLAlchemy's pool replaces its older ones.
    assert locked.version == version + 1
    assert [r for r in caplog.records if "fresh connection" in r.getMessage()]
    assert await _version(engine, pks[2]) == version + 1
    assert driver.committed == committed + 1
    assert driver.connections.size() == 1
    assert not (await _asyncpg_sessions(engine)) & before


async def test_a_close_whose_call_the_server_ended_says_its_outcome_is_unknown(
    engine: AsyncEngine,
) -> None:
    """Unlocked, the close is one call that commits itself (locked_calls.py): a connection
    lost while it runs may have committed it, as a lost COMMIT may have. The outcome is
    unknown, and the close is not run again."""
    pk = await _opportunity(engine)
    version = await _version(engine, pk)
    driver = _driver(engine)
    async with engine.begin() as connection:
        for statement in _ENDED_ONCE:
            await connection.execute(text(statement))
    unlocked = driver.unlocked
    with pytest.raises(DBAPIError) as raised:
        await close_opportunity(_uow(engine), opportunity_id=pk, outcome=CloseOutcome.LOST)
    assert outcome_unknown(raised.value)
    assert driver.unlocked == unlocked
    # Not run again: a second run would have closed it (the trigger ends one session only).
    assert await _version(engine, pk) == version


@pytest.mark.parametrize(
    "write", ["closeOpportunity", "closeOpenQuotes", "closeQuotes", "closeQuotes changes"]
)
async def test_an_unlocked_close_leaves_a_held_lock_to_the_locked_path(
    engine: AsyncEngine, write: str
) -> None:
    """A transaction that adds an open quote (a new revision) holds the opportunity's lock as
    a close starts. The close read the opportunity before that quote, but does not write on
    what it read: its call waits for the lock only a moment (locked_calls.LOCK_WAIT), and the
    locked work, which waits in its transaction, finds the quote open once the lock is free
    (and refuses, or closes it too)."""
    pk = await _opportunity(engine, quotes=1)
    await close_quotes(_uow(engine), opportunity_id=pk)
    driver = _driver(engine)
    relocked = driver.relocked
    async with engine.connect() as other:
        adding = await other.begin()
        # As every write of an opportunity or its quotes does first: the version moves.
        await other.execute(
            text("UPDATE opportunity SET version = version + 1 WHERE id = :id"), {"id": pk}
        )
        quote = (
            await other.execute(
                text(
                    "INSERT INTO quote (opportunity_id, quote_number, revision_number, name, "
                    "currency_code, state, status_reason, version, created_at, created_by, "
                    "modified_at, modified_by) SELECT opportunity_id, quote_number, "
                    "revision_number + 1, name, currency_code, 'DRAFT', 'IN_PROGRESS', 1, now(), "
                    "'other', now(), 'other' FROM quote WHERE opportunity_id = :id RETURNING id"
                ),
                {"id": pk},
            )
        ).scalar_one()
        uow = _uow(engine)
        closing = asyncio.create_task(
            close_quotes(uow, opportunity_id=pk, changes_only=write.endswith("changes"))
            if write.startswith("closeQuotes")
            else close_opportunity(
                uow,
                opportunity_id=pk,
                outcome=CloseOutcome.LOST,
                close_open_quotes=write == "closeOpenQuotes",
            )
        )
        for _ in range(200):
            if driver.relocked > relocked:
                break
            await asyncio.sleep(0.01)
        assert driver.relocked == relocked + 1
        assert not closing.done()  # the locked work waits for the lock
        await adding.commit()
    if write == "closeOpportunity":
        with pytest.raises(ValidationFailedError) as refused:
            await closing
        [violation] = refused.value.violations
        assert isinstance(violation, OpenQuotesBlock)
        assert [q.id for q in violation.open_quotes] == [quote]
    elif write == "closeQuotes changes":  # the locked work's quotes are whole
        changed = await closing
        assert [(c.id, c.state, c.version) for c in changed.closed_quotes] == [(quote, "CLOSED", 2)]
    else:
        closed = await closing
        assert [c.quote.id for c in closed.closed_quotes] == [quote]


@pytest.mark.parametrize("write", ["closeQuotes", "closeOpenQuotes"])
async def test_an_unlocked_close_waits_for_its_write_once_it_holds_the_lock(
    settings: Settings, engine: AsyncEngine, write: str
) -> None:
    """The call waits only a moment for the opportunity's lock (locked_calls.LOCK_WAIT); once
    it holds it, its write waits as long as it must: here for an open quote's row lock, which
    another transaction holds without the opportunity's (the service's writes never do; the
    server's own short locks, such as the one that extends a table for new rows, are waited
    for the same way). The close is still the one call, and the session's lock_timeout is as
    it was: closeQuotes' function (which returns the locked row too) and closeOpportunity's."""
    one_connection = create_engine(replace(settings, db_pool_size=1))
    try:
        driver = _driver(one_connection)
        pk = await _opportunity(one_connection, quotes=2)
        async with driver.connections.connection() as connection:
            await connection.execute("SET lock_timeout = '7s'")
        unlocked, relocked = driver.unlocked, driver.relocked
        async with engine.connect() as other:
            holding = await other.begin()
            await other.execute(
                text(
                    "SELECT id FROM quote WHERE opportunity_id = :id ORDER BY id LIMIT 1 FOR UPDATE"
                ),
                {"id": pk},
            )
            uow = _uow(one_connection)
            closing = asyncio.create_task(
                close_quotes(uow, opportunity_id=pk)
                if write == "closeQuotes"
                else close_opportunity(
                    uow, opportunity_id=pk, outcome=CloseOutcome.LOST, close_open_quotes=True
                )
            )
            await asyncio.sleep(0.3)
            assert not closing.done()  # its write waits for the quote
            await holding.commit()
        closed = await closing
        assert [c.quote.state for c in closed.closed_quotes] == ["CLOSED", "CLOSED"]
        assert (driver.unlocked, driver.relocked) == (unlocked + 1, relocked)
        async with driver.connections.connection() as connection:
            assert await connection.fetchval("SHOW lock_timeout") == "7s"
    finally:
        await one_connection.dispose()


async def test_a_close_that_finds_no_asyncpg_connection_waits_for_one_once(
    settings: Settings,
) -> None:
    """Every asyncpg connection busy past the pool's time-out: the close's unlocked try gives
    up with a pool time-out, which the locked work would only wait for again."""
    engine = create_engine(replace(settings, db_pool_timeout_ms=200))
    try:
        pk = await _opportunity(engine)
        driver = _driver(engine)
        held = []
        while True:  # (until the pool is used up)
            try:
                held.append(await driver.connections.take())
            except PoolTimeoutError:
                break
        relocked = driver.relocked
        try:
            with pytest.raises(PoolTimeoutError):
                await close_opportunity(_uow(engine), opportunity_id=pk, outcome=CloseOutcome.LOST)
        finally:
            for connection in held:
                driver.connections.give(connection)
        assert driver.relocked == relocked
        closed = await close_opportunity(_uow(engine), opportunity_id=pk, outcome=CloseOutcome.LOST)
        assert closed.opportunity.state == "LOST"
    finally:
        await engine.dispose()


async def _locked_functions(engine: AsyncEngine) -> list[str]:
    """The unlocked closes' functions (locked_calls.py) on the idle asyncpg connection."""
    driver = _driver(engine)
    async with driver.connections.connection() as connection:
        rows = await connection.fetch(
            "SELECT proname FROM pg_proc WHERE pronamespace = pg_my_temp_schema()"
        )
    return sorted(row[0] for row in rows)


@pytest.mark.parametrize("write", ["closeOpportunity", "closeOpenQuotes", "closeQuotes"])
async def test_an_unlocked_close_is_one_call_made_once_per_connection(
    settings: Settings, write: str
) -> None:
    """Unlocked, a close reads the opportunity and then makes one call: its lock and its close
    in a function of the connection's temporary schema, made on first use and used again. A
    session whose temporary objects were discarded makes it again (the close in between runs
    locked)."""
    # (One asyncpg connection: each close takes the one the last gave back.)
    engine = create_engine(replace(settings, db_pool_size=1))
    try:
        driver = _driver(engine)
        quotes = 0 if write == "closeOpportunity" else 2
        pks = [await _opportunity(engine, quotes=quotes) for _ in range(4)]

        async def close(pk: int) -> None:
            closed: Any
            if write == "closeQuotes":
                closed = await close_quotes(_uow(engine), opportunity_id=pk)
                assert closed.opportunity.state == "OPEN"
            else:
                closed = await close_opportunity(
                    _uow(engine),
                    opportunity_id=pk,
                    outcome=CloseOutcome.LOST,
                    close_open_quotes=write == "closeOpenQuotes",
                )
                assert closed.opportunity.state == "LOST"
            assert len(closed.closed_quotes) == quotes

        unlocked, relocked = driver.unlocked, driver.relocked
        await close(pks[0])
        made = await _locked_functions(engine)
        assert len(made) == 1
        assert made[0].startswith("gql_locked_")
        await close(pks[1])
        assert await _locked_functions(engine) == made
        assert (driver.unlocked, driver.relocked) == (unlocked + 2, relocked)
        async with driver.connections.connection() as connection:
            await connection.execute("DISCARD TEMP")
        await close(pks[2])  # the call fails (no such function): the locked work closes it
        assert (driver.unlocked, driver.relocked) == (unlocked + 2, relocked + 1)
        await close(pks[3])
        assert (driver.unlocked, driver.relocked) == (unlocked + 3, relocked + 1)
        assert await _locked_functions(engine) == made
    finally:
        await engine.dispose()


async def _asyncpg_sessions(engine: AsyncEngine) -> set[int]:
    """The server processes of the asyncpg connections."""
    async with engine.connect() as connection:
        found = await connection.execute(
            text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
            {"name": APPLICATION_NAME},
        )
        return set(found.scalars())


_SLOW_COMMIT = [
    """
    CREATE FUNCTION slow_close_commit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_sleep(10); RETURN NULL; END $$
    """,
    """
    CREATE CONSTRAINT TRIGGER slow_close_commit AFTER INSERT ON opportunity_close
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_close_commit()
    """,
]


async def test_an_unlocked_close_whose_opportunity_moved_after_its_read_runs_locked(
    settings: Settings,
) -> None:
    """Another transaction changes the opportunity between the unlocked close's read (a WON
    close without a revenue takes the estimate) and its call: the call's lock, at the version
    read, changes no row and writes nothing, and the locked work closes the opportunity as it
    now is."""
    engine = create_engine(replace(settings, db_pool_size=1))  # (one asyncpg connection)
    try:
        competitor = (await create_competitor(_uow(engine), name="Fabrikam")).id
        assert competitor is not None
        warm, pk = await _opportunity(engine), await _opportunity(engine)
        version = await _version(engine, pk)
        driver = _driver(engine)

        async def close(opportunity_id: int) -> Any:
            # (With a competitor: its check is a round trip between the read and the call.)
            return await close_opportunity(
                _uow(engine),
                opportunity_id=opportunity_id,
                outcome=CloseOutcome.WON,
                competitor_id=competitor,
            )

        # (Its statements prepared first: asyncpg logs a statement's executions after that.)
        await close(warm)
        moved: list[bool] = []
        url = settings.database_url.replace("postgresql+psycopg://", "postgresql://")

        def move_after_the_read(query: Any) -> None:
            # asyncpg calls this as soon as the loop is free after the read, which is while
            # the competitor's check is under way; blocking, it moves the row before the call.
            if moved or not query.query.startswith("SELECT opportunity.id"):
                return
            moved.append(True)
            with psycopg.connect(url, autocommit=True) as other:
                other.execute(
                    "UPDATE opportunity SET version = version + 1, description = 'moved' "
                    "WHERE id = %s",
                    (pk,),
                )

        async with driver.connections.connection() as connection:
            connection.add_query_logger(move_after_the_read)
        unlocked, relocked = driver.unlocked, driver.relocked
        closed = await close(pk)
        assert moved
        assert (driver.unlocked, driver.relocked) == (unlocked, relocked + 1)
        assert closed.opportunity.state == "WON"
        assert closed.opportunity.description == "moved"
        assert closed.opportunity.version == version + 2
        assert await _version(engine, pk) == version + 2
    finally:
        await engine.dispose()


@pytest.mark.parametrize("state", ["OPEN", "WON", "LOST"])
async def test_a_close_that_needs_no_read_locks_only_an_open_opportunity(
    settings: Settings, state: str
) -> None:
    """A LOST close (or a WON one with its revenue) does not depend on the opportunity's
    values: its one call locks the opportunity only in the state the rules require
    (rules.OPEN_STATE), without reading it first. An opportunity in any other state is left to
    the locked work, which refuses it as the rules say."""
    engine = create_engine(replace(settings, db_pool_size=1))  # (one asyncpg connection)
    try:
        warm, pk = await _opportunity(engine), await _opportunity(engine)
        await close_opportunity(_uow(engine), opportunity_id=warm, outcome=CloseOutcome.LOST)
        if state != "OPEN":
            await close_opportunity(_uow(engine), opportunity_id=pk, outcome=CloseOutcome(state))
        version = await _version(engine, pk)
        driver = _driver(engine)
        sent: list[str] = []
        async with driver.connections.connection() as connection:
            connection.add_query_logger(lambda query: sent.append(query.query))
        unlocked, relocked = driver.unlocked, driver.relocked
        if state == "OPEN":
            closed = await close_opportunity(
                _uow(engine), opportunity_id=pk, outcome=CloseOutcome.LOST
            )
            assert closed.opportunity.state == "LOST"
            assert closed.opportunity.version == version + 1
            assert (driver.unlocked, driver.relocked) == (unlocked + 1, relocked)
            await asyncio.sleep(0.05)  # (asyncpg calls its loggers soon after)
            assert len(sent) == 1
            assert sent[0].startswith("SELECT * FROM pg_temp.gql_locked_")
        else:
            with pytest.raises(ValidationFailedError) as refused:
                await close_opportunity(_uow(engine), opportunity_id=pk, outcome=CloseOutcome.LOST)
            assert [v.code for v in refused.value.violations] == ["OPPORTUNITY_ALREADY_CLOSED"]
            assert (driver.unlocked, driver.relocked) == (unlocked, relocked + 1)
            assert await _version(engine, pk) == version
    finally:
        await engine.dispose()


@pytest.mark.parametrize("quotes", [0, 2])
async def test_closing_quotes_unlocked_answers_with_the_opportunity_as_locked(
    engine: AsyncEngine, quotes: int
) -> None:
    """The unlocked closeQuotes answers with the row its call's lock returned, before the
    quotes it closed, or none: the opportunity as the database now holds it."""
    pk = await _opportunity(engine, quotes=quotes)
    driver = _driver(engine)
    unlocked = driver.unlocked
    closed = await close_quotes(_uow(engine), opportunity_id=pk)
    assert driver.unlocked == unlocked + 1
    assert [c.quote.state for c in closed.closed_quotes] == ["CLOSED"] * quotes
    async with engine.connect() as connection:
        stored = (
            await connection.execute(text("SELECT * FROM opportunity WHERE id = :id"), {"id": pk})
        ).one()
        states = (
            await connection.execute(
                text("SELECT state FROM quote WHERE opportunity_id = :id"), {"id": pk}
            )
        ).scalars()
        assert set(states) == ({"CLOSED"} if quotes else set())
    assert closed.opportunity._asdict() == dict(stored._mapping)  # type: ignore[attr-defined]


@pytest.mark.parametrize("quotes", [0, 3])
async def test_closing_quotes_for_their_changes_is_one_call_that_returns_only_those(
    engine: AsyncEngine, quotes: int
) -> None:
    """closeQuotes with ``changes_only`` makes the same one call, whose closed quotes are only
    what the close changed (records.QUOTE_CHANGE), as the database now holds it; the close
    records are written all the same, one per quote, in one batch."""
    pk = await _opportunity(engine, quotes=quotes)
    driver = _driver(engine)
    unlocked, relocked = driver.unlocked, driver.relocked
    changed = await close_quotes(_uow(engine), opportunity_id=pk, changes_only=True)
    assert (driver.unlocked, driver.relocked) == (unlocked + 1, relocked)
    async with engine.connect() as connection:
        stored = (
            await connection.execute(
                text("SELECT * FROM quote WHERE opportunity_id = :id ORDER BY id"), {"id": pk}
            )
        ).all()
        records = (
            await connection.execute(
                text(
                    "SELECT c.quote_id, c.status_reason, c.batch_id FROM quote_close c "
                    "JOIN quote q ON q.id = c.quote_id WHERE q.opportunity_id = :id "
                    "ORDER BY c.quote_id"
                ),
                {"id": pk},
            )
        ).all()
    assert [c._fields for c in changed.closed_quotes] == [QUOTE_CHANGE] * quotes  # type: ignore[attr-defined]
    assert [c._asdict() for c in changed.closed_quotes] == [  # type: ignore[attr-defined]
        {name: row._mapping[name] for name in QUOTE_CHANGE} for row in stored
    ]
    assert [(r.quote_id, r.status_reason) for r in records] == [(q.id, "LOST") for q in stored]
    assert len({r.batch_id for r in records}) == min(quotes, 1)
    assert changed.opportunity.version == (await _version(engine, pk))


@pytest.mark.parametrize("state", ["WON", "LOST"])
async def test_closing_the_quotes_of_a_closed_opportunity_is_refused_by_the_locked_work(
    engine: AsyncEngine, state: str
) -> None:
    """closeQuotes' call locks only an open opportunity: a closed one is left to the locked
    work, which refuses it as the rules say, and nothing changes."""
    pk = await _opportunity(engine)
    await close_opportunity(_uow(engine), opportunity_id=pk, outcome=CloseOutcome(state))
    version = await _version(engine, pk)
    driver = _driver(engine)
    unlocked, relocked = driver.unlocked, driver.relocked
    with pytest.raises(ValidationFailedError) as refused:
        await close_quotes(_uow(engine), opportunity_id=pk)
    assert [v.code for v in refused.value.violations] == ["OPPORTUNITY_ALREADY_CLOSED"]
    assert (driver.unlocked, driver.relocked) == (unlocked, relocked + 1)
    assert await _version(engine, pk) == version


async def test_closes_run_locked_where_the_server_refuses_their_function(
    settings: Settings, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """A role without the right to create temporary objects: the first unlocked close's
    function is refused, that close runs locked, and no close tries unlocked again."""
    database = settings.database_url.rsplit("/", 1)[1]
    role = f"no_temp_{database}"
    async with engine.begin() as connection:
        for statement in (
            f"CREATE ROLE {role} LOGIN",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
            f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}",
            f"REVOKE TEMPORARY ON DATABASE {database} FROM PUBLIC",
        ):
            await connection.execute(text(statement))
    pks = [await _opportunity(engine) for _ in range(2)]
    url = settings.database_url.replace("://postgres@", f"://{role}@")
    assert url != settings.database_url
    limited = create_engine(replace(settings, database_url=url))
    try:
        driver = _driver(limited)
        unlocked, relocked = driver.unlocked, driver.relocked
        with caplog.at_level(logging.WARNING, logger="gql_service.driver_writes"):
            for pk in pks:
                closed = await close_opportunity(
                    _uow(limited), opportunity_id=pk, outcome=CloseOutcome.LOST
                )
                assert closed.opportunity.state == "LOST"
        assert (driver.unlocked, driver.relocked) == (unlocked, relocked + 1)
        assert not driver.unlocked_tries
        assert [r for r in caplog.records if "refused their function" in r.getMessage()]
    finally:
        await limited.dispose()
        async with engine.begin() as connection:
            await connection.execute(text(f"DROP OWNED BY {role}"))
            await connection.execute(text(f"DROP ROLE {role}"))


async def test_a_commit_the_deadline_cut_off_has_an_unknown_outcome(engine: AsyncEngine) -> None:
    pk = await _opportunity(engine)
    async with engine.begin() as connection:
        for statement in _SLOW_COMMIT:
            await connection.execute(text(statement))
    committed = _driver(engine).committed
    started = time.monotonic()
    with deadlines.deadline(0.5), pytest.raises(DBAPIError) as raised:
        await close_opportunity(_uow(engine), opportunity_id=pk, outcome=CloseOutcome.LOST)
    assert time.monotonic() - started < 2
    assert isinstance(raised.value.orig, DatabaseTimeoutError)
    # Cut off while committing: the client is told it may or may not have been applied, and
    # it is not sent again.
    assert outcome_unknown(raised.value)
    assert not is_dead_connection(raised.value)
    assert _driver(engine).committed == committed


async def test_a_close_cancelled_mid_way_gives_its_connection_up(
    settings: Settings, engine: AsyncEngine
) -> None:
    pk = await _opportunity(engine)
    driver = _driver(engine)
    async with _row_locked(engine, pk):
        task = asyncio.create_task(
            close_opportunity(_uow(engine), opportunity_id=pk, outcome=CloseOutcome.LOST)
        )
        await asyncio.sleep(0.3)  # waiting on the lock, on asyncpg
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Terminated rather than given back busy; its server session ends.
        assert driver.connections.size() == 0
    for _ in range(50):
        if not await _asyncpg_sessions(engine):
            break
        await asyncio.sleep(0.05)
    assert not await _asyncpg_sessions(engine)
    closed = await close_opportunity(_uow(engine), opportunity_id=pk, outcome=CloseOutcome.LOST)
    assert closed.opportunity.state == "LOST"


async def test_concurrent_closes_on_asyncpg_close_each_once(engine: AsyncEngine) -> None:
    pks = [await _opportunity(engine) for _ in range(4)]

    async def close(pk: int, outcome: CloseOutcome) -> str:
        try:
            await close_opportunity(_uow(engine), opportunity_id=pk, outcome=outcome)
        except ValidationFailedError as failed:
            return failed.violations[0].code
        return "CLOSED"

    answers = await asyncio.gather(
        *(close(pk, outcome) for pk in pks for outcome in (CloseOutcome.WON, CloseOutcome.LOST))
    )
    for index in range(len(pks)):
        pair = sorted(answers[2 * index : 2 * index + 2])
        assert pair == ["CLOSED", "OPPORTUNITY_ALREADY_CLOSED"]


async def test_an_argument_asyncpg_refuses_sends_the_statement_to_sqlalchemy(
    engine: AsyncEngine,
) -> None:
    driver = _driver(engine)
    statement = select(bindparam("x", type_=Integer).label("x"))
    transaction = await driver.begin()
    try:
        assert [tuple(row) for row in await transaction.rows(statement, {"x": 7})] == [(7,)]
        with pytest.raises(NeedsSqlAlchemy):
            await transaction.rows(statement, {"x": "seven"})
        # Remembered: not offered to asyncpg again, even with an argument it takes.
        with pytest.raises(NeedsSqlAlchemy):
            await transaction.rows(statement, {"x": 8})
    finally:
        await transaction.release()


async def test_statements_someone_listens_to_take_sqlalchemys_path(engine: AsyncEngine) -> None:
    pk = await _opportunity(engine)
    driver = _driver(engine)
    committed = driver.committed
    seen: list[str] = []

    def listen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", listen)
    try:
        await close_opportunity(_uow(engine), opportunity_id=pk, outcome=CloseOutcome.LOST)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", listen)
    assert driver.committed == committed
    assert any(statement.startswith("UPDATE opportunity") for statement in seen)


async def test_writes_driver_psycopg_keeps_units_of_work_on_sqlalchemy(settings: Settings) -> None:
    assert settings.writes_driver == "asyncpg"
    for changed, expected in (
        ({"writes_driver": "psycopg"}, False),
        ({"compiled_reads_driver": "psycopg"}, False),
        ({}, True),
    ):
        engine = create_engine(replace(settings, **changed))
        try:
            assert (driver_writes(engine) is not None) is expected
        finally:
            await engine.dispose()
    with pytest.raises(ValueError, match="WRITES_DRIVER must be one of asyncpg, psycopg"):
        Settings.from_env({"DATABASE_URL": settings.database_url, "WRITES_DRIVER": "pg8000"})


# As W2-1000 leaves the quote table: a few opportunities with hundreds of quotes each, closed.
_CROWDED = """
WITH o AS (
    INSERT INTO opportunity (
        name, customer_name, currency_code, state, status_reason, forecast_category, version,
        created_at, created_by, modified_at, modified_by)
    SELECT 'Crowded ' || g, 'Contoso', 'EUR', 'OPEN', 'IN_PROGRESS', 'PIPELINE', 1,
           now(), 'tester', now(), 'tester'
    FROM generate_series(1, 30) g
    RETURNING id
)
INSERT INTO quote (
    opportunity_id, quote_number, revision_number, name, currency_code, state, status_reason,
    closed_on, version, created_at, created_by, modified_at, modified_by)
SELECT o.id, 'C-' || o.id || '-' || k, 0, 'Crowded quote', 'EUR', 'CLOSED', 'LOST',
       date '2025-06-30', 2, now(), 'tester', now(), 'tester'
FROM o CROSS JOIN generate_series(1, 500) k
"""


@BOTH_WRITE_DRIVERS
async def test_closes_are_planned_once_however_the_quotes_are_spread(
    engine: AsyncEngine, driver: str
) -> None:
    """The closes name the open quote states as literals, so PostgreSQL keeps one generic plan
    of each prepared statement. With the states as parameters, once closes like W2-1000's had
    crowded the quote table's statistics, it planned every execution anew."""
    async with engine.begin() as connection:
        await connection.execute(text(_CROWDED))
        await connection.execute(text("ANALYZE quote"))
    targets = [await _opportunity(engine, quotes=2) for _ in range(16)]
    for pk in targets:
        # (On asyncpg, dry runs: the transaction's prepared statement, not the same one run
        # inside an unlocked close's function, locked_calls.py, whose plans
        # pg_prepared_statements does not count.)
        await close_opportunity(
            _uow(engine, dry_run=driver == "asyncpg"),
            opportunity_id=pk,
            outcome=CloseOutcome.LOST,
            close_open_quotes=True,
        )
    # (One close after the other: each took the connection the last one gave back.)
    plans = await _plans_of(engine, "WITH closed AS%")
    assert len(plans) == 1
    # PostgreSQL plans the first five executions of a prepared statement for their
    # parameters, then compares; the rest ran its generic plan (all of them were custom
    # plans with the states as parameters). psycopg prepares from the sixth execution.
    custom, generic = plans[0]
    assert custom <= 5
    assert generic >= 5


async def _plans_of(engine: AsyncEngine, statement: str) -> list[tuple[int, int]]:
    """Custom and generic plans of the write connection's prepared statements like
    ``statement``: on asyncpg's connection for units of work if there is one, else on the
    pool for transactions."""
    query = "SELECT custom_plans, generic_plans FROM pg_prepared_statements WHERE statement LIKE $1"
    on_asyncpg = driver_writes(engine)
    if on_asyncpg is not None:
        connection = await on_asyncpg.connections.take()
        try:
            return [tuple(row) for row in await connection.fetch(query, statement)]
        finally:
            on_asyncpg.connections.give(connection)
    async with engine.execution_options(**{WRITE_OPTION: True}).connect() as sqlalchemy:
        found = await sqlalchemy.execute(
            text(query.replace("$1", ":statement")), {"statement": statement}
        )
        return [tuple(row) for row in found]
