"""OpenTelemetry tracing from the standard OTEL_* variables: provider, HTTP and SQL spans.

Off unless ``OTEL_TRACES_EXPORTER`` names an exporter (``otlp``: OTLP over HTTP/protobuf to
``OTEL_EXPORTER_OTLP_ENDPOINT``; ``console``) or an OTLP endpoint is set, and never with
``OTEL_SDK_DISABLED=true``. The SDK reads the rest itself: OTEL_SERVICE_NAME,
OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER(_ARG), OTEL_BSP_*, OTEL_EXPORTER_OTLP_* (headers,
timeouts, per-signal endpoints), OTEL_PROPAGATORS (W3C trace context and baggage by default).

The official instrumentations make the spans: opentelemetry-instrumentation-asgi the HTTP
server span (its parent is the incoming ``traceparent``), opentelemetry-instrumentation-
sqlalchemy one span per SQL statement, on this app's engine only; the GraphQL operation and
resolver spans come from graphql/observability.py. Nothing is installed globally, so apps with
and without tracing can share a process (the tests do).
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Tracer
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.middleware import Middleware

DEFAULT_SERVICE_NAME = "gql_service"
# Probes and scrapes are not worth a trace each.
UNTRACED_PATHS = "/healthz,/readyz,/metrics"
_NO_METRICS = NoOpMeterProvider()


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    # OTLP over HTTP/protobuf; it reads OTEL_EXPORTER_OTLP_* itself.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _resource() -> Resource:
    named = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    # Resource.create merges OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; ours only by default.
    return Resource.create({} if named else {SERVICE_NAME: DEFAULT_SERVICE_NAME})


def provider_from_env(exporters: tuple[str, ...]) -> TracerProvider | None:
    """A tracer provider exporting to ``exporters`` (batched), or None when there are none."""
    if not exporters:
        return None
    provider = TracerProvider(resource=_resource())
    for name in exporters:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    return provider


def trace_engine(engine: AsyncEngine, provider: TracerProvider) -> None:
    """A span per SQL statement on ``engine``, by the official SQLAlchemy instrumentation."""
    tracer = provider.get_tracer("opentelemetry.instrumentation.sqlalchemy")
    usage = _NO_METRICS.get_meter(__name__).create_up_down_counter("db.client.connections.usage")
    EngineTracer(tracer, engine.sync_engine, usage)  # type: ignore[no-untyped-call]


def http_middleware(provider: TracerProvider) -> Middleware:
    """The HTTP server span of every request, child of the caller's ``traceparent``."""
    options: dict[str, Any] = {
        "tracer_provider": provider,
        "meter_provider": _NO_METRICS,
        "excluded_urls": UNTRACED_PATHS,
        "exclude_spans": ["receive", "send"],
    }
    return Middleware(OpenTelemetryMiddleware, **options)


def graphql_tracer(provider: TracerProvider) -> Tracer:
    return provider.get_tracer("gql_service.graphql")
