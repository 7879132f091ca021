"""Compiled reads on asyncpg: a compiled read's one statement, on the leanest driver.

A compiled read (graphql/compiler.py) is one statement in autocommit whose columns are JSON
text: nothing of SQLAlchemy's or psycopg's machinery is needed around it. asyncpg runs it for
less: in-process under uvloop, R1's statement alone costs ~55 µs of CPU on asyncpg against
~130 on psycopg, and a whole R1 request ~255 against ~350 µs. So on PostgreSQL at READ
COMMITTED these statements run on asyncpg connections of their own (one more pool per worker:
settings.pools_per_worker), kept by ``Connections`` rather than asyncpg's pool. Everything
else (transactions, plain reads, LISTEN) stays on psycopg through SQLAlchemy.

Failures keep the meaning they have on psycopg (database.py tells them apart):

- the request's deadline (deadlines.py) bounds the checkout and the statement. A connection
  still busy when it runs out is terminated, its socket closed (a cancel request would wait on
  a server that may answer nothing), and DatabaseTimeoutError is raised, as DeadlineConnection
  raises it. A checkout that runs out is a pool time-out;
- an error the server reports keeps its SQLSTATE, wrapped as SQLAlchemy wraps psycopg's;
- anything else (a connection that broke, a refused connect, an argument asyncpg will not
  encode) raises ``Unserved``, and the caller runs the statement on the psycopg path, which
  recognises a dead connection, retries once on a fresh one and otherwise raises the error a
  client should see. A statement asyncpg will not take is not offered to it again.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, cast

import asyncpg
from cachetools import LRUCache
from prometheus_client import Gauge
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from gql_service import deadlines
from gql_service.asyncpg_urls import asyncpg_target
from gql_service.settings import Settings
from gql_service.watchdog import watchdog

log = logging.getLogger(__name__)

_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")
# The server ended the connection: class 08, or shut down (57P01-57P03; not 57014, a statement
# time-out, which a second try would only wait for again).
ENDED = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
)
APPLICATION_NAME = "gql_service asyncpg"
# Run once on each connection opened ahead of requests (``DriverReads.warm``): planning it
# makes the new server process read the catalog of the tables and indexes the statements use.
WARM_UP = (
    "SELECT FROM opportunity o JOIN quote q ON q.opportunity_id = o.id "
    "JOIN quote_close qc ON qc.quote_id = q.id "
    "JOIN opportunity_close c ON c.opportunity_id = o.id "
    "LEFT JOIN competitor k ON k.id = c.competitor_id WHERE o.id = 0"
)


# Statement texts remembered (as graphql/compiler.py's Compilers remember statements).
STATEMENTS = 512
# After a failed connect, compiled reads stay on psycopg this long before asyncpg is tried again.
REST_SECONDS = 5.0


def argument_refused(exc: Exception) -> bool:
    """asyncpg would not encode an argument: its DataError, raised before anything was sent,
    carries no severity (the server's errors all do)."""
    return isinstance(exc, asyncpg.DataError) and getattr(exc, "severity", None) is None


def cut_off_now(connection: asyncpg.Connection, cut_off: list[bool]) -> None:
    """The deadline's timer: marks the round trip as cut off and terminates the connection
    (a cancel request would wait on a server that may answer nothing)."""
    cut_off.append(True)
    connection.terminate()


class Unserved(Exception):
    """asyncpg did not run the statement; the psycopg path must."""


def to_numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """psycopg's ``%(name)s`` placeholders as asyncpg's ``$n``; the names in ``$n`` order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "%"
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _PLACEHOLDER.sub(number, sql), tuple(names)


class Connections:
    """At most ``size`` asyncpg connections, opened when first needed, for one event loop.

    asyncpg's own pool cost about a sixth of an R1 request's CPU (its acquire and release
    shield a task each way, and wrap the waits in timeouts: ~45 µs in-process, against a
    few µs here). This one keeps idle connections in a list (the last returned is taken
    first). A request that finds none idle and all open waits, for at most its timeout, in
    line: a connection that comes back goes to the longest waiter, not to whoever asks next,
    and one that comes back closed frees its slot for the longest waiter to open another.
    """

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]], size: int) -> None:
        self._connect = connect
        self._size = size
        self._idle: list[asyncpg.Connection] = []
        self._open = 0  # open, or being opened
        # Each waiter gets a connection, or None when a slot is free for it to open one.
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._closed = False

    def __len__(self) -> int:
        return self._open

    @property
    def capacity(self) -> int:
        """The most connections open at once."""
        return self._size

    async def take(self, within: float) -> asyncpg.Connection:
        """An idle connection, a new one, or one handed over within ``within`` seconds (else
        TimeoutError)."""
        idle = self._idle
        while idle:
            connection = idle.pop()
            if not connection.is_closed():
                return connection
            self._open -= 1  # the server ended it while it was idle
        loop = asyncio.get_running_loop()
        async with asyncio.timeout_at(loop.time() + within):
            while True:
                if self._closed:
                    raise RuntimeError("the compiled reads' connections are closed")
                if self._open < self._size:
                    self._open += 1
                    try:
                        return await self._connect()
                    except BaseException:
                        self._slot_freed()
                        raise
                waiter: asyncio.Future[asyncpg.Connection | None] = loop.create_future()
                self._waiters.append(waiter)
                try:
                    handed = await waiter
                except BaseException:
                    if waiter.done() and not waiter.cancelled():
                        # Handed something, but leaving: it goes to the next in line.
                        left = waiter.result()
                        if left is None:
                            self._hand_over(None)
                        else:
                            self.give(left)
                    else:
                        waiter.cancel()
                    raise
                if handed is not None:
                    return handed

    def give(self, connection: asyncpg.Connection) -> None:
        """Take back a connection: to the longest waiter, else idle; a closed one (or any,
        once terminated) frees its slot."""
        if self._closed and not connection.is_closed():
            connection.terminate()
        if connection.is_closed():
            self._slot_freed()
        elif not self._hand_over(connection):
            self._idle.append(connection)

    def _slot_freed(self) -> None:
        self._open -= 1
        self._hand_over(None)

    def _hand_over(self, connection: asyncpg.Connection | None) -> bool:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return True
        return False

    def forget_idle(self) -> None:
        """Close the idle connections (the open ones stay; a closed one frees its slot)."""
        for connection in self._idle:
            connection.terminate()
        self._open -= len(self._idle)
        self._idle.clear()  # (no one waits while a connection is idle)

    def terminate(self) -> None:
        """Close the idle connections now, and the others when they come back."""
        self._closed = True
        for connection in self._idle:
            connection.terminate()
        self._open -= len(self._idle)
        self._idle.clear()
        while self._hand_over(None):  # waiters find the pool closed
            pass


class DriverReads:
    """Compiled reads' statements on asyncpg connections of their own, opened on first use."""

    def __init__(
        self, settings: Settings, target: tuple[str, dict[str, str]] | None = None
    ) -> None:
        """``target``: ``asyncpg_target(settings.database_url)``, if the caller has it."""
        target = target or asyncpg_target(settings.database_url)
        if target is None:
            raise ValueError("DATABASE_URL has parameters asyncpg cannot take")
        self._dsn, server_settings = target
        self._pool_timeout = settings.db_pool_timeout_ms / 1000
        self._connect_timeout = settings.db_connect_timeout_ms / 1000
        # Named in pg_stat_activity, so that an operator can tell this pool's connections.
        self._server_settings = {**server_settings, "application_name": APPLICATION_NAME}
        if settings.statement_timeout_ms > 0:
            self._server_settings["statement_timeout"] = str(settings.statement_timeout_ms)
        self._connections = Connections(self._new_connection, settings.pool_size_per_worker)
        # Per statement text, bounded as the compiler's cache of statements is: its asyncpg
        # form, and whether asyncpg refused it.
        self._numbered: LRUCache[str, tuple[str, tuple[str, ...]]] = LRUCache(STATEMENTS)
        self._refused: LRUCache[str, bool] = LRUCache(STATEMENTS)
        self._resting_until = 0.0
        self.served = 0  # statements answered here
        self.unserved = 0  # statements handed to psycopg (Unserved)
        self.failed_connects = 0
        self._checked_out: Gauge | None = None  # (observe)

    async def fetch_row(self, sql: str, params: dict[str, Any]) -> Sequence[Any]:
        """The statement's one row. Raises Unserved when the psycopg path must run it."""
        if sql in self._refused:
            self.unserved += 1
            raise Unserved
        numbered = self._numbered.get(sql)
        if numbered is None:
            numbered = self._numbered[sql] = to_numbered(sql)
        text, names = numbered
        connection = await self.take()
        try:
            row = await self._fetch(connection, sql, text, [params[name] for name in names])
        finally:
            self.give(connection)
        self.served += 1
        return row

    async def take(self) -> asyncpg.Connection:
        """A connection, within the pool timeout and the request's deadline (else a pool
        time-out). Raises Unserved when asyncpg is resting or cannot connect."""
        if self._resting_until > time.monotonic():
            self.unserved += 1
            raise Unserved
        budget = deadlines.remaining()
        wait = self._pool_timeout if budget is None else min(self._pool_timeout, budget)
        try:
            connection = await self._connections.take(wait)
        except TimeoutError:
            raise PoolTimeoutError(f"no asyncpg connection within {wait * 1000:.0f} ms") from None
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # Refused, reset, authentication: psycopg's path says what it means, and takes
            # the statements for a while rather than each paying for a connect that fails.
            self.unserved += 1
            self.failed_connects += 1
            self._resting_until = time.monotonic() + REST_SECONDS
            log.info("psycopg's path for %.0f s: no asyncpg connection: %s", REST_SECONDS, exc)
            raise Unserved from exc
        if self._checked_out is not None:
            self._checked_out.inc()
        return connection

    def give(self, connection: asyncpg.Connection) -> None:
        """Take back a connection from ``take``."""
        self._connections.give(connection)
        if self._checked_out is not None:
            self._checked_out.dec()

    def observe(self, size: Gauge, checked_out: Gauge) -> None:
        """Keep the pool gauges current: its size, and the connections in use."""
        size.set(self._connections.capacity)
        self._checked_out = checked_out

    def forget_idle(self) -> None:
        """Close the idle connections: one was found dead, so the server may have restarted
        and the others be dead too (as SQLAlchemy's pool invalidates its older ones)."""
        self._connections.forget_idle()

    async def _fetch(
        self, connection: asyncpg.Connection, sql: str, text: str, args: list[Any]
    ) -> Sequence[Any]:
        """The row, within the request's deadline: a statement still unanswered then is cut
        off by terminating its connection, as DeadlineConnection shuts psycopg's socket."""
        budget = deadlines.remaining()
        cut_off: list[bool] = []
        watched = None
        if budget is not None:
            dog = watchdog()
            watched = dog.after(budget, partial(cut_off_now, connection, cut_off))
        try:
            row = await connection.fetchrow(text, *args)
        except Exception as exc:
            if cut_off:
                raise DBAPIError.instance(
                    sql,
                    None,
                    deadlines.DatabaseTimeoutError.after(budget or 0),
                    Exception,
                    connection_invalidated=True,
                ) from None
            if argument_refused(exc):
                self.unserved += 1
                self._refused[sql] = True
                log.info("compiled read left to psycopg for good: %s", exc)
                raise Unserved from exc
            if isinstance(exc, asyncpg.PostgresError) and not isinstance(exc, ENDED):
                raise DBAPIError.instance(sql, None, exc, asyncpg.PostgresError) from exc
            # The connection broke or the server ended it: psycopg's path tells the client
            # what that means.
            connection.terminate()
            self.unserved += 1
            raise Unserved from exc
        except BaseException:
            # Cancelled mid-statement: asyncpg would cancel it in the background; the
            # connection is given up instead, so that no one meets it busy.
            connection.terminate()
            raise
        finally:
            if watched is not None:
                dog.forget(watched)
        if row is None:  # pragma: no cover - a compiled statement always answers one row
            raise LookupError("the compiled statement returned no row")
        return cast(Sequence[Any], row)

    async def _new_connection(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            self._dsn,
            timeout=self._connect_timeout,
            server_settings=self._server_settings,
        )

    async def warm(self) -> None:
        """Open every connection the pool may hold, each having run WARM_UP, and give them
        back. Best effort (a connection that fails is left out, and logged).

        Opened when first needed, they are opened when load first needs them: a new
        PostgreSQL server process started, its catalog read and its statements planned, with
        clients waiting, on a machine already busy (bench/HISTORY.md's table has the tail
        latency that cost).
        """
        wanted = self._connections.capacity - len(self._connections)
        # (Every take starts its connect before any finishes, so none reuses another's.)
        results = await asyncio.gather(
            *(self._warm_one() for _ in range(wanted)), return_exceptions=True
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            log.info("%d of %d connections not opened ahead: %s", len(failed), wanted, failed[0])

    async def _warm_one(self) -> None:
        connection = await self._connections.take(self._pool_timeout)
        try:
            await connection.execute(WARM_UP)
        except BaseException:
            connection.terminate()  # (its slot is freed when it is given back)
            raise
        finally:
            self._connections.give(connection)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """Hold one of the connections (within the pool timeout) until the block ends."""
        connection = await self.take()
        try:
            yield connection
        finally:
            self.give(connection)

    @property
    def remembered(self) -> int:
        """Statement texts whose asyncpg form is remembered (at most STATEMENTS)."""
        return len(self._numbered)

    def size(self) -> int:
        """The connections open now."""
        return len(self._connections)

    def terminate(self) -> None:
        """Close the connections (the engine is being disposed)."""
        self._connections.terminate()
