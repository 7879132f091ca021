"""``Idempotency-Key`` over HTTP: check the header, claim per request, replay or refuse.

Only mutations spend a key: the claim is inserted by the unit of work of the first mutation
field whose transaction commits, so a query ignores the header and a refused mutation (typed
errors, nothing written) leaves the key unspent. Once the response is built it is stored on
the key's row; a retry with the same principal, key and request gets it back, byte for byte,
with ``Idempotent-Replayed: true``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response

from gql_service.idempotency import (
    Claim,
    IdempotencyStore,
    InvalidIdempotencyKeyError,
    parse_key,
    request_hash,
)
from gql_service.languages import language_of
from gql_service.limits import refusal
from gql_service.messages import Message, msg
from gql_service.settings import Settings

log = logging.getLogger(__name__)

HEADER = "idempotency-key"
REPLAYED_HEADER = "idempotent-replayed"
RETRY_AFTER_SECONDS = 1


class IdempotentRequests:
    """The HTTP side of idempotency keys, one per endpoint."""

    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.store = IdempotencyStore(engine)
        self.ttl = timedelta(seconds=max(0, settings.idempotency_key_ttl_seconds))
        self.wait_seconds = max(0, settings.idempotency_wait_ms) / 1000

    def refusal(self, request: Request, media_type: str) -> Response | None:
        """400 IDEMPOTENCY_KEY_INVALID for a malformed header, on any request."""
        values = request.headers.getlist(HEADER)
        if not values:
            return None
        try:
            parse_key(values)
        except InvalidIdempotencyKeyError as exc:
            return error_response(request, 400, "IDEMPOTENCY_KEY_INVALID", exc.message, media_type)
        return None

    async def claim(self, request: Request, principal: str) -> Claim | None:
        """The claim a POST with a valid key will insert with its first committed mutation."""
        values = request.headers.getlist(HEADER)
        claim = None
        if values and request.method == "POST":
            try:
                key = parse_key(values)
            except InvalidIdempotencyKeyError:
                key = None  # refused in ``refusal`` before execution
            if key is not None:
                body = await request.body()
                claim = Claim(principal, key, request_hash(body), self.ttl)
        request.state.idempotency = claim
        return claim

    async def finish(self, request: Request, response: Response, media_type: str) -> Response:
        """Store the response of a request that spent its key; answer a twin from the store."""
        claim: Claim | None = getattr(request.state, "idempotency", None)
        if claim is None:
            return response
        if claim.taken:
            return await self._answer_twin(request, claim, media_type)
        if claim.committed:
            now = datetime.now(UTC)
            try:
                await self.store.save(claim, response.status_code, bytes(response.body).decode())
                await self.store.purge_now_and_then(now)
            except (SQLAlchemyError, OSError) as exc:
                # The work is done and its answer goes out; a retry will wait, then get 409.
                log.warning("could not store the response for an idempotency key: %s", exc)
        return response

    async def _answer_twin(self, request: Request, claim: Claim, media_type: str) -> Response:
        """The stored response, once the request holding the key has stored it (bounded)."""
        deadline = time.monotonic() + self.wait_seconds
        pause = 0.01
        while True:
            try:
                stored = await self.store.find(claim, datetime.now(UTC))
            except (SQLAlchemyError, OSError) as exc:
                log.warning("could not read an idempotency key: %s", exc)
                return error_response(
                    request,
                    503,
                    "SERVICE_UNAVAILABLE",
                    msg("The service cannot reach its database; retry shortly."),
                    media_type,
                    retry=True,
                )
            if stored is not None and stored.request_hash != claim.request_hash:
                return error_response(
                    request,
                    422,
                    "IDEMPOTENCY_KEY_REUSED",
                    msg(
                        "This Idempotency-Key was used for a different request; "
                        "use a new key for a new request."
                    ),
                    media_type,
                )
            if stored is not None and stored.body is not None and stored.status_code is not None:
                return Response(
                    stored.body,
                    status_code=stored.status_code,
                    media_type=media_type,
                    headers={REPLAYED_HEADER: "true", **_request_id(request)},
                )
            if stored is None or time.monotonic() >= deadline:
                return error_response(
                    request,
                    409,
                    "IDEMPOTENCY_KEY_IN_PROGRESS",
                    msg(
                        "A request with this Idempotency-Key is still being processed; "
                        "retry shortly to get its response."
                    ),
                    media_type,
                    retry=True,
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.2)


def error_response(
    request: Request,
    status: int,
    code: str,
    message: Message,
    media_type: str,
    *,
    retry: bool = False,
) -> Response:
    """A GraphQL response with one top-level error and no data: the request did not run."""
    headers = _request_id(request)
    extensions: dict[str, object] = {}
    if retry:
        headers["retry-after"] = str(RETRY_AFTER_SECONDS)
        extensions["retryAfter"] = RETRY_AFTER_SECONDS
    return refusal(
        status,
        code,
        message,
        language=language_of(request.scope),
        headers=headers,
        media_type=media_type,
        **extensions,
    )


def _request_id(request: Request) -> dict[str, str]:
    request_id = getattr(request.state, "request_id", None)
    return {"x-request-id": request_id} if request_id else {}
