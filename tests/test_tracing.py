"""OpenTelemetry: the span tree of an operation, W3C traceparent, settings from OTEL_*."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from gql_service.app import create_app
from gql_service.graphql.compiled_reads import STATS
from gql_service.settings import Settings
from gql_service.tracing import provider_from_env
from tests.operations import create_opportunity

CLOSE = """
mutation CloseForTrace($input: CloseOpportunityInput!) {
  closeOpportunity(input: $input) {
    opportunity { id state }
    errors { ... on UserError { code message field } }
  }
}"""
READ = "query ReadForTrace($id: ID!) { opportunity(id: $id) { id name state } }"

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


@asynccontextmanager
async def traced(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(settings, tracer_provider=provider)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http, exporter
    await app.state.engine.dispose()
    provider.shutdown()


def gql_over(http: httpx.AsyncClient) -> Any:
    async def call(query: str, **variables: Any) -> dict[str, Any]:
        response = await http.post("/graphql", json={"query": query, "variables": variables})
        body: dict[str, Any] = response.json()
        return body

    return call


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def statement(span: ReadableSpan) -> str:
    attributes = span.attributes or {}
    return str(attributes.get("db.statement") or attributes.get("db.query.text"))


def one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


async def test_close_opportunity_gives_http_operation_resolver_and_sql_spans(
    settings: Settings,
) -> None:
    async with traced(settings) as (http, exporter):
        opportunity = await create_opportunity(gql_over(http))
        exporter.clear()
        response = await http.post(
            "/graphql",
            json={
                "query": CLOSE,
                "variables": {"input": {"opportunityId": opportunity["id"], "outcome": "WON"}},
            },
            headers={"traceparent": TRACEPARENT},
        )
        assert response.json()["data"]["closeOpportunity"]["opportunity"]["state"] == "WON"
        spans = list(exporter.get_finished_spans())

    server = one(spans, "POST /graphql")
    assert server.kind is SpanKind.SERVER
    # The caller's traceparent is the parent: its trace id, its span id.
    assert server.parent is not None
    assert server.parent.span_id == int(PARENT_ID, 16)
    assert {format(s.context.trace_id, "032x") for s in spans if s.context} == {TRACE_ID}

    operation = one(spans, "mutation CloseForTrace")
    assert children(spans, server) == [operation]
    assert operation.attributes is not None
    assert operation.attributes["graphql.operation.name"] == "CloseForTrace"
    assert operation.attributes["graphql.operation.type"] == "mutation"

    resolver = one(spans, "resolve Mutation.closeOpportunity")
    assert resolver in children(spans, operation)
    statements = children(spans, resolver)
    assert len(statements) >= 2
    assert all(s.kind is SpanKind.CLIENT for s in statements)
    sql = " ".join(statement(s) for s in statements)
    assert "UPDATE opportunity" in sql
    # Nothing a client sent is recorded: no document, no argument values.
    recorded = " ".join(str(v) for s in spans for v in (s.attributes or {}).values())
    assert opportunity["id"] not in recorded


async def test_compiled_and_fast_lane_reads_have_an_operation_span_over_their_sql(
    settings: Settings,
) -> None:
    async with traced(settings) as (http, exporter):
        opportunity = await create_opportunity(gql_over(http))
        exporter.clear()
        fast_before = STATS.fast
        for _ in range(2):
            response = await http.post(
                "/graphql", json={"query": READ, "variables": {"id": opportunity["id"]}}
            )
            assert response.json()["data"]["opportunity"]["id"] == opportunity["id"]
        spans = list(exporter.get_finished_spans())

    assert STATS.fast - fast_before == 1
    servers = [s for s in spans if s.name == "POST /graphql"]
    operations = [s for s in spans if s.name == "query ReadForTrace"]
    assert len(servers) == 2
    assert len(operations) == 2
    for server, operation in zip(servers, operations, strict=True):
        assert children(spans, server) == [operation]
        statements = children(spans, operation)
        assert all(s.kind is SpanKind.CLIENT for s in statements)
        # One statement answers the read (SQLite adds its BEGIN).
        assert [s for s in statements if "SELECT" in statement(s)] == statements[-1:]
    assert [(o.attributes or {}).get("gql_service.fast_lane") for o in operations] == [None, True]


async def test_probes_and_scrapes_are_not_traced(settings: Settings) -> None:
    async with traced(settings) as (http, exporter):
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/metrics")).status_code == 200
        assert exporter.get_finished_spans() == ()


@pytest.mark.parametrize(
    ("env", "exporters"),
    [
        ({}, ()),
        ({"OTEL_TRACES_EXPORTER": "console"}, ("console",)),
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, ("otlp", "console")),
        ({"OTEL_TRACES_EXPORTER": "none"}, ()),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, ("otlp",)),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, ()),
    ],
)
def test_tracing_is_off_unless_the_otel_variables_ask_for_it(
    env: dict[str, str], exporters: tuple[str, ...]
) -> None:
    settings = Settings.from_env(env)
    assert settings.trace_exporters == exporters
    assert settings.tracing is bool(exporters)


def test_an_unknown_exporter_stops_start_up() -> None:
    with pytest.raises(ValueError, match="OTEL_TRACES_EXPORTER"):
        Settings.from_env({"OTEL_TRACES_EXPORTER": "jaeger"})


def test_the_provider_from_the_environment_names_the_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert provider_from_env(()) is None
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    provider = provider_from_env(("otlp", "console"))
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "gql_service"
    provider.shutdown()
    monkeypatch.setenv("OTEL_SERVICE_NAME", "crm-api")
    named = provider_from_env(("console",))
    assert named is not None
    assert named.resource.attributes["service.name"] == "crm-api"
    named.shutdown()
