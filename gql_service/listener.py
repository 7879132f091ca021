"""One LISTEN connection per worker process, outside the request pools, kept alive.

It is opened when the first subscriber arrives and stays open until the app shuts down. A
lost connection is opened again with growing pauses (0.1 s up to 5 s); once it listens again,
every subscriber is told that changes may have been missed. A connection that stops answering
is noticed by a check query after ``CHECK_SECONDS`` of silence.

Writes notify only while some worker listens (migration 0005): once it listens, the connection
registers in ``announcement_listener`` (and removes the rows of listeners whose server process
is gone, as every worker also does at start-up); at shutdown it removes its own. A write
decides whether to notify after it has locked its opportunity's row, so a write that decided
not to, because it looked before the first registration, still holds that lock: each
subscriber waits for it (``barrier``) before it starts, and so finds that write committed
rather than missing its announcement.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from gql_service.announcements import CHANNEL, Broker, BrokerUnavailableError, decode
from gql_service.settings import Settings

log = logging.getLogger(__name__)

CHECK_SECONDS = 30.0
RETRY_PAUSES = (0.1, 0.5, 1.0, 2.0, 5.0)

# This connection's registration, after the rows of listeners whose process is gone are removed.
_FORGET_GONE = """DELETE FROM announcement_listener AS listener
WHERE NOT EXISTS (SELECT FROM pg_stat_activity AS activity WHERE activity.pid = listener.pid)"""
_REGISTER = """INSERT INTO announcement_listener (pid, since) VALUES (pg_backend_pid(), now())
ON CONFLICT (pid) DO UPDATE SET since = excluded.since"""
_UNREGISTER = "DELETE FROM announcement_listener WHERE pid = pg_backend_pid()"
# Waits for the transaction that holds the opportunity's row lock, if any (``barrier``).
_BARRIER = sa.text("SELECT 1 FROM opportunity WHERE id = :id FOR SHARE")


def conninfo(url: URL) -> str:
    """libpq's URL for an SQLAlchemy ``postgresql+psycopg://`` URL."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresListener:
    """LISTENs on ``CHANNEL`` and publishes each notification to ``broker``."""

    def __init__(self, engine: AsyncEngine, *, connect_timeout_s: float) -> None:
        self.engine = engine
        self.conninfo = conninfo(engine.url)
        self.connect_timeout_s = connect_timeout_s
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._broker: Broker | None = None

    async def start(self, broker: Broker) -> None:
        """Start listening (once) and wait until the LISTEN is in place."""
        self._broker = broker
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="gql_service listener")
        if self._ready.is_set():
            return
        try:
            async with asyncio.timeout(self.connect_timeout_s * 2):
                await self._ready.wait()
        except TimeoutError as exc:
            raise BrokerUnavailableError("the database does not answer the listener") from exc

    async def barrier(self, opportunity_id: int) -> None:
        """Wait until no transaction holds the opportunity's row lock, on a pooled connection.

        Every write of an opportunity locks its row first and decides whether to notify after
        that (``announce_change``, migration 0005). One that looked before this worker
        registered, and so will not notify, still holds the lock: waiting for it means it has
        committed (or rolled back) before the subscriber reads or waits, so its change is seen,
        not missed. BrokerUnavailableError if the database does not answer.
        """
        try:
            async with self.engine.connect() as connection:  # (its close rolls back)
                await connection.execute(_BARRIER, {"id": opportunity_id})
        except Exception as exc:
            raise BrokerUnavailableError("the database does not answer the listener") from exc

    async def close(self) -> None:
        task = self._task
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # close() itself was cancelled, not only the listener
            self._task = None

    async def _run(self) -> None:
        failures = 0
        listened_before = False
        while True:
            try:
                # asyncio.timeout, never asyncio.wait_for: on Python 3.11 wait_for returns
                # what it waited for when a cancellation (close) meets its completion, and
                # the listener would go on listening with close() waiting for it.
                async with asyncio.timeout(self.connect_timeout_s):
                    connected = await psycopg.AsyncConnection.connect(
                        self.conninfo, autocommit=True
                    )
                async with connected as connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    # Writes notify from here on (they look for a registered listener).
                    await connection.execute(_FORGET_GONE)
                    await connection.execute(_REGISTER)
                    self._ready.set()
                    if listened_before and self._broker is not None:
                        self._broker.resync()
                    listened_before, failures = True, 0
                    try:
                        await self._receive(connection)
                    except asyncio.CancelledError:
                        # Shutting down: writes stop notifying unless another worker listens.
                        with contextlib.suppress(Exception):
                            async with asyncio.timeout(self.connect_timeout_s):
                                await connection.execute(_UNREGISTER)
                        raise
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._ready.clear()
                pause = RETRY_PAUSES[min(failures, len(RETRY_PAUSES) - 1)]
                failures += 1
                log.warning(
                    "listener connection lost (%s); reconnecting in %.1f s",
                    type(exc).__name__,
                    pause,
                )
                await asyncio.sleep(pause)

    async def _receive(self, connection: psycopg.AsyncConnection[object]) -> None:
        while True:
            async for notify in connection.notifies(timeout=CHECK_SECONDS):
                change = decode(notify.payload)
                if change is not None and self._broker is not None:
                    self._broker.publish(change)
            # Silence: make sure the connection still answers.
            async with asyncio.timeout(self.connect_timeout_s):
                await connection.execute("SELECT 1")


async def forget_gone_listeners(engine: AsyncEngine) -> None:
    """Remove the registrations of listeners whose server process is gone; best effort.

    A worker killed while it listened (SIGKILL, out of memory) leaves its row behind, and until
    some worker listens again every write would notify, for no one, through the lock that puts
    notifying commits in order. The worker that replaces it runs this at start-up.
    """
    try:
        async with engine.begin() as connection:
            await connection.execute(sa.text(_FORGET_GONE))
    except Exception as exc:
        log.warning("could not remove the registrations of gone listeners (%s)", exc)


def live_broker(settings: Settings, engine: AsyncEngine) -> Broker | None:
    """This worker's broker: fed by a LISTEN on PostgreSQL, in-process on SQLite; None when
    subscriptions are off (then writes announce nothing and cost nothing more)."""
    if not settings.subscriptions:
        return None
    if engine.dialect.name != "postgresql":
        return Broker()
    return Broker(PostgresListener(engine, connect_timeout_s=settings.db_connect_timeout_ms / 1000))
