"""Races over real parallel connections: the invariant holds at every commit.

Each round starts the two sides of every race at once, each in its own transaction on its own
connection, then the whole database is checked: no WON or LOST opportunity has an open quote,
and every request either succeeded or was refused with a typed error.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections import Counter
from collections.abc import Awaitable
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gql_service import quote_services, services
from gql_service.database import create_engine
from gql_service.errors import ErrorCode, ValidationFailedError
from gql_service.models import CloseOutcome
from gql_service.settings import Settings
from gql_service.unit_of_work import UnitOfWork

ROUNDS = int(os.environ.get("RACE_ROUNDS", "200"))

pytestmark = pytest.mark.race

VIOLATIONS = text(
    """
    SELECT count(*) FROM opportunity o JOIN quote q ON q.opportunity_id = o.id
    WHERE o.state IN ('WON', 'LOST') AND q.state IN ('DRAFT', 'ACTIVE')
    """
)
UNRECORDED_CLOSES = text(
    """
    SELECT count(*) FROM quote q LEFT JOIN quote_close c ON c.quote_id = q.id
    WHERE q.state IN ('WON', 'CLOSED') AND q.status_reason <> 'REVISED' AND c.id IS NULL
    """
)


async def outcome(call: Awaitable[Any]) -> str:
    """'ok', or the code of the typed refusal; anything else propagates and fails the test."""
    try:
        await call
    except ValidationFailedError as exc:
        return str(exc.violations[0].code)
    return "ok"


async def new_opportunity(uow: UnitOfWork) -> int:
    created = await services.create_opportunity(
        uow, name="Race", customer_name="Contoso", currency_code="EUR", estimated_revenue=Decimal(1)
    )
    assert created.id is not None
    return created.id


async def new_quote(uow: UnitOfWork, opportunity_id: int, *, active: bool = False) -> int:
    quote = await quote_services.create_quote(uow, opportunity_id=opportunity_id, name="Q")
    assert quote.id is not None
    if active:
        await quote_services.activate_quote(uow, quote_id=quote.id)
    return quote.id


async def one_round(uow: UnitOfWork) -> list[tuple[str, str, str]]:
    """Four races on four opportunities, eight transactions in flight at once."""
    a, b, c, d = [await new_opportunity(uow) for _ in range(4)]
    draft_b = await new_quote(uow, b)
    active_c = await new_quote(uow, c, active=True)
    d1 = await new_quote(uow, d, active=True)
    await new_quote(uow, d)

    races: list[tuple[str, Awaitable[Any], Awaitable[Any]]] = [
        (
            "close vs createQuote",
            services.close_opportunity(uow, opportunity_id=a, outcome=CloseOutcome.WON),
            quote_services.create_quote(uow, opportunity_id=a, name="Late"),
        ),
        (
            "close+quotes vs activateQuote",
            services.close_opportunity(
                uow, opportunity_id=b, outcome=CloseOutcome.LOST, close_open_quotes=True
            ),
            quote_services.activate_quote(uow, quote_id=draft_b),
        ),
        (
            "close+quotes vs reviseQuote",
            services.close_opportunity(
                uow, opportunity_id=c, outcome=CloseOutcome.LOST, close_open_quotes=True
            ),
            quote_services.revise_quote(uow, quote_id=active_c),
        ),
        (
            "closeQuotes vs winQuote",
            services.close_quotes(uow, opportunity_id=d),
            quote_services.win_quote(uow, quote_id=d1),
        ),
    ]
    results = await asyncio.gather(*(either_first(first, second) for _, first, second in races))
    return [(name, *r) for (name, _, _), r in zip(races, results, strict=True)]


async def either_first(first: Awaitable[Any], second: Awaitable[Any]) -> tuple[str, str]:
    """Run both at once, launching either one first, so that both orders get exercised."""
    if random.random() < 0.5:
        a, b = await asyncio.gather(outcome(first), outcome(second))
    else:
        b, a = await asyncio.gather(outcome(second), outcome(first))
    return a, b


async def count(engine: AsyncEngine, query: Any) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(query)).scalar_one())


async def test_concurrent_closes_and_quote_changes_never_break_the_invariant(
    engine: AsyncEngine, uow: UnitOfWork
) -> None:
    await race(engine, uow, ROUNDS)


@pytest.mark.parametrize("settings", ["postgres"], indirect=True)
@pytest.mark.parametrize("isolation", ["REPEATABLE READ", "SERIALIZABLE"])
async def test_the_invariant_holds_at_stricter_isolation_levels_on_postgres(
    settings: Settings, isolation: str, caplog: pytest.LogCaptureFixture
) -> None:
    """There the lock write fails with 40001 instead of waiting; whole-transaction retry copes."""
    engine = create_engine(replace(settings, isolation_level=isolation))
    try:
        with caplog.at_level(logging.INFO, logger="gql_service.unit_of_work"):
            await race(engine, UnitOfWork(engine, actor="tester", max_attempts=50), ROUNDS // 4)
    finally:
        await engine.dispose()
    retries = [r for r in caplog.records if "retrying transaction" in r.getMessage()]
    print(f"{isolation}: {len(retries)} transactions retried")
    assert retries, "the race never made PostgreSQL refuse a transaction: it did not race"


async def race(engine: AsyncEngine, uow: UnitOfWork, rounds: int) -> None:
    tally: Counter[tuple[str, str, str]] = Counter()
    for _ in range(rounds):
        for result in await one_round(uow):
            tally[result] += 1

    print(f"\n{engine.dialect.name}: {rounds} rounds, outcomes: {dict(tally)}")
    assert await count(engine, VIOLATIONS) == 0
    assert await count(engine, UNRECORDED_CLOSES) == 0
    allowed = {
        "close vs createQuote": {
            ("ok", str(ErrorCode.OPPORTUNITY_ALREADY_CLOSED)),
            (str(ErrorCode.OPPORTUNITY_HAS_OPEN_QUOTES), "ok"),
        },
        "close+quotes vs activateQuote": {
            ("ok", "ok"),
            ("ok", str(ErrorCode.OPPORTUNITY_ALREADY_CLOSED)),
        },
        "close+quotes vs reviseQuote": {
            ("ok", str(ErrorCode.OPPORTUNITY_ALREADY_CLOSED)),
            (str(ErrorCode.OPPORTUNITY_HAS_OPEN_QUOTES), "ok"),
            ("ok", "ok"),
        },
        "closeQuotes vs winQuote": {
            ("ok", "ok"),
            ("ok", str(ErrorCode.QUOTE_NOT_OPEN)),
        },
    }
    for (name, first, second), times in tally.items():
        assert (first, second) in allowed[name], (name, first, second, times)
