"""A transaction's prebuilt statements on psycopg's cursor, without SQLAlchemy's execution.

The closes run prebuilt Core statements in their transaction (repositories.py): the locking
UPDATE, then one statement that closes and records (the opportunity, its quotes, or both).
Through ``AsyncConnection.execute`` each costs several times psycopg's own round trip in CPU
(greenlet switches, the compiled cache lookup, parameter processing, the execution context,
result metadata, events): in-process under uvloop, a bare transaction of two statements took
~870 µs through SQLAlchemy against ~360 on psycopg alone. So on PostgreSQL, when nothing
listens to statements (tracing and the tests that count statements do, and get SQLAlchemy's
path), ``Repository._rows`` hands them to a ``Runner`` on the transaction's own psycopg
connection. Measured in-process on the bench data set (medians of 8 alternating blocks):
closeOpportunity 1,897 -> 1,558 µs of CPU, with ``closeOpenQuotes`` 2,051 -> 1,665,
closeQuotes of 3 quotes 1,939 -> 1,592.

- Each statement is compiled once per set of parameter names with the engine's dialect, as
  SQLAlchemy compiles it for execution (an INSERT or UPDATE without values of its own sets the
  columns its parameters name).
- Parameters and result values go through the same SQLAlchemy types' processors (enums
  validated and returned as members, UTC timestamps, money); rows are named tuples with the
  keys SQLAlchemy's rows have.
- It runs on the connection the transaction holds, so the request's deadline cuts it off like
  any other round trip (deadlines.py).

Failures reach the caller as SQLAlchemy raises them. An error the server reports is wrapped
(DBAPIError, with its SQLSTATE for the unit of work's retries). A connection that broke, or that
the deadline cut off, goes through SQLAlchemy's own handling (``Connection._handle_dbapi_
exception``), which recognises the disconnect and invalidates the connection and the pool's
older ones: the unit of work then retries a dead connection once on a fresh one, and answers a
cut-off as unavailable without sending it again (database.is_dead_connection).

A statement SQLAlchemy would change at execution time (expanding or literal-execute
parameters, escaped names) or whose columns do not make a named tuple is left to SQLAlchemy.

The unit of work's transaction itself is ended on psycopg too (``Transaction``), where nothing
listens to transactions either: SQLAlchemy's begin and commit cost a close ~5% of its CPU
(``make bench-ab``: closeOpportunity 1,173 -> 1,110 µs per request, with ``closeOpenQuotes``
1,343 -> 1,251).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, cast
from weakref import WeakKeyDictionary

import psycopg
from cachetools import LRUCache
from sqlalchemy import Connection, Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler

from gql_service.deadlines import DatabaseTimeoutError

Process = Callable[[Any], Any] | None
# Statements remembered per dialect (the prebuilt ones are a few dozen).
STATEMENTS = 256


@dataclass
class Prepared:
    """One statement as SQLAlchemy would send it, and how to read its rows."""

    sql: str
    compiled: SQLCompiler
    binds: tuple[tuple[str, Process], ...]  # each parameter's name and processor
    types: tuple[Any, ...]
    row: Any  # the named tuple of its rows
    # The columns that have a result processor, with it (most have none); known after the
    # first execution, from the columns' types as the server describes them.
    processed: tuple[tuple[int, Callable[[Any], Any]], ...] | None = None

    # Per placeholder: the key of ``params`` to take, processed by its processor, or None
    # and the constant value (processed once) of a parameter the statement carries itself.
    plan: tuple[tuple[str | None, Any, Process], ...] | None = None

    def arguments(self, params: dict[str, Any]) -> list[Any]:
        """The parameters' values, processed, in the order of ``binds`` (a positional
        statement's placeholders)."""
        plan = self.plan
        if plan is None:
            values = self.compiled.construct_params(params)
            return [
                values[name] if process is None else process(values[name])
                for name, process in self.binds
            ]
        return [
            constant if key is None else params[key] if process is None else process(params[key])
            for key, constant, process in plan
        ]

    def parameters(self, params: dict[str, Any]) -> dict[str, Any]:
        """The parameters by name, for a statement with named placeholders."""
        return dict(zip((name for name, _ in self.binds), self.arguments(params), strict=True))

    def rows(
        self, fetched: Sequence[Sequence[Any]], dialect: Dialect, description: Any
    ) -> list[Any]:
        processed = self.processed
        if processed is None:
            results = (
                type_.dialect_impl(dialect).result_processor(dialect, column[1])
                for type_, column in zip(self.types, description, strict=True)
            )
            processed = self.processed = tuple(
                (index, process) for index, process in enumerate(results) if process is not None
            )
        make = self.row._make
        rows = []
        for row in fetched:
            values = list(row)
            for index, process in processed:
                values[index] = process(values[index])
            rows.append(make(values))
        return rows


def _prepare(statement: Executable, keys: tuple[str, ...], dialect: Dialect) -> Prepared | None:
    # As SQLAlchemy compiles it for these parameters: an INSERT or UPDATE without values of
    # its own sets the columns the parameters name.
    compiled = cast(
        SQLCompiler,
        cast(ClauseElement, statement).compile(dialect=dialect, column_keys=list(keys)),
    )
    if (
        compiled.positional != dialect.positional
        or compiled.literal_execute_params
        or compiled.post_compile_params
        or compiled.escaped_bind_names
        or not compiled._result_columns
    ):
        return None
    names = tuple(column[0] for column in compiled._result_columns)
    try:
        # (Refuses repeated names, keywords, and names that are not identifiers or start with
        # an underscore: SQLAlchemy's rows would name those columns differently.)
        row = namedtuple("Row", names)  # type: ignore[misc]
    except ValueError:
        return None
    # (A positional statement's in the order of its placeholders; asyncpg's numbered ones
    # name each parameter once.)
    named = {name: bind for bind, name in compiled.bind_names.items()}
    order = compiled.positiontup if compiled.positional else named
    assert order is not None
    binds = tuple(
        (name, named[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in order
    )
    return Prepared(
        sql=compiled.string,
        compiled=compiled,
        binds=binds,
        types=tuple(column[3] for column in compiled._result_columns),
        row=row,
        plan=_plan(compiled, binds, keys),
    )


class _Key(str):
    """A stand-in for the value of the parameter of this key (``_plan``)."""


def _plan(
    compiled: SQLCompiler, binds: tuple[tuple[str, Process], ...], keys: tuple[str, ...]
) -> tuple[tuple[str | None, Any, Process], ...] | None:
    """Which placeholder takes which of the parameters ``keys`` and which a constant, as
    SQLAlchemy's ``construct_params`` decides it: asked once, with stand-ins for the values, so
    that each execution looks its values up instead of asking again (a tenth of a close's
    statement in CPU). None when a value is computed at execution (a callable default)."""
    if any(bind.callable is not None for bind in compiled.bind_names):
        return None
    values = compiled.construct_params({key: _Key(key) for key in keys})
    plan: list[tuple[str | None, Any, Process]] = []
    for name, process in binds:
        value = values[name]
        if isinstance(value, _Key):
            plan.append((str(value), None, process))
        else:
            plan.append((None, value if process is None else process(value), None))
    return tuple(plan)


class Lean:
    """The prepared statements of one dialect's transactions (an engine's and its options')."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._prepared: LRUCache[tuple[Executable, tuple[str, ...]], Prepared | None] = LRUCache(
            STATEMENTS
        )
        self.served = 0  # statements run here

    def prepared(self, statement: Executable, params: dict[str, Any]) -> Prepared | None:
        key = (statement, tuple(sorted(params)))
        try:
            return self._prepared[key]
        except KeyError:
            prepared = self._prepared[key] = _prepare(statement, key[1], self.dialect)
            return prepared


async def through_sqlalchemy(
    connection: AsyncConnection, statement: Executable, params: dict[str, Any]
) -> list[Any]:
    """``statement``'s rows by SQLAlchemy's own execution, where the lean path is not taken."""
    return list((await connection.execute(statement, params)).all())


def _handle_failure(
    exc: Exception, sql: str | None, values: dict[str, Any] | None, sync: Connection
) -> None:
    sync._handle_dbapi_exception(exc, sql, values, None, None)


_LEAN: WeakKeyDictionary[Dialect, Lean] = WeakKeyDictionary()


class NeedsSqlAlchemy(Exception):
    """The work asked for what only SQLAlchemy's connection has (its ORM session, a statement
    for its own execution): the unit of work runs it there instead (driver_writes.py)."""


class StatementRunner(Protocol):
    """Runs a transaction's prebuilt statements on its driver: ``Runner`` on psycopg,
    ``driver_writes.DriverTransaction`` on asyncpg."""

    @property
    def dialect(self) -> Dialect: ...

    async def rows(self, statement: Executable, params: dict[str, Any]) -> list[Any]: ...

    def join_sqlalchemy(self) -> None: ...


def observed(engine: Engine) -> bool:
    """True when something listens to ``engine``'s statements or transactions (tracing, the
    tests that count statements): then they go through SQLAlchemy, where it sees them."""
    dispatch = engine.dispatch
    return bool(
        dispatch.before_cursor_execute
        or dispatch.after_cursor_execute
        or dispatch.begin
        or dispatch.commit
        or dispatch.rollback
    )


async def runner(connection: AsyncConnection) -> Runner | None:
    """Runs ``connection``'s prebuilt statements on psycopg; None where SQLAlchemy's path must:
    another driver, or something listening to the statements or to transactions."""
    dialect = connection.dialect
    if dialect.driver != "psycopg" or observed(connection.sync_engine):
        return None
    lean = _LEAN.get(dialect)
    if lean is None:
        lean = _LEAN[dialect] = Lean(dialect)
    # The checked-out connection's pool proxy, without the greenlet round trip of
    # ``get_raw_connection`` (which only revalidates an invalidated connection).
    fairy = connection.sync_connection._dbapi_connection if connection.sync_connection else None
    if fairy is None:
        fairy = await connection.get_raw_connection()
    driver = fairy.driver_connection
    assert driver is not None  # the connection holds it
    return Runner(lean, connection, driver)


class Transaction:
    """A unit of work's transaction on the lean path, ended on psycopg itself.

    psycopg begins it with the first statement (the driver's implicit BEGIN, as under
    SQLAlchemy's ``begin()``, which sends nothing on psycopg) and it is committed or rolled
    back on psycopg, without SQLAlchemy's Transaction: its begin and commit, two greenlet round
    trips with their bookkeeping, cost a bare transaction ~100 µs of CPU (~490 against ~390,
    in-process). Should a statement or the ORM session take SQLAlchemy's path, SQLAlchemy
    begins a transaction of its own on the same connection (autobegin; again nothing is sent),
    and that one is ended instead: it is the same transaction on the server.

    A failed COMMIT or ROLLBACK is raised as SQLAlchemy's would be: wrapped by its own handling,
    the connection invalidated when it broke, and a COMMIT's failure still marked as one
    (deadlines.DeadlineConnection.commit), whose outcome is unknown. When the work fails, the
    rollback is the connection's return to the pool (SQLAlchemy's reset on return), or its
    invalidation.
    """

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self._ended = False

    async def __aenter__(self) -> Transaction:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None and not self._ended:
            await self.commit()

    async def commit(self) -> None:
        await self._end(commit=True)

    async def rollback(self) -> None:
        await self._end(commit=False)

    async def _end(self, *, commit: bool) -> None:
        self._ended = True
        connection = self.runner.connection
        if connection.in_transaction():
            await (connection.commit() if commit else connection.rollback())
            return
        driver = self.runner.driver
        try:
            await (driver.commit() if commit else driver.rollback())
        except psycopg.Error as exc:
            # Raises the wrapped error, as SQLAlchemy's own commit does.
            await connection.run_sync(partial(_handle_failure, exc, None, None))
            raise


@dataclass
class Runner:
    """One transaction's statements on its psycopg connection."""

    lean: Lean
    connection: AsyncConnection
    driver: psycopg.AsyncConnection[Any]
    # One client-side cursor for the transaction's statements (it holds no server state).
    _cursor: psycopg.AsyncCursor[Any] | None = None

    @property
    def dialect(self) -> Dialect:
        return self.lean.dialect

    def join_sqlalchemy(self) -> None:
        """Has SQLAlchemy's connection begin its transaction, where a ``Transaction`` left it
        to psycopg, so that an ORM session on the connection joins the transaction instead of
        owning one (a session that begins the transaction rolls it back when it is closed).
        Beginning sends nothing on psycopg (the dialect's ``do_begin`` is a no-op; the driver
        begins with its next statement), so it needs no greenlet."""
        sync = self.connection.sync_connection
        if sync is not None and not sync.in_transaction():
            sync.begin()

    async def rows(self, statement: Executable, params: dict[str, Any]) -> list[Any]:
        """``statement``'s rows, as ``connection.execute(statement, params).all()`` returns
        them."""
        prepared = self.lean.prepared(statement, params)
        if prepared is None:
            return await through_sqlalchemy(self.connection, statement, params)
        values = prepared.parameters(params)
        driver = self.driver
        cursor = self._cursor
        if cursor is None:
            cursor = self._cursor = driver.cursor()
        try:
            await cursor.execute(prepared.sql, values)
            fetched = await cursor.fetchall()
            # The columns' types are read once, with the first rows.
            description = cursor.description if prepared.processed is None else None
        except psycopg.Error as exc:
            if driver.broken or isinstance(exc, DatabaseTimeoutError):
                # SQLAlchemy tells what broke, invalidates, and raises the error to retry on.
                await self.connection.run_sync(partial(_handle_failure, exc, prepared.sql, values))
            raise DBAPIError.instance(
                prepared.sql, values, exc, psycopg.Error, dialect=self.lean.dialect
            ) from exc
        self.lean.served += 1
        return prepared.rows(fetched, self.lean.dialect, description)
