"""The front door: the operations the fast lane knows, answered in front of the middleware.

Around the GraphQL endpoint stand seven ASGI layers (metrics, security headers, language,
concurrency, body size, body deadline, outage guard) and Starlette's routing. Measured
in-process, they cost a fast read ~70 of its ~250 µs of CPU, mostly in their generic work
(closures around ``send`` and ``receive``, header lists parsed and rebuilt, a request object
and a response object), not in what they decide. For a POST to the GraphQL path, the front
door, the outermost of them (inside tracing only), decides the same things in one place and
hands the request to the fast lane (fast_lane.py):

- metrics: the request is counted and timed as RequestMetrics counts it, with the same
  operation names;
- concurrency: it is counted in the same ``InFlight`` as ConcurrencyLimit's;
- the body: read within BodyReadDeadline's time, and no larger than BodySizeLimit's bound;
- the database deadline, as OutageGuard sets it;
- the response: status 200, the request id, ``Content-Language`` and ``Vary`` as
  LanguageNegotiation marks JSON, and the security headers, in the order the layers add them.

Everything else goes on through the layers as it came, its body replayed: other paths and
methods, a CORS request (``Origin`` while CORS_ORIGINS is set), a request over the concurrency
limit, a body too large or too slow (the layers refuse it; their clocks run on from where the
front door's began), and whatever the lane leaves to the normal path. The endpoint does not
offer such a request to the lane again, so that a write the lane tried is never called twice
(its resolver answers with the failure). The differential tests hold the fast answers to the
normal path's status, headers and bytes (test_compiled_reads.py, test_fast_writes.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from gql_service import deadlines, metrics
from gql_service.graphql.context import new_request_id
from gql_service.graphql.fast_lane import LANE_TRIED, FastLane
from gql_service.graphql.http import REQUEST_ID_HEADER
from gql_service.languages import header_value, marks, negotiate
from gql_service.limits import BODY_READ_UNTIL, InFlight, replaying
from gql_service.read_session import ReadSession
from gql_service.security_headers import RAW_HEADERS
from gql_service.settings import Settings
from gql_service.watchdog import TimeoutAt

_REQUEST_ID = REQUEST_ID_HEADER.encode()


class FrontDoor:
    def __init__(
        self,
        app: ASGIApp,
        *,
        lane: FastLane,
        path: str,
        settings: Settings,
        in_flight: InFlight,
        names: metrics.OperationNames | None,
    ) -> None:
        """``names``: RequestMetrics' operation names, None when metrics are off."""
        self.app = app
        self.lane = lane
        self.path = path
        self.in_flight = in_flight
        self.names = names
        self.max_requests = settings.max_concurrent_requests
        self.max_bytes = settings.max_body_bytes
        self.body_seconds = settings.body_read_timeout_ms / 1000
        self.db_seconds = settings.db_deadline_ms / 1000
        self.cors = bool(settings.cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        # (A dict: the lane looks up a handful of names, most of them absent. ASGI servers
        # send names in lower case; the first of repeated fields wins, as in Starlette's.)
        headers = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in reversed(scope["headers"])
        }
        in_flight = self.in_flight
        declared = headers.get("content-length", "")
        if (
            (self.cors and "origin" in headers)
            # ConcurrencyLimit refuses it (MAX_CONCURRENT_REQUESTS=0: no limit).
            or 0 < self.max_requests <= in_flight.active
            # (BodySizeLimit refuses it as it is, unread.)
            or (declared.isdigit() and int(declared) > self.max_bytes)
            or not self.lane.accepts(headers)
        ):
            await self.app(scope, receive, send)
            return
        record = None if self.names is None else metrics.RequestRecord()
        state = scope.setdefault("state", {})
        in_flight.active += 1
        try:
            body = await self._body(scope, state, receive, send)
            if body is None:
                return  # gone on through the layers, or the client left
            answered = await self._answer(scope, state, headers, body, send, record)
        finally:
            in_flight.active -= 1
        if not answered:
            await self.app(scope, replaying(body, receive), send)
        elif record is not None and self.names is not None:
            metrics.observe(record, 200, self.names)

    async def _body(
        self, scope: Scope, state: dict[str, Any], receive: Receive, send: Send
    ) -> bytes | None:
        """The whole body; None when the request went on through the layers instead (too
        large, or not all there in time) or the client left."""
        until = None  # (BODY_READ_TIMEOUT_MS=0: no deadline, as BodyReadDeadline has none)
        if self.body_seconds > 0:
            loop = asyncio.get_running_loop()
            until = state[BODY_READ_UNTIL] = loop.time() + self.body_seconds
        chunks: list[bytes] = []
        size = 0
        more = True
        try:
            with TimeoutAt(until):
                while more:
                    message = await receive()
                    if message["type"] != "http.request":
                        return None  # the client left (BodyReadDeadline ends it so)
                    chunk = message.get("body", b"")
                    chunks.append(chunk)
                    size += len(chunk)
                    more = message.get("more_body", False)
                    if size > self.max_bytes:
                        break
        except TimeoutError:
            pass
        body = b"".join(chunks)
        if more or size > self.max_bytes:
            # BodySizeLimit or BodyReadDeadline answers, from what arrived so far.
            await self.app(scope, replaying(body, receive, more_body=more), send)
            return None
        return body

    async def _answer(
        self,
        scope: Scope,
        state: dict[str, Any],
        headers: dict[str, str],
        body: bytes,
        send: Send,
        record: metrics.RequestRecord | None,
    ) -> bool:
        """Send the lane's answer; False when the lane left the request to the normal path."""
        request_id = new_request_id()
        reads = ReadSession(self.lane.engine)
        token = None if record is None else metrics.CURRENT.set(record)
        try:
            with deadlines.deadline(self.db_seconds) as budget:
                # (OutageGuard carries it on if the request goes on through the layers.)
                state[deadlines.STATE_KEY] = budget
                state[LANE_TRIED] = True
                answer = await self.lane.answer(headers, body, reads, request_id, state)
        finally:
            if token is not None:
                metrics.CURRENT.reset(token)
            # Also on errors and cancellation; and before the client reads the answer.
            await reads.close()
        if answer is None:
            return False
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (_REQUEST_ID, request_id.encode()),
                    (b"content-length", str(len(answer.body)).encode()),
                    (b"content-type", answer.media_type.encode()),
                    *marks(negotiate(header_value(scope["headers"]))),
                    *RAW_HEADERS,
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer.body})
        return True
