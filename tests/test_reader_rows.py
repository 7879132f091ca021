"""The read side answers with Core rows, never ORM instances, and the column types still apply."""

from __future__ import annotations

from datetime import UTC, date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from gql_service import models, quote_services, services
from gql_service.queries import (
    OpportunityFilter,
    Ordering,
    PageRequest,
    QuoteCloseValues,
    QuoteFilter,
    Reader,
)
from gql_service.read_session import ReadSession
from gql_service.unit_of_work import UnitOfWork


async def closed_deal(uow: UnitOfWork) -> tuple[int, int]:
    """A LOST opportunity (against a competitor) with one closed quote, and an open one."""
    rival = await services.create_competitor(uow, name="Proseware")
    lost = await services.create_opportunity(
        uow,
        name="Lost deal",
        customer_name="Contoso",
        currency_code="EUR",
        estimated_revenue=Decimal("1250.5"),
        estimated_close_date=date(2026, 5, 31),
    )
    assert lost.id is not None
    await quote_services.create_quote(
        uow, opportunity_id=lost.id, name="Q", total_amount=Decimal("99.99")
    )
    await services.close_opportunity(
        uow,
        opportunity_id=lost.id,
        outcome=models.CloseOutcome.LOST,
        close_open_quotes=True,
        competitor_id=rival.id,
    )
    still_open = await services.create_opportunity(
        uow, name="Open deal", customer_name="Contoso", currency_code="EUR"
    )
    assert still_open.id is not None
    return lost.id, still_open.id


def assert_row(value: Any) -> None:
    assert isinstance(value, sa.Row), type(value)


async def test_every_reader_query_returns_rows_with_typed_values(
    engine: AsyncEngine, uow: UnitOfWork
) -> None:
    lost, still_open = await closed_deal(uow)
    reads = ReadSession(engine)
    reader = Reader(reads)

    page = await reader.opportunities(
        PageRequest(first=10),
        OpportunityFilter(),
        Ordering(field="estimated_close_date", descending=False),
    )
    assert [o.id for o in page.items] == [lost, still_open]
    first = page.items[0]
    assert_row(first)
    assert first.estimated_revenue == Decimal("1250.5000")
    assert isinstance(first.estimated_revenue, Decimal)
    assert first.estimated_close_date == date(2026, 5, 31)
    assert first.state is models.OpportunityState.LOST
    assert first.created_at.tzinfo is UTC
    assert page.items[1].estimated_close_date is None

    by_id = await reader.by_ids(models.Opportunity, [lost, still_open, 4242])
    assert set(by_id) == {lost, still_open}
    assert_row(by_id[lost])
    assert by_id[lost].forecast_category is models.ForecastCategory.LOST

    quotes = await reader.quotes_by_opportunity([lost, still_open], QuoteFilter())
    assert set(quotes) == {lost}
    [(quote, close)] = quotes[lost]
    assert_row(quote)
    assert quote.total_amount == Decimal("99.9900")
    assert quote.state is models.QuoteState.CLOSED
    assert isinstance(close, QuoteCloseValues)
    assert close.quote_id == quote.id
    assert close.status_reason is models.QuoteStatusReason.LOST
    assert close.created_at.tzinfo is UTC
    assert close == tuple((await reader.quote_closes_by_quote([quote.id]))[quote.id])
    assert_row((await reader.quote_closes_by_quote([quote.id]))[quote.id])

    [history] = (await reader.closes_by_opportunity([lost, still_open]))[lost]
    assert_row(history)
    assert history.outcome is models.CloseOutcome.LOST
    assert history.state is models.CloseRecordState.COMPLETED
    assert history.actual_revenue is None
    assert history.competitor_id is not None

    competitors = await reader.competitors(PageRequest(first=5))
    assert_row(competitors.items[0])
    assert competitors.items[0].name == "Proseware"
    assert await reader.open_quote_counts([lost, still_open]) == {}
    await reads.close()
