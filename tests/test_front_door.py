"""The front door (graphql/front_door.py): the fast lane's operations answered in front of the
middleware, which must decide for them what the layers decide for every other request.

Its answers are held to the normal path's status, headers and bytes by the differential tests
(test_compiled_reads.py, test_fast_writes.py); these tests are about the layers' decisions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from starlette.applications import Starlette
from starlette.types import Message, Receive

from gql_service.app import create_app
from gql_service.graphql import compiled_reads
from gql_service.graphql.fast_lane import LANE_TRIED
from gql_service.graphql.front_door import FrontDoor
from gql_service.limits import InFlight
from gql_service.settings import Settings
from tests.asgi import graphql_post_scope
from tests.live_server import Connection, live_server

COUNT = b'{"query": "{ competitors { totalCount } }"}'
JSON = {"content-type": "application/json"}
ORIGIN = "https://app.example"

SERVER_ON_SQLITE = pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
ON_POSTGRES = pytest.mark.parametrize("settings", ["postgres"], indirect=True)


def _in_flight(app: Starlette) -> InFlight:
    door = next(m for m in app.user_middleware if m.cls is cast(Any, FrontDoor))
    return cast(InFlight, door.kwargs["in_flight"])


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    app = create_app(replace(settings, max_concurrent_requests=1))
    yield app
    await app.state.engine.dispose()


async def _sent(app: Starlette, scope: dict[str, Any], receive: Receive) -> list[Message]:
    """The messages ``app`` sends for one request, called directly."""
    messages: list[Message] = []

    async def send(message: Message) -> None:
        messages.append(message)

    await app(scope, receive, send)
    return messages


async def _taught_app(settings: Settings) -> Starlette:
    """An app whose fast lane knows COUNT."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        await _taught(http)
    return app


async def _taught(http: httpx.AsyncClient) -> None:
    """Send COUNT until the fast lane answers it."""
    fast = compiled_reads.STATS.fast
    for _ in range(2):
        response = await http.post("/graphql", content=COUNT, headers=JSON)
        assert response.status_code == 200, response.text
    assert compiled_reads.STATS.fast == fast + 1


async def test_a_known_read_past_the_concurrency_cap_is_refused_as_any_request(
    app: Starlette,
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        await _taught(http)
        _in_flight(app).active = 1  # another request holds the only place
        fast = compiled_reads.STATS.fast
        refused = await http.post("/graphql", content=COUNT, headers=JSON)
        _in_flight(app).active = 0
        served = await http.post("/graphql", content=COUNT, headers=JSON)

    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["errors"][0]["extensions"] == {
        "code": "SERVICE_UNAVAILABLE",
        "retryAfter": 1,
    }
    assert served.status_code == 200
    assert compiled_reads.STATS.fast == fast + 1


@ON_POSTGRES
async def test_a_known_read_in_progress_counts_against_the_cap(
    app: Starlette, settings: Settings
) -> None:
    """A read the front door answers holds its place while it waits on the database."""
    locker = create_async_engine(settings.database_url)
    transport = httpx.ASGITransport(app=app)
    async with (
        locker.connect() as lock,
        httpx.AsyncClient(transport=transport, base_url="http://test") as http,
    ):
        await _taught(http)
        await lock.execute(text("LOCK TABLE competitor IN ACCESS EXCLUSIVE MODE"))
        held = asyncio.create_task(http.post("/graphql", content=COUNT, headers=JSON))
        await _waiting_on_a_lock(locker)
        started = time.monotonic()
        refused = await http.post("/graphql", content=COUNT, headers=JSON)
        elapsed = time.monotonic() - started
        await lock.rollback()
        answered = await held
    await locker.dispose()

    # ConcurrencyLimit's refusal, at once: not a wait on the lock for the statement time-out.
    assert elapsed < settings.statement_timeout_ms / 1000 / 2
    assert refused.status_code == 503
    assert list(refused.json()) == ["errors"]
    assert refused.json()["errors"][0]["extensions"] == {
        "code": "SERVICE_UNAVAILABLE",
        "retryAfter": 1,
    }
    assert answered.status_code == 200
    assert _in_flight(app).active == 0


async def _waiting_on_a_lock(engine: AsyncEngine) -> None:
    """Until a statement waits on a lock (within 10 s)."""
    waiting = text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
    async with engine.connect() as connection:
        for _ in range(1_000):
            if await connection.scalar(waiting):
                return
            await asyncio.sleep(0.01)
    raise AssertionError("no statement waits on the lock")


async def test_a_known_read_over_the_body_limit_in_chunks_is_refused_with_413(
    settings: Settings,
) -> None:
    """A body the lane could answer (the known query, then spaces) but over the limit, with no
    Content-Length: only counting tells."""
    app = await _taught_app(replace(settings, max_body_bytes=len(COUNT) + 20))
    chunks = [COUNT, b" " * 40]

    async def receive() -> Message:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    messages = await _sent(app, graphql_post_scope(), receive)
    await app.state.engine.dispose()

    assert messages[0]["status"] == 413
    assert b"REQUEST_TOO_LARGE" in messages[1]["body"]


async def test_a_known_read_declared_over_the_body_limit_is_refused_unread(
    settings: Settings,
) -> None:
    app = await _taught_app(replace(settings, max_body_bytes=len(COUNT) + 20))
    scope = graphql_post_scope()
    scope["headers"].append((b"content-length", str(len(COUNT) + 21).encode()))

    async def receive() -> Message:
        raise AssertionError("the body of a request refused for its size is not read")

    messages = await _sent(app, scope, receive)
    await app.state.engine.dispose()

    assert messages[0]["status"] == 413
    assert b"REQUEST_TOO_LARGE" in messages[1]["body"]


@pytest.mark.parametrize(
    "limits",
    [{}, {"body_read_timeout_ms": 0}, {"max_concurrent_requests": 0}, {"metrics": False}],
    ids=["default", "no body deadline", "no concurrency limit", "no metrics"],
)
async def test_known_reads_are_answered_in_front_of_the_layers(
    settings: Settings, limits: dict[str, Any]
) -> None:
    """Whatever the limits' settings (0 switches a limit off), and with metrics off, a known
    read is answered by the front door: the endpoint, which keeps the request's reads in its
    state, is not reached."""
    app = await _taught_app(replace(settings, **limits))
    scope = graphql_post_scope()

    async def receive() -> Message:
        return {"type": "http.request", "body": COUNT, "more_body": False}

    messages = await _sent(app, scope, receive)
    await app.state.engine.dispose()

    assert messages[0]["status"] == 200
    assert b'"totalCount"' in messages[1]["body"]
    assert scope["state"][LANE_TRIED] is True
    assert "reads" not in scope["state"]


@SERVER_ON_SQLITE
async def test_a_trickled_body_gets_408_after_one_deadline_not_two(settings: Settings) -> None:
    """The front door starts the body's clock; BodyReadDeadline, which answers, runs it on."""
    timeout_ms = 500
    async with live_server(replace(settings, body_read_timeout_ms=timeout_ms)) as port:
        connection = await Connection.open(port)
        started = time.monotonic()
        await connection.send(
            b"POST /graphql HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n" % len(COUNT) + COUNT[:10]
        )
        response = await connection.response()
        elapsed = time.monotonic() - started
        await connection.close()

    assert response.status == 408
    assert response.json()["errors"][0]["extensions"]["code"] == "REQUEST_TIMEOUT"  # type: ignore[index]
    # Twice the deadline if the layer behind the front door started a clock of its own.
    assert elapsed < 1.6 * timeout_ms / 1000


async def test_a_cors_request_for_a_known_read_gets_the_cors_headers(settings: Settings) -> None:
    app = create_app(replace(settings, cors_origins=(ORIGIN,)))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        answers = [
            await http.post("/graphql", content=COUNT, headers={**JSON, "origin": ORIGIN})
            for _ in range(3)
        ]
    await app.state.engine.dispose()

    for answer in answers:
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == ORIGIN
        assert "x-request-id" in answer.headers["access-control-expose-headers"]
