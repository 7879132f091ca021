"""Engine construction per backend, and the classification of retryable database errors."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gql_service.settings import Settings

# Execution option that marks a connection whose transactions will write.
WRITE_OPTION = "gql_service_write"

RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})


def create_engine(settings: Settings) -> AsyncEngine:
    """An async engine for ``settings.database_url``, tuned for its backend."""
    if settings.is_sqlite:
        return _sqlite_engine(settings)
    return _postgres_engine(settings)


def _postgres_engine(settings: Settings) -> AsyncEngine:
    connect_args: dict[str, Any] = {}
    if settings.statement_timeout_ms > 0:
        connect_args["options"] = f"-c statement_timeout={settings.statement_timeout_ms}"
    options: dict[str, Any] = {}
    if settings.isolation_level:
        options["isolation_level"] = settings.isolation_level
    return create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
        connect_args=connect_args,
        **options,
    )


def _sqlite_engine(settings: Settings) -> AsyncEngine:
    path = settings.sqlite_path()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=0,
        connect_args={"timeout": 30},
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so that BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take SQLite's write lock up front, so that two writers never both read
        # first and then fail to upgrade: the later one waits instead.
        writes = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")

    return engine


def is_retryable(exc: BaseException) -> bool:
    """True for serialization failures, deadlocks and SQLite lock time-outs."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate in RETRYABLE_SQLSTATES:
        return True
    message = str(orig).lower()
    return "database is locked" in message or "database table is locked" in message
