"""Quote and opportunity lines over HTTP: calculated amounts, totals, revenue, refusals."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections import Counter
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from gql_service import line_services, quote_services, services
from gql_service.app import create_app
from gql_service.errors import ValidationFailedError
from gql_service.models import BillingMethod
from gql_service.settings import Settings
from gql_service.unit_of_work import UnitOfWork
from tests.conftest import GraphQLClient, sync_engines
from tests.operations import (
    CONFLICT,
    UPDATE_OPPORTUNITY,
    UPDATE_QUOTE,
    activate_quote,
    create_opportunity,
    create_quote,
    error_codes,
    errors,
    ok,
    payload,
)

LINE = """id name billingMethod transactionClass quantity unitPrice discount amount version
createdBy modifiedBy"""
QUOTE = "id totalAmount version state"
OPPORTUNITY = "id estimatedRevenue isRevenueSystemCalculated version"

ADD_QUOTE_LINE = f"""
mutation($input: AddQuoteLineInput!) {{
  addQuoteLine(input: $input) {{ line {{ {LINE} }} quote {{ {QUOTE} }} {errors(CONFLICT)} }}
}}"""
UPDATE_QUOTE_LINE = f"""
mutation($input: UpdateQuoteLineInput!) {{
  updateQuoteLine(input: $input) {{ line {{ {LINE} }} quote {{ {QUOTE} }} {errors(CONFLICT)} }}
}}"""
REMOVE_QUOTE_LINE = f"""
mutation($input: RemoveQuoteLineInput!) {{
  removeQuoteLine(input: $input) {{ line {{ {LINE} }} quote {{ {QUOTE} }} {errors(CONFLICT)} }}
}}"""
ADD_OPPORTUNITY_LINE = f"""
mutation($input: AddOpportunityLineInput!) {{
  addOpportunityLine(input: $input) {{
    line {{ {LINE} }} opportunity {{ {OPPORTUNITY} }} {errors(CONFLICT)}
  }}
}}"""
UPDATE_OPPORTUNITY_LINE = f"""
mutation($input: UpdateOpportunityLineInput!) {{
  updateOpportunityLine(input: $input) {{
    line {{ {LINE} }} opportunity {{ {OPPORTUNITY} }} {errors(CONFLICT)}
  }}
}}"""
REMOVE_OPPORTUNITY_LINE = f"""
mutation($input: RemoveOpportunityLineInput!) {{
  removeOpportunityLine(input: $input) {{
    line {{ {LINE} }} opportunity {{ {OPPORTUNITY} }} {errors(CONFLICT)}
  }}
}}"""
REVISE_QUOTE = f"""
mutation($input: ReviseQuoteInput!) {{
  reviseQuote(input: $input) {{
    quote {{ {QUOTE} lines {{ totalCount nodes {{ {LINE} quote {{ id }} }} }} }}
    revisedQuote {{ {QUOTE} lines {{ nodes {{ id amount }} }} }}
    {errors()}
  }}
}}"""
CLOSE_OPPORTUNITY = f"""
mutation($input: CloseOpportunityInput!) {{
  closeOpportunity(input: $input) {{ opportunity {{ {OPPORTUNITY} actualRevenue }} {errors()} }}
}}"""
QUOTE_LINES = f"""
query($id: ID!, $first: Int, $after: String) {{
  quote(id: $id) {{
    {QUOTE}
    lines(first: $first, after: $after) {{
      totalCount pageInfo {{ hasNextPage hasPreviousPage endCursor }}
      edges {{ cursor node {{ {LINE} }} }}
    }}
  }}
}}"""
OPPORTUNITY_LINES = f"""
query($id: ID!) {{
  opportunity(id: $id) {{
    {OPPORTUNITY} lines {{ totalCount nodes {{ {LINE} opportunity {{ id }} }} }}
  }}
}}"""
NODE = """
query($id: ID!) {
  node(id: $id) {
    __typename id
    ... on QuoteLine { amount quote { id } }
    ... on OpportunityLine { amount opportunity { id } }
  }
}"""


def line(**fields: Any) -> dict[str, Any]:
    return {
        "name": "Consulting",
        "billingMethod": "TIME_AND_MATERIAL",
        "quantity": "10",
        "unitPrice": "100",
        **fields,
    }


async def add_quote_line(gql: GraphQLClient, quote_id: str, **fields: Any) -> dict[str, Any]:
    return ok(
        await gql(ADD_QUOTE_LINE, input={"quoteId": quote_id, **line(**fields)}), "addQuoteLine"
    )


async def add_opportunity_line(
    gql: GraphQLClient, opportunity_id: str, **fields: Any
) -> dict[str, Any]:
    return ok(
        await gql(ADD_OPPORTUNITY_LINE, input={"opportunityId": opportunity_id, **line(**fields)}),
        "addOpportunityLine",
    )


async def test_amounts_are_calculated_and_the_quote_totals_its_lines(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)
    quote = await create_quote(gql, opportunity["id"], totalAmount="999")

    first = await add_quote_line(gql, quote["id"], transactionClass="TIME")
    fixed = await add_quote_line(
        gql,
        quote["id"],
        name="Go-live, fixed price",
        billingMethod="FIXED_PRICE",
        transactionClass="FEE",
        quantity="1",
        unitPrice="25000",
        discount="2500.50",
    )
    rounded = await add_quote_line(
        gql,
        quote["id"],
        name="Travel",
        transactionClass="EXPENSE",
        quantity="2.5",
        unitPrice="0.0001",
    )

    assert first["line"]["amount"] == "1000.0000"
    assert (first["line"]["quantity"], first["line"]["unitPrice"]) == ("10.0000", "100.0000")
    assert first["line"]["discount"] is None
    assert first["line"]["version"] == 1
    assert first["line"]["createdBy"] == "tester"
    assert fixed["line"]["billingMethod"] == "FIXED_PRICE"
    assert fixed["line"]["transactionClass"] == "FEE"
    assert fixed["line"]["discount"] == "2500.5000"
    assert fixed["line"]["amount"] == "22499.5000"
    # 2.5 x 0.0001 = 0.00025: half up at four decimals.
    assert rounded["line"]["amount"] == "0.0003"
    # The quote's entered total gave way to its lines' sum, and its version grew each time.
    assert first["quote"]["totalAmount"] == "1000.0000"
    assert rounded["quote"]["totalAmount"] == "23499.5003"
    assert rounded["quote"]["version"] == quote["version"] + 3
    body = await gql(QUOTE_LINES, id=quote["id"])
    listed = body["data"]["quote"]
    assert listed["totalAmount"] == "23499.5003"
    assert [e["node"]["name"] for e in listed["lines"]["edges"]] == [
        "Consulting",
        "Go-live, fixed price",
        "Travel",
    ]


async def test_the_total_follows_updates_and_removals(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)
    quote = await create_quote(gql, opportunity["id"])
    one = (await add_quote_line(gql, quote["id"]))["line"]
    two = (await add_quote_line(gql, quote["id"], quantity="3", unitPrice="7.5"))["line"]

    updated = ok(
        await gql(UPDATE_QUOTE_LINE, input={"lineId": one["id"], "discount": "100"}),
        "updateQuoteLine",
    )
    assert updated["line"]["amount"] == "900.0000"
    assert updated["line"]["quantity"] == "10.0000"  # left out: unchanged
    assert updated["line"]["version"] == 2
    assert updated["quote"]["totalAmount"] == "922.5000"

    removed = ok(await gql(REMOVE_QUOTE_LINE, input={"lineId": two["id"]}), "removeQuoteLine")
    assert removed["line"]["id"] == two["id"]
    assert removed["quote"]["totalAmount"] == "900.0000"

    # The last line gone, the quote has no total (nothing to sum); one may be entered again.
    last = ok(await gql(REMOVE_QUOTE_LINE, input={"lineId": one["id"]}), "removeQuoteLine")
    assert last["quote"]["totalAmount"] is None
    entered = ok(
        await gql(UPDATE_QUOTE, input={"quoteId": quote["id"], "totalAmount": "5"}), "updateQuote"
    )
    assert entered["quote"]["totalAmount"] == "5.0000"
    body = await gql(NODE, id=one["id"])
    assert body["data"]["node"] is None


async def test_a_quote_with_lines_refuses_an_entered_total(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)
    quote = await create_quote(gql, opportunity["id"])
    await add_quote_line(gql, quote["id"])

    refused = payload(
        await gql(UPDATE_QUOTE, input={"quoteId": quote["id"], "totalAmount": "1"}), "updateQuote"
    )

    [error] = refused["errors"]
    assert (error["code"], error["field"]) == ("INVALID_VALUE", ["input", "totalAmount"])
    renamed = ok(
        await gql(UPDATE_QUOTE, input={"quoteId": quote["id"], "name": "Renamed"}), "updateQuote"
    )
    assert renamed["quote"]["totalAmount"] == "1000.0000"


async def test_quote_lines_are_read_only_once_the_quote_is_activated(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)
    quote = await create_quote(gql, opportunity["id"])
    added = (await add_quote_line(gql, quote["id"]))["line"]
    await activate_quote(gql, quote["id"])

    refusals = [
        payload(
            await gql(ADD_QUOTE_LINE, input={"quoteId": quote["id"], **line()}), "addQuoteLine"
        ),
        payload(
            await gql(UPDATE_QUOTE_LINE, input={"lineId": added["id"], "quantity": "1"}),
            "updateQuoteLine",
        ),
        payload(await gql(REMOVE_QUOTE_LINE, input={"lineId": added["id"]}), "removeQuoteLine"),
    ]

    assert [error_codes(r) for r in refusals] == [["QUOTE_READ_ONLY"]] * 3
    assert all(r["line"] is None and r["quote"] is None for r in refusals)
    body = await gql(QUOTE_LINES, id=quote["id"])
    assert body["data"]["quote"]["lines"]["totalCount"] == 1


async def test_lines_of_a_closed_opportunity_are_refused(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)
    quote = await create_quote(gql, opportunity["id"])
    quote_line = (await add_quote_line(gql, quote["id"]))["line"]
    opportunity_line = (await add_opportunity_line(gql, opportunity["id"]))["line"]
    ok(
        await gql(
            CLOSE_OPPORTUNITY,
            input={"opportunityId": opportunity["id"], "outcome": "LOST", "closeOpenQuotes": True},
        ),
        "closeOpportunity",
    )

    refusals = [
        payload(
            await gql(ADD_OPPORTUNITY_LINE, input={"opportunityId": opportunity["id"], **line()}),
            "addOpportunityLine",
        ),
        payload(
            await gql(
                UPDATE_OPPORTUNITY_LINE, input={"lineId": opportunity_line["id"], "name": "X"}
            ),
            "updateOpportunityLine",
        ),
        payload(
            await gql(REMOVE_OPPORTUNITY_LINE, input={"lineId": opportunity_line["id"]}),
            "removeOpportunityLine",
        ),
        payload(
            await gql(REMOVE_QUOTE_LINE, input={"lineId": quote_line["id"]}), "removeQuoteLine"
        ),
    ]

    assert [error_codes(r) for r in refusals] == [["OPPORTUNITY_ALREADY_CLOSED"]] * 4


async def test_every_invalid_value_is_reported_with_its_input_path(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)
    quote = await create_quote(gql, opportunity["id"])

    refused = payload(
        await gql(
            ADD_QUOTE_LINE,
            input={
                "quoteId": quote["id"],
                **line(name="  ", quantity="0", unitPrice="-1", discount="0.00001"),
            },
        ),
        "addQuoteLine",
    )
    paths = {tuple(e["field"]) for e in refused["errors"]}
    assert set(error_codes(refused)) == {"INVALID_VALUE"}
    assert paths == {
        ("input", "name"),
        ("input", "quantity"),
        ("input", "unitPrice"),
        ("input", "discount"),
    }

    too_much = payload(
        await gql(ADD_QUOTE_LINE, input={"quoteId": quote["id"], **line(discount="1000.0001")}),
        "addQuoteLine",
    )
    assert [e["field"] for e in too_much["errors"]] == [["input", "discount"]]

    added = (await add_quote_line(gql, quote["id"]))["line"]
    cleared = payload(
        await gql(
            UPDATE_QUOTE_LINE,
            input={"lineId": added["id"], "quantity": None, "unitPrice": None, "name": None},
        ),
        "updateQuoteLine",
    )
    assert {tuple(e["field"]) for e in cleared["errors"]} == {
        ("input", "quantity"),
        ("input", "unitPrice"),
        ("input", "name"),
    }
    # The discount is checked against the line's stored quantity and price.
    over = payload(
        await gql(UPDATE_QUOTE_LINE, input={"lineId": added["id"], "discount": "1000.01"}),
        "updateQuoteLine",
    )
    assert [e["field"] for e in over["errors"]] == [["input", "discount"]]


async def test_amounts_and_totals_beyond_the_money_limit_are_refused(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)
    quote = await create_quote(gql, opportunity["id"])

    huge = payload(
        await gql(
            ADD_QUOTE_LINE,
            input={"quoteId": quote["id"], **line(quantity="99999999", unitPrice="99999999")},
        ),
        "addQuoteLine",
    )
    assert [(e["code"], e["field"]) for e in huge["errors"]] == [
        ("INVALID_VALUE", ["input", "quantity"])
    ]
    big = {"quantity": "1", "unitPrice": "600000000000000"}
    await add_quote_line(gql, quote["id"], **big)
    second = payload(
        await gql(ADD_QUOTE_LINE, input={"quoteId": quote["id"], **line(**big)}), "addQuoteLine"
    )
    assert error_codes(second) == ["INVALID_VALUE"]
    body = await gql(QUOTE_LINES, id=quote["id"])
    assert body["data"]["quote"]["totalAmount"] == "600000000000000.0000"
    assert body["data"]["quote"]["lines"]["totalCount"] == 1

    await add_opportunity_line(gql, opportunity["id"], **big)
    refused = payload(
        await gql(ADD_OPPORTUNITY_LINE, input={"opportunityId": opportunity["id"], **line(**big)}),
        "addOpportunityLine",
    )
    assert error_codes(refused) == ["INVALID_VALUE"]


async def test_a_stale_expected_version_is_a_conflict(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)
    quote = await create_quote(gql, opportunity["id"])
    quote_line = (await add_quote_line(gql, quote["id"], expectedVersion=quote["version"]))["line"]
    stale = payload(
        await gql(
            UPDATE_QUOTE_LINE,
            input={"lineId": quote_line["id"], "name": "X", "expectedVersion": quote["version"]},
        ),
        "updateQuoteLine",
    )
    [error] = stale["errors"]
    assert error["code"] == "CONCURRENCY_CONFLICT"
    assert (error["expectedVersion"], error["actualVersion"]) == (
        quote["version"],
        quote["version"] + 1,
    )

    current = await gql(OPPORTUNITY_LINES, id=opportunity["id"])
    version = current["data"]["opportunity"]["version"]
    added = await add_opportunity_line(gql, opportunity["id"], expectedVersion=version)
    assert added["opportunity"]["version"] == version + 1
    for operation, name, data in (
        (
            ADD_OPPORTUNITY_LINE,
            "addOpportunityLine",
            {"opportunityId": opportunity["id"], **line()},
        ),
        (REMOVE_OPPORTUNITY_LINE, "removeOpportunityLine", {"lineId": added["line"]["id"]}),
    ):
        refused = payload(await gql(operation, input={**data, "expectedVersion": version}), name)
        assert error_codes(refused) == ["CONCURRENCY_CONFLICT"]
        assert refused["errors"][0]["actualVersion"] == version + 1


async def test_unknown_and_malformed_ids_name_nothing(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)
    opportunity_line = (await add_opportunity_line(gql, opportunity["id"]))["line"]
    cases = [
        (REMOVE_QUOTE_LINE, "removeQuoteLine", {"lineId": "nonsense"}, "lineId"),
        # An opportunity line's id is not a quote line's.
        (REMOVE_QUOTE_LINE, "removeQuoteLine", {"lineId": opportunity_line["id"]}, "lineId"),
        (
            UPDATE_OPPORTUNITY_LINE,
            "updateOpportunityLine",
            {"lineId": "T3Bwb3J0dW5pdHlMaW5lOjk5OTk5", "name": "X"},  # OpportunityLine:99999
            "lineId",
        ),
        (ADD_QUOTE_LINE, "addQuoteLine", {"quoteId": opportunity["id"], **line()}, "quoteId"),
        (
            ADD_OPPORTUNITY_LINE,
            "addOpportunityLine",
            {"opportunityId": "T3Bwb3J0dW5pdHk6OTk5OTk", **line()},  # Opportunity:99999
            "opportunityId",
        ),
    ]
    for operation, name, data, field in cases:
        refused = payload(await gql(operation, input=data), name)
        assert [(e["code"], e["field"]) for e in refused["errors"]] == [
            ("NOT_FOUND", ["input", field])
        ], (name, data)


async def test_system_calculated_revenue_follows_the_lines(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(
        gql, estimatedRevenue=None, isRevenueSystemCalculated=True
    )
    assert opportunity["estimatedRevenue"] == "0.0000"

    first = await add_opportunity_line(gql, opportunity["id"])
    second = await add_opportunity_line(
        gql, opportunity["id"], billingMethod="FIXED_PRICE", quantity="1", unitPrice="250.25"
    )
    assert first["opportunity"]["estimatedRevenue"] == "1000.0000"
    assert second["opportunity"]["estimatedRevenue"] == "1250.2500"
    updated = ok(
        await gql(UPDATE_OPPORTUNITY_LINE, input={"lineId": first["line"]["id"], "quantity": "2"}),
        "updateOpportunityLine",
    )
    assert updated["opportunity"]["estimatedRevenue"] == "450.2500"
    for added in (first, second):
        removed = ok(
            await gql(REMOVE_OPPORTUNITY_LINE, input={"lineId": added["line"]["id"]}),
            "removeOpportunityLine",
        )
    assert removed["opportunity"]["estimatedRevenue"] == "0.0000"

    refused = payload(
        await gql(
            UPDATE_OPPORTUNITY, input={"opportunityId": opportunity["id"], "estimatedRevenue": "5"}
        ),
        "updateOpportunity",
    )
    assert [(e["code"], e["field"]) for e in refused["errors"]] == [
        ("INVALID_VALUE", ["input", "estimatedRevenue"])
    ]


async def test_switching_calculation_on_sums_the_lines_and_off_keeps_the_value(
    gql: GraphQLClient,
) -> None:
    opportunity = await create_opportunity(gql, estimatedRevenue="777")
    entered = await add_opportunity_line(gql, opportunity["id"], quantity="3")
    # Entered by the user: lines do not change it.
    assert entered["opportunity"]["estimatedRevenue"] == "777.0000"
    assert entered["opportunity"]["isRevenueSystemCalculated"] is False

    on = ok(
        await gql(
            UPDATE_OPPORTUNITY,
            input={"opportunityId": opportunity["id"], "isRevenueSystemCalculated": True},
        ),
        "updateOpportunity",
    )["opportunity"]
    assert on["estimatedRevenue"] == "300.0000"

    off = ok(
        await gql(
            UPDATE_OPPORTUNITY,
            input={"opportunityId": opportunity["id"], "isRevenueSystemCalculated": False},
        ),
        "updateOpportunity",
    )["opportunity"]
    assert off["estimatedRevenue"] == "300.0000"
    later = await add_opportunity_line(gql, opportunity["id"])
    assert later["opportunity"]["estimatedRevenue"] == "300.0000"
    entered_again = ok(
        await gql(
            UPDATE_OPPORTUNITY,
            input={"opportunityId": opportunity["id"], "estimatedRevenue": "1"},
        ),
        "updateOpportunity",
    )["opportunity"]
    assert entered_again["estimatedRevenue"] == "1.0000"

    # Switching on and entering a value in one call contradict each other; null is no answer.
    for data in (
        {"isRevenueSystemCalculated": True, "estimatedRevenue": "2"},
        {"isRevenueSystemCalculated": None},
    ):
        refused = payload(
            await gql(UPDATE_OPPORTUNITY, input={"opportunityId": opportunity["id"], **data}),
            "updateOpportunity",
        )
        assert error_codes(refused) == ["INVALID_VALUE"]


async def test_a_calculated_opportunity_refuses_an_entered_estimate(gql: GraphQLClient) -> None:
    body = await gql(
        """mutation($input: CreateOpportunityInput!) {
             createOpportunity(input: $input) {
               opportunity { id } errors { ... on UserError { field } } } }""",
        input={
            "name": "N",
            "customerName": "C",
            "currencyCode": "EUR",
            "estimatedRevenue": "1",
            "isRevenueSystemCalculated": True,
        },
    )
    result = payload(body, "createOpportunity")
    assert result["opportunity"] is None
    assert result["errors"] == [{"field": ["input", "estimatedRevenue"]}]


async def test_a_won_opportunity_takes_its_calculated_estimate_as_actual_revenue(
    gql: GraphQLClient,
) -> None:
    opportunity = await create_opportunity(
        gql, estimatedRevenue=None, isRevenueSystemCalculated=True
    )
    await add_opportunity_line(gql, opportunity["id"], quantity="4")

    closed = ok(
        await gql(CLOSE_OPPORTUNITY, input={"opportunityId": opportunity["id"], "outcome": "WON"}),
        "closeOpportunity",
    )["opportunity"]

    assert closed["actualRevenue"] == "400.0000"


async def test_revising_a_quote_copies_its_lines(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)
    quote = await create_quote(gql, opportunity["id"])
    await add_quote_line(gql, quote["id"], transactionClass="TIME")
    await add_quote_line(gql, quote["id"], billingMethod="FIXED_PRICE", discount="10")
    await activate_quote(gql, quote["id"])

    revised = ok(await gql(REVISE_QUOTE, input={"quoteId": quote["id"]}), "reviseQuote")

    draft = revised["quote"]
    assert draft["totalAmount"] == "1990.0000"
    copies = draft["lines"]["nodes"]
    originals = revised["revisedQuote"]["lines"]["nodes"]
    assert draft["lines"]["totalCount"] == 2
    assert [c["amount"] for c in copies] == [o["amount"] for o in originals]
    assert [c["billingMethod"] for c in copies] == ["TIME_AND_MATERIAL", "FIXED_PRICE"]
    assert [c["discount"] for c in copies] == [None, "10.0000"]
    assert {c["id"] for c in copies}.isdisjoint(o["id"] for o in originals)
    assert {c["quote"]["id"] for c in copies} == {draft["id"]}
    assert all(c["version"] == 1 for c in copies)
    # The copy is the draft's own: editing it leaves the revised quote's line alone.
    edited = ok(
        await gql(UPDATE_QUOTE_LINE, input={"lineId": copies[0]["id"], "quantity": "1"}),
        "updateQuoteLine",
    )
    assert edited["quote"]["totalAmount"] == "1090.0000"
    body = await gql(QUOTE_LINES, id=quote["id"])
    assert body["data"]["quote"]["totalAmount"] == "1990.0000"


async def test_lines_are_nodes_and_page_forwards(gql: GraphQLClient) -> None:
    opportunity = await create_opportunity(gql)
    quote = await create_quote(gql, opportunity["id"])
    added = [(await add_quote_line(gql, quote["id"], name=f"L{i}"))["line"] for i in range(3)]
    opportunity_line = (await add_opportunity_line(gql, opportunity["id"]))["line"]

    node = (await gql(NODE, id=added[1]["id"]))["data"]["node"]
    assert node == {
        "__typename": "QuoteLine",
        "id": added[1]["id"],
        "amount": "1000.0000",
        "quote": {"id": quote["id"]},
    }
    node = (await gql(NODE, id=opportunity_line["id"]))["data"]["node"]
    assert node["__typename"] == "OpportunityLine"
    assert node["opportunity"] == {"id": opportunity["id"]}

    page = (await gql(QUOTE_LINES, id=quote["id"], first=2))["data"]["quote"]["lines"]
    assert [e["node"]["name"] for e in page["edges"]] == ["L0", "L1"]
    assert page["pageInfo"]["hasNextPage"] is True
    rest = (await gql(QUOTE_LINES, id=quote["id"], first=2, after=page["pageInfo"]["endCursor"]))[
        "data"
    ]["quote"]["lines"]
    assert [e["node"]["name"] for e in rest["edges"]] == ["L2"]
    assert (rest["pageInfo"]["hasNextPage"], rest["pageInfo"]["hasPreviousPage"]) == (False, True)
    assert rest["totalCount"] == 3

    listed = (await gql(OPPORTUNITY_LINES, id=opportunity["id"]))["data"]["opportunity"]
    assert [n["id"] for n in listed["lines"]["nodes"]] == [opportunity_line["id"]]


# Listing lines: a fixed number of statements however many parents are listed.
LISTED_QUOTE_LINES = """
query($first: Int!) {
  quotes(first: $first) {
    nodes { id totalAmount lines { totalCount nodes { id name amount quote { id } } } }
  }
}"""
LISTED_OPPORTUNITY_LINES = """
query($first: Int!) {
  opportunities(first: $first) {
    nodes {
      id estimatedRevenue isRevenueSystemCalculated
      lines { totalCount nodes { id amount billingMethod } }
      quotes { nodes { id lines(first: 5) { nodes { id amount } } } }
    }
  }
}"""


async def _seed_lines(uow: UnitOfWork, count: int) -> None:
    for index in range(count):
        opportunity = await services.create_opportunity(
            uow,
            name=f"Deal {index}",
            customer_name="Contoso",
            currency_code="EUR",
            is_revenue_system_calculated=index % 2 == 0,
        )
        assert opportunity.id is not None
        quote = await quote_services.create_quote(uow, opportunity_id=opportunity.id, name="Q")
        assert quote.id is not None
        for method in (BillingMethod.TIME_AND_MATERIAL, BillingMethod.FIXED_PRICE):
            values = {"name": "L", "billing_method": method, "quantity": Decimal(2)}
            await line_services.add_quote_line(
                uow, quote_id=quote.id, unit_price=Decimal(index), **values
            )
            await line_services.add_opportunity_line(
                uow, opportunity_id=opportunity.id, unit_price=Decimal(index), **values
            )


def _selects(statements: list[str]) -> int:
    return sum(1 for s in statements if s.lstrip().upper().startswith("SELECT"))


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "plain"])
async def test_listing_lines_is_a_fixed_number_of_statements(
    settings: Settings, compiled: bool
) -> None:
    app = create_app(dataclasses.replace(settings, compiled_reads=compiled))
    engine = app.state.engine
    await _seed_lines(UnitOfWork(engine, actor="tester"), 50)
    statements: list[str] = []
    for each in sync_engines(engine):
        event.listen(each, "before_cursor_execute", lambda *a: statements.append(a[2]))
    counts: dict[tuple[str, int], int] = {}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        for document in (LISTED_QUOTE_LINES, LISTED_OPPORTUNITY_LINES):
            for first in (5, 50):
                statements.clear()
                response = await http.post(
                    "/graphql", json={"query": document, "variables": {"first": first}}
                )
                body = response.json()
                assert "errors" not in body, body
                nodes = next(iter(body["data"].values()))["nodes"]
                assert len(nodes) == first
                assert all(len(n["lines"]["nodes"]) == 2 for n in nodes)
                counts[document[:30], first] = _selects(statements)
    await engine.dispose()

    for document in (LISTED_QUOTE_LINES, LISTED_OPPORTUNITY_LINES):
        fixed = counts[document[:30], 5]
        assert counts[document[:30], 50] == fixed, counts
        if compiled:
            assert fixed == 1, counts
        else:
            # quotes: page, lines, quotes (line.quote); opportunities: page, lines, quotes,
            # the quotes' lines.
            assert fixed <= 4, counts


async def test_line_writes_are_a_fixed_number_of_statements(settings: Settings) -> None:
    app = create_app(settings)
    engine = app.state.engine
    uow = UnitOfWork(engine, actor="tester")
    few = await services.create_opportunity(
        uow, name="A", customer_name="C", currency_code="EUR", is_revenue_system_calculated=True
    )
    many = await services.create_opportunity(
        uow, name="B", customer_name="C", currency_code="EUR", is_revenue_system_calculated=True
    )
    counts: dict[str, list[int]] = {}
    statements: list[str] = []
    for each in sync_engines(engine):
        event.listen(each, "before_cursor_execute", lambda *a: statements.append(a[2]))
    for opportunity, lines_before in ((few, 1), (many, 30)):
        assert opportunity.id is not None
        quote = await quote_services.create_quote(uow, opportunity_id=opportunity.id, name="Q")
        assert quote.id is not None
        values = {"name": "L", "billing_method": BillingMethod.FIXED_PRICE, "quantity": Decimal(1)}
        for _ in range(lines_before):
            await line_services.add_quote_line(
                uow, quote_id=quote.id, unit_price=Decimal(3), **values
            )
            await line_services.add_opportunity_line(
                uow, opportunity_id=opportunity.id, unit_price=Decimal(3), **values
            )
        statements.clear()
        added = await line_services.add_quote_line(
            uow, quote_id=quote.id, unit_price=Decimal(5), **values
        )
        counts.setdefault("addQuoteLine", []).append(len(statements))
        statements.clear()
        await line_services.update_quote_line(uow, line_id=added.line.id, quantity=Decimal(2))
        counts.setdefault("updateQuoteLine", []).append(len(statements))
        statements.clear()
        await line_services.remove_quote_line(uow, line_id=added.line.id)
        counts.setdefault("removeQuoteLine", []).append(len(statements))
        statements.clear()
        added_o = await line_services.add_opportunity_line(
            uow, opportunity_id=opportunity.id, unit_price=Decimal(5), **values
        )
        counts.setdefault("addOpportunityLine", []).append(len(statements))
        assert added_o.opportunity.estimated_revenue == Decimal(3 * lines_before + 5)
        statements.clear()
        await line_services.update_opportunity_line(uow, line_id=added_o.line.id, name="M")
        counts.setdefault("updateOpportunityLine", []).append(len(statements))
        statements.clear()
        await line_services.remove_opportunity_line(uow, line_id=added_o.line.id)
        counts.setdefault("removeOpportunityLine", []).append(len(statements))
        statements.clear()
        await quote_services.activate_quote(uow, quote_id=quote.id)
        statements.clear()
        await quote_services.revise_quote(uow, quote_id=quote.id)
        counts.setdefault("reviseQuote", []).append(len(statements))
    await engine.dispose()

    assert all(few == many for few, many in counts.values()), counts


async def _outcome(call: Any) -> str:
    try:
        await call
    except ValidationFailedError as exc:
        return str(exc.violations[0].code)
    return "ok"


@pytest.mark.race
async def test_concurrent_line_adds_and_activation_leave_no_line_on_an_active_quote(
    engine: AsyncEngine, uow: UnitOfWork
) -> None:
    values = {"name": "L", "billing_method": BillingMethod.TIME_AND_MATERIAL}
    tally: Counter[str] = Counter()
    for _ in range(15):
        opportunity = await services.create_opportunity(
            uow, name="Race", customer_name="C", currency_code="EUR"
        )
        assert opportunity.id is not None
        quote = await quote_services.create_quote(uow, opportunity_id=opportunity.id, name="Q")
        assert quote.id is not None
        adds = [
            line_services.add_quote_line(
                uow, quote_id=quote.id, quantity=Decimal(1), unit_price=Decimal(i + 1), **values
            )
            for i in range(3)
        ]
        activation = quote_services.activate_quote(uow, quote_id=quote.id)
        order = [*adds, activation]
        random.shuffle(order)
        results = await asyncio.gather(*(_outcome(call) for call in order))
        tally.update(results)
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    text(
                        "SELECT q.state, q.version, q.total_amount, "
                        "(SELECT count(*) FROM quote_line l WHERE l.quote_id = q.id) "
                        "FROM quote q WHERE q.id = :id"
                    ),
                    {"id": quote.id},
                )
            ).one()
        state, version, total, lines = row
        assert state == "ACTIVE"
        assert set(results) <= {"ok", "QUOTE_READ_ONLY"}, results
        added = results.count("ok") - 1  # the activation succeeded
        # Every add that succeeded ran before the activation, on the draft, and none was lost.
        assert lines == added
        assert version == quote.version + added + 1
        expected = sum(range(1, 4)) if added == 3 else None
        if expected is not None:
            assert Decimal(str(total)) == expected
    assert tally["ok"] >= 15


async def test_line_connections_are_priced_by_their_page_size(gql: GraphQLClient) -> None:
    body = await gql(
        "{ quotes(first: 10) { nodes { lines(first: 5) { nodes { id quote { id } } } } } }"
    )

    # quotes 1 + 10 x (quote 1 + lines 1 + 5 x (line 1 + its quote 1))
    assert body["extensions"]["cost"]["requested"] == 1 + 10 * (1 + 1 + 5 * 2)
    body = await gql("{ opportunities(first: 2) { nodes { lines { nodes { id } } } } }")
    # The default page size prices a connection without first.
    assert body["extensions"]["cost"]["requested"] == 1 + 2 * (1 + 1 + 20 * 1)
