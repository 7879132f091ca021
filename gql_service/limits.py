"""ASGI middleware that bounds what one client can hold: body size, body time, concurrency."""

from __future__ import annotations

import asyncio
import logging

import orjson
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gql_service import messages
from gql_service.languages import Language, language_of
from gql_service.messages import msg
from gql_service.watchdog import TimeoutAt

log = logging.getLogger(__name__)

BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# scope["state"] key: the loop time by which the body must have arrived, when a layer in front
# of BodyReadDeadline (the front door) started the clock.
BODY_READ_UNTIL = "body_read_until"


def refusal(
    status: int,
    code: str,
    message: messages.Message,
    *,
    language: Language,
    headers: dict[str, str] | None = None,
    media_type: str = "application/json",
    **extensions: object,
) -> Response:
    """A GraphQL-shaped error response for a request refused before it reached GraphQL."""
    text = message.translate(language)
    body = {"errors": [{"message": text, "extensions": {"code": code, **extensions}}]}
    return Response(orjson.dumps(body), status_code=status, media_type=media_type, headers=headers)


class BodyTooLargeError(Exception):
    pass


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLargeError
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLargeError:
            if not started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = refusal(
            413,
            "REQUEST_TOO_LARGE",
            msg("Request body exceeds {maximum} bytes.", maximum=self.max_bytes),
            language=language_of(scope),
        )
        await response(scope, receive, send)


class BodyReadDeadline:
    """Read the whole body within ``timeout_s`` of the request's start, or answer 408 and close.

    A client that trickles its body holds a connection and a task; the deadline bounds both.
    The body is buffered here (it is capped by ``BodySizeLimit``) and replayed to the app.
    """

    def __init__(self, app: ASGIApp, *, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in BODYLESS_METHODS or self.timeout_s <= 0:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        loop = asyncio.get_running_loop()
        # (Counted from the front door's start, when it read part of the body already.)
        until = scope.get("state", {}).get(BODY_READ_UNTIL) or loop.time() + self.timeout_s
        try:
            with TimeoutAt(until):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    chunks.append(message.get("body", b""))
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            log.info("request body not received within %.1f s; answered 408", self.timeout_s)
            response = refusal(
                408,
                "REQUEST_TIMEOUT",
                msg(
                    "The request body did not arrive within {seconds} s.",
                    seconds=f"{self.timeout_s:g}",
                ),
                language=language_of(scope),
                headers={"connection": "close"},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, replaying(b"".join(chunks), receive), send)


def replaying(body: bytes, receive: Receive, *, more_body: bool = False) -> Receive:
    """``receive``, with ``body`` (what was read of the request's body) first."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": more_body}

    return replay


class InFlight:
    """The requests in progress in one worker, counted by ConcurrencyLimit and by the front
    door (graphql/front_door.py) for the requests it answers itself."""

    def __init__(self) -> None:
        self.active = 0


class ConcurrencyLimit:
    """At most ``max_requests`` requests in progress per worker; past that, 503 at once.

    Paths in ``exempt`` (the health probes) are neither counted nor refused, so a saturated
    worker still reports itself alive. ``in_flight`` is the count, if shared.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_requests: int,
        exempt: frozenset[str] = frozenset(),
        retry_after_s: int = 1,
        in_flight: InFlight | None = None,
    ) -> None:
        self.app = app
        self.max_requests = max_requests
        self.exempt = exempt
        self.retry_after_s = retry_after_s
        self.in_flight = in_flight or InFlight()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.max_requests <= 0 or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        in_flight = self.in_flight
        if in_flight.active >= self.max_requests:
            response = refusal(
                503,
                "SERVICE_UNAVAILABLE",
                msg("The server is at its limit of concurrent requests; retry shortly."),
                language=language_of(scope),
                headers={"retry-after": str(self.retry_after_s)},
                retryAfter=self.retry_after_s,
            )
            await response(scope, receive, send)
            return
        in_flight.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            in_flight.active -= 1
