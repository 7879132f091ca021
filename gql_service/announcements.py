"""Committed changes to opportunities, fanned out to the subscribers of this worker process.

A write that changes an opportunity or its quotes locks the opportunity first
(``Repository.lock_opportunity``), which stamps it with the transaction's clock; every quote the
transaction creates or changes carries the same stamp in ``modified_at``. A change is announced
as the opportunity's id and that stamp, nothing more: a subscriber reads the committed objects
itself.

On PostgreSQL the announcement is a NOTIFY sent by the locking UPDATE itself (see
repositories.py), so it is part of the transaction: delivered to every listening worker when it
commits, never when it rolls back. Each worker listens on one connection (listener.py) and
publishes what arrives to its ``Broker``. On SQLite the unit of work publishes to the broker of
its own process after the commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from gql_service import metrics

log = logging.getLogger(__name__)

CHANNEL = "gql_service_changes"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Announcements a slow subscriber may have waiting before the oldest are folded into a resync.
BACKLOG = 256


@dataclass(frozen=True, slots=True)
class Change:
    """One committed change of ``opportunity_id``; ``stamp`` is the transaction's clock.

    ``stamp`` is None when changes may have been missed (the listening connection was lost, or
    the subscriber fell behind): subscribers read the current state again.
    """

    opportunity_id: int
    stamp: datetime | None


def encode(opportunity_id: int, stamp: datetime) -> str:
    """The NOTIFY payload, as the locking UPDATE builds it in SQL: ``"<id> <epoch µs>"``."""
    return f"{opportunity_id} {(stamp - EPOCH) // timedelta(microseconds=1)}"


def decode(payload: str) -> Change | None:
    """The change a payload names, or None for a payload this service did not send."""
    parts = payload.split(" ")
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() for p in parts):
        return None
    return Change(int(parts[0]), EPOCH + timedelta(microseconds=int(parts[1])))


class Subscription:
    """The changes of one opportunity, in commit order, for one subscriber."""

    def __init__(self, opportunity_id: int) -> None:
        self.opportunity_id = opportunity_id
        self._pending: deque[Change] = deque()
        self._arrived = asyncio.Event()

    def put(self, change: Change) -> None:
        if len(self._pending) >= BACKLOG:
            # A subscriber this far behind reads the current state instead of every step.
            self._pending.clear()
            change = Change(self.opportunity_id, None)
        self._pending.append(change)
        self._arrived.set()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Change:
        while not self._pending:
            self._arrived.clear()
            await self._arrived.wait()
        return self._pending.popleft()


class BrokerUnavailableError(Exception):
    """Changes cannot be received right now (the database does not answer the listener)."""


class Listener(Protocol):
    """Brings the announcements of every worker to one broker (listener.py)."""

    async def start(self, broker: Broker) -> None:
        """Listen (once), and return when announcements arrive; BrokerUnavailableError if not."""

    async def barrier(self, opportunity_id: int) -> None:
        """Return once every write of the opportunity either has committed or will announce
        itself; BrokerUnavailableError if that cannot be known."""

    async def close(self) -> None: ...


class Broker:
    """This process's subscribers by opportunity id, and what tells them about changes.

    ``in_transaction`` is True when announcements travel inside the writing transaction
    (PostgreSQL NOTIFY) and arrive through ``listen``; otherwise ``committed`` publishes them
    in-process once the unit of work has committed.
    """

    def __init__(self, listener: Listener | None = None) -> None:
        self.in_transaction = listener is not None
        self._listener = listener
        self._subscribers: dict[int, set[Subscription]] = {}
        self._lock = asyncio.Lock()

    @property
    def subscriptions(self) -> int:
        return sum(len(s) for s in self._subscribers.values())

    def committed(self, opportunity_ids: Iterable[int], stamp: datetime) -> None:
        """The unit of work committed changes to these opportunities (in-process delivery)."""
        if self.in_transaction:
            return  # the transaction's NOTIFY carries them to every worker, this one included
        for opportunity_id in opportunity_ids:
            self.publish(Change(opportunity_id, stamp))

    def publish(self, change: Change) -> None:
        for subscription in self._subscribers.get(change.opportunity_id, ()):
            subscription.put(change)

    def resync(self) -> None:
        """Changes may have been missed: every subscriber reads the current state again."""
        for opportunity_id, subscriptions in self._subscribers.items():
            for subscription in subscriptions:
                subscription.put(Change(opportunity_id, None))

    async def start(self) -> None:
        """Make sure announcements arrive (the listener listens); BrokerUnavailableError if not."""
        if self._listener is not None:
            async with self._lock:  # one start, however many subscribe at once
                await self._listener.start(self)

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()

    @asynccontextmanager
    async def subscribe(self, opportunity_id: int) -> AsyncIterator[Subscription]:
        """Receive the changes of ``opportunity_id`` committed from now on.

        Raises BrokerUnavailableError when the listener cannot be started.
        """
        subscription = Subscription(opportunity_id)
        self._subscribers.setdefault(opportunity_id, set()).add(subscription)
        metrics.SUBSCRIPTIONS_OPEN.inc()
        try:
            await self.start()
            if self._listener is not None:
                await self._listener.barrier(opportunity_id)
            yield subscription
        finally:
            metrics.SUBSCRIPTIONS_OPEN.dec()
            subscribers = self._subscribers.get(opportunity_id)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._subscribers[opportunity_id]
