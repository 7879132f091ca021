"""Database outages as the client and the operator see them: a coded 503 and one log line.

A client gets SERVICE_UNAVAILABLE with a retry hint; the log gets one line when an outage
starts and then at most one line per interval with the count of failures in between, never a
traceback per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gql_service import deadlines, messages
from gql_service.database import is_unavailable, outcome_unknown
from gql_service.languages import language_of
from gql_service.limits import refusal
from gql_service.messages import msg, plural_msg

log = logging.getLogger("gql_service.outages")

CODE = "SERVICE_UNAVAILABLE"
LOG_INTERVAL_SECONDS = 10.0


def reason(exc: BaseException) -> str:
    """One line on why the database did not answer, without SQL, driver or ORM names."""
    if isinstance(exc, PoolTimeoutError):
        return "no pooled connection became free within the pool timeout"
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    sqlstate = getattr(orig, "sqlstate", None)
    text = " ".join(str(orig).split())[:200] or type(orig).__name__
    return f"{text} (SQLSTATE {sqlstate})" if sqlstate else text


class OutageLog:
    """Logs the first failure of an outage, then at most one line per interval with a count."""

    def __init__(
        self,
        interval: float = LOG_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._quiet_until: float | None = None
        self._suppressed = 0

    def report(self, exc: BaseException, *, request_id: str = "-") -> None:
        now = self._clock()
        if self._quiet_until is not None and now < self._quiet_until:
            self._suppressed += 1
            return
        if self._suppressed:
            log.warning(
                "database unavailable [request %s]: %s; %d more failures in the last %.0f s",
                request_id,
                reason(exc),
                self._suppressed,
                self.interval,
            )
        else:
            log.warning("database unavailable [request %s]: %s", request_id, reason(exc))
        self._suppressed = 0
        self._quiet_until = now + self.interval


def message(
    retry_after: int, *, mutation: bool, exc: BaseException | None = None
) -> messages.Message:
    """What the client is told: whether anything changed, and when and how to retry."""
    wait = plural_msg("Retry after {count} second", "Retry after {count} seconds", retry_after)
    if not mutation:
        return msg("The service is unavailable: its database did not answer. {wait}.", wait=wait)
    if exc is not None and outcome_unknown(exc):
        return msg(
            "The service is unavailable: its database stopped answering while the mutation was "
            "being committed, so it may or may not have been applied. {wait} with the same "
            "Idempotency-Key to have it applied exactly once.",
            wait=wait,
        )
    return msg(
        "The service is unavailable: its database did not answer, and the mutation was not "
        "applied. {wait}; send an Idempotency-Key to make the retry safe.",
        wait=wait,
    )


def extensions(retry_after: int, request_id: str) -> dict[str, object]:
    return {"code": CODE, "retryAfter": retry_after, "requestId": request_id}


class OutageGuard:
    """Per HTTP request: the database deadline, and a 503 for an outage that nothing caught.

    The GraphQL layer turns outages into SERVICE_UNAVAILABLE itself; this catches those that
    escape a handler before any response was started (a database call outside execution).
    """

    def __init__(
        self, app: ASGIApp, *, deadline_ms: int, retry_after: int, outages: OutageLog
    ) -> None:
        self.app = app
        self.deadline_seconds = deadline_ms / 1000
        self.retry_after = retry_after
        self.outages = outages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["outages"] = self.outages
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        # (A request the front door went on with keeps the budget it began there.)
        with deadlines.deadline(self.deadline_seconds, scope["state"].get(deadlines.STATE_KEY)):
            try:
                await self.app(scope, receive, tracking_send)
            except Exception as exc:
                if started or not is_unavailable(exc):
                    raise
                request_id = str(scope["state"].get("request_id", "-"))
                self.outages.report(exc, request_id=request_id)
                response = refusal(
                    503,
                    CODE,
                    message(self.retry_after, mutation=False),
                    language=language_of(scope),
                    headers={"retry-after": str(self.retry_after)},
                    retryAfter=self.retry_after,
                    requestId=request_id,
                )
                await response(scope, receive, send)
