"""The unit of work's transaction on asyncpg, for work made of prebuilt statements.

The closes run prebuilt Core statements in their transaction (repositories.py): the locking
UPDATE, then one statement that closes and records. On psycopg, even without SQLAlchemy's
execution around them (lean_statements.py), a close's transaction cost ~620 µs of CPU
in-process: SQLAlchemy's pool checkout and return, and psycopg's four round trips with their
waits. The same transaction on asyncpg, with the same statements, costs ~210 µs. So on
PostgreSQL at READ COMMITTED, where the compiled reads have their asyncpg connections
(driver_reads.py), a unit of work runs there first, on one of those connections:

- Each statement is compiled once per set of parameter names with SQLAlchemy's asyncpg
  dialect, which casts every placeholder to its type (``$1::INTEGER``), and its parameters
  and results go through that dialect's processors of the same SQLAlchemy types: the rows are
  the named tuples ``lean_statements`` makes, with the keys SQLAlchemy's rows have.
- BEGIN goes with the first statement; COMMIT or ROLLBACK ends it, and a connection given back
  inside a transaction (the work failed) is rolled back first, or closed.
- Work that needs more than prebuilt statements (the ORM session, a statement SQLAlchemy must
  execute itself, an argument asyncpg will not encode), or that meets a statement prepared
  before a schema change, raises ``NeedsSqlAlchemy`` where it asks for it; the unit of work
  rolls this transaction back and runs the work again on SQLAlchemy's connection, from the
  start. An idempotency claim, and anything that listens to statements or transactions
  (tracing, the tests that count statements), never come here.

Failures mean what they mean on psycopg (database.py tells them apart, the unit of work
retries on them):

- a round trip still unanswered when the request's deadline runs out is cut off: the
  connection is terminated and ``DatabaseTimeoutError`` raised, connection invalidated;
- an error the server reports keeps its SQLSTATE (serialization failures and deadlocks are
  retried; an integrity violation is SQLAlchemy's IntegrityError);
- a connection that broke is invalidated, and the idle ones with it (the server may have
  restarted): the unit of work retries a dead connection once;
- any failure of COMMIT is marked ``during_commit``: its outcome is unknown, and it is never
  sent again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import cache, partial
from typing import Any, TypeVar, cast

import asyncpg
import sqlalchemy as sa
from cachetools import LRUCache
from sqlalchemy import Dialect
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.sql import Executable

from gql_service import deadlines, locked_calls
from gql_service.driver_reads import ENDED, DriverReads, argument_refused, cut_off_now
from gql_service.lean_statements import Lean, NeedsSqlAlchemy, Prepared
from gql_service.watchdog import watchdog

T = TypeVar("T")

log = logging.getLogger(__name__)

# Statement texts remembered as refused (the prebuilt ones are a few dozen).
REFUSED = 256


class DriverWrites:
    """Units of work's transactions on the compiled reads' asyncpg connections."""

    def __init__(self, connections: DriverReads) -> None:
        self.connections = connections
        self.lean = Lean(asyncpg_dialect())  # type: ignore[no-untyped-call]
        # Statement texts asyncpg refused an argument of: SQLAlchemy's path runs them.
        self.refused: LRUCache[str, bool] = LRUCache(REFUSED)
        # Whether unlocked closes may be tried (locked_calls.py): not once the server refused
        # to make their function (no right to create temporary objects, say).
        self.unlocked_tries = True
        self.committed = 0  # transactions committed here
        self.handed_back = 0  # units of work sent to SQLAlchemy's path (NeedsSqlAlchemy)
        self.unlocked = 0  # first tries that settled the work unlocked (UnitOfWork.run)
        self.relocked = 0  # ... and those that left it to the locked path

    async def begin(self, *, unlocked: bool = False) -> DriverTransaction:
        """A transaction on a connection held until its ``release`` (rolled back then unless
        it was ended); ``unlocked``: none, each statement commits itself. Raises ``Unserved``
        (driver_reads.py) when there is no connection."""
        return DriverTransaction(self, await self.connections.take(), unlocked=unlocked)


class DriverTransaction:
    """One transaction's prebuilt statements on its asyncpg connection (the repository's
    runner, as ``lean_statements.Runner`` is on psycopg)."""

    def __init__(
        self, driver: DriverWrites, connection: asyncpg.Connection, *, unlocked: bool = False
    ) -> None:
        self.driver = driver
        self.connection = connection
        # Unlocked: no BEGIN, each statement its own transaction (UnitOfWork.run's first try).
        self.unlocked = unlocked
        self._begun = False
        # One deadline for the transaction's round trips, watched from the first: when the
        # request's runs out it terminates the connection (a timer per round trip cost a close
        # ~11 µs; the watchdog's entry costs less than one timer).
        self._armed = False
        self._budget: float | None = None
        self._deadline: int | None = None  # its watchdog key
        self._cut_off: list[bool] = []

    @property
    def dialect(self) -> Dialect:
        return self.driver.lean.dialect

    def join_sqlalchemy(self) -> None:
        """The ORM session was asked for: the work must run on SQLAlchemy's connection."""
        raise NeedsSqlAlchemy("the ORM session")

    async def rows(self, statement: Executable, params: dict[str, Any]) -> list[Any]:
        """``statement``'s rows, as ``connection.execute(statement, params).all()`` returns
        them."""
        prepared = self._prepared(statement, params)
        arguments = prepared.arguments(params)
        lean = self.driver.lean
        connection = self.connection
        if not self._begun and not self.unlocked:
            await self._round_trip("BEGIN", connection.execute, "BEGIN")
            self._begun = True
        try:
            if prepared.processed is None:
                # The first time: the columns' types, from the statement as the server
                # describes it (the dialect's processors choose by them).
                statement_ = await self._round_trip(prepared.sql, connection.prepare, prepared.sql)
                fetched = await self._round_trip(prepared.sql, statement_.fetch, *arguments)
                description = [
                    (attribute.name, attribute.type.oid)
                    for attribute in statement_.get_attributes()
                ]
            else:
                fetched = await self._round_trip(
                    prepared.sql, connection.fetch, prepared.sql, *arguments
                )
                description = None
        except _Refused:
            self.driver.refused[prepared.sql] = True
            raise NeedsSqlAlchemy("an argument asyncpg would not encode") from None
        lean.served += 1
        return prepared.rows(fetched, lean.dialect, description)

    async def rows_after_lock(
        self,
        lock: Executable,
        lock_params: dict[str, Any],
        statement: Executable,
        params: dict[str, Any],
    ) -> list[Any]:
        """Outside a transaction: ``lock`` (an UPDATE of one row, RETURNING), then, if it
        changed that row, ``statement``, in one call that commits itself (locked_calls.py).
        ``statement``'s rows; none, and nothing written, if the lock changed no row or the
        statement returned none. Its outcome is unknown if the connection fails meanwhile,
        as a COMMIT's is."""
        called = await self._call(lock, lock_params, statement, params, with_lock=False)
        if called is None:
            return []
        fetched, call, _, prepared = called
        return prepared.rows(fetched, self.dialect, call.columns)

    async def locked_and_rows(
        self,
        lock: Executable,
        lock_params: dict[str, Any],
        statement: Executable,
        params: dict[str, Any],
    ) -> tuple[Any, list[Any]] | None:
        """As ``rows_after_lock``, but ``statement`` (a SELECT) may return no row: the row
        ``lock`` returned and ``statement``'s rows, or None, and nothing written, if the lock
        changed no row."""
        called = await self._call(
            lock, lock_params, _padded(lock, statement), params, with_lock=True
        )
        if called is None or not called[0]:
            return None
        fetched, call, locking, _ = called
        assert call.lock_columns is not None
        at = len(call.lock_columns)
        [locked] = locking.rows([tuple(fetched[0])[:at]], self.dialect, call.lock_columns)
        rows = [tuple(row)[at:] for row in fetched[1:]]
        written = self._prepared(statement, params)
        return locked, written.rows(rows, self.dialect, call.columns[at:])

    async def _call(
        self,
        lock: Executable,
        lock_params: dict[str, Any],
        statement: Executable,
        params: dict[str, Any],
        *,
        with_lock: bool,
    ) -> tuple[list[Any], locked_calls.LockedCall, Prepared, Prepared] | None:
        """The rows of the function of ``lock`` then ``statement`` (made first if need be),
        with the call, and the two statements prepared; None if it wrote nothing."""
        assert self.unlocked, "a call that commits itself, outside the transaction"
        locking = self._prepared(lock, lock_params)
        prepared = self._prepared(statement, params)
        arguments = [*locking.arguments(lock_params), *prepared.arguments(params)]
        connection = self.connection
        call = locked_calls.known(connection, locking.sql, prepared.sql, with_lock)
        if call is None:
            try:
                call = await self._round_trip(
                    prepared.sql,
                    locked_calls.locked_call,
                    connection,
                    locking.sql,
                    prepared.sql,
                    with_lock,
                )
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    log.warning(
                        "closes run locked only: the server refused their function: %s", exc
                    )
                    self.driver.unlocked_tries = False
                raise
        try:
            fetched = await self._round_trip(
                prepared.sql, connection.fetch, call.sql, *arguments, commits=True
            )
        except _Refused:
            self.driver.refused[prepared.sql] = True
            raise NeedsSqlAlchemy("an argument asyncpg would not encode") from None
        except DBAPIError as exc:
            sqlstate = getattr(exc.orig, "sqlstate", None) or ""
            if sqlstate == locked_calls.NOTHING_WRITTEN:
                return None
            if sqlstate[:2] in locked_calls.REMADE:
                # Made again next time (the schema may have changed under it).
                locked_calls.forget(connection, locking.sql, prepared.sql, with_lock)
            raise
        self.driver.lean.served += 1
        return fetched, call, locking, prepared

    def _prepared(self, statement: Executable, params: dict[str, Any]) -> Prepared:
        prepared = self.driver.lean.prepared(statement, params)
        if prepared is None or prepared.sql in self.driver.refused:
            raise NeedsSqlAlchemy("a statement for SQLAlchemy's execution")
        return prepared

    async def commit(self) -> None:
        if self._begun:
            await self._round_trip("COMMIT", self.connection.execute, "COMMIT", committing=True)
            self._begun = False
        self.driver.committed += 1

    async def rollback(self) -> None:
        if self._begun:
            await self._round_trip("ROLLBACK", self.connection.execute, "ROLLBACK")
            self._begun = False

    async def release(self) -> None:
        """Give the connection back: rolled back if still in a transaction, closed if that
        fails (or if it was cancelled mid-way)."""
        connection = self.connection
        try:
            if not connection.is_closed() and connection.is_in_transaction():
                await self._round_trip("ROLLBACK", connection.execute, "ROLLBACK")
        except Exception:
            connection.terminate()
        finally:
            if self._deadline is not None:
                watchdog().forget(self._deadline)
            self.driver.connections.give(connection)

    async def _round_trip(
        self,
        sql: str,
        call: Callable[..., Awaitable[T]],
        *arguments: Any,
        committing: bool = False,
        commits: bool = False,
    ) -> T:
        """``call(*arguments)`` within the request's deadline, its failure as SQLAlchemy would
        raise it on psycopg. ``committing``: the COMMIT; ``commits``: a call that commits
        itself (``rows_after_lock``)."""
        if not self._armed:
            self._armed = True
            budget = self._budget = deadlines.remaining()
            if budget is not None:
                self._deadline = watchdog().after(
                    budget, partial(cut_off_now, self.connection, self._cut_off)
                )
        try:
            return await call(*arguments)
        except Exception as exc:
            raise self._failure(exc, sql, committing, commits) from exc
        except BaseException:
            # Cancelled mid-round-trip: asyncpg would cancel the statement in the background;
            # the connection is given up instead, so that no one meets it busy.
            self.connection.terminate()
            raise

    def _failure(self, exc: Exception, sql: str, committing: bool, commits: bool) -> Exception:
        cut_off = bool(self._cut_off)
        if argument_refused(exc) and not cut_off:
            return _Refused()
        if isinstance(exc, _STALE) and not cut_off:
            # The schema changed under a prepared statement (a migration): asyncpg dropped
            # this connection's statements, and the idle connections, prepared before the
            # change, go too. The work runs again, on SQLAlchemy's path.
            self.driver.connections.forget_idle()
            return NeedsSqlAlchemy("a statement prepared before a schema change")
        orig: Exception = exc
        invalidated = True
        if cut_off:
            orig = deadlines.DatabaseTimeoutError.after(self._budget or 0)
        elif isinstance(exc, asyncpg.PostgresError) and not isinstance(exc, ENDED):
            invalidated = False  # the server's own error: the connection still answers
        if invalidated:
            self.connection.terminate()
            self.driver.connections.forget_idle()
        if committing or (commits and invalidated):
            # The server may have committed before the failure: the outcome is unknown. (A
            # write's own error says that it did not.)
            orig.during_commit = True  # type: ignore[attr-defined]
        sqlstate = getattr(orig, "sqlstate", None) or ""
        kind = IntegrityError if sqlstate.startswith("23") else DBAPIError
        return kind(sql, None, orig, connection_invalidated=invalidated)


@cache
def _padded(lock: Executable, statement: Executable) -> Executable:
    """``statement`` (a SELECT) with an empty column first for each column ``lock`` returns,
    of the same type: its rows follow the locked row in a ``with_lock`` function's
    (locked_calls.function_source)."""
    returned = cast(sa.Update, lock).exported_columns
    select = cast(sa.Select[Any], statement)
    empty = [
        sa.cast(sa.null(), column.type).label(f"gql_locked_{index}")
        for index, column in enumerate(returned)
    ]
    return select.with_only_columns(*empty, *select.selected_columns)


# asyncpg's statement or type caches no longer fit the schema (an ALTER since they were made).
_STALE = (asyncpg.InvalidCachedStatementError, asyncpg.OutdatedSchemaCacheError)


class _Refused(Exception):
    """asyncpg refused an argument before sending anything."""
