"""Quote lifecycle over HTTP: create, edit, activate, revise, win, close."""

from __future__ import annotations

from tests.conftest import GraphQLClient
from tests.operations import (
    ACTIVATE_QUOTE,
    CLOSE_QUOTE,
    CREATE_QUOTE,
    REVISE_QUOTE,
    UPDATE_QUOTE,
    WIN_QUOTE,
    activate_quote,
    create_opportunity,
    create_quote,
    error_codes,
    ok,
    payload,
    read_opportunity,
)


async def test_a_new_quote_is_a_draft_in_the_opportunitys_currency(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql, currencyCode="GBP")

    quote = await create_quote(gql, opportunity["id"], totalAmount="999.99")

    assert (quote["state"], quote["statusReason"], quote["isOpen"]) == (
        "DRAFT",
        "IN_PROGRESS",
        True,
    )
    assert quote["currencyCode"] == "GBP"
    assert quote["revisionNumber"] == 0
    assert quote["quoteNumber"].startswith("QUO-")
    assert quote["totalAmount"] == "999.9900"
    after = await read_opportunity(gql, opportunity["id"])
    assert after["openQuoteCount"] == 1
    assert after["version"] == opportunity["version"] + 1


async def test_a_quote_in_another_currency_is_refused(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql, currencyCode="EUR")

    result = payload(
        await gql(
            CREATE_QUOTE,
            input={"opportunityId": opportunity["id"], "name": "Q", "currencyCode": "USD"},
        ),
        "createQuote",
    )

    [error] = result["errors"]
    assert error["code"] == "CURRENCY_MISMATCH"
    assert (error["expectedCurrency"], error["actualCurrency"]) == ("EUR", "USD")
    assert (await read_opportunity(gql, opportunity["id"]))["quotes"]["totalCount"] == 0


async def test_only_drafts_are_editable(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)
    quote = await create_quote(gql, opportunity["id"])

    edited = ok(
        await gql(
            UPDATE_QUOTE,
            input={"quoteId": quote["id"], "name": "Renamed", "totalAmount": "12.5"},
        ),
        "updateQuote",
    )["quote"]
    assert (edited["name"], edited["totalAmount"]) == ("Renamed", "12.5000")
    assert edited["version"] == quote["version"] + 1
    await activate_quote(gql, quote["id"])

    refused = payload(
        await gql(UPDATE_QUOTE, input={"quoteId": quote["id"], "name": "Again"}), "updateQuote"
    )

    assert error_codes(refused) == ["QUOTE_READ_ONLY"]


async def test_effective_to_before_effective_from_is_refused(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)
    quote = await create_quote(gql, opportunity["id"], effectiveFrom="2026-03-01")

    result = payload(
        await gql(UPDATE_QUOTE, input={"quoteId": quote["id"], "effectiveTo": "2026-02-01"}),
        "updateQuote",
    )

    assert error_codes(result) == ["INVALID_VALUE"]
    assert result["errors"][0]["field"] == ["input", "effectiveTo"]


async def test_activating_an_active_quote_is_refused(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)
    quote = await activate_quote(gql, (await create_quote(gql, opportunity["id"]))["id"])
    assert (quote["state"], quote["isOpen"]) == ("ACTIVE", True)

    result = payload(await gql(ACTIVATE_QUOTE, input={"quoteId": quote["id"]}), "activateQuote")

    assert error_codes(result) == ["QUOTE_NOT_OPEN"]


async def test_revise_keeps_the_quote_number_and_increments_the_revision(
    gql: GraphQLClient,
) -> None:
    opportunity = await create_opportunity(gql)
    original = await create_quote(gql, opportunity["id"], totalAmount="5000", name="Phase 1")
    await activate_quote(gql, original["id"])

    result = ok(await gql(REVISE_QUOTE, input={"quoteId": original["id"]}), "reviseQuote")

    draft, revised = result["quote"], result["revisedQuote"]
    assert draft["quoteNumber"] == original["quoteNumber"] == revised["quoteNumber"]
    assert draft["revisionNumber"] == 1
    assert (draft["state"], draft["name"], draft["totalAmount"]) == (
        "DRAFT",
        "Phase 1",
        "5000.0000",
    )
    assert (revised["state"], revised["statusReason"]) == ("CLOSED", "REVISED")
    assert draft["id"] != revised["id"]
    again = ok(await gql(ACTIVATE_QUOTE, input={"quoteId": draft["id"]}), "activateQuote")
    second = ok(await gql(REVISE_QUOTE, input={"quoteId": again["quote"]["id"]}), "reviseQuote")
    assert second["quote"]["revisionNumber"] == 2


async def test_revising_a_draft_or_a_closed_quote_is_refused(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)
    draft = await create_quote(gql, opportunity["id"])
    closed = await create_quote(gql, opportunity["id"])
    ok(await gql(CLOSE_QUOTE, input={"quoteId": closed["id"]}), "closeQuote")

    for quote in (draft, closed):
        result = payload(await gql(REVISE_QUOTE, input={"quoteId": quote["id"]}), "reviseQuote")
        assert error_codes(result) == ["QUOTE_NOT_OPEN"]


async def test_win_quote_closes_the_other_open_quotes_as_lost_and_leaves_the_opportunity_open(
    gql: GraphQLClient,
) -> None:
    opportunity = await create_opportunity(gql)
    winner = await activate_quote(gql, (await create_quote(gql, opportunity["id"]))["id"])
    other_draft = await create_quote(gql, opportunity["id"])
    other_active = await activate_quote(gql, (await create_quote(gql, opportunity["id"]))["id"])

    result = ok(
        await gql(WIN_QUOTE, input={"quoteId": winner["id"], "description": "Signed"}), "winQuote"
    )

    assert (result["quote"]["state"], result["quote"]["statusReason"]) == ("WON", "WON")
    assert result["quote"]["isOpen"] is False
    assert result["quote"]["opportunity"]["state"] == "OPEN"
    assert result["quote"]["closeRecord"]["statusReason"] == "WON"
    lost = {q["id"]: (q["state"], q["statusReason"]) for q in result["lostQuotes"]}
    assert lost == {other_draft["id"]: ("CLOSED", "LOST"), other_active["id"]: ("CLOSED", "LOST")}
    batches = {result["quote"]["closeRecord"]["batchId"]} | {
        q["closeRecord"]["batchId"] for q in result["lostQuotes"]
    }
    assert len(batches) == 1
    assert (await read_opportunity(gql, opportunity["id"]))["openQuoteCount"] == 0


async def test_closed_and_won_quotes_are_final(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)
    won = await create_quote(gql, opportunity["id"])
    ok(await gql(WIN_QUOTE, input={"quoteId": won["id"]}), "winQuote")

    for operation, name in ((WIN_QUOTE, "winQuote"), (CLOSE_QUOTE, "closeQuote")):
        result = payload(await gql(operation, input={"quoteId": won["id"]}), name)
        assert error_codes(result) == ["QUOTE_NOT_OPEN"]


async def test_close_quote_accepts_lost_or_canceled_only(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)
    quote = await create_quote(gql, opportunity["id"])

    refused = payload(
        await gql(CLOSE_QUOTE, input={"quoteId": quote["id"], "statusReason": "REVISED"}),
        "closeQuote",
    )
    assert error_codes(refused) == ["INVALID_STATUS_REASON"]
    assert refused["errors"][0]["allowed"] == ["LOST", "CANCELED"]

    closed = ok(
        await gql(
            CLOSE_QUOTE,
            input={"quoteId": quote["id"], "statusReason": "CANCELED", "closeDate": "2026-02-02"},
        ),
        "closeQuote",
    )["quote"]
    assert (closed["state"], closed["statusReason"], closed["closedOn"]) == (
        "CLOSED",
        "CANCELED",
        "2026-02-02",
    )
    assert closed["closeRecord"]["statusReason"] == "CANCELED"


async def test_a_stale_quote_version_is_refused(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)
    quote = await create_quote(gql, opportunity["id"])
    ok(await gql(UPDATE_QUOTE, input={"quoteId": quote["id"], "name": "v2"}), "updateQuote")

    result = payload(
        await gql(
            ACTIVATE_QUOTE, input={"quoteId": quote["id"], "expectedVersion": quote["version"]}
        ),
        "activateQuote",
    )

    [error] = result["errors"]
    assert error["code"] == "CONCURRENCY_CONFLICT"
    assert (error["expectedVersion"], error["actualVersion"]) == (1, 2)
