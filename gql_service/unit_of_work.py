"""The unit of work: one business transaction on a write connection, retried whole."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gql_service import database, idempotency, lean_statements, metrics
from gql_service.announcements import Broker
from gql_service.database import (
    WRITE_OPTION,
    is_dead_connection,
    is_retryable,
    is_unavailable,
    outcome_unknown,
)
from gql_service.driver_reads import Unserved
from gql_service.driver_writes import DriverWrites
from gql_service.errors import ValidationFailedError
from gql_service.lean_statements import NeedsSqlAlchemy, StatementRunner
from gql_service.repositories import Repository

T = TypeVar("T")

log = logging.getLogger(__name__)


class UnitOfWork:
    """Runs a piece of work in one transaction, as ``actor``, retrying it on contention.

    The whole transaction is retried (never a single statement) on serialization failure,
    deadlock and SQLite's "database is locked", up to ``max_attempts`` times, and once more on
    a connection that turned out dead before the commit (nothing pings pooled connections). With
    an idempotency ``claim`` not yet committed, the transaction inserts it first, so the key is
    spent exactly when the work commits. ``before`` runs first (the request's read connection
    is returned, so that the request never holds two). With a ``broker``, the opportunities
    the work changed are announced to subscribers: by the transaction's own NOTIFY on
    PostgreSQL, by the broker once committed otherwise (announcements.py).

    On PostgreSQL at READ COMMITTED, where nothing listens to statements or transactions,
    the work runs first on asyncpg, without SQLAlchemy (driver_writes.py); work that needs
    more than prebuilt statements is handed back and run again from the start on SQLAlchemy's
    connection. There, on psycopg, where nothing listens, the transaction is psycopg's, begun
    by its first statement and ended on the driver (lean_statements.Transaction); elsewhere
    it is SQLAlchemy's ``begin()``.

    Work that offers an ``unlocked`` version of itself is tried that way first on asyncpg:
    no transaction, each statement its own, the write one call whose function takes the lock
    first, only as the rules' verdict requires (at the version they were checked on, or in the
    state they accept), and then writes (locked_calls.py; one or two round trips where a
    transaction takes four). Unless that settles it, the locked work runs
    as usual: after any refusal (the locked path says why, authoritatively), a moved version,
    a lock held, or a failure that wrote nothing. A failure that may have committed is the
    request's answer.

    A ``dry_run`` does the same work with the same statements and locks, then rolls back
    instead of committing: the work's result or its errors, and nothing written. It claims no
    idempotency key and announces nothing (a rolled-back NOTIFY is never delivered).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        actor: str,
        max_attempts: int = 8,
        claim: idempotency.Claim | None = None,
        before: Callable[[], Awaitable[None]] | None = None,
        broker: Broker | None = None,
        dry_run: bool = False,
    ) -> None:
        self._engine = engine
        # The transaction on asyncpg, where the work allows (driver_writes.py).
        driver = database.driver_writes(engine)
        self._driver = (
            None if driver is None or lean_statements.observed(engine.sync_engine) else driver
        )
        self.actor = actor
        self.max_attempts = max(1, max_attempts)
        # A dry run spends no key: it commits nothing, so there is no response to replay.
        self.claim = None if dry_run else claim
        self.before = before
        self.broker = broker
        self.dry_run = dry_run

    async def run(
        self,
        work: Callable[[Repository], Awaitable[T]],
        *,
        unlocked: Callable[[Repository], Awaitable[T | None]] | None = None,
    ) -> T:
        """``work``'s result, in one transaction; ``unlocked``: the same work without one,
        tried first where it can be (None when it did not settle it, nothing written)."""
        if self.before is not None:
            await self.before()
        # (A claim is inserted through SQLAlchemy: such work takes its path.)
        driver = self._driver if self.claim is None else None
        if (
            unlocked is not None
            and driver is not None
            and driver.unlocked_tries
            and not self.dry_run
        ):
            try:
                settled = await self._unlocked(driver, unlocked)
            except Unserved:
                # No asyncpg connection within the pool's time-out: not twice.
                driver.handed_back += 1
                driver, settled = None, None
            if settled is not None:
                result, repo = settled
                if self.broker is not None:
                    self.broker.committed(repo.changed, repo.now)
                return result
        attempt = 1
        reconnected = False
        while True:
            now = datetime.now(UTC)
            claim = self.claim if self.claim is not None and not self.claim.committed else None
            try:
                if driver is not None:
                    try:
                        result, repo = await self._on_driver(driver, work, now)
                    except (NeedsSqlAlchemy, Unserved):
                        # Run again, from the start, where SQLAlchemy's connection is.
                        driver.handed_back += 1
                        driver = None
                        continue
                else:
                    result, repo = await self._on_sqlalchemy(work, now, claim)
                if self.dry_run:
                    return result
                if claim is not None:
                    claim.committed = True
                if self.broker is not None:
                    self.broker.committed(repo.changed, now)
                return result
            except Exception as exc:
                if not reconnected and is_dead_connection(exc) and not outcome_unknown(exc):
                    # Not applied: the server dropped the transaction with the connection.
                    reconnected = True
                    metrics.note_retry("dead_connection")
                    log.info("retrying transaction on a fresh connection after %s", exc)
                    continue
                if not is_retryable(exc) or attempt >= self.max_attempts:
                    raise
                metrics.note_retry("contention")
                log.info("retrying transaction after %s (attempt %d)", exc, attempt)
            # Jittered exponential back-off keeps retrying writers from marching in step.
            await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))
            attempt += 1

    def _repository(
        self, connection: AsyncConnection | None, now: datetime, runner: StatementRunner | None
    ) -> Repository:
        return Repository(
            connection,
            actor=self.actor,
            now=now,
            announce=self.broker is not None and self.broker.in_transaction,
            runner=runner,
        )

    async def _on_driver(
        self, driver: DriverWrites, work: Callable[[Repository], Awaitable[T]], now: datetime
    ) -> tuple[T, Repository]:
        """The work in a transaction on asyncpg (driver_writes.py)."""
        # (try/finally rather than a generator's context manager, which costs every close a
        # few µs more.)
        transaction = await driver.begin()
        try:
            repo = self._repository(None, now, transaction)
            # (No ORM session here: asking for one hands the work to SQLAlchemy's path.)
            result = await work(repo)
            await (transaction.rollback() if self.dry_run else transaction.commit())
        finally:
            await transaction.release()
        return result, repo

    async def _unlocked(
        self, driver: DriverWrites, work: Callable[[Repository], Awaitable[T | None]]
    ) -> tuple[T, Repository] | None:
        """``work`` outside a transaction on asyncpg, or None if it did not settle."""
        try:
            transaction = await driver.begin(unlocked=True)
            try:
                repo = self._repository(None, datetime.now(UTC), transaction)
                result = await work(repo)
                if result is not None:
                    await transaction.commit()  # (sends nothing: counts the write)
            finally:
                await transaction.release()
        except Unserved:
            raise
        except ValidationFailedError:
            result = None  # refused: the locked path says so, under the lock
        except Exception as exc:
            if outcome_unknown(exc) or (
                is_unavailable(exc) and not is_dead_connection(exc) and not is_retryable(exc)
            ):
                # It may have written; or the locked work would only meet the same (a pool
                # time-out, the deadline, a server going away) after as long a wait again.
                raise
            # (Most often the row's lock was held: the locked work waits for it. A dead
            # connection is let go with the idle ones; the locked work takes a fresh one.)
            log.debug("running locked after the unlocked try failed: %s", exc)
            result = None
        if result is None:
            driver.relocked += 1
            return None
        driver.unlocked += 1
        return result, repo

    async def _on_sqlalchemy(
        self,
        work: Callable[[Repository], Awaitable[T]],
        now: datetime,
        claim: idempotency.Claim | None,
    ) -> tuple[T, Repository]:
        """The work in a transaction on SQLAlchemy's connection."""
        # (Marked as a writer's here, not up front: a close on asyncpg never uses it.)
        writer = self._engine.execution_options(**{WRITE_OPTION: True})
        async with writer.connect() as connection:
            # On psycopg, where nothing listens, the prebuilt statements and the
            # transaction's end go to the driver itself (lean_statements.py).
            runner = await lean_statements.runner(connection)
            begun = connection.begin() if runner is None else lean_statements.Transaction(runner)
            async with begun as transaction:
                if claim is not None:
                    # First statement: a twin request waits here, then finds it taken.
                    await idempotency.take(connection, claim, now)
                repo = self._repository(connection, now, runner)
                try:
                    result = await work(repo)
                    await repo.flush()
                finally:
                    # What the result or the violations refer to stays readable after
                    # the rollback or commit.
                    await repo.close()
                if self.dry_run:
                    # Undo everything it wrote.
                    await transaction.rollback()
        return result, repo
