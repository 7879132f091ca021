"""The composition root: ``create_app(settings)`` wires engine, schema and routes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute

from gql_service import metrics
from gql_service.authentication import build_authenticator
from gql_service.database import create_engine, driver_reads, reads_engine
from gql_service.frontend import app_routes
from gql_service.graphiql import PREFIX as GRAPHIQL_FILES
from gql_service.graphiql import GraphiQLFiles
from gql_service.graphql.front_door import FrontDoor
from gql_service.graphql.http import REQUEST_ID_HEADER, GraphQLEndpoint
from gql_service.graphql.schema import build_schema
from gql_service.languages import LanguageNegotiation
from gql_service.limits import BodyReadDeadline, BodySizeLimit, ConcurrencyLimit, InFlight
from gql_service.listener import forget_gone_listeners, live_broker
from gql_service.metrics import OperationNames
from gql_service.metrics_http import RequestMetrics, metrics_endpoint, observe_pool
from gql_service.outages import OutageGuard, OutageLog
from gql_service.readiness import database_ready
from gql_service.security_headers import SecurityHeaders
from gql_service.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger(__name__)

# What a browser may send and read across origins: the API's own headers, W3C trace context
# (traceparent, tracestate, baggage) and the language (issue 7).
CORS_REQUEST_HEADERS = (
    "content-type",
    "authorization",
    "idempotency-key",
    "accept-language",
    "traceparent",
    "tracestate",
    "baggage",
    REQUEST_ID_HEADER,
)
CORS_RESPONSE_HEADERS = (
    REQUEST_ID_HEADER,
    "idempotent-replayed",
    "retry-after",
    "www-authenticate",
    "content-language",
)


def create_app(
    settings: Settings | None = None, *, tracer_provider: TracerProvider | None = None
) -> Starlette:
    """A fresh app with its own engine; nothing is shared between apps.

    Traces go to ``tracer_provider`` if given, else where the OTEL_* variables say (if they
    do). Raises AuthConfigurationError when the authentication settings cannot work, e.g.
    production mode without any.
    """
    settings = settings or Settings.from_env()
    engine = create_engine(settings)
    if tracer_provider is None and settings.tracing:
        from gql_service.tracing import provider_from_env

        tracer_provider = provider_from_env(settings.trace_exporters)
    reads = reads_engine(engine)
    # Compiled reads and, first, units of work (driver_writes.py); None off asyncpg.
    on_asyncpg = driver_reads(reads)
    if tracer_provider is not None:
        from gql_service.tracing import trace_engine

        trace_engine(engine, tracer_provider)
        if reads is not engine:
            trace_engine(reads, tracer_provider)
    if settings.metrics:
        observe_pool(engine, "default")
        if reads is not engine:
            observe_pool(reads, "reads")
        if on_asyncpg is not None:
            on_asyncpg.observe(
                metrics.POOL_SIZE.labels("asyncpg"), metrics.POOL_CHECKED_OUT.labels("asyncpg")
            )
    authenticator = build_authenticator(settings, engine)
    broker = live_broker(settings, engine)
    endpoint = GraphQLEndpoint(
        build_schema(settings, tracer_provider=tracer_provider),
        settings=settings,
        engine=engine,
        authenticator=authenticator,
        broker=broker,
    )
    outages = OutageLog()

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> JSONResponse:
        if not await database_ready(
            engine, timeout_ms=settings.readiness_timeout_ms, outages=outages
        ):
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # Everything loaded so far lives as long as the process: keep it out of the garbage
        # collector's full passes, which otherwise double the tail latency of big responses.
        gc.freeze()
        # Long documents are parsed in a thread (graphql/admission.py); a 1 ms switch interval
        # (default 5 ms) lets the event loop take the interpreter back that much sooner.
        sys.setswitchinterval(0.001)
        # The asyncpg connections, opened while nothing waits for them (DB_POOL_WARM).
        starting: list[asyncio.Task[None]] = []
        if on_asyncpg is not None and settings.db_pool_warm:
            starting.append(asyncio.create_task(on_asyncpg.warm()))
        # Where this worker's writes announce by NOTIFY (unit_of_work.py), they notify while a
        # listener is registered: one killed as it listened must not leave them notifying for
        # no one (listener.py). Off PostgreSQL, or with subscriptions off, nothing to do.
        if broker is not None and broker.in_transaction:
            starting.append(asyncio.create_task(forget_gone_listeners(engine)))
        yield
        for task in starting:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if broker is not None:
            await broker.close()
        await engine.dispose()
        if tracer_provider is not None:
            tracer_provider.shutdown()  # sends the spans still in the batch

    in_flight = InFlight()
    names = OperationNames(settings.metrics_max_operation_names) if settings.metrics else None
    middleware = [
        Middleware(SecurityHeaders),
        # Before every refusal: each one is written in the request's language.
        Middleware(LanguageNegotiation),
        Middleware(
            ConcurrencyLimit,
            max_requests=settings.max_concurrent_requests,
            exempt=frozenset({"/healthz", "/readyz", "/metrics"}),
            in_flight=in_flight,
        ),
        Middleware(BodySizeLimit, max_bytes=settings.max_body_bytes),
        Middleware(BodyReadDeadline, timeout_s=settings.body_read_timeout_ms / 1000),
        Middleware(
            OutageGuard,
            deadline_ms=settings.db_deadline_ms,
            retry_after=settings.db_retry_after_seconds,
            outages=outages,
        ),
    ]
    if settings.cors_origins:
        middleware.insert(
            1,
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=list(CORS_REQUEST_HEADERS),
                expose_headers=list(CORS_RESPONSE_HEADERS),
                max_age=600,
            ),
        )
    routes: list[BaseRoute] = [
        # First: the router tries routes in order, and nearly every request is for it.
        Route("/graphql", endpoint, methods=["GET", "POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
    if settings.graphiql:
        files = GraphiQLFiles()
        routes.append(Route(f"{GRAPHIQL_FILES}/{{path:path}}", files.serve, methods=["GET"]))
    if names is not None:
        routes.append(Route("/metrics", metrics_endpoint(settings.metrics_token), methods=["GET"]))
        middleware.insert(0, Middleware(RequestMetrics, path="/graphql", names=names))
    if endpoint.fast_lane is not None:
        # The fast lane's operations are answered in front of the layers above, which it
        # stands in for (front_door.py).
        middleware.insert(
            0,
            Middleware(
                FrontDoor,
                lane=endpoint.fast_lane,
                path="/graphql",
                settings=settings,
                in_flight=in_flight,
                names=names,
            ),
        )
    if tracer_provider is not None:
        from gql_service.tracing import http_middleware

        middleware.insert(0, http_middleware(tracer_provider))
    if broker is not None:
        routes.append(WebSocketRoute("/graphql", endpoint))
    if settings.app_page:
        routes.extend(app_routes())
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.broker = broker
    return app
