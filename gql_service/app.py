"""The composition root: ``create_app(settings)`` wires engine, schema and routes."""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gql_service.authentication import build_authenticator
from gql_service.database import create_engine
from gql_service.frontend import app_routes
from gql_service.graphql.http import REQUEST_ID_HEADER, GraphQLEndpoint
from gql_service.graphql.schema import build_schema
from gql_service.limits import BodyReadDeadline, BodySizeLimit, ConcurrencyLimit
from gql_service.outages import OutageGuard, OutageLog
from gql_service.readiness import database_ready
from gql_service.security_headers import SecurityHeaders
from gql_service.settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Starlette:
    """A fresh app with its own engine; nothing is shared between apps.

    Raises AuthConfigurationError when the authentication settings cannot work, e.g. production
    mode without any.
    """
    settings = settings or Settings.from_env()
    engine = create_engine(settings)
    authenticator = build_authenticator(settings, engine)
    endpoint = GraphQLEndpoint(
        build_schema(settings), settings=settings, engine=engine, authenticator=authenticator
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
        yield
        await engine.dispose()

    middleware = [
        Middleware(SecurityHeaders),
        Middleware(
            ConcurrencyLimit,
            max_requests=settings.max_concurrent_requests,
            exempt=frozenset({"/healthz", "/readyz"}),
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
                allow_headers=["content-type", "authorization", "idempotency-key"],
                expose_headers=[REQUEST_ID_HEADER, "idempotent-replayed"],
                max_age=600,
            ),
        )
    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/graphql", endpoint, methods=["GET", "POST"]),
            *(app_routes() if settings.app_page else []),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    return app
