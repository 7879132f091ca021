"""The metrics' HTTP side: the request middleware, ``GET /metrics``, pools and worker files.

Several workers: ``serve`` gives prometheus_client a fresh directory before any worker starts
(metrics_dir.py). Each worker writes its values there; a scrape,
whichever worker answers it, sums all workers' files, dead workers' counters included (a
counter must not go back) and dead workers' gauges excluded (they are removed at scrape time).
"""

from __future__ import annotations

import hmac
import os
import re
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.exposition import choose_encoder
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gql_service import metrics
from gql_service.languages import language_of
from gql_service.limits import refusal
from gql_service.messages import msg
from gql_service.metrics_dir import MULTIPROC_ENV, alive

_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w*?_(\d+)\.db")


def forget_dead_workers(directory: str) -> None:
    """Drop the live gauges (pool use, open subscriptions) of workers that have exited."""
    for path in Path(directory).glob("gauge_live*.db"):
        found = _LIVE_GAUGE_FILE.fullmatch(path.name)
        if found and not alive(int(found.group(1))):
            multiprocess.mark_process_dead(int(found.group(1)), directory)  # type: ignore[no-untyped-call]


def exposition(accept: str | None) -> tuple[bytes, str]:
    """Every metric, in the format the scraper accepts; in multiprocess mode, all workers'."""
    directory = os.environ.get(MULTIPROC_ENV)
    registry: CollectorRegistry = REGISTRY
    if directory:
        forget_dead_workers(directory)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


def metrics_endpoint(token: str | None) -> Any:
    """``GET /metrics``; with ``token``, only for ``Authorization: Bearer <token>``."""
    expected = f"Bearer {token}".encode() if token else None

    async def endpoint(request: Request) -> Response:
        if expected is not None:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return refusal(
                    401,
                    "UNAUTHENTICATED",
                    msg("The metrics need the bearer token configured as METRICS_TOKEN."),
                    language=language_of(request.scope),
                    headers={"www-authenticate": 'Bearer realm="gql_service metrics"'},
                )
        body, content_type = await run_in_threadpool(exposition, request.headers.get("accept"))
        return Response(body, headers={"content-type": content_type})

    return endpoint


def observe_pool(engine: AsyncEngine, name: str) -> None:
    """Keep the pool gauges of ``engine`` current: its size, and connections checked out."""
    sync_engine = engine.sync_engine
    size = getattr(sync_engine.pool, "size", None)
    metrics.POOL_SIZE.labels(name).set(size() if callable(size) else 0)
    checked_out = metrics.POOL_CHECKED_OUT.labels(name)

    @event.listens_for(sync_engine, "checkout")
    def _checkout(*_: Any) -> None:
        checked_out.inc()

    @event.listens_for(sync_engine, "checkin")
    def _checkin(*_: Any) -> None:
        checked_out.dec()


class RequestMetrics:
    """Counts and times every request to ``path`` (the GraphQL endpoint), CORS preflights aside.

    The layers inside fill the request's ``RequestRecord`` (metrics.CURRENT): the fast lane and
    the schema extension name the operation and its error codes, mutations their user errors.
    The browser page of GraphiQL (no operation, no error) is not counted.
    """

    def __init__(self, app: ASGIApp, *, path: str, names: metrics.OperationNames) -> None:
        """``names``: the operation names that may be labels (shared with the front door)."""
        self.app = app
        self.path = path
        self.names = names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        record = metrics.RequestRecord()
        status = 500
        replayed = False

        async def send_status(message: Message) -> None:
            nonlocal status, replayed
            if message["type"] == "http.response.start":
                status = message["status"]
                replayed = any(k == b"idempotent-replayed" for k, _ in message.get("headers", ()))
            await send(message)

        token = metrics.CURRENT.set(record)
        finished = False  # a cancelled request (client gone) is not counted
        try:
            await self.app(scope, receive, send_status)
            finished = True
        except Exception:
            finished = True
            raise
        finally:
            metrics.CURRENT.reset(token)
            record.replayed = replayed
            if finished and (record.executed or record.codes or replayed or status >= 400):
                metrics.observe(record, status, self.names)
