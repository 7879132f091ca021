"""Lists cost a fixed number of SQL statements, whatever the page size (DataLoaders), and
writes a fixed number, whatever the number of quotes they touch (set-based)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import event, insert, select
from sqlalchemy.engine.interfaces import ExecuteStyle
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from gql_service import quote_services, services
from gql_service.app import create_app
from gql_service.graphql.ids import encode_id
from gql_service.models import CloseOutcome, Quote, QuoteState, QuoteStatusReason
from gql_service.settings import Settings
from gql_service.unit_of_work import UnitOfWork
from tests.conftest import sync_engines

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

    for each in sync_engines(engine):
        event.listen(each, "before_cursor_execute", count)
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


# Writes: set-based, so their statement count does not depend on how many quotes they touch.
# The documents select what the bench's W1, W2 and W3 select, and the close records too.
WRITTEN_QUOTE = """id state statusReason closedOn version isOpen
  closeRecord { batchId statusReason closeDate description createdBy }"""
CLOSED_OPPORTUNITY = "opportunity { id state statusReason actualCloseDate version }"

CLOSE_QUOTES = f"""
mutation($id: ID!) {{
  closeQuotes(input: {{opportunityId: $id, closeDate: "2025-06-30", description: "Rival won."}}) {{
    opportunity {{ id version }}
    closedQuotes {{ {WRITTEN_QUOTE} }}
    errors {{ __typename }}
  }}
}}"""

CLOSE_OPPORTUNITY = f"""
mutation($id: ID!, $closeOpenQuotes: Boolean!) {{
  closeOpportunity(input: {{opportunityId: $id, outcome: LOST, closeDate: "2025-06-30",
                           closeOpenQuotes: $closeOpenQuotes}}) {{
    {CLOSED_OPPORTUNITY}
    opportunityClose {{ id outcome statusReason closeDate state }}
    closedQuotes {{ {WRITTEN_QUOTE} }}
    errors {{ __typename }}
  }}
}}"""

WIN_QUOTE = f"""
mutation($id: ID!) {{
  winQuote(input: {{quoteId: $id, closeDate: "2025-06-30"}}) {{
    quote {{ {WRITTEN_QUOTE} }}
    lostQuotes {{ {WRITTEN_QUOTE} }}
    errors {{ __typename }}
  }}
}}"""

REFUSED_CLOSE = """
mutation($id: ID!) {
  closeOpportunity(input: {opportunityId: $id, outcome: WON}) {
    opportunity { id }
    errors { ... on OpportunityHasOpenQuotesError { code openQuotes { id state } } }
  }
}"""

SIZES = (3, 30, 1_000)


async def opportunity_with_quotes(engine: AsyncEngine, open_quotes: int) -> tuple[int, list[int]]:
    """An OPEN opportunity with one closed quote and ``open_quotes`` DRAFT and ACTIVE ones.

    The closed one is reached through the services; the open ones are inserted in one
    statement, since a thousand createQuote calls would dominate the suite's time.
    """
    uow = UnitOfWork(engine, actor="tester")
    opportunity = await services.create_opportunity(
        uow, name="Deal", customer_name="Contoso", currency_code="EUR"
    )
    assert opportunity.id is not None
    closed = await quote_services.create_quote(uow, opportunity_id=opportunity.id, name="Old")
    assert closed.id is not None
    await quote_services.close_quote(uow, quote_id=closed.id)
    now = datetime.now(UTC)
    rows = [
        {
            "opportunity_id": opportunity.id,
            "quote_number": f"QUO-{opportunity.id}-{index}",
            "revision_number": 0,
            "name": f"Quote {index}",
            "currency_code": "EUR",
            "total_amount": Decimal("10.5"),
            "state": QuoteState.ACTIVE if index % 2 else QuoteState.DRAFT,
            "status_reason": QuoteStatusReason.IN_PROGRESS,
            "version": 1,
            "created_at": now,
            "created_by": "tester",
            "modified_at": now,
            "modified_by": "tester",
        }
        for index in range(open_quotes)
    ]
    async with engine.begin() as connection:
        if rows:
            await connection.execute(insert(Quote), rows)
        ids = (
            await connection.scalars(
                select(col(Quote.id))
                .where(col(Quote.opportunity_id) == opportunity.id, col(Quote.id) != closed.id)
                .order_by(col(Quote.id))
            )
        ).all()
    return opportunity.id, list(ids)


def per_engine(engine: AsyncEngine, *, postgresql: int, sqlite: int) -> int:
    """The statement count expected on ``engine``'s database."""
    return {"postgresql": postgresql, "sqlite": sqlite}[engine.dialect.name]


class StatementCounter:
    """Counts the statements sent to the database; an executemany counts once per row, a
    multi-row INSERT (SQLAlchemy's "insertmanyvalues") once per batch."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.count = 0

    def __enter__(self) -> StatementCounter:
        for each in sync_engines(self.engine):
            event.listen(each, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc: object) -> None:
        for each in sync_engines(self.engine):
            event.remove(each, "before_cursor_execute", self._seen)

    def _seen(self, *args: Any) -> None:
        parameters, context, executemany = args[3], args[4], args[5]
        batched = context is not None and context.execute_style is ExecuteStyle.INSERTMANYVALUES
        self.count += len(parameters) if executemany and not batched else 1


async def statements_of(
    app: Any, query: str, field: str, **variables: Any
) -> tuple[int, dict[str, Any]]:
    """Statements issued by one request, and its payload (which must carry no error)."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        with StatementCounter(app.state.engine) as counter:
            response = await http.post("/graphql", json={"query": query, "variables": variables})
    body = response.json()
    assert "errors" not in body, body
    payload: dict[str, Any] = body["data"][field]
    assert payload["errors"] == [], payload
    return counter.count, payload


def assert_closed(quotes: list[dict[str, Any]], ids: list[int], reason: str = "LOST") -> None:
    """The payload's quotes are exactly ``ids``, in id order, closed by this request."""
    assert [q["id"] for q in quotes] == [encode_id("Quote", pk) for pk in ids]
    assert {q["state"] for q in quotes} <= {"CLOSED"}
    assert {(q["statusReason"], q["closedOn"], q["version"], q["isOpen"]) for q in quotes} <= {
        (reason, "2025-06-30", 2, False)
    }
    assert {q["closeRecord"]["statusReason"] for q in quotes} <= {reason}
    assert len({q["closeRecord"]["batchId"] for q in quotes}) <= 1


async def test_closing_quotes_costs_the_same_statements_for_3_30_and_1000_open_quotes(
    settings: Settings,
) -> None:
    app = create_app(settings)
    engine = app.state.engine
    per_size: dict[int, int] = {}
    for size in SIZES:
        pk, ids = await opportunity_with_quotes(engine, size)
        per_size[size], payload = await statements_of(
            app, CLOSE_QUOTES, "closeQuotes", id=encode_id("Opportunity", pk)
        )
        assert len(payload["closedQuotes"]) == size
        assert_closed(payload["closedQuotes"], ids)
        records = [q["closeRecord"] for q in payload["closedQuotes"]]
        written = {(r["description"], r["closeDate"], r["createdBy"]) for r in records}
        assert written == {("Rival won.", "2025-06-30", "tester")}
    await engine.dispose()
    print(f"closeQuotes statements: {per_size}")
    assert len(set(per_size.values())) == 1, per_size
    # The lock, then INSERT ... SELECT and UPDATE: on PostgreSQL one statement of data-modifying
    # CTEs; SQLite's BEGIN IMMEDIATE goes through the cursor.
    assert per_size[3] == per_engine(engine, postgresql=2, sqlite=4), per_size


async def test_closing_an_opportunity_with_its_open_quotes_costs_the_same_whatever_their_number(
    settings: Settings,
) -> None:
    app = create_app(settings)
    engine = app.state.engine
    per_size: dict[int, int] = {}
    for size in (2, *SIZES):
        pk, ids = await opportunity_with_quotes(engine, size)
        per_size[size], payload = await statements_of(
            app,
            CLOSE_OPPORTUNITY,
            "closeOpportunity",
            id=encode_id("Opportunity", pk),
            closeOpenQuotes=True,
        )
        assert payload["opportunity"]["state"] == "LOST"
        assert payload["opportunityClose"]["state"] == "COMPLETED"
        assert_closed(payload["closedQuotes"], ids)
    await engine.dispose()
    print(f"closeOpportunity(closeOpenQuotes) statements: {per_size}")
    assert len(set(per_size.values())) == 1, per_size
    # The lock, the quotes' close and its records, the opportunity's close and its record (on
    # PostgreSQL, all four in one statement).
    assert per_size[2] == per_engine(engine, postgresql=2, sqlite=6), per_size


async def test_closing_an_opportunity_costs_the_same_statements_whatever_its_closed_quotes(
    settings: Settings,
) -> None:
    app = create_app(settings)
    engine = app.state.engine
    per_size: dict[int, int] = {}
    for size in SIZES:
        pk, _ = await opportunity_with_quotes(engine, size)
        await services.close_quotes(UnitOfWork(engine, actor="tester"), opportunity_id=pk)
        per_size[size], payload = await statements_of(
            app,
            CLOSE_OPPORTUNITY,
            "closeOpportunity",
            id=encode_id("Opportunity", pk),
            closeOpenQuotes=False,
        )
        assert payload["opportunity"]["state"] == "LOST"
        assert payload["closedQuotes"] == []
    await engine.dispose()
    print(f"closeOpportunity statements: {per_size}")
    assert len(set(per_size.values())) == 1, per_size
    # The lock, the UPDATE that checks for open quotes itself, the close record's INSERT (on
    # PostgreSQL, one statement with the UPDATE).
    assert per_size[3] == per_engine(engine, postgresql=2, sqlite=4), per_size


async def test_winning_a_quote_costs_the_same_statements_whatever_the_other_open_quotes(
    settings: Settings,
) -> None:
    app = create_app(settings)
    engine = app.state.engine
    per_size: dict[int, int] = {}
    for size in SIZES:
        _, ids = await opportunity_with_quotes(engine, size + 1)
        winner, others = ids[size // 2], [i for i in ids if i != ids[size // 2]]
        per_size[size], payload = await statements_of(
            app, WIN_QUOTE, "winQuote", id=encode_id("Quote", winner)
        )
        won = payload["quote"]
        assert (won["state"], won["statusReason"], won["isOpen"]) == ("WON", "WON", False)
        assert won["closeRecord"]["statusReason"] == "WON"
        assert_closed(payload["lostQuotes"], others)
        batches = {q["closeRecord"]["batchId"] for q in payload["lostQuotes"]}
        assert batches == {won["closeRecord"]["batchId"]}
    await engine.dispose()
    print(f"winQuote statements: {per_size}")
    assert len(set(per_size.values())) == 1, per_size
    # The win's own five, plus (issue 8) the draft contract's INSERT and the INSERT ... SELECT
    # of its lines (tests/test_contracts.py: the same for 0, 3 and 30 lines).
    assert per_size[3] <= 5 + 2, per_size


async def test_a_refused_close_costs_the_same_statements_whatever_the_open_quotes_it_names(
    settings: Settings,
) -> None:
    app = create_app(settings)
    engine = app.state.engine
    per_size: dict[int, int] = {}
    for size in SIZES:
        pk, ids = await opportunity_with_quotes(engine, size)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as http:
            with StatementCounter(engine) as counter:
                response = await http.post(
                    "/graphql",
                    json={
                        "query": REFUSED_CLOSE,
                        "variables": {"id": encode_id("Opportunity", pk)},
                    },
                )
        per_size[size] = counter.count
        [error] = response.json()["data"]["closeOpportunity"]["errors"]
        assert error["code"] == "OPPORTUNITY_HAS_OPEN_QUOTES"
        assert [q["id"] for q in error["openQuotes"]] == [encode_id("Quote", i) for i in ids]
    await engine.dispose()
    print(f"refused closeOpportunity statements: {per_size}")
    assert len(set(per_size.values())) == 1, per_size
