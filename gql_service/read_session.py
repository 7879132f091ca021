"""One pooled connection and at most one read transaction per request.

A read request used to open a session per DataLoader batch: three checkouts, each with a
liveness ping, and BEGIN, SELECT, ROLLBACK on each. Here the request's reads share one
connection, checked out on first use and returned when the response is done, and nothing
pings it: a connection found dead on the request's first statement is discarded and the work
retried once on a fresh one (a disconnect makes the pool replace every connection older than
it, so the retry does not meet another dead one).

On PostgreSQL at READ COMMITTED (the default) the reads run in autocommit mode, on the engine's
companion for reads (database.reads_engine), whose connections are in autocommit from birth: at
that level each statement takes its own snapshot whether or not a transaction wraps them, so
BEGIN and ROLLBACK would be two round trips that buy nothing, and psycopg forgets its prepared
statements on every ROLLBACK. At REPEATABLE READ and SERIALIZABLE, and on SQLite (whose WAL
snapshot holds for a transaction), one read transaction wraps the request's reads, so they see
one snapshot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any, TypeVar, cast

import psycopg
from psycopg.pq import TransactionStatus
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import greenlet_spawn

from gql_service.database import is_dead_connection, reads_engine

T = TypeVar("T")

log = logging.getLogger(__name__)


def reads_autocommit(engine: AsyncEngine) -> bool:
    """True when ``engine``'s reads run without a transaction, at no cost to consistency."""
    return reads_engine(engine) is not engine


class ReadSession:
    """One pooled connection and at most one read transaction for one request."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = reads_engine(engine)
        # PostgreSQL at READ COMMITTED: the companion engine's connections are in autocommit.
        self._autocommit = self._engine is not engine
        self._connection: AsyncConnection | None = None
        # True once a statement has succeeded on the current connection: it is alive.
        self._proven = False
        self._closed = False
        self._lock = asyncio.Lock()

    @property
    def dialect(self) -> str:
        """The engine's dialect name: postgresql or sqlite."""
        return self._engine.dialect.name

    @property
    def engine(self) -> AsyncEngine:
        """The engine the reads run on (the companion for reads, if there is one)."""
        return self._engine

    @property
    def leases(self) -> bool:
        """True when a statement may run by itself on a leased driver connection (``lease``):
        PostgreSQL reads in autocommit, and no connection held for the request yet."""
        return self._autocommit and self._connection is None and not self._closed

    async def lease(self, work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        """Run ``work`` on a psycopg connection of the pool, given back as soon as it is done.

        For one statement in autocommit, with nothing to keep between statements: the
        SQLAlchemy connection's begin, close and greenlet switches around a raw checkout made
        up about a third of a compiled read's statement (in-process, ~300 against ~200 µs of
        CPU for R1's, with its checkout). A connection left in doubt (it broke, or ``work`` was
        cancelled or failed while a statement was in flight) is closed, not given back.
        Failures are ``work``'s own, untranslated (a failed checkout is raised as
        ``engine.connect()`` raises it): the caller decides what a broken
        connection means (compiled_reads.py sends the statement again through ``run``,
        which recognises a disconnect and retries on a fresh connection).
        """
        try:
            pooled = await self._engine.raw_connection()
        except psycopg.Error as exc:  # as engine.connect() would have raised it
            dialect = self._engine.dialect
            raise DBAPIError.instance(
                None,
                None,
                exc,
                psycopg.Error,
                connection_invalidated=dialect.is_disconnect(cast(Any, exc), None, None),
                dialect=dialect,
            ) from exc
        driver: psycopg.AsyncConnection[Any] = pooled.driver_connection  # type: ignore[assignment]
        try:
            return await work(driver)
        finally:
            if driver.broken or driver.info.transaction_status != TransactionStatus.IDLE:
                # Shielded, as close(): a cancelled request does not leak the connection.
                await asyncio.shield(greenlet_spawn(pooled.invalidate))
            else:
                # Synchronous, so nothing can cancel it halfway: the companion's pool does
                # not reset a connection it takes back (database.py), there is no transaction.
                pooled.close()

    async def run(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `work` on the request's connection (checked out and begun on first use).
        Calls are serialised (DataLoaders run concurrently). If the connection turns out
        dead on the request's first statement, it is discarded and `work` retried once on
        a fresh connection."""
        async with self._lock:
            if self._closed:
                raise RuntimeError("the request's read session is closed")
            connection = await self._checkout()
            try:
                result = await work(connection)
            except Exception as exc:
                if self._proven or not is_dead_connection(exc):
                    raise
                log.info("retrying a read on a fresh connection after: %s", exc)
                await self._discard()
                connection = await self._checkout()
                result = await work(connection)
            self._proven = True
            return result

    async def release(self) -> None:
        """End the transaction and return the connection, keeping the session usable.

        A mutation calls this before it writes, so that its payload's reads start a new
        transaction (and see what it wrote) and the request never holds two connections.
        """
        async with self._lock:
            await self._give_back()

    async def close(self) -> None:
        """End the transaction and return the connection; idempotent."""
        self._closed = True
        if self._connection is None:
            return
        # Shielded: a cancelled request still returns its connection. The lock waits for a
        # statement that an orphaned DataLoader may still have in flight on it.
        await asyncio.shield(self._close_when_idle())

    async def _close_when_idle(self) -> None:
        async with self._lock:
            await self._give_back()

    async def _checkout(self) -> AsyncConnection:
        if self._connection is not None:
            return self._connection
        connection = await self._engine.connect()
        try:
            # In autocommit (PostgreSQL at READ COMMITTED) this sends nothing; otherwise it
            # begins the request's one read transaction.
            await connection.begin()
        except BaseException:
            await connection.close()
            raise
        self._connection = connection
        self._proven = False
        return connection

    async def _give_back(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            await connection.close()  # rolls back the read transaction, if any
        except Exception as exc:  # a broken connection: the pool drops it
            log.info("discarding a read connection that failed to close: %s", exc)
            with suppress(Exception):
                await connection.invalidate()

    async def _discard(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.invalidate()
            await connection.close()
