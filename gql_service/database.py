"""Engine construction per backend, and the classification of retryable database errors."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any
from weakref import WeakKeyDictionary

import psycopg
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gql_service import deadlines
from gql_service.driver_reads import DriverReads
from gql_service.driver_writes import DriverWrites
from gql_service.psycopg_tuning import LeanCursor
from gql_service.settings import Settings

log = logging.getLogger(__name__)

# Execution option that marks a connection whose transactions will write.
WRITE_OPTION = "gql_service_write"

RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
# Connection exception, insufficient resources, operator intervention (statement timeout 57014,
# shutdown 57P01-57P03) and system error: the database cannot answer now, a retry later may work.
UNAVAILABLE_SQLSTATE_CLASSES = frozenset({"08", "53", "57", "58"})

# Each engine's companion for reads, where it has one (see reads_engine).
_READERS: WeakKeyDictionary[Engine, AsyncEngine] = WeakKeyDictionary()
# The asyncpg pool of each companion for reads, where compiled reads use one (driver_reads.py).
_DRIVER_READS: WeakKeyDictionary[Engine, DriverReads] = WeakKeyDictionary()
# Each engine's transactions on that pool, where they run there first (driver_writes.py).
_DRIVER_WRITES: WeakKeyDictionary[Engine, DriverWrites] = WeakKeyDictionary()


def create_engine(settings: Settings) -> AsyncEngine:
    """An async engine for ``settings.database_url``, tuned for its backend."""
    if settings.is_sqlite:
        return _sqlite_engine(settings)
    return _postgres_engine(settings)


def reads_engine(engine: AsyncEngine) -> AsyncEngine:
    """The engine a request's reads run on: ``engine`` itself, or its companion for reads.

    On PostgreSQL at READ COMMITTED reads need no transaction (read_session.py), and the
    companion's connections are in autocommit from the moment they connect. Switching a
    connection of the main pool to autocommit for a read, and back when it is returned,
    cost about a fifth of a compiled read's CPU: a lock, a round of psycopg's wait loop
    and a greenlet switch each way. The companion has its own pool of the same size
    (settings.pools_per_worker counts it), and is disposed with ``engine``.
    """
    return _READERS.get(engine.sync_engine, engine)


def driver_reads(engine: AsyncEngine) -> DriverReads | None:
    """The asyncpg pool for compiled reads on ``engine`` (a companion for reads), if any."""
    return _DRIVER_READS.get(engine.sync_engine)


def driver_writes(engine: AsyncEngine) -> DriverWrites | None:
    """Where ``engine``'s units of work try asyncpg first (driver_writes.py), if anywhere."""
    return _DRIVER_WRITES.get(engine.sync_engine)


def _postgres_engine(settings: Settings) -> AsyncEngine:
    engine = _postgres_pool(settings, settings.isolation_level)
    if settings.reads_autocommit:
        reads = _postgres_pool(settings, "AUTOCOMMIT")
        _READERS[engine.sync_engine] = reads
        on_asyncpg = None
        if settings.compiled_reads_on_asyncpg:
            on_asyncpg = DriverReads(settings)
        elif settings.compiled_reads and settings.compiled_reads_driver == "asyncpg":
            log.warning(
                "compiled reads and units of work stay on psycopg: DATABASE_URL has "
                "parameters that asyncpg cannot take (COMPILED_READS_DRIVER=psycopg says so)"
            )
        if on_asyncpg is not None:
            _DRIVER_READS[reads.sync_engine] = on_asyncpg
            if settings.writes_driver == "asyncpg":
                _DRIVER_WRITES[engine.sync_engine] = DriverWrites(on_asyncpg)

        @event.listens_for(engine.sync_engine, "engine_disposed")
        def _dispose_reads(_: Engine) -> None:
            # Called inside AsyncEngine.dispose's greenlet, where the async pool may close.
            reads.sync_engine.dispose()
            if on_asyncpg is not None:
                on_asyncpg.terminate()

    return engine


async def _connect(
    connect_timeout: float, *args: Any, **kwargs: Any
) -> psycopg.AsyncConnection[Any]:
    """A connection of the service's pools: bounded by deadlines, with lean cursors."""
    connection = await deadlines.connect(connect_timeout, *args, **kwargs)
    connection.cursor_factory = LeanCursor
    return connection


def _postgres_pool(settings: Settings, isolation_level: str | None) -> AsyncEngine:
    connect_args: dict[str, Any] = {
        # Connections are opened within the connect timeout and answer within the deadline.
        "async_creator_fn": partial(_connect, settings.db_connect_timeout_ms / 1000),
    }
    if settings.statement_timeout_ms > 0:
        connect_args["options"] = f"-c statement_timeout={settings.statement_timeout_ms}"
    options: dict[str, Any] = {}
    if isolation_level:
        options["isolation_level"] = isolation_level
    if isolation_level == "AUTOCOMMIT":
        # No transaction to roll back when a connection comes back: skip the pool's ROLLBACK
        # call, so that a connection leased for one statement returns without a greenlet
        # (read_session.ReadSession.lease).
        options["pool_reset_on_return"] = None
    return create_async_engine(
        settings.database_url,
        pool_size=settings.pool_size_per_worker,
        # Never overflow: a connection beyond the pool is closed on return, so under load each
        # overflow checkout paid a new backend (and lost psycopg's prepared statements).
        max_overflow=0,
        pool_timeout=settings.db_pool_timeout_ms / 1000,
        connect_args=connect_args,
        **options,
    )


def _sqlite_engine(settings: Settings) -> AsyncEngine:
    path = settings.sqlite_path()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(
        settings.database_url,
        pool_size=settings.pool_size_per_worker,
        max_overflow=0,
        pool_timeout=settings.db_pool_timeout_ms / 1000,
        connect_args={"timeout": settings.db_deadline_ms / 1000},
    )
    # SQLite's analogue of a frozen server is a lock held elsewhere: wait for it no longer than
    # a request may wait for the database.
    busy_timeout = max(0, settings.db_deadline_ms)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so that BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take SQLite's write lock up front, so that two writers never both read
        # first and then fail to upgrade: the later one waits instead.
        writes = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")

    return engine


def _sqlstate(exc: DBAPIError) -> str | None:
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return str(sqlstate) if sqlstate else None


def is_retryable(exc: BaseException) -> bool:
    """True for serialization failures, deadlocks and SQLite lock time-outs."""
    if not isinstance(exc, DBAPIError):
        return False
    if _sqlstate(exc) in RETRYABLE_SQLSTATES:
        return True
    message = str(exc.orig).lower()
    return "database is locked" in message or "database table is locked" in message


def is_unavailable(exc: BaseException) -> bool:
    """True when the database could not answer, so that the client may retry later.

    Connection refused, lost or timed out, a pool checkout time-out, a statement time-out, a
    server shutting down, and contention that outlasted the transaction's own retries.
    """
    if isinstance(exc, PoolTimeoutError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated or is_retryable(exc):
        return True
    sqlstate = _sqlstate(exc)
    if sqlstate is not None:
        return sqlstate[:2] in UNAVAILABLE_SQLSTATE_CLASSES
    # psycopg's own failures (refused, lost, timed out) carry no SQLSTATE.
    return isinstance(exc.orig, psycopg.OperationalError)


def is_dead_connection(exc: BaseException) -> bool:
    """The connection broke (closed by the server or the network), e.g. while it sat in the pool.

    Nothing pings a pooled connection before use (no ``pool_pre_ping``): a read or a transaction
    that meets a dead one is retried once, and the pool then replaces every connection older than
    the failure. Not the request's own deadline cutting off a frozen server: a retry would only
    spend the budget again.
    """
    return (
        isinstance(exc, DBAPIError)
        and exc.connection_invalidated
        and not isinstance(exc.orig, deadlines.DatabaseTimeoutError)
    )


def outcome_unknown(exc: BaseException) -> bool:
    """True when the connection failed while committing: the server may have committed."""
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "during_commit", False) is True
