"""Benchmark: what the metrics cost per request, in-process, on the fast lane's hottest read.

The same app with METRICS on and off (and with tracing to an in-memory exporter, for scale)
answers a known read through the fast lane, called as ASGI without any HTTP client, on a
fresh SQLite file; it prints the median time per request and the difference. Interleaved
rounds, so that the machine's noise falls on both sides alike.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gql_service import metrics, services
from gql_service.app import create_app
from gql_service.graphql.ids import encode_id
from gql_service.migrations import upgrade_to_head
from gql_service.settings import Settings
from gql_service.unit_of_work import UnitOfWork
from tests.asgi import graphql_post_scope

READ = "query R1($id: ID!) { opportunity(id: $id) { id name state estimatedRevenue version } }"
ROUNDS, PER_ROUND = 10, 400


async def call(app: Starlette, body: bytes) -> int:
    scope = graphql_post_scope()
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def main() -> None:
    url = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'bench.sqlite3'}"
    settings = Settings(database_url=url, log_level="WARNING")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    apps = {
        "metrics off": create_app(Settings(**{**settings.__dict__, "metrics": False})),
        "metrics on": create_app(settings),
        "metrics on + tracing": create_app(settings, tracer_provider=provider),
    }
    first = next(iter(apps.values()))
    await upgrade_to_head(first.state.engine)
    opportunity = await services.create_opportunity(
        UnitOfWork(first.state.engine, actor="bench"),
        name="Bench",
        customer_name="Contoso",
        currency_code="EUR",
    )
    variables = {"id": encode_id("Opportunity", opportunity.id)}
    body = orjson.dumps({"query": READ, "variables": variables})
    for app in apps.values():
        for _ in range(50):  # warm: the first answer teaches the fast lane the document
            assert await call(app, body) == 200
    timings: dict[str, list[float]] = {name: [] for name in apps}
    gc.freeze()
    for _ in range(ROUNDS):
        for name, app in apps.items():
            start = time.process_time()  # CPU time: the machine's other load falls outside
            for _ in range(PER_ROUND):
                await call(app, body)
            timings[name].append((time.process_time() - start) / PER_ROUND * 1e6)
    base = statistics.median(timings["metrics off"])
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"{name:22} {median:8.1f} µs CPU/request  ({median - base:+.1f} µs)")
    for app in apps.values():
        await app.state.engine.dispose()
    print(f"the metrics' own work alone: {instrumentation_cost():.1f} µs/request")


def instrumentation_cost() -> float:
    """What RequestMetrics adds around a request: the record, the context variable, the
    operation note and the counting (a counter, a histogram; pool checkout and checkin)."""
    names = metrics.OperationNames(200)
    pool = metrics.POOL_CHECKED_OUT.labels("bench")
    count = 100_000
    start = time.process_time()
    for _ in range(count):
        record = metrics.RequestRecord()
        token = metrics.CURRENT.set(record)
        pool.inc()
        metrics.note_operation("R1", "query", [])
        pool.dec()
        metrics.CURRENT.reset(token)
        metrics.observe(record, 200, names)
    return (time.process_time() - start) / count * 1e6


if __name__ == "__main__":
    asyncio.run(main())
