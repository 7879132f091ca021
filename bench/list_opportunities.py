"""Benchmark: list 50 opportunities with quotes and history, and close-quote round trips.

Runs in-process over ASGI against a fresh SQLite file (or DATABASE_URL), prints latencies and
the SQL statement count per list request. Budget: p50 under 100 ms for the list on this machine.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from typing import Any

import httpx
from harness import migrated_app, p50_p95
from sqlalchemy import event

from gql_service import quote_services, services
from gql_service.models import CloseOutcome
from gql_service.unit_of_work import UnitOfWork

LIST = """
query {
  opportunities(first: 50) {
    totalCount
    nodes {
      id name state openQuoteCount
      quotes(first: 20) { totalCount nodes { id quoteNumber state closeRecord { batchId } } }
      closeHistory { outcome state competitor { name } }
    }
  }
}"""
TARGET_P50_MS = 100.0


async def seed(uow: UnitOfWork) -> None:
    rival = await services.create_competitor(uow, name="Proseware")
    for index in range(60):
        opportunity = await services.create_opportunity(
            uow, name=f"Deal {index}", customer_name="Contoso", currency_code="EUR"
        )
        assert opportunity.id is not None
        for _ in range(3):
            await quote_services.create_quote(uow, opportunity_id=opportunity.id, name="Q")
        if index % 2:
            await services.close_opportunity(
                uow,
                opportunity_id=opportunity.id,
                outcome=CloseOutcome.LOST,
                close_open_quotes=True,
                competitor_id=rival.id,
            )


async def main() -> int:
    app = await migrated_app()
    engine = app.state.engine
    await seed(UnitOfWork(engine, actor="bench"))
    statements = 0

    def count(*_: Any) -> None:
        nonlocal statements
        statements += 1

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    gc.freeze()  # as the server's lifespan does once the app is loaded
    timings: list[float] = []
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bench"
    ) as http:
        for _ in range(5):
            await http.post("/graphql", json={"query": LIST})
        statements = 0
        runs = 100
        for _ in range(runs):
            start = time.perf_counter()
            response = await http.post("/graphql", json={"query": LIST})
            timings.append((time.perf_counter() - start) * 1000)
            assert "errors" not in response.json()
    await engine.dispose()
    p50, p95 = p50_p95(timings)
    print(f"engine: {engine.dialect.name}")
    print(f"list 50 opportunities (+quotes, history): p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    print(f"SQL statements per request: {statements / runs:.1f}")
    if p50 > TARGET_P50_MS:
        print(f"p50 above the {TARGET_P50_MS:.0f} ms target")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
