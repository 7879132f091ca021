"""Closing and reopening opportunities over HTTP: the acceptance scenarios of issue 2."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.conftest import GraphQLClient
from tests.operations import (
    CLOSE_OPPORTUNITY,
    CLOSE_QUOTES,
    CREATE_QUOTE,
    REOPEN_OPPORTUNITY,
    UPDATE_OPPORTUNITY,
    activate_quote,
    create_competitor,
    create_opportunity,
    create_quote,
    error_codes,
    ok,
    payload,
    read_opportunity,
)


async def test_close_as_won_with_no_quotes_defaults_revenue_and_leaves_a_completed_record(
    gql: GraphQLClient,
) -> None:
    opportunity = await create_opportunity(gql, estimatedRevenue="125000.50")

    result = ok(
        await gql(CLOSE_OPPORTUNITY, input={"opportunityId": opportunity["id"], "outcome": "WON"}),
        "closeOpportunity",
    )

    closed = result["opportunity"]
    assert closed["state"] == "WON"
    assert closed["statusReason"] == "WON"
    assert closed["forecastCategory"] == "WON"
    assert closed["isClosed"] is True
    assert closed["actualRevenue"] == "125000.5000"
    assert closed["actualCloseDate"] == datetime.now(UTC).date().isoformat()
    assert closed["version"] == opportunity["version"] + 1
    record = result["opportunityClose"]
    assert record["state"] == "COMPLETED"
    assert record["outcome"] == "WON"
    assert record["createdBy"] == "tester"
    assert result["closedQuotes"] == []


async def test_close_is_refused_while_a_draft_and_an_active_quote_are_open(
    gql: GraphQLClient,
) -> None:
    opportunity = await create_opportunity(gql)
    draft = await create_quote(gql, opportunity["id"], name="Draft")
    active = await activate_quote(gql, (await create_quote(gql, opportunity["id"]))["id"])
    before = await read_opportunity(gql, opportunity["id"])

    result = payload(
        await gql(CLOSE_OPPORTUNITY, input={"opportunityId": opportunity["id"], "outcome": "WON"}),
        "closeOpportunity",
    )

    assert result["opportunity"] is None
    [error] = result["errors"]
    assert error["__typename"] == "OpportunityHasOpenQuotesError"
    assert error["code"] == "OPPORTUNITY_HAS_OPEN_QUOTES"
    assert {q["id"]: q["state"] for q in error["openQuotes"]} == {
        draft["id"]: "DRAFT",
        active["id"]: "ACTIVE",
    }
    assert await read_opportunity(gql, opportunity["id"]) == before


async def test_close_quotes_then_close_as_lost_out_sold_to_a_competitor(
    gql: GraphQLClient,
) -> None:
    opportunity = await create_opportunity(gql)
    await create_quote(gql, opportunity["id"], name="Draft")
    await activate_quote(gql, (await create_quote(gql, opportunity["id"]))["id"])
    rival = await create_competitor(gql, "Proseware")

    closed = ok(await gql(CLOSE_QUOTES, input={"opportunityId": opportunity["id"]}), "closeQuotes")
    assert {q["state"] for q in closed["closedQuotes"]} == {"CLOSED"}
    assert {q["statusReason"] for q in closed["closedQuotes"]} == {"LOST"}
    batches = {q["closeRecord"]["batchId"] for q in closed["closedQuotes"]}
    assert len(closed["closedQuotes"]) == 2
    assert len(batches) == 1
    assert closed["opportunity"]["openQuoteCount"] == 0

    result = ok(
        await gql(
            CLOSE_OPPORTUNITY,
            input={
                "opportunityId": opportunity["id"],
                "outcome": "LOST",
                "statusReason": "OUT_SOLD",
                "competitorId": rival["id"],
                "description": "Proseware came in 20% cheaper.",
            },
        ),
        "closeOpportunity",
    )
    assert result["opportunity"]["state"] == "LOST"
    assert result["opportunity"]["statusReason"] == "OUT_SOLD"
    assert result["opportunity"]["actualRevenue"] is None
    assert result["opportunityClose"]["competitor"] == {"id": rival["id"], "name": "Proseware"}


async def test_won_and_closed_quotes_never_block_a_close(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)
    won = await create_quote(gql, opportunity["id"])
    lost = await create_quote(gql, opportunity["id"])
    ok(await gql(CLOSE_QUOTES, input={"opportunityId": opportunity["id"]}), "closeQuotes")
    # A fresh quote, won: the other (already closed) ones stay as they are.
    winner = await create_quote(gql, opportunity["id"])
    from tests.operations import WIN_QUOTE

    ok(await gql(WIN_QUOTE, input={"quoteId": winner["id"]}), "winQuote")
    assert won["id"] != lost["id"]

    result = ok(
        await gql(CLOSE_OPPORTUNITY, input={"opportunityId": opportunity["id"], "outcome": "WON"}),
        "closeOpportunity",
    )
    assert result["opportunity"]["state"] == "WON"


async def test_close_of_a_closed_opportunity_is_refused(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)
    close = {"opportunityId": opportunity["id"], "outcome": "LOST"}
    ok(await gql(CLOSE_OPPORTUNITY, input=close), "closeOpportunity")

    again = payload(await gql(CLOSE_OPPORTUNITY, input=close), "closeOpportunity")

    assert error_codes(again) == ["OPPORTUNITY_ALREADY_CLOSED"]
    assert len((await read_opportunity(gql, opportunity["id"]))["closeHistory"]) == 1


async def test_a_reason_that_does_not_fit_the_outcome_is_refused_with_the_allowed_list(
    gql: GraphQLClient,
) -> None:
    opportunity = await create_opportunity(gql)

    result = payload(
        await gql(
            CLOSE_OPPORTUNITY,
            input={
                "opportunityId": opportunity["id"],
                "outcome": "WON",
                "statusReason": "OUT_SOLD",
            },
        ),
        "closeOpportunity",
    )

    [error] = result["errors"]
    assert error["__typename"] == "InvalidStatusReasonError"
    assert error["code"] == "INVALID_STATUS_REASON"
    assert error["allowed"] == ["WON"]
    assert error["field"] == ["input", "statusReason"]
    lost = payload(
        await gql(
            CLOSE_OPPORTUNITY,
            input={"opportunityId": opportunity["id"], "outcome": "LOST", "statusReason": "WON"},
        ),
        "closeOpportunity",
    )
    assert lost["errors"][0]["allowed"] == ["CANCELED", "OUT_SOLD"]
    assert (await read_opportunity(gql, opportunity["id"]))["state"] == "OPEN"


async def test_negative_revenue_and_an_overlong_description_are_refused_together(
    gql: GraphQLClient,
) -> None:
    opportunity = await create_opportunity(gql)

    result = payload(
        await gql(
            CLOSE_OPPORTUNITY,
            input={
                "opportunityId": opportunity["id"],
                "outcome": "WON",
                "actualRevenue": "-1",
                "description": "x" * 2001,
            },
        ),
        "closeOpportunity",
    )

    assert error_codes(result) == ["INVALID_VALUE", "INVALID_VALUE"]
    assert [e["field"] for e in result["errors"]] == [
        ["input", "actualRevenue"],
        ["input", "description"],
    ]
    after = await read_opportunity(gql, opportunity["id"])
    assert after["state"] == "OPEN"
    assert after["version"] == opportunity["version"]


async def test_reopen_cancels_the_close_record_and_a_second_close_keeps_both(
    gql: GraphQLClient,
) -> None:
    opportunity = await create_opportunity(gql)
    first = ok(
        await gql(CLOSE_OPPORTUNITY, input={"opportunityId": opportunity["id"], "outcome": "LOST"}),
        "closeOpportunity",
    )

    reopened = ok(
        await gql(
            REOPEN_OPPORTUNITY,
            input={"opportunityId": opportunity["id"], "statusReason": "ON_HOLD"},
        ),
        "reopenOpportunity",
    )
    assert reopened["opportunity"]["state"] == "OPEN"
    assert reopened["opportunity"]["statusReason"] == "ON_HOLD"
    assert reopened["opportunity"]["forecastCategory"] == "PIPELINE"
    [canceled] = reopened["canceledCloses"]
    assert canceled["id"] == first["opportunityClose"]["id"]
    assert canceled["state"] == "CANCELED"
    assert canceled["canceledBy"] == "tester"
    assert canceled["canceledAt"] is not None

    second = ok(
        await gql(CLOSE_OPPORTUNITY, input={"opportunityId": opportunity["id"], "outcome": "WON"}),
        "closeOpportunity",
    )
    history = (await read_opportunity(gql, opportunity["id"]))["closeHistory"]
    assert [(c["id"], c["state"]) for c in history] == [
        (second["opportunityClose"]["id"], "COMPLETED"),
        (first["opportunityClose"]["id"], "CANCELED"),
    ]


async def test_reopen_of_an_open_opportunity_is_refused(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)

    result = payload(
        await gql(REOPEN_OPPORTUNITY, input={"opportunityId": opportunity["id"]}),
        "reopenOpportunity",
    )

    assert error_codes(result) == ["OPPORTUNITY_NOT_CLOSED"]


async def test_reopen_into_a_closed_status_reason_is_refused(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)
    ok(
        await gql(CLOSE_OPPORTUNITY, input={"opportunityId": opportunity["id"], "outcome": "WON"}),
        "closeOpportunity",
    )

    result = payload(
        await gql(
            REOPEN_OPPORTUNITY, input={"opportunityId": opportunity["id"], "statusReason": "WON"}
        ),
        "reopenOpportunity",
    )

    assert error_codes(result) == ["INVALID_STATUS_REASON"]
    assert result["errors"][0]["allowed"] == ["IN_PROGRESS", "ON_HOLD"]
    assert (await read_opportunity(gql, opportunity["id"]))["state"] == "WON"


async def test_a_closed_opportunity_refuses_new_quotes_and_edits(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)
    ok(
        await gql(CLOSE_OPPORTUNITY, input={"opportunityId": opportunity["id"], "outcome": "WON"}),
        "closeOpportunity",
    )

    quote = payload(
        await gql(CREATE_QUOTE, input={"opportunityId": opportunity["id"], "name": "Late"}),
        "createQuote",
    )
    edit = payload(
        await gql(UPDATE_OPPORTUNITY, input={"opportunityId": opportunity["id"], "name": "New"}),
        "updateOpportunity",
    )
    close_quotes = payload(
        await gql(CLOSE_QUOTES, input={"opportunityId": opportunity["id"]}), "closeQuotes"
    )

    assert error_codes(quote) == ["OPPORTUNITY_ALREADY_CLOSED"]
    assert error_codes(edit) == ["OPPORTUNITY_ALREADY_CLOSED"]
    assert error_codes(close_quotes) == ["OPPORTUNITY_ALREADY_CLOSED"]
    after = await read_opportunity(gql, opportunity["id"])
    assert after["name"] == opportunity["name"]
    assert after["quotes"]["totalCount"] == 0


async def test_a_stale_expected_version_is_refused(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)
    ok(
        await gql(
            UPDATE_OPPORTUNITY, input={"opportunityId": opportunity["id"], "name": "Renamed"}
        ),
        "updateOpportunity",
    )

    result = payload(
        await gql(
            CLOSE_OPPORTUNITY,
            input={
                "opportunityId": opportunity["id"],
                "outcome": "WON",
                "expectedVersion": opportunity["version"],
            },
        ),
        "closeOpportunity",
    )

    [error] = result["errors"]
    assert error["code"] == "CONCURRENCY_CONFLICT"
    assert error["expectedVersion"] == opportunity["version"]
    assert error["actualVersion"] == opportunity["version"] + 1
    assert error["field"] == ["input", "expectedVersion"]
    assert (await read_opportunity(gql, opportunity["id"]))["state"] == "OPEN"


async def test_a_current_expected_version_is_accepted(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)

    result = ok(
        await gql(
            CLOSE_OPPORTUNITY,
            input={
                "opportunityId": opportunity["id"],
                "outcome": "WON",
                "expectedVersion": opportunity["version"],
            },
        ),
        "closeOpportunity",
    )

    assert result["opportunity"]["version"] == opportunity["version"] + 1


async def test_close_quotes_with_nothing_open_succeeds_with_an_empty_list(
    gql: GraphQLClient,
) -> None:
    opportunity = await create_opportunity(gql)

    result = ok(await gql(CLOSE_QUOTES, input={"opportunityId": opportunity["id"]}), "closeQuotes")

    assert result["closedQuotes"] == []
    assert result["opportunity"]["state"] == "OPEN"


async def test_close_with_close_open_quotes_closes_quotes_and_opportunity_together(
    gql: GraphQLClient,
) -> None:
    opportunity = await create_opportunity(gql)
    draft = await create_quote(gql, opportunity["id"])
    active = await activate_quote(gql, (await create_quote(gql, opportunity["id"]))["id"])

    result = ok(
        await gql(
            CLOSE_OPPORTUNITY,
            input={
                "opportunityId": opportunity["id"],
                "outcome": "LOST",
                "closeOpenQuotes": True,
                "closeDate": "2026-01-15",
                "description": "Customer canceled the project.",
            },
        ),
        "closeOpportunity",
    )

    assert result["opportunity"]["state"] == "LOST"
    assert result["opportunity"]["actualCloseDate"] == "2026-01-15"
    closed = {q["id"]: q for q in result["closedQuotes"]}
    assert set(closed) == {draft["id"], active["id"]}
    for quote in closed.values():
        assert (quote["state"], quote["statusReason"]) == ("CLOSED", "LOST")
        assert quote["closedOn"] == "2026-01-15"
        assert quote["closeRecord"]["description"] == "Customer canceled the project."
    assert len({q["closeRecord"]["batchId"] for q in closed.values()}) == 1
    assert (await read_opportunity(gql, opportunity["id"]))["openQuoteCount"] == 0


async def test_close_with_close_open_quotes_and_none_open_closes_the_opportunity_alone(
    gql: GraphQLClient,
) -> None:
    """On PostgreSQL the quotes' close and the opportunity's are one statement: with no open
    quote (one already closed) it still closes and records the opportunity, and no quote."""
    opportunity = await create_opportunity(gql)
    await create_quote(gql, opportunity["id"])
    ok(await gql(CLOSE_QUOTES, input={"opportunityId": opportunity["id"]}), "closeQuotes")

    result = ok(
        await gql(
            CLOSE_OPPORTUNITY,
            input={"opportunityId": opportunity["id"], "outcome": "WON", "closeOpenQuotes": True},
        ),
        "closeOpportunity",
    )

    assert result["closedQuotes"] == []
    assert result["opportunity"]["state"] == "WON"
    assert (result["opportunityClose"]["outcome"], result["opportunityClose"]["state"]) == (
        "WON",
        "COMPLETED",
    )


async def test_an_unknown_competitor_is_not_found_and_nothing_changes(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)

    result = payload(
        await gql(
            CLOSE_OPPORTUNITY,
            input={
                "opportunityId": opportunity["id"],
                "outcome": "LOST",
                "competitorId": opportunity["id"],
            },
        ),
        "closeOpportunity",
    )

    assert error_codes(result) == ["NOT_FOUND"]
    assert result["errors"][0]["field"] == ["input", "competitorId"]
    assert (await read_opportunity(gql, opportunity["id"]))["state"] == "OPEN"


async def test_an_open_opportunity_can_be_edited_but_not_into_a_closed_state(
    gql: GraphQLClient,
) -> None:
    opportunity = await create_opportunity(gql)

    edited = ok(
        await gql(
            UPDATE_OPPORTUNITY,
            input={
                "opportunityId": opportunity["id"],
                "name": " Renamed ",
                "customerName": "Contoso",
                "estimatedRevenue": None,
                "estimatedCloseDate": "2027-01-31",
                "description": "Scope grew.",
                "statusReason": "ON_HOLD",
                "forecastCategory": "COMMITTED",
                "expectedVersion": opportunity["version"],
            },
        ),
        "updateOpportunity",
    )["opportunity"]
    refused = payload(
        await gql(
            UPDATE_OPPORTUNITY,
            input={
                "opportunityId": opportunity["id"],
                "statusReason": "WON",
                "forecastCategory": "WON",
            },
        ),
        "updateOpportunity",
    )

    assert (edited["name"], edited["customerName"], edited["estimatedRevenue"]) == (
        "Renamed",
        "Contoso",
        None,
    )
    assert (edited["statusReason"], edited["forecastCategory"], edited["state"]) == (
        "ON_HOLD",
        "COMMITTED",
        "OPEN",
    )
    assert edited["estimatedCloseDate"] == "2027-01-31"
    assert edited["version"] == opportunity["version"] + 1
    assert error_codes(refused) == ["INVALID_STATUS_REASON", "INVALID_VALUE"]
    assert refused["errors"][0]["allowed"] == ["IN_PROGRESS", "ON_HOLD"]
