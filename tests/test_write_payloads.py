"""Write payloads are built from what the writes returned, and equal what a read sees after."""

from __future__ import annotations

from typing import Any

from tests.conftest import GraphQLClient
from tests.operations import (
    CLOSE_FIELDS,
    activate_quote,
    create_opportunity,
    create_quote,
    ok,
)

# Every field a close changes, the close record and the stamps included.
QUOTE = """id state statusReason isOpen closedOn version modifiedAt modifiedBy
  closeRecord { id quoteNumber revisionNumber statusReason closeDate description batchId
                createdAt createdBy }"""
OPPORTUNITY = """id state statusReason forecastCategory actualRevenue actualCloseDate version
  modifiedAt modifiedBy openQuoteCount"""

READ = f"""
query($id: ID!) {{
  opportunity(id: $id) {{
    {OPPORTUNITY}
    quotes(first: 50) {{ nodes {{ {QUOTE} }} }}
    closeHistory {{ {CLOSE_FIELDS} }}
  }}
}}"""

CLOSE_QUOTES = f"""
mutation($input: CloseQuotesInput!) {{
  closeQuotes(input: $input) {{
    opportunity {{ {OPPORTUNITY} }}
    closedQuotes {{ {QUOTE} opportunity {{ {OPPORTUNITY} }} }}
    errors {{ __typename }}
  }}
}}"""

CLOSE_OPPORTUNITY = f"""
mutation($input: CloseOpportunityInput!) {{
  closeOpportunity(input: $input) {{
    opportunity {{ {OPPORTUNITY} closeHistory {{ {CLOSE_FIELDS} }} }}
    opportunityClose {{ {CLOSE_FIELDS} }}
    closedQuotes {{ {QUOTE} }}
    errors {{ __typename }}
  }}
}}"""

WIN_QUOTE = f"""
mutation($input: WinQuoteInput!) {{
  winQuote(input: $input) {{
    quote {{ {QUOTE} opportunity {{ {OPPORTUNITY} }} }}
    lostQuotes {{ {QUOTE} }}
    errors {{ __typename }}
  }}
}}"""

CLOSE_QUOTE = f"""
mutation($input: CloseQuoteInput!) {{
  closeQuote(input: $input) {{ quote {{ {QUOTE} }} errors {{ __typename }} }}
}}"""

REOPEN = f"""
mutation($input: ReopenOpportunityInput!) {{
  reopenOpportunity(input: $input) {{
    opportunity {{ {OPPORTUNITY} }}
    canceledCloses {{ {CLOSE_FIELDS} }}
    errors {{ __typename }}
  }}
}}"""


async def read(gql: GraphQLClient, opportunity_id: str) -> dict[str, Any]:
    body = await gql(READ, id=opportunity_id)
    assert "errors" not in body, body
    found: dict[str, Any] = body["data"]["opportunity"]
    return found


def by_id(quotes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {q["id"]: {k: v for k, v in q.items() if k != "opportunity"} for q in quotes}


async def three_open_quotes(gql: GraphQLClient) -> tuple[str, list[str]]:
    opportunity = await create_opportunity(gql)
    quotes = [
        (await create_quote(gql, opportunity["id"], name="Draft"))["id"],
        (await activate_quote(gql, (await create_quote(gql, opportunity["id"]))["id"]))["id"],
        (await create_quote(gql, opportunity["id"], name="Other"))["id"],
    ]
    return opportunity["id"], quotes


async def test_close_quotes_payload_equals_what_a_read_sees_afterwards(
    gql: GraphQLClient,
) -> None:
    opportunity_id, quotes = await three_open_quotes(gql)

    result = ok(
        await gql(CLOSE_QUOTES, input={"opportunityId": opportunity_id, "description": "Lost."}),
        "closeQuotes",
    )

    after = await read(gql, opportunity_id)
    assert [q["id"] for q in result["closedQuotes"]] == quotes
    assert by_id(result["closedQuotes"]) == by_id(after["quotes"]["nodes"])
    opportunity = {k: v for k, v in after.items() if k not in {"quotes", "closeHistory"}}
    assert result["opportunity"] == opportunity
    assert {q["opportunity"]["version"] for q in result["closedQuotes"]} == {after["version"]}


async def test_close_opportunity_with_its_quotes_payload_equals_what_a_read_sees_afterwards(
    gql: GraphQLClient,
) -> None:
    opportunity_id, quotes = await three_open_quotes(gql)

    result = ok(
        await gql(
            CLOSE_OPPORTUNITY,
            input={"opportunityId": opportunity_id, "outcome": "WON", "closeOpenQuotes": True},
        ),
        "closeOpportunity",
    )

    after = await read(gql, opportunity_id)
    assert [q["id"] for q in result["closedQuotes"]] == quotes
    assert by_id(result["closedQuotes"]) == by_id(after["quotes"]["nodes"])
    assert result["opportunity"] == {k: v for k, v in after.items() if k != "quotes"}
    assert after["closeHistory"] == [result["opportunityClose"]]


async def test_win_and_close_quote_payloads_equal_what_a_read_sees_afterwards(
    gql: GraphQLClient,
) -> None:
    opportunity_id, quotes = await three_open_quotes(gql)
    closed = ok(
        await gql(CLOSE_QUOTE, input={"quoteId": quotes[0], "statusReason": "CANCELED"}),
        "closeQuote",
    )

    won = ok(await gql(WIN_QUOTE, input={"quoteId": quotes[2]}), "winQuote")

    after = await read(gql, opportunity_id)
    everything = by_id([closed["quote"], won["quote"], *won["lostQuotes"]])
    assert everything == by_id(after["quotes"]["nodes"])
    assert [q["id"] for q in won["lostQuotes"]] == [quotes[1]]
    opportunity = {k: v for k, v in after.items() if k not in {"quotes", "closeHistory"}}
    assert won["quote"]["opportunity"] == opportunity


async def test_reopen_payload_equals_what_a_read_sees_afterwards(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)
    close = {"opportunityId": opportunity["id"], "outcome": "LOST"}
    ok(await gql(CLOSE_OPPORTUNITY, input=close), "closeOpportunity")

    result = ok(await gql(REOPEN, input={"opportunityId": opportunity["id"]}), "reopenOpportunity")

    after = await read(gql, opportunity["id"])
    assert result["canceledCloses"] == after["closeHistory"]
    assert [c["state"] for c in result["canceledCloses"]] == ["CANCELED"]
    assert result["opportunity"] == {
        k: v for k, v in after.items() if k not in {"quotes", "closeHistory"}
    }
