"""Compiled reads on asyncpg: a compiled read's one statement, on the leanest driver.

A compiled read (graphql/compiler.py) is one statement in autocommit whose columns are JSON
text: nothing of SQLAlchemy's or psycopg's machinery is needed around it. asyncpg runs it for
less: in-process under uvloop, R1's statement alone costs ~55 µs of CPU on asyncpg against
~130 on psycopg, and a whole R1 request ~285 against ~350 µs. So on PostgreSQL at READ
COMMITTED these statements run on a pool of asyncpg connections of their own (one more pool per
worker: settings.pools_per_worker). Everything else (transactions, plain reads, LISTEN) stays
on psycopg through SQLAlchemy.

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
from collections.abc import Sequence
from typing import Any, cast

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from gql_service import deadlines
from gql_service.settings import Settings

log = logging.getLogger(__name__)

_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")
# The server ended the connection: class 08, or shut down (57P01-57P03; not 57014, a statement
# time-out, which a second try would only wait for again).
_ENDED = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
)
APPLICATION_NAME = "gql_service compiled reads"


def _argument_refused(exc: Exception) -> bool:
    """asyncpg would not encode an argument: its DataError, raised before anything was sent,
    carries no severity (the server's errors all do)."""
    return isinstance(exc, asyncpg.DataError) and getattr(exc, "severity", None) is None


class Unserved(Exception):
    """asyncpg did not run the statement; the psycopg path must."""


class _Connection(asyncpg.Connection):  # type: ignore[misc]
    """No reset query when a connection goes back to the pool: a compiled read leaves no
    session state (asyncpg's default sends advisory unlock, CLOSE ALL, UNLISTEN and RESET ALL,
    one more round trip per read)."""

    def get_reset_query(self) -> str:
        return ""


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


class DriverReads:
    """A pool of asyncpg connections for compiled reads, opened on first use in the worker."""

    def __init__(self, settings: Settings) -> None:
        url = make_url(settings.database_url)
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._size = settings.pool_size_per_worker
        self._pool_timeout = settings.db_pool_timeout_ms / 1000
        self._connect_timeout = settings.db_connect_timeout_ms / 1000
        # Named in pg_stat_activity, so that an operator can tell this pool's connections.
        self._server_settings = {"application_name": APPLICATION_NAME}
        if settings.statement_timeout_ms > 0:
            self._server_settings["statement_timeout"] = str(settings.statement_timeout_ms)
        self._pool: asyncpg.Pool | None = None
        self._opening: asyncio.Lock | None = None
        self._numbered: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._refused: set[str] = set()
        self.served = 0  # statements answered here
        self.unserved = 0  # statements handed to psycopg (Unserved)

    async def fetch_row(self, sql: str, params: dict[str, Any]) -> Sequence[Any]:
        """The statement's one row. Raises Unserved when the psycopg path must run it."""
        if sql in self._refused:
            self.unserved += 1
            raise Unserved
        numbered = self._numbered.get(sql)
        if numbered is None:
            numbered = self._numbered[sql] = to_numbered(sql)
        text, names = numbered
        pool = self._pool or await self.pool()
        budget = deadlines.remaining()
        wait = self._pool_timeout if budget is None else min(self._pool_timeout, budget)
        loop = asyncio.get_running_loop()
        connection = None
        try:
            # One timer for both waits: the checkout's, then the statement's.
            async with asyncio.timeout(wait) as timer:
                connection = await pool.acquire()
                left = deadlines.remaining()
                timer.reschedule(None if left is None else loop.time() + left)
                row = await connection.fetchrow(text, *[params[name] for name in names])
        except TimeoutError:
            if connection is None:
                raise PoolTimeoutError(
                    f"no connection for a compiled read within {wait * 1000:.0f} ms"
                ) from None
            connection.terminate()
            raise DBAPIError.instance(
                sql,
                None,
                deadlines.DatabaseTimeoutError(
                    f"the database did not answer within {(budget or 0) * 1000:.0f} ms"
                ),
                Exception,
                connection_invalidated=True,
            ) from None
        except asyncpg.PostgresError as exc:
            if _argument_refused(exc):
                self.unserved += 1
                self._refused.add(sql)
                log.info("compiled read left to psycopg for good: %s", exc)
                raise Unserved from exc
            if connection is None or isinstance(exc, _ENDED):  # no connection, or it ended
                self.unserved += 1
                self._discard(connection)
                raise Unserved from exc
            raise DBAPIError.instance(sql, None, exc, asyncpg.PostgresError) from exc
        except asyncpg.InterfaceError as exc:  # the connection is unusable
            self.unserved += 1
            self._discard(connection)
            raise Unserved from exc
        except OSError as exc:  # refused, reset, broken: psycopg's path says what it means
            self.unserved += 1
            self._discard(connection)
            raise Unserved from exc
        finally:
            if connection is not None:
                # asyncpg shields the release: a cancelled request still gives it back.
                await pool.release(connection)
        if row is None:  # pragma: no cover - a compiled statement always answers one row
            raise LookupError("the compiled statement returned no row")
        self.served += 1
        return cast(Sequence[Any], row)

    @staticmethod
    def _discard(connection: asyncpg.Connection | None) -> None:
        if connection is not None:
            connection.terminate()

    async def pool(self) -> asyncpg.Pool:
        """asyncpg's pool, opened on first use (no connection until one is needed)."""
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=0,
                    max_size=self._size,
                    timeout=self._connect_timeout,
                    connection_class=_Connection,
                    server_settings=self._server_settings,
                )
            return self._pool

    def size(self) -> int:
        """The connections open now."""
        return 0 if self._pool is None else int(self._pool.get_size())

    def terminate(self) -> None:
        """Close every connection at once (the engine is being disposed)."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None
