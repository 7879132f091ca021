"""Dry runs (issue 8 part 4): closeOpportunity, closeQuotes and winQuote with dryRun: true run
every check of the real call under the same lock, answer as it would, and commit nothing."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import httpx

from gql_service.announcements import Broker, Change
from gql_service.app import create_app
from gql_service.graphql.ids import encode_id, parse_id
from gql_service.settings import Settings
from tests.conftest import GraphQLClient
from tests.operations import (
    CLOSE_OPPORTUNITY,
    CLOSE_QUOTES,
    WIN_QUOTE,
    activate_quote,
    create_competitor,
    create_opportunity,
    create_quote,
    ok,
    payload,
    read_opportunity,
)
from tests.test_statement_count import SIZES, opportunity_with_quotes, statements_of

WAIT = 20.0  # seconds: a generous bound on an event's arrival, never a measure of speed

MODIFIED = """
mutation($input: UpdateOpportunityInput!) {
  updateOpportunity(input: $input) { opportunity { id version modifiedAt } errors { __typename } }
}"""

DRY_CLOSE_COUNTED = """
mutation($id: ID!, $dryRun: Boolean!) {
  closeOpportunity(input: {opportunityId: $id, outcome: LOST, closeDate: "2025-06-30",
                           closeOpenQuotes: true, dryRun: $dryRun}) {
    opportunity { id state version }
    closedQuotes { id state }
    errors { __typename }
  }
}"""


def _without(record: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in names}


def _quotes_without_batch(quotes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Closed quotes with their close record's batch id left out (a fresh UUID per call)."""
    return [
        {**q, "closeRecord": _without(q["closeRecord"], "batchId")} if q["closeRecord"] else q
        for q in quotes
    ]


async def test_a_dry_close_answers_as_the_close_would_and_writes_nothing(
    gql: GraphQLClient,
) -> None:
    opportunity = await create_opportunity(gql, estimatedRevenue="125000.50")
    rival = await create_competitor(gql, "Proseware")
    before = await read_opportunity(gql, opportunity["id"])
    given = {
        "opportunityId": opportunity["id"],
        "outcome": "WON",
        "competitorId": rival["id"],
        "description": "Signed.",
    }

    dry = ok(await gql(CLOSE_OPPORTUNITY, input={**given, "dryRun": True}), "closeOpportunity")

    assert dry["opportunity"]["state"] == "WON"
    assert dry["opportunity"]["actualRevenue"] == "125000.5000"
    assert dry["opportunity"]["version"] == opportunity["version"] + 1
    assert dry["opportunityClose"]["state"] == "COMPLETED"
    assert dry["opportunityClose"]["outcome"] == "WON"
    assert dry["opportunityClose"]["competitor"] == {"id": rival["id"], "name": "Proseware"}
    after = await read_opportunity(gql, opportunity["id"])
    assert after == before
    assert (after["state"], after["version"], after["closeHistory"]) == (
        "OPEN",
        opportunity["version"],
        [],
    )

    real = ok(await gql(CLOSE_OPPORTUNITY, input=given), "closeOpportunity")
    assert real["opportunity"] == dry["opportunity"]
    assert _without(real["opportunityClose"], "id") == _without(dry["opportunityClose"], "id")
    assert [c["id"] for c in (await read_opportunity(gql, opportunity["id"]))["closeHistory"]] == [
        real["opportunityClose"]["id"]
    ]


async def test_a_dry_close_is_refused_with_the_errors_of_the_real_call(
    gql: GraphQLClient,
) -> None:
    opportunity = await create_opportunity(gql)
    await create_quote(gql, opportunity["id"], name="Draft")
    await activate_quote(gql, (await create_quote(gql, opportunity["id"]))["id"])
    before = await read_opportunity(gql, opportunity["id"])
    refused = [
        {"outcome": "WON"},  # open quotes
        {"outcome": "LOST", "expectedVersion": opportunity["version"]},  # moved on since
        {"outcome": "WON", "statusReason": "OUT_SOLD"},  # reason does not fit
        {"outcome": "LOST", "closeOpenQuotes": True, "competitorId": encode_id("Competitor", 999)},
        {"outcome": "WON", "actualRevenue": "-1", "description": "x" * 5000},  # before the lock
    ]
    for given in refused:
        given = {"opportunityId": opportunity["id"], **given}
        dry = payload(
            await gql(CLOSE_OPPORTUNITY, input={**given, "dryRun": True}), "closeOpportunity"
        )
        real = payload(await gql(CLOSE_OPPORTUNITY, input=given), "closeOpportunity")
        assert dry["errors"], given
        assert dry == real, given
    assert await read_opportunity(gql, opportunity["id"]) == before


async def test_dry_close_quotes_answers_as_the_call_would_and_writes_nothing(
    gql: GraphQLClient,
) -> None:
    opportunity = await create_opportunity(gql)
    await create_quote(gql, opportunity["id"], name="Draft")
    await activate_quote(gql, (await create_quote(gql, opportunity["id"]))["id"])
    before = await read_opportunity(gql, opportunity["id"])
    given = {"opportunityId": opportunity["id"], "description": "Rival won."}

    dry = ok(await gql(CLOSE_QUOTES, input={**given, "dryRun": True}), "closeQuotes")

    assert [q["state"] for q in dry["closedQuotes"]] == ["CLOSED", "CLOSED"]
    assert {q["closeRecord"]["statusReason"] for q in dry["closedQuotes"]} == {"LOST"}
    assert await read_opportunity(gql, opportunity["id"]) == before

    real = ok(await gql(CLOSE_QUOTES, input=given), "closeQuotes")
    assert real["opportunity"] == dry["opportunity"]
    assert _quotes_without_batch(real["closedQuotes"]) == _quotes_without_batch(dry["closedQuotes"])

    # Closed opportunity: the same refusal either way, and still nothing written.
    ok(
        await gql(CLOSE_OPPORTUNITY, input={"opportunityId": opportunity["id"], "outcome": "LOST"}),
        "closeOpportunity",
    )
    closed = await read_opportunity(gql, opportunity["id"])
    dry_refused = payload(await gql(CLOSE_QUOTES, input={**given, "dryRun": True}), "closeQuotes")
    assert [e["code"] for e in dry_refused["errors"]] == ["OPPORTUNITY_ALREADY_CLOSED"]
    assert dry_refused == payload(await gql(CLOSE_QUOTES, input=given), "closeQuotes")
    assert await read_opportunity(gql, opportunity["id"]) == closed


async def test_a_dry_win_answers_as_the_win_would_and_writes_nothing(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)
    winner = await activate_quote(gql, (await create_quote(gql, opportunity["id"]))["id"])
    await create_quote(gql, opportunity["id"], name="Draft")
    await activate_quote(gql, (await create_quote(gql, opportunity["id"], name="B"))["id"])
    before = await read_opportunity(gql, opportunity["id"])
    given = {"quoteId": winner["id"], "closeDate": "2025-06-30"}

    dry = ok(await gql(WIN_QUOTE, input={**given, "dryRun": True}), "winQuote")

    assert (dry["quote"]["state"], dry["quote"]["statusReason"]) == ("WON", "WON")
    assert dry["quote"]["version"] == winner["version"] + 1
    assert [(q["state"], q["statusReason"]) for q in dry["lostQuotes"]] == [("CLOSED", "LOST")] * 2
    assert await read_opportunity(gql, opportunity["id"]) == before

    real = ok(await gql(WIN_QUOTE, input=given), "winQuote")
    assert _quotes_without_batch([real["quote"], *real["lostQuotes"]]) == _quotes_without_batch(
        [dry["quote"], *dry["lostQuotes"]]
    )

    # A quote no longer open: the same refusal either way.
    won = await read_opportunity(gql, opportunity["id"])
    dry_refused = payload(await gql(WIN_QUOTE, input={**given, "dryRun": True}), "winQuote")
    assert [e["code"] for e in dry_refused["errors"]] == ["QUOTE_NOT_OPEN"]
    assert dry_refused == payload(await gql(WIN_QUOTE, input=given), "winQuote")
    assert await read_opportunity(gql, opportunity["id"]) == won


async def test_a_dry_run_spends_no_idempotency_key_and_is_not_replayed(
    client: httpx.AsyncClient,
) -> None:
    gql = GraphQLClient(client)
    opportunity = await create_opportunity(gql)
    given = {"opportunityId": opportunity["id"], "outcome": "LOST"}

    async def post(dry_run: bool) -> httpx.Response:
        body = {"query": CLOSE_OPPORTUNITY, "variables": {"input": {**given, "dryRun": dry_run}}}
        return await client.post("/graphql", json=body, headers={"Idempotency-Key": "dry-1"})

    first, second = await post(True), await post(True)
    for response in (first, second):
        assert response.status_code == 200
        assert "idempotent-replayed" not in response.headers
        assert response.json()["data"]["closeOpportunity"]["errors"] == []
    # Had the dry run stored the key, a different request with it would be refused (422).
    real = await post(False)
    assert real.status_code == 200, real.text
    assert ok(real.json(), "closeOpportunity")["opportunity"]["state"] == "LOST"
    replayed = await post(False)
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.content == real.content
    # A dry run with a spent key is not answered from the store: it runs, and is refused.
    late = await post(True)
    assert late.status_code == 200, late.text
    assert "idempotent-replayed" not in late.headers
    refused = payload(late.json(), "closeOpportunity")
    assert [e["code"] for e in refused["errors"]] == ["OPPORTUNITY_ALREADY_CLOSED"]


async def test_a_dry_run_announces_nothing_to_subscribers(settings: Settings) -> None:
    """On PostgreSQL the dry runs' NOTIFY rolls back; on SQLite the broker is not told: the
    first announcement a subscriber gets is the committed edit that follows them."""
    app = create_app(settings)
    broker: Broker = app.state.broker
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        gql = GraphQLClient(http)
        opportunity = await create_opportunity(gql)
        quote = await create_quote(gql, opportunity["id"])
        parsed = parse_id(opportunity["id"])
        assert parsed is not None
        pk = parsed[1]

        async with broker.subscribe(pk) as changes:
            dry = {"dryRun": True}
            ok(await gql(WIN_QUOTE, input={"quoteId": quote["id"], **dry}), "winQuote")
            closing = {"opportunityId": opportunity["id"]}
            ok(await gql(CLOSE_QUOTES, input={**closing, **dry}), "closeQuotes")
            close = {**closing, "outcome": "LOST", "closeOpenQuotes": True}
            ok(await gql(CLOSE_OPPORTUNITY, input={**close, **dry}), "closeOpportunity")
            edited = ok(
                await gql(
                    MODIFIED, input={"opportunityId": opportunity["id"], "description": "committed"}
                ),
                "updateOpportunity",
            )
            first = await asyncio.wait_for(anext(changes), WAIT)
    await broker.close()
    await app.state.engine.dispose()
    assert first == Change(pk, datetime.fromisoformat(edited["opportunity"]["modifiedAt"]))


async def test_a_dry_close_costs_the_statements_of_the_real_call_whatever_the_open_quotes(
    settings: Settings,
) -> None:
    app = create_app(settings)
    engine = app.state.engine
    per_size: dict[int, tuple[int, int]] = {}
    for size in SIZES:
        pk, _ = await opportunity_with_quotes(engine, size)
        counted: list[int] = []
        for dry_run in (True, False):  # the dry run leaves the data as the real call finds it
            count, result = await statements_of(
                app,
                DRY_CLOSE_COUNTED,
                "closeOpportunity",
                id=encode_id("Opportunity", pk),
                dryRun=dry_run,
            )
            assert result["opportunity"]["state"] == "LOST"
            assert len(result["closedQuotes"]) == size
            counted.append(count)
        per_size[size] = (counted[0], counted[1])
    await engine.dispose()
    print(f"closeOpportunity(closeOpenQuotes) statements (dry, real): {per_size}")
    assert len(set(per_size.values())) == 1, per_size
    dry, real = per_size[3]
    assert dry == real <= 6, per_size
