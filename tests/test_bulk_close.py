"""closeOpportunities (issue 8 part 5): up to 100 closes, each in its own transaction, one
result per item in input order, locks taken in ascending opportunity id."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gql_service import quote_services, services
from gql_service.announcements import Broker, Change
from gql_service.app import create_app
from gql_service.graphql.ids import encode_id
from gql_service.models import CloseOutcome
from gql_service.settings import Settings
from gql_service.unit_of_work import UnitOfWork
from tests.conftest import GraphQLClient
from tests.operations import ALLOWED, CONFLICT, OPEN_QUOTES, errors, ok, payload
from tests.test_dry_runs import MODIFIED, WAIT
from tests.test_races import ROUNDS, UNRECORDED_CLOSES, VIOLATIONS, count, new_quote, outcome
from tests.test_statement_count import statements_of

# Rounds of the race tests; each round races about ten transactions against ten.
BULK_ROUNDS = max(1, ROUNDS // 20)

BULK_CLOSE = f"""
mutation($input: CloseOpportunitiesInput!) {{
  closeOpportunities(input: $input) {{
    results {{
      index opportunityId
      payload {{
        opportunity {{ id state statusReason actualRevenue actualCloseDate openQuoteCount version }}
        opportunityClose {{ id outcome statusReason state }}
        closedQuotes {{ id state }}
        {errors(OPEN_QUOTES, ALLOWED, CONFLICT)}
      }}
    }}
    closedCount refusedCount
    {errors()}
  }}
}}"""
# Each item's objects and typed errors, but not the open quotes' list (too dear for 100 items).
BULK = f"""
mutation($input: CloseOpportunitiesInput!) {{
  closeOpportunities(input: $input) {{
    results {{
      index opportunityId
      payload {{
        opportunity {{ id state openQuoteCount version }}
        opportunityClose {{ id outcome state }}
        closedQuotes {{ id state }}
        {errors(ALLOWED, CONFLICT)}
      }}
    }}
    closedCount refusedCount
    {errors()}
  }}
}}"""
# What a bulk-close dialog shows per row (the refusal's message names the open quotes).
DIALOG = """
mutation($input: CloseOpportunitiesInput!) {
  closeOpportunities(input: $input) {
    results {
      index opportunityId
      payload {
        opportunity { id state statusReason actualRevenue actualCloseDate version }
        opportunityClose { id outcome closeDate }
        closedQuotes { id state }
        errors { __typename ... on UserError { code message field } }
      }
    }
    closedCount refusedCount
    errors { __typename ... on UserError { code message field } }
  }
}"""
# The same per-item selection as one closeOpportunity.
SINGLE_DIALOG = """
mutation($input: CloseOpportunityInput!) {
  closeOpportunity(input: $input) {
    opportunity { id state statusReason actualRevenue actualCloseDate version }
    opportunityClose { id outcome closeDate }
    closedQuotes { id state }
    errors { __typename ... on UserError { code message field } }
  }
}"""

STATES = text("SELECT id, state, version FROM opportunity ORDER BY id")
COMPLETED_CLOSES = text(
    "SELECT opportunity_id, count(*) FROM opportunity_close WHERE state = 'COMPLETED' "
    "GROUP BY opportunity_id"
)
OPEN_QUOTE_STATES = text(
    "SELECT count(*) FROM quote WHERE opportunity_id = :id AND state IN ('DRAFT', 'ACTIVE')"
)


async def new_opportunities(uow: UnitOfWork, count: int) -> list[int]:
    ids = []
    for index in range(count):
        created = await services.create_opportunity(
            uow,
            name=f"Deal {index}",
            customer_name="Contoso",
            currency_code="EUR",
            estimated_revenue=Decimal(1000 + index),
        )
        assert created.id is not None
        ids.append(created.id)
    return ids


def gid(pk: int) -> str:
    return encode_id("Opportunity", pk)


async def rows(engine: AsyncEngine, query: Any, **params: Any) -> list[Any]:
    async with engine.connect() as connection:
        return list((await connection.execute(query, params)).all())


async def bulk(
    gql: GraphQLClient, items: list[dict[str, Any]], operation: str = BULK
) -> dict[str, Any]:
    return payload(await gql(operation, input={"items": items}), "closeOpportunities")


def codes(result: dict[str, Any]) -> list[str]:
    return [e["code"] for e in result["payload"]["errors"]]


@pytest.fixture
async def roomy_gql(settings: Settings) -> AsyncIterator[GraphQLClient]:
    """A client of an app whose cost maximum admits BULK_CLOSE with 100 items.

    BULK_CLOSE selects every typed error's data (openQuotes too) for each item: 13,421 by the
    cost model, what a hundred such closeOpportunity calls cost. What a dialog selects passes
    the default maximum (test_a_bulk_of_100_costs_what_100_closes_cost_...).
    """
    app = create_app(replace(settings, max_query_cost=15_000))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield GraphQLClient(http)
    await app.state.engine.dispose()


async def test_a_bulk_of_100_with_7_refused_for_different_reasons_closes_93_in_input_order(
    roomy_gql: GraphQLClient, uow: UnitOfWork, engine: AsyncEngine
) -> None:
    gql = roomy_gql
    ids = await new_opportunities(uow, 98)
    blocked, closed_before, stale, bad_reason, negative = ids[:5]
    draft = await quote_services.create_quote(uow, opportunity_id=blocked, name="Open")
    await services.close_opportunity(uow, opportunity_id=closed_before, outcome=CloseOutcome.LOST)
    await services.update_opportunity(uow, opportunity_id=stale, description="Moved on")
    good = ids[5:]
    random.Random(8).shuffle(good)  # input order differs from the (ascending) execution order
    items: list[dict[str, Any]] = [
        {"opportunityId": gid(pk), "outcome": "WON"}
        if n % 2
        else {"opportunityId": gid(pk), "outcome": "LOST", "statusReason": "OUT_SOLD"}
        for n, pk in enumerate(good)
    ]
    refusals: dict[int, tuple[dict[str, Any], str, list[str] | None]] = {
        4: ({"opportunityId": gid(blocked), "outcome": "WON"}, "OPPORTUNITY_HAS_OPEN_QUOTES", None),
        17: (
            {"opportunityId": gid(closed_before), "outcome": "LOST"},
            "OPPORTUNITY_ALREADY_CLOSED",
            None,
        ),
        30: (
            {"opportunityId": gid(bad_reason), "outcome": "WON", "statusReason": "OUT_SOLD"},
            "INVALID_STATUS_REASON",
            ["input", "items", "30", "statusReason"],
        ),
        45: (
            {"opportunityId": gid(negative), "outcome": "WON", "actualRevenue": "-5"},
            "INVALID_VALUE",
            ["input", "items", "45", "actualRevenue"],
        ),
        61: (
            {"opportunityId": gid(999_999), "outcome": "LOST"},
            "NOT_FOUND",
            ["input", "items", "61", "opportunityId"],
        ),
        77: (
            {"opportunityId": "not-an-id", "outcome": "LOST"},
            "NOT_FOUND",
            ["input", "items", "77", "opportunityId"],
        ),
        99: (
            {"opportunityId": gid(stale), "outcome": "LOST", "expectedVersion": 1},
            "CONCURRENCY_CONFLICT",
            ["input", "items", "99", "expectedVersion"],
        ),
    }
    for index in sorted(refusals):
        items.insert(index, refusals[index][0])
    assert len(items) == 100
    before = {row.id: row for row in await rows(engine, STATES)}

    started = time.perf_counter()
    result = await bulk(gql, items, BULK_CLOSE)
    elapsed = time.perf_counter() - started
    print(f"\n{engine.dialect.name}: a bulk close of 100 items took {elapsed * 1000:.0f} ms")

    assert result["errors"] == []
    assert (result["closedCount"], result["refusedCount"]) == (93, 7)
    results = result["results"]
    assert [r["index"] for r in results] == list(range(100))
    assert [r["opportunityId"] for r in results] == [item["opportunityId"] for item in items]
    assert sorted(i for i, r in enumerate(results) if r["payload"]["errors"]) == sorted(refusals)
    for index, (_, code, field) in refusals.items():
        item = results[index]["payload"]
        assert codes(results[index]) == [code], (index, item)
        assert item["errors"][0]["field"] == field, (index, item)
        assert (item["opportunity"], item["opportunityClose"], item["closedQuotes"]) == (
            None,
            None,
            [],
        )
    blocking = results[4]["payload"]["errors"][0]
    assert [q["id"] for q in blocking["openQuotes"]] == [encode_id("Quote", draft.id or 0)]
    assert blocking["openQuotes"][0]["state"] == "DRAFT"
    assert results[30]["payload"]["errors"][0]["allowed"] == ["WON"]
    assert {k: v for k, v in results[99]["payload"]["errors"][0].items() if "Version" in k} == {
        "expectedVersion": 1,
        "actualVersion": 2,
    }
    closed = [(i, r) for i, r in enumerate(results) if i not in refusals]
    assert len(closed) == 93
    for index, r in closed:
        done = r["payload"]
        outcome = items[index]["outcome"]
        assert done["errors"] == []
        assert done["opportunity"]["id"] == items[index]["opportunityId"]
        assert (done["opportunity"]["state"], done["opportunityClose"]["outcome"]) == (
            outcome,
            outcome,
        )
        assert done["opportunity"]["statusReason"] == ("WON" if outcome == "WON" else "OUT_SOLD")
        assert done["opportunityClose"]["state"] == "COMPLETED"
        assert done["opportunity"]["version"] == 2

    # The database agrees: the 93 WON or LOST with one completed close each, the 7 unchanged.
    after = {row.id: row for row in await rows(engine, STATES)}
    completed = dict(await rows(engine, COMPLETED_CLOSES))
    assert sorted(pk for pk, row in after.items() if row.state != before[pk].state) == sorted(good)
    assert {after[pk].state for pk in good} == {"WON", "LOST"}
    assert sum(after[pk].state == "WON" for pk in good) == 46
    assert {pk: n for pk, n in completed.items() if pk in good} == dict.fromkeys(good, 1)
    unchanged = (blocked, closed_before, stale, bad_reason, negative)
    assert {pk: after[pk] for pk in unchanged} == {pk: before[pk] for pk in unchanged}
    assert [pk for pk in unchanged if pk in completed] == [closed_before]
    assert completed[closed_before] == 1
    assert (await rows(engine, OPEN_QUOTE_STATES, id=blocked))[0][0] == 1


async def test_no_items_or_more_than_100_are_refused_and_nothing_runs(
    gql: GraphQLClient, uow: UnitOfWork, engine: AsyncEngine
) -> None:
    [pk] = await new_opportunities(uow, 1)
    before = await rows(engine, STATES)
    for size in (0, 101):
        items = [{"opportunityId": gid(pk), "outcome": "LOST"}] * size

        result = await bulk(gql, items)

        assert (result["results"], result["closedCount"], result["refusedCount"]) == ([], 0, 0)
        [error] = result["errors"]
        assert (error["__typename"], error["code"], error["field"]) == (
            "InvalidValueError",
            "INVALID_VALUE",
            ["input", "items"],
        )
        assert error["message"] == f"A bulk close takes 1 to 100 items, not {size}."
    assert await rows(engine, STATES) == before
    assert await rows(engine, COMPLETED_CLOSES) == []


async def test_dry_run_items_commit_nothing_while_the_real_items_of_the_bulk_do(
    gql: GraphQLClient, uow: UnitOfWork, engine: AsyncEngine
) -> None:
    dry, real, dry_refused = await new_opportunities(uow, 3)
    dry_run = {"dryRun": True}
    await quote_services.create_quote(uow, opportunity_id=dry, name="Open")
    items = [
        {"opportunityId": gid(dry), "outcome": "LOST", "closeOpenQuotes": True} | dry_run,
        {"opportunityId": gid(real), "outcome": "WON"},
        {"opportunityId": gid(dry_refused), "outcome": "WON", "actualRevenue": "-1"} | dry_run,
    ]
    before = {row.id: (row.state, row.version) for row in await rows(engine, STATES)}

    result = await bulk(gql, items)

    assert (result["closedCount"], result["refusedCount"]) == (1, 1)
    would, done, refused = (r["payload"] for r in result["results"])
    assert (would["opportunity"]["state"], would["opportunity"]["openQuoteCount"]) == ("LOST", 0)
    assert [q["state"] for q in would["closedQuotes"]] == ["CLOSED"]
    assert (done["opportunity"]["state"], done["opportunity"]["openQuoteCount"]) == ("WON", 0)
    assert codes(result["results"][2]) == ["INVALID_VALUE"]
    assert refused["errors"][0]["field"] == ["input", "items", "2", "actualRevenue"]
    states = {row.id: (row.state, row.version) for row in await rows(engine, STATES)}
    assert states == {**before, real: ("WON", 2)}
    assert before[real] == ("OPEN", 1)
    assert dict(await rows(engine, COMPLETED_CLOSES)) == {real: 1}
    assert (await rows(engine, OPEN_QUOTE_STATES, id=dry))[0][0] == 1


async def test_the_same_opportunity_twice_is_closed_by_the_first_and_refused_for_the_second(
    gql: GraphQLClient, uow: UnitOfWork, engine: AsyncEngine
) -> None:
    [pk] = await new_opportunities(uow, 1)
    items = [
        {"opportunityId": gid(pk), "outcome": "WON"},
        {"opportunityId": gid(pk), "outcome": "LOST"},
    ]

    result = await bulk(gql, items)

    first, second = result["results"]
    assert first["payload"]["opportunity"]["state"] == "WON"
    assert codes(second) == ["OPPORTUNITY_ALREADY_CLOSED"]
    assert (result["closedCount"], result["refusedCount"]) == (1, 1)
    assert dict(await rows(engine, COMPLETED_CLOSES)) == {pk: 1}


async def test_a_bulk_with_an_idempotency_key_replays_its_whole_response_without_rerunning(
    client: httpx.AsyncClient, uow: UnitOfWork, engine: AsyncEngine
) -> None:
    refused, first, second = await new_opportunities(uow, 3)
    items = [
        {"opportunityId": gid(refused), "outcome": "WON", "actualRevenue": "-1"},
        {"opportunityId": gid(second), "outcome": "LOST"},
        {"opportunityId": gid(first), "outcome": "WON"},
    ]
    body = {"query": BULK, "variables": {"input": {"items": items}}}
    headers = {"Idempotency-Key": "bulk-close-1"}

    original = await client.post("/graphql", json=body, headers=headers)
    # Reopened in between: a re-run would close them again and leave new close records.
    for pk in (first, second):
        await services.reopen_opportunity(uow, opportunity_id=pk)
    retry = await client.post("/graphql", json=body, headers=headers)

    assert original.status_code == retry.status_code == 200
    assert original.json()["data"]["closeOpportunities"]["closedCount"] == 2
    assert retry.headers.get("idempotent-replayed") == "true"
    assert retry.content == original.content
    states = {row.id: row.state for row in await rows(engine, STATES)}
    assert states == {refused: "OPEN", first: "OPEN", second: "OPEN"}
    assert await rows(engine, COMPLETED_CLOSES) == []


async def test_a_bulk_whose_items_are_all_refused_spends_no_idempotency_key(
    client: httpx.AsyncClient, uow: UnitOfWork, engine: AsyncEngine
) -> None:
    [pk] = await new_opportunities(uow, 1)
    headers = {"Idempotency-Key": "bulk-close-2"}

    def body(revenue: str) -> dict[str, Any]:
        item = {"opportunityId": gid(pk), "outcome": "WON", "actualRevenue": revenue}
        return {"query": BULK, "variables": {"input": {"items": [item]}}}

    refused = await client.post("/graphql", json=body("-1"), headers=headers)
    # The key is unspent: another request may still use it, and runs.
    closed = await client.post("/graphql", json=body("10"), headers=headers)

    assert refused.json()["data"]["closeOpportunities"]["refusedCount"] == 1
    assert "idempotent-replayed" not in closed.headers
    assert closed.json()["data"]["closeOpportunities"]["closedCount"] == 1
    assert dict(await rows(engine, COMPLETED_CLOSES)) == {pk: 1}


async def test_a_bulk_of_100_costs_what_100_closes_cost_and_a_dialog_passes_the_limit(
    gql: GraphQLClient, uow: UnitOfWork
) -> None:
    [pk] = await new_opportunities(uow, 1)
    item = {"opportunityId": gid(pk), "outcome": "LOST", "dryRun": True}

    one = await gql(SINGLE_DIALOG, input=item)
    hundred = await gql(DIALOG, input={"items": [item] * 100})

    single = one["extensions"]["cost"]["requested"]
    assert "errors" not in hundred, hundred
    assert hundred["data"]["closeOpportunities"]["closedCount"] == 0
    # Base 10, the payload 1, its errors 10 x 1, and 100 results, each a close (its base and
    # payload) plus the result object itself.
    assert hundred["extensions"]["cost"] == {
        "requested": 10 + 1 + 10 + 100 * (single + 1),
        "maximum": 10_000,
    }
    assert single == 10 + 1 + 1 + 1 + 10 + 10
    # Any count of items is priced as the most a bulk takes.
    three = await gql(DIALOG, input={"items": [item] * 3})
    assert three["extensions"]["cost"] == hundred["extensions"]["cost"]


@pytest.mark.race
async def test_overlapping_bulk_closes_in_opposite_orders_close_each_opportunity_once(
    gql: GraphQLClient, uow: UnitOfWork, engine: AsyncEngine
) -> None:
    tally: Counter[str] = Counter()
    everyone: list[int] = []
    for round_ in range(BULK_ROUNDS):
        ids = await new_opportunities(uow, 10)
        everyone += ids
        # (WON with its revenue: like LOST, a close that need not read the opportunity before
        # its one call on asyncpg, so that neither side is the faster by a round trip.)
        forward = [
            {"opportunityId": gid(pk), "outcome": "WON", "actualRevenue": "1000"} for pk in ids
        ]
        backward = [{"opportunityId": gid(pk), "outcome": "LOST"} for pk in reversed(ids)]

        # Both run their items in ascending id, so the bulk sent first tends to stay ahead and
        # win every item: each is sent first in every other round.
        if round_ % 2:
            later, earlier = await asyncio.gather(bulk(gql, backward), bulk(gql, forward))
            both = [earlier, later]
        else:
            both = list(await asyncio.gather(bulk(gql, forward), bulk(gql, backward)))

        for side, result in zip(("forward", "backward"), both, strict=True):
            assert result["errors"] == []
            for item in result["results"]:
                assert codes(item) in ([], ["OPPORTUNITY_ALREADY_CLOSED"]), item
                tally[f"{side} {'closed' if not codes(item) else 'refused'}"] += 1
        assert both[0]["closedCount"] + both[1]["closedCount"] == 10
        assert both[0]["refusedCount"] + both[1]["refusedCount"] == 10
    print(f"\n{engine.dialect.name}: {BULK_ROUNDS} rounds, items: {dict(tally)}")
    assert dict(await rows(engine, COMPLETED_CLOSES)) == dict.fromkeys(everyone, 1)
    assert {row.state for row in await rows(engine, STATES)} == {"WON", "LOST"}


@pytest.mark.race
async def test_bulk_closes_racing_quote_changes_never_break_the_invariant(
    gql: GraphQLClient, uow: UnitOfWork, engine: AsyncEngine
) -> None:
    tally: Counter[tuple[str, str, str]] = Counter()
    for _ in range(BULK_ROUNDS):
        plain, drafted, activated = [await new_opportunities(uow, 3) for _ in range(3)]
        drafts = [await new_quote(uow, pk) for pk in drafted]
        actives = [await new_quote(uow, pk, active=True) for pk in activated]
        items = [{"opportunityId": gid(pk), "outcome": "WON"} for pk in plain] + [
            {"opportunityId": gid(pk), "outcome": "LOST", "closeOpenQuotes": True}
            for pk in drafted + activated
        ]
        random.shuffle(items)
        create, activate, revise = (
            quote_services.create_quote,
            quote_services.activate_quote,
            quote_services.revise_quote,
        )
        changes: list[tuple[str, int, Awaitable[Any]]] = [
            *(
                ("close vs createQuote", pk, create(uow, opportunity_id=pk, name="Late"))
                for pk in plain
            ),
            *(
                ("close+quotes vs activateQuote", pk, activate(uow, quote_id=q))
                for pk, q in zip(drafted, drafts, strict=True)
            ),
            *(
                ("close+quotes vs reviseQuote", pk, revise(uow, quote_id=q))
                for pk, q in zip(activated, actives, strict=True)
            ),
        ]
        random.shuffle(changes)

        result, *others = await asyncio.gather(
            bulk(gql, items), *(outcome(change) for _, _, change in changes)
        )

        assert result["errors"] == []
        closes = {r["opportunityId"]: (codes(r) or ["ok"])[0] for r in result["results"]}
        for (name, pk, _), other in zip(changes, others, strict=True):
            tally[(name, closes[gid(pk)], other)] += 1
    print(f"\n{engine.dialect.name}: {BULK_ROUNDS} rounds, outcomes: {dict(tally)}")
    assert await count(engine, VIOLATIONS) == 0
    assert await count(engine, UNRECORDED_CLOSES) == 0
    allowed = {
        "close vs createQuote": {
            ("ok", "OPPORTUNITY_ALREADY_CLOSED"),
            ("OPPORTUNITY_HAS_OPEN_QUOTES", "ok"),
        },
        "close+quotes vs activateQuote": {("ok", "ok"), ("ok", "OPPORTUNITY_ALREADY_CLOSED")},
        "close+quotes vs reviseQuote": {
            ("ok", "OPPORTUNITY_ALREADY_CLOSED"),
            ("OPPORTUNITY_HAS_OPEN_QUOTES", "ok"),
            ("ok", "ok"),
        },
    }
    for (name, close, other), times in tally.items():
        assert (close, other) in allowed[name], (name, close, other, times)


async def test_each_item_costs_the_statements_of_one_close(settings: Settings) -> None:
    app = create_app(settings)
    engine = app.state.engine
    uow = UnitOfWork(engine, actor="tester")
    single: list[int] = []
    per_size: dict[int, int] = {}
    for size in (1, 5, 20):
        ids = await new_opportunities(uow, size + 1)
        items = [{"opportunityId": gid(pk), "outcome": "WON"} for pk in ids[:size]]
        bulk_input = {"items": items}
        per_size[size], result = await statements_of(
            app, BULK, "closeOpportunities", input=bulk_input
        )
        assert result["closedCount"] == size
        alone = {"opportunityId": gid(ids[-1]), "outcome": "LOST"}
        one, _ = await statements_of(app, SINGLE_DIALOG, "closeOpportunity", input=alone)
        single.append(one)
    await engine.dispose()
    print(f"\n{engine.dialect.name}: statements per bulk size {per_size}, one close {single}")
    assert len(set(single)) == 1
    # Each item costs one close's statements; the response reads its open-quote counts once.
    assert per_size[5] - per_size[1] == 4 * single[0]
    assert per_size[20] - per_size[5] == 15 * single[0]


async def test_each_committed_item_is_announced_to_subscribers_and_dry_runs_are_not(
    settings: Settings,
) -> None:
    app = create_app(settings)
    broker: Broker = app.state.broker
    uow = UnitOfWork(app.state.engine, actor="tester")
    dry, first, second = await new_opportunities(uow, 3)
    items = [
        {"opportunityId": gid(second), "outcome": "LOST"},
        {"opportunityId": gid(dry), "outcome": "LOST", "dryRun": True},
        {"opportunityId": gid(first), "outcome": "WON"},
    ]
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://test") as http,
        broker.subscribe(first) as on_first,
        broker.subscribe(second) as on_second,
        broker.subscribe(dry) as on_dry,
    ):
        result = await bulk(GraphQLClient(http), items)
        heard = [await asyncio.wait_for(anext(c), WAIT) for c in (on_first, on_second)]
        edit = {"opportunityId": gid(dry), "description": "committed"}
        later = ok(await GraphQLClient(http)(MODIFIED, input=edit), "updateOpportunity")
        dry_heard = await asyncio.wait_for(anext(on_dry), WAIT)
    await broker.close()
    await app.state.engine.dispose()
    assert result["closedCount"] == 2
    assert [c.opportunity_id for c in heard] == [first, second]
    # The first news of the dry-run item's opportunity is the committed edit after the bulk.
    assert dry_heard == Change(dry, datetime.fromisoformat(later["opportunity"]["modifiedAt"]))
