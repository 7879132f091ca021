"""Client-side deadlines on database work, so that a frozen server cannot hold a request.

A frozen PostgreSQL (its processes stopped, the kernel still accepting and acknowledging TCP)
answers nothing, and no server-side timeout or TCP keep-alive notices. So each request carries a
budget, counted from its first database call; a round trip still unanswered when the budget runs
out is cut off by shutting the connection's socket, which makes psycopg fail at once with a
broken connection that SQLAlchemy discards instead of returning to the pool.

Cancelling the awaiting task instead would not do: psycopg then sends a cancel request and waits
for the query to end, up to 5 s for each, against a server that answers neither.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from contextlib import suppress
from contextvars import ContextVar
from typing import Any

import psycopg
from psycopg.abc import RV, PQGen

from gql_service.watchdog import watchdog


class Deadline:
    """A budget of seconds for database work, counted from its first use."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._expires_at: float | None = None

    def remaining(self) -> float:
        now = time.monotonic()
        if self._expires_at is None:
            self._expires_at = now + self.seconds
        return max(0.0, self._expires_at - now)


# scope["state"] key: a request's budget, when a layer in front of OutageGuard (the front
# door, graphql/front_door.py) began it.
STATE_KEY = "db_deadline"

_current: ContextVar[Deadline | None] = ContextVar("gql_service_db_deadline", default=None)


def remaining() -> float | None:
    """Seconds left for database work in this context; None when no deadline applies."""
    deadline = _current.get()
    return None if deadline is None else deadline.remaining()


class deadline:
    """Bound the database work of this context (and the tasks it starts) to ``seconds``, or
    to what is left of ``budget``, one begun before (the front door's). (A class: every
    request enters one, and a generator's context manager costs several times more.)"""

    __slots__ = ("_budget", "_token")

    def __init__(self, seconds: float, budget: Deadline | None = None) -> None:
        self._budget = budget or Deadline(seconds)

    def __enter__(self) -> Deadline:
        self._token = _current.set(self._budget)
        return self._budget

    def __exit__(self, *_: object) -> None:
        _current.reset(self._token)


class DatabaseTimeoutError(psycopg.OperationalError):
    """The database did not answer within the deadline; the connection was cut off."""

    @classmethod
    def after(cls, seconds: float) -> DatabaseTimeoutError:
        return cls(f"the database did not answer within {seconds * 1000:.0f} ms")


class DeadlineConnection(psycopg.AsyncConnection[Any]):
    """A psycopg connection whose every round trip ends by the current deadline."""

    _was_cut_off = False

    async def wait(self, gen: PQGen[RV], *args: Any, **kwargs: Any) -> RV:
        # Every query, commit, rollback and pre-ping of psycopg's async connection waits here.
        seconds = remaining()
        if seconds is None:
            return await super().wait(gen, *args, **kwargs)
        dog = watchdog()
        watched = dog.after(seconds, self._cut_off)
        try:
            return await super().wait(gen, *args, **kwargs)
        except psycopg.Error as exc:
            if not self._was_cut_off:
                raise
            raise DatabaseTimeoutError.after(seconds) from exc
        finally:
            dog.forget(watched)

    async def commit(self) -> None:
        try:
            await super().commit()
        except psycopg.Error as exc:
            # The server may have committed before the connection broke: the outcome is unknown.
            exc.during_commit = True  # type: ignore[attr-defined]
            raise

    def _cut_off(self) -> None:
        self._was_cut_off = True
        try:
            duplicate = os.dup(self.pgconn.socket)
        except (OSError, psycopg.Error):
            return
        with socket.socket(fileno=duplicate) as sock, suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


async def connect(connect_timeout: float, *args: Any, **kwargs: Any) -> DeadlineConnection:
    """Open a connection within ``connect_timeout`` seconds and the current deadline."""
    budget = remaining()
    seconds = connect_timeout if budget is None else min(connect_timeout, budget)
    try:
        async with asyncio.timeout(seconds):
            return await DeadlineConnection.connect(*args, **kwargs)
    except TimeoutError:
        limit = (
            f"the connect timeout ({connect_timeout * 1000:.0f} ms)"
            if seconds == connect_timeout
            else "the request's database deadline"
        )
        message = f"no connection to the database within {limit}"
        raise psycopg.errors.ConnectionTimeout(message) from None
