"""The compiled read path: a query answered by one SQL statement, before normal execution.

``CompiledReads`` runs after admission and authorization. When the compiler covers the whole
operation (see compiler.py), it runs the statement and hands strawberry the result, so that
graphql-core's execution is skipped; otherwise the operation executes as usual. A statement
the database cannot answer becomes the same outage error as on the plain path.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import psycopg
from graphql import ExecutionResult, GraphQLError, get_operation_ast
from sqlalchemy import Dialect, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from strawberry.extensions import SchemaExtension

from gql_service.cursors import offset_cursor
from gql_service.database import driver_reads, is_unavailable
from gql_service.deadlines import DatabaseTimeoutError
from gql_service.driver_reads import Unserved
from gql_service.graphql.compiler import CompiledRead, Compilers
from gql_service.graphql.ids import encode_id
from gql_service.graphql.known_reads import KnownReads
from gql_service.json_sql import GLOBAL_ID_FUNCTION, OFFSET_CURSOR_FUNCTION
from gql_service.read_session import ReadSession

log = logging.getLogger(__name__)


@dataclass
class Stats:
    """How reads were answered, per process: compiled, or left to the plain path."""

    compiled: int = 0
    plain: int = 0
    failed: int = 0  # the statement failed unexpectedly; the plain path answered
    fast: int = 0  # of the compiled ones, answered by the fast lane (fast_lane.py)


STATS = Stats()


def compiled_reads(compilers: Compilers, known: KnownReads) -> Callable[[], SchemaExtension]:
    """The extension for ``Schema(extensions=...)``: one statement cache per schema, and the
    register of queries it answered, for the fast lane."""

    def build() -> CompiledReads:
        return CompiledReads(compilers, known)

    return build


class CompiledReads(SchemaExtension):
    def __init__(self, compilers: Compilers, known: KnownReads) -> None:
        self.compilers = compilers
        self.known = known

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        context = execution.context
        if context.settings.compiled_reads and execution.graphql_document is not None:
            try:
                compiled = self.compilers.compile(
                    execution.schema._schema,
                    execution.graphql_document,
                    operation_name=execution.operation_name,
                    variables=execution.variables,
                    dialect=context.engine.dialect.name,
                )
            except Exception:  # a compiler defect must never cost the client its answer
                STATS.failed += 1
                log.exception("compiling a read failed; the plain path answers it")
                compiled = None
            result = None if compiled is None else await _run(context, compiled)
            if result is None:
                STATS.plain += 1
            else:
                STATS.compiled += 1
                execution.result = result
                self._remember(execution, result)
        yield

    def _remember(self, execution: Any, result: ExecutionResult) -> None:
        """A query answered without errors, sent as text: the fast lane may answer it next."""
        if result.errors or not execution.query or execution.graphql_document is None:
            return
        name = execution._provided_operation_name
        operation = get_operation_ast(execution.graphql_document, name)
        if operation is not None:
            self.known.remember(execution.query, name, execution.graphql_document, operation)


async def _run(context: Any, compiled: CompiledRead) -> ExecutionResult | None:
    """The compiled statement's result; None to let the plain path answer instead."""
    try:
        row = await fetch_row(context.reads, compiled)
    except Exception as exc:
        if is_unavailable(exc):
            # The same answer as a resolver's failure: one SERVICE_UNAVAILABLE error.
            key = compiled.fields[0][0]
            return ExecutionResult(
                data=None, errors=[GraphQLError(str(exc), path=[key], original_error=exc)]
            )
        STATS.failed += 1
        log.exception("compiled read failed; the plain path answers it")
        return None
    return ExecutionResult(data=compiled.data(row))


async def fetch_row(reads: ReadSession, compiled: CompiledRead) -> Sequence[Any]:
    """The compiled statement's one row (none without a statement), on the request's one
    connection: no ping, one retry if it was found dead, and on PostgreSQL at READ COMMITTED
    no BEGIN/ROLLBACK around the statement.

    On PostgreSQL, when nothing listens to the engine's statements (no tracing, no test
    counting them), the statement goes straight to psycopg's cursor: it is already text in
    the driver's parameter style, so SQLAlchemy's execution layer around it (a greenlet, the
    execution context, the result object) bought nothing but a fifth of a fast read's CPU.
    In autocommit, and when the request holds no connection yet, it runs on a connection
    leased from the pool for that statement alone (ReadSession.lease), which spares a
    SQLAlchemy connection's checkout and return, a third of what the read cost.
    """
    if not compiled.sql:
        return ()
    on_driver = reads.dialect == "postgresql" and not _observed(reads.engine)
    if on_driver and reads.leases:
        on_asyncpg = driver_reads(reads.engine)
        if on_asyncpg is not None:
            try:
                return await on_asyncpg.fetch_row(compiled.sql, compiled.params)
            except Unserved:
                pass  # psycopg runs it, below
        try:
            return await reads.lease(partial(_execute, compiled, reads.engine.dialect))
        except _BrokenConnectionError:
            pass  # sent again below, through SQLAlchemy, which tells what broke (as there)

    async def fetch(connection: AsyncConnection) -> Sequence[Any]:
        if on_driver:
            return await _fetch_on_driver(connection, compiled)
        return (await connection.exec_driver_sql(compiled.sql, compiled.params)).one()

    return await reads.run(fetch)


def _observed(engine: AsyncEngine) -> bool:
    """True when a listener wants to see the statements sent on ``engine``."""
    dispatch = engine.sync_engine.dispatch
    return bool(dispatch.before_cursor_execute or dispatch.after_cursor_execute)


class _BrokenConnectionError(Exception):
    """The connection broke under the statement, other than by the request's deadline."""


async def _execute(
    compiled: CompiledRead, dialect: Dialect, driver: psycopg.AsyncConnection[Any]
) -> Sequence[Any]:
    """``compiled``'s one row, executed by psycopg itself on ``driver``.

    Failures reach the caller as SQLAlchemy would have raised them, so that they are told
    apart the same way (database.py), except a connection that broke: _BrokenConnectionError,
    for the caller to send the statement again through SQLAlchemy, which recognises the
    disconnect, invalidates the pool's older connections and raises the error on which the
    read session retries once on a fresh connection. A connection the request's deadline cut
    off is not retried.
    """
    try:
        async with driver.cursor() as cursor:
            await cursor.execute(compiled.sql, compiled.params)
            row = await cursor.fetchone()
    except psycopg.Error as exc:
        cut_off = isinstance(exc, DatabaseTimeoutError)
        if driver.broken and not cut_off:
            raise _BrokenConnectionError from exc
        raise DBAPIError.instance(
            compiled.sql,
            compiled.params,
            exc,
            psycopg.Error,
            connection_invalidated=cut_off,
            dialect=dialect,
        ) from exc
    if row is None:  # pragma: no cover - a compiled statement always answers one row
        raise LookupError("the compiled statement returned no row")
    return cast(Sequence[Any], row)


async def _fetch_on_driver(connection: AsyncConnection, compiled: CompiledRead) -> Sequence[Any]:
    """``_execute`` on the driver connection under ``connection``, the request's."""
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None  # checked out and begun by the read session
    try:
        return await _execute(compiled, connection.dialect, driver)
    except _BrokenConnectionError:
        return (await connection.exec_driver_sql(compiled.sql, compiled.params)).one()
    except DBAPIError as exc:
        if exc.connection_invalidated:  # cut off by the deadline: not to be used again
            await connection.invalidate()
        raise


def register_sqlite_functions(engine: AsyncEngine) -> None:
    """SQLite has no base64: give each new connection the compiled path's id functions."""
    if engine.dialect.name != "sqlite":
        return

    def global_id(type_name: str, pk: int | None) -> str | None:
        return None if pk is None else encode_id(type_name, pk)

    def cursor(pk: int | None) -> str | None:
        return None if pk is None else offset_cursor(pk)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.create_function(GLOBAL_ID_FUNCTION, 2, global_id, deterministic=True)
        dbapi_connection.create_function(OFFSET_CURSOR_FUNCTION, 1, cursor, deterministic=True)
