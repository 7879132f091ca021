"""PostgreSQL: writes notify only while a worker listens, and no subscriber misses a change.

Every writing transaction that notifies takes PostgreSQL's cluster-wide lock that orders
notifying commits, so writes notify only while a listener is registered (migration 0005).
A write decides after it has locked its opportunity's row; a subscriber waits for that lock
before it starts (listener.py), so a write that looked too early is committed by then.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gql_service.announcements import CHANNEL, Broker, Change, decode
from gql_service.app import create_app
from gql_service.listener import PostgresListener, conninfo
from gql_service.records import OpportunityRecord
from gql_service.repositories import Repository
from gql_service.services import create_opportunity, update_opportunity
from gql_service.settings import Settings
from gql_service.unit_of_work import UnitOfWork
from tests.conftest import BOTH_WRITE_DRIVERS

pytestmark = [pytest.mark.parametrize("settings", ["postgres"], indirect=True), BOTH_WRITE_DRIVERS]

QUIET = 0.3  # seconds in which nothing is expected to arrive
WAIT = 20.0  # a generous bound on what is expected, never a measure of speed


def _broker(engine: AsyncEngine) -> Broker:
    return Broker(PostgresListener(engine, connect_timeout_s=5.0))


async def _opportunity(engine: AsyncEngine) -> int:
    uow = UnitOfWork(engine, actor="tester")
    created = await create_opportunity(
        uow, name="Live", customer_name="Contoso", currency_code="EUR"
    )
    assert created.id is not None
    return created.id


async def _edit(engine: AsyncEngine, broker: Broker, pk: int, description: str) -> Change:
    """The change the edit announces, if anything listens."""
    uow = UnitOfWork(engine, actor="tester", broker=broker)
    edited = await update_opportunity(uow, opportunity_id=pk, description=description)
    return Change(pk, edited.modified_at)


async def _listeners(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as connection:
        rows = await connection.execute(text("SELECT pid FROM announcement_listener ORDER BY pid"))
        return [row.pid for row in rows]


@pytest.fixture
async def notifications(engine: AsyncEngine) -> AsyncIterator[asyncio.Queue[str]]:
    """Every NOTIFY on the channel, heard by a LISTEN that is not registered as a listener."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    connection = await psycopg.AsyncConnection.connect(conninfo(engine.url), autocommit=True)
    await connection.execute(f"LISTEN {CHANNEL}")

    async def hear() -> None:
        async for notify in connection.notifies():
            queue.put_nowait(notify.payload)

    hearing = asyncio.create_task(hear())
    try:
        yield queue
    finally:
        hearing.cancel()
        await asyncio.gather(hearing, return_exceptions=True)
        await connection.close()


async def test_writes_notify_only_while_a_listener_is_registered(
    engine: AsyncEngine, driver: str, notifications: asyncio.Queue[str]
) -> None:
    pk = await _opportunity(engine)
    broker = _broker(engine)

    await _edit(engine, broker, pk, "before any listener")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(notifications.get(), QUIET)
    assert await _listeners(engine) == []

    await broker.start()
    assert len(await _listeners(engine)) == 1
    change = await _edit(engine, broker, pk, "while a worker listens")
    assert decode(await asyncio.wait_for(notifications.get(), WAIT)) == change

    await broker.close()
    assert await _listeners(engine) == []
    await _edit(engine, broker, pk, "after the listener left")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(notifications.get(), QUIET)


async def test_a_listener_removes_the_registrations_of_processes_that_are_gone(
    engine: AsyncEngine, driver: str
) -> None:
    async with engine.begin() as connection:
        # No server process has this id (PostgreSQL's are below 2**22 on Linux).
        await connection.execute(
            text("INSERT INTO announcement_listener (pid, since) VALUES (2147483000, now())")
        )
    broker = _broker(engine)
    await broker.start()
    try:
        [registered] = await _listeners(engine)
        assert registered != 2147483000
    finally:
        await broker.close()


async def test_a_worker_removes_the_registrations_of_gone_listeners_as_it_starts(
    settings: Settings, engine: AsyncEngine, driver: str, notifications: asyncio.Queue[str]
) -> None:
    """Regression: a worker killed while it listened left its row, and every write notified
    for no one until some worker listened again."""
    async with engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO announcement_listener (pid, since) VALUES (2147483000, now())")
        )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        for _ in range(int(WAIT / 0.05)):  # (start-up removes it beside the first requests)
            if await _listeners(engine) == []:
                break
            await asyncio.sleep(0.05)
        assert await _listeners(engine) == []
    pk = await _opportunity(engine)
    await _edit(engine, _broker(engine), pk, "nobody listens")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(notifications.get(), QUIET)


async def test_a_subscriber_waits_for_a_write_that_looked_before_anyone_listened(
    engine: AsyncEngine, driver: str
) -> None:
    """The write locks the row and finds no listener (so it will not notify); the first
    subscriber registers while the write is still open. The subscription starts only once the
    write has committed, so the subscriber reads its change instead of missing it."""
    pk = await _opportunity(engine)
    broker = _broker(engine)
    locked, release = asyncio.Event(), asyncio.Event()

    async def slow_write(repo: Repository) -> OpportunityRecord:
        row = await repo.lock_opportunity_row(pk, expected_version=None)
        locked.set()
        await release.wait()
        return row

    writing = asyncio.create_task(UnitOfWork(engine, actor="tester", broker=broker).run(slow_write))
    await asyncio.wait_for(locked.wait(), WAIT)
    started = asyncio.Event()

    async def subscribe() -> int:
        async with broker.subscribe(pk):
            started.set()
            async with engine.connect() as connection:
                version: int = (
                    await connection.execute(
                        text("SELECT version FROM opportunity WHERE id = :id"), {"id": pk}
                    )
                ).scalar_one()
            return version

    subscribing = asyncio.create_task(subscribe())
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(started.wait()), QUIET)
        assert len(await _listeners(engine)) == 1  # registered, and waiting for the write
        release.set()
        written = await asyncio.wait_for(writing, WAIT)
        assert await asyncio.wait_for(subscribing, WAIT) == written.version
    finally:
        release.set()
        await asyncio.gather(writing, subscribing, return_exceptions=True)
        await broker.close()


async def test_a_listener_closed_as_its_connection_opens_stops(
    engine: AsyncEngine, driver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker shutting down closes its listener, whatever the listener is doing. On Python
    3.11, ``asyncio.wait_for`` returns what it waited for when a cancellation meets its
    completion: a listener closed just as its connection opened went on listening, and its
    ``close`` waited for it forever (a test run hung there in CI)."""
    listener = PostgresListener(engine, connect_timeout_s=5.0)
    connect = psycopg.AsyncConnection.connect
    closing: asyncio.Future[asyncio.Future[None]] = asyncio.get_running_loop().create_future()

    async def connect_then_close(*args: object, **kwargs: object) -> object:
        connection = await connect(*args, **kwargs)  # type: ignore[arg-type]
        # The worker shuts down as the connection comes back, before the listener resumes.
        asyncio.get_running_loop().call_soon(
            lambda: closing.set_result(asyncio.ensure_future(listener.close()))
        )
        return connection

    monkeypatch.setattr(psycopg.AsyncConnection, "connect", connect_then_close)
    starting = asyncio.create_task(listener.start(Broker(listener)))
    close = await asyncio.wait_for(closing, WAIT)
    # (asyncio.wait: wait_for's own cancellation of close() at its time-out went unseen too.)
    done, _ = await asyncio.wait([close], timeout=WAIT)
    starting.cancel()
    await asyncio.gather(starting, return_exceptions=True)
    assert done, "the listener went on listening after close()"


async def test_closing_a_listener_can_itself_be_cancelled(engine: AsyncEngine, driver: str) -> None:
    """``close`` waits for the listener to unregister; cancelled meanwhile (a shutdown given
    up), it is cancelled too, as any awaited call is, rather than returning as if done."""
    listener = PostgresListener(engine, connect_timeout_s=5.0)
    await listener.start(Broker(listener))
    [registered] = await _listeners(engine)
    async with engine.connect() as other, other.begin():
        # The listener's unregistering DELETE waits for this lock on its row.
        await other.execute(
            text("SELECT 1 FROM announcement_listener WHERE pid = :pid FOR UPDATE"),
            {"pid": registered},
        )
        closing = asyncio.create_task(listener.close())
        await asyncio.sleep(QUIET)
        assert not closing.done()
        closing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(closing), WAIT)
    await listener.close()  # the listener has stopped: closing again ends at once
