"""Lists cost a fixed number of SQL statements, whatever the page size (DataLoaders)."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from gql_service import quote_services, services
from gql_service.app import create_app
from gql_service.models import CloseOutcome
from gql_service.settings import Settings
from gql_service.unit_of_work import UnitOfWork

LIST = """
query($first: Int!) {
  opportunities(first: $first) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes {
      id name state openQuoteCount
      quotes(first: 20) {
        totalCount
        nodes { id quoteNumber state closeRecord { batchId } opportunity { id name } }
      }
      closeHistory { outcome state competitor { name } }
    }
  }
}"""


async def seed(uow: UnitOfWork, count: int) -> None:
    rival = await services.create_competitor(uow, name="Proseware")
    for index in range(count):
        opportunity = await services.create_opportunity(
            uow, name=f"Deal {index}", customer_name="Contoso", currency_code="EUR"
        )
        assert opportunity.id is not None
        for _ in range(2):
            await quote_services.create_quote(uow, opportunity_id=opportunity.id, name="Q")
        if index % 3 == 0:
            await services.close_opportunity(
                uow,
                opportunity_id=opportunity.id,
                outcome=CloseOutcome.LOST,
                close_open_quotes=True,
                competitor_id=rival.id,
            )


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "plain"])
async def test_listing_opportunities_with_quotes_and_history_is_a_fixed_number_of_statements(
    settings: Settings, compiled: bool
) -> None:
    app = create_app(dataclasses.replace(settings, compiled_reads=compiled))
    engine = app.state.engine
    await seed(UnitOfWork(engine, actor="tester"), 50)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    per_page: dict[int, int] = {}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        for first in (5, 50):
            statements.clear()
            response = await http.post(
                "/graphql", json={"query": LIST, "variables": {"first": first}}
            )
            body = response.json()
            assert "errors" not in body, body
            assert len(body["data"]["opportunities"]["nodes"]) == first
            per_page[first] = sum(1 for s in statements if s.lstrip().upper().startswith("SELECT"))
    await engine.dispose()

    if compiled:
        # The whole selection is one statement.
        assert per_page == {5: 1, 50: 1}, per_page
    else:
        # page, total count, quotes with their close records, opportunities
        # (quote.opportunity), close history, competitors, open quote counts: one each.
        assert per_page[5] == per_page[50] <= 7, per_page
