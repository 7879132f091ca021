"""Winning a quote drafts a project contract from it and its lines (issue 8, section 3)."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gql_service import line_services, quote_services, services
from gql_service.app import create_app
from gql_service.graphql.ids import encode_id, parse_id
from gql_service.models import (
    BillingMethod,
    ContractLine,
    ProjectContract,
    QuoteLine,
    TransactionClass,
)
from gql_service.settings import Settings
from gql_service.unit_of_work import UnitOfWork
from tests.conftest import GraphQLClient
from tests.operations import (
    CLOSE_OPPORTUNITY,
    REOPEN_OPPORTUNITY,
    activate_quote,
    create_opportunity,
    create_quote,
    ok,
)
from tests.test_statement_count import StatementCounter, statements_of

LINE_FIELDS = """id name billingMethod transactionClass quantity unitPrice discount amount
  createdBy"""
CONTRACT_FIELDS = f"""
  id contractNumber name state customerName currencyCode totalAmount version createdBy
  opportunity {{ id state }}
  quote {{ id state }}
  lines(first: 50) {{ totalCount nodes {{ {LINE_FIELDS} }} }}
"""

WIN = f"""
mutation($input: WinQuoteInput!) {{
  winQuote(input: $input) {{
    quote {{ id state contract {{ id contractNumber }} }}
    lostQuotes {{ id state statusReason }}
    contract {{ {CONTRACT_FIELDS} }}
    errors {{ __typename ... on UserError {{ code }} }}
  }}
}}"""

CONTRACT = f"""
query($id: ID!) {{ contract(id: $id) {{ {CONTRACT_FIELDS} }} }}"""

NODE = """
query($ids: [ID!]!) {
  nodes(ids: $ids) {
    __typename id
    ... on ProjectContract { contractNumber }
    ... on ContractLine { name amount }
  }
}"""

QUOTE_CONTRACTS = """
query($a: ID!, $b: ID!) {
  a: quote(id: $a) { contract { id } }
  b: quote(id: $b) { state contract { id } }
}"""

OPPORTUNITY_CONTRACTS = """
query($id: ID!) {
  opportunity(id: $id) {
    state
    contracts(first: 5) { totalCount nodes { id state quote { id } lines { totalCount } } }
  }
}"""

CONTRACTS = """
query($first: Int, $after: String, $last: Int, $before: String, $filter: ContractFilter) {
  contracts(first: $first, after: $after, last: $last, before: $before, filter: $filter) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    nodes { id name customerName }
  }
}"""

LIST = """
query($first: Int!) {
  contracts(first: $first) {
    totalCount
    nodes {
      id contractNumber state totalAmount
      opportunity { id name }
      quote { id quoteNumber }
      lines(first: 20) { totalCount nodes { id name billingMethod amount } }
    }
  }
}"""

# (name, billing method, transaction class, quantity, unit price, discount, amount)
LINES = [
    ("Design", BillingMethod.TIME_AND_MATERIAL, TransactionClass.TIME, "40", "95.5", None, "3820"),
    ("Build", BillingMethod.FIXED_PRICE, None, "1", "12000", "500", "11500"),
    ("Travel", BillingMethod.TIME_AND_MATERIAL, TransactionClass.EXPENSE, "3", "210", None, "630"),
]


async def add_quote_lines(
    engine: AsyncEngine, quote_id: str, lines: list[tuple[Any, ...]] = LINES
) -> None:
    """Give a DRAFT quote its lines through the service behind addQuoteLine; each line's
    amount is calculated by the service and must be the one written in ``lines``."""
    parsed = parse_id(quote_id)
    assert parsed is not None
    uow = UnitOfWork(engine, actor="tester")
    for name, method, kind, quantity, price, discount, amount in lines:
        added = await line_services.add_quote_line(
            uow,
            quote_id=parsed[1],
            name=name,
            billing_method=method,
            transaction_class=kind,
            quantity=Decimal(quantity),
            unit_price=Decimal(price),
            discount=None if discount is None else Decimal(discount),
        )
        assert added.line.amount == Decimal(amount)


async def won_deal(gql: GraphQLClient, engine: AsyncEngine) -> dict[str, Any]:
    """An opportunity with two quotes, the first with three lines, won; the win's payload."""
    opportunity = await create_opportunity(gql, customerName="Contoso")
    winner = await create_quote(gql, opportunity["id"], name="Phase 1", totalAmount="15950")
    other = await create_quote(gql, opportunity["id"], name="Alternative")
    await add_quote_lines(engine, winner["id"])
    await activate_quote(gql, winner["id"])
    won = ok(await gql(WIN, input={"quoteId": winner["id"]}), "winQuote")
    return {"opportunity": opportunity, "winner": winner, "other": other, "won": won}


async def counts(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as connection:
        contracts = await connection.scalar(select(func.count()).select_from(ProjectContract))
        lines = await connection.scalar(select(func.count()).select_from(ContractLine))
    return int(contracts or 0), int(lines or 0)


async def test_winning_a_quote_drafts_a_contract_with_a_line_per_quote_line(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    deal = await won_deal(gql, engine)
    won, winner = deal["won"], deal["winner"]
    contract = won["contract"]
    assert contract["contractNumber"].startswith("CON-")
    assert len(contract["contractNumber"]) == 12
    assert (contract["state"], contract["name"], contract["customerName"]) == (
        "DRAFT",
        "Phase 1",
        "Contoso",
    )
    assert (contract["currencyCode"], contract["totalAmount"]) == ("EUR", "15950.0000")
    assert contract["version"] == 1
    assert contract["createdBy"] == "tester"
    assert contract["opportunity"] == {"id": deal["opportunity"]["id"], "state": "OPEN"}
    assert contract["quote"] == {"id": winner["id"], "state": "WON"}
    lines = contract["lines"]["nodes"]
    assert contract["lines"]["totalCount"] == 3
    assert [
        (
            line["name"],
            line["billingMethod"],
            line["transactionClass"],
            line["quantity"],
            line["unitPrice"],
            line["discount"],
            line["amount"],
        )
        for line in lines
    ] == [
        ("Design", "TIME_AND_MATERIAL", "TIME", "40.0000", "95.5000", None, "3820.0000"),
        ("Build", "FIXED_PRICE", None, "1.0000", "12000.0000", "500.0000", "11500.0000"),
        ("Travel", "TIME_AND_MATERIAL", "EXPENSE", "3.0000", "210.0000", None, "630.0000"),
    ]
    assert {line["createdBy"] for line in lines} == {"tester"}
    # The other open quote is LOST, the opportunity stays OPEN, the quote knows its contract.
    assert won["lostQuotes"] == [
        {"id": deal["other"]["id"], "state": "CLOSED", "statusReason": "LOST"}
    ]
    assert won["quote"]["contract"] == {
        "id": contract["id"],
        "contractNumber": contract["contractNumber"],
    }
    # The same contract, read back: by contract(id), with its lines from the database.
    body = await gql(CONTRACT, id=contract["id"])
    assert body["data"] == {"contract": contract}
    # Each contract line points at the quote line it was made from.
    async with engine.connect() as connection:
        copied = (
            await connection.execute(
                select(ContractLine.quote_line_id, QuoteLine.name)
                .join(QuoteLine, QuoteLine.id == ContractLine.quote_line_id)  # type: ignore[arg-type]
                .order_by(ContractLine.id)  # type: ignore[arg-type]
            )
        ).all()
    assert [name for _, name in copied] == ["Design", "Build", "Travel"]


async def test_contracts_and_their_lines_are_nodes(gql: GraphQLClient, engine: AsyncEngine) -> None:
    contract = (await won_deal(gql, engine))["won"]["contract"]
    line = contract["lines"]["nodes"][1]
    missing = encode_id("ProjectContract", 999_999)
    body = await gql(NODE, ids=[contract["id"], line["id"], missing])
    assert body["data"]["nodes"] == [
        {
            "__typename": "ProjectContract",
            "id": contract["id"],
            "contractNumber": contract["contractNumber"],
        },
        {"__typename": "ContractLine", "id": line["id"], "name": "Build", "amount": "11500.0000"},
        None,
    ]
    assert (await gql(CONTRACT, id=missing))["data"] == {"contract": None}
    # Another type's id names no contract.
    assert (await gql(CONTRACT, id=line["id"]))["data"] == {"contract": None}


async def test_only_a_won_quote_has_a_contract(gql: GraphQLClient, engine: AsyncEngine) -> None:
    deal = await won_deal(gql, engine)
    body = await gql(QUOTE_CONTRACTS, a=deal["winner"]["id"], b=deal["other"]["id"])
    assert body["data"] == {
        "a": {"contract": {"id": deal["won"]["contract"]["id"]}},
        "b": {"state": "CLOSED", "contract": None},
    }


async def test_a_contract_survives_a_reopen_of_its_opportunity(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    deal = await won_deal(gql, engine)
    opportunity, contract = deal["opportunity"], deal["won"]["contract"]
    close = {"opportunityId": opportunity["id"], "outcome": "WON"}
    ok(await gql(CLOSE_OPPORTUNITY, input=close), "closeOpportunity")
    ok(
        await gql(REOPEN_OPPORTUNITY, input={"opportunityId": opportunity["id"]}),
        "reopenOpportunity",
    )
    body = await gql(OPPORTUNITY_CONTRACTS, id=opportunity["id"])
    assert body["data"]["opportunity"] == {
        "state": "OPEN",
        "contracts": {
            "totalCount": 1,
            "nodes": [
                {
                    "id": contract["id"],
                    "state": "DRAFT",
                    "quote": {"id": deal["winner"]["id"]},
                    "lines": {"totalCount": 3},
                }
            ],
        },
    }
    assert (await gql(CONTRACT, id=contract["id"]))["data"]["contract"] == contract


async def test_a_dry_run_win_answers_with_the_contract_and_writes_none(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    opportunity = await create_opportunity(gql)
    winner = await create_quote(gql, opportunity["id"], name="Phase 1")
    await add_quote_lines(engine, winner["id"])
    given = {"quoteId": winner["id"], "closeDate": "2025-06-30"}
    dry = ok(await gql(WIN, input={**given, "dryRun": True}), "winQuote")
    assert await counts(engine) == (0, 0)
    real = ok(await gql(WIN, input=given), "winQuote")
    assert await counts(engine) == (1, 3)

    def comparable(contract: dict[str, Any]) -> dict[str, Any]:
        """Ids and the number are the write's own: a dry run's are not kept."""
        lines = [{k: v for k, v in n.items() if k != "id"} for n in contract["lines"]["nodes"]]
        return {
            **{k: v for k, v in contract.items() if k not in ("id", "contractNumber")},
            "lines": {**contract["lines"], "nodes": lines},
        }

    assert comparable(dry["contract"]) == comparable(real["contract"])
    assert dry["contract"]["lines"]["totalCount"] == 3
    assert dry["quote"]["contract"]["id"] == dry["contract"]["id"]


async def test_the_contracts_connection_pages_newest_first_and_filters(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    names = []
    opportunities = []
    for index in range(3):
        opportunity = await create_opportunity(gql, customerName=f"Customer {index}")
        quote = await create_quote(gql, opportunity["id"], name=f"Deal {index}")
        ok(await gql(WIN, input={"quoteId": quote["id"]}), "winQuote")
        names.append(f"Deal {index}")
        opportunities.append(opportunity["id"])
    newest_first = names[::-1]

    forward, cursor = [], None
    while True:
        page = (await gql(CONTRACTS, first=2, after=cursor))["data"]["contracts"]
        assert page["totalCount"] == 3
        forward += [n["name"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        cursor = page["pageInfo"]["endCursor"]
    assert forward == newest_first

    backward, cursor = [], None
    while True:
        page = (await gql(CONTRACTS, last=2, before=cursor))["data"]["contracts"]
        backward = [n["name"] for n in page["nodes"]] + backward
        if not page["pageInfo"]["hasPreviousPage"]:
            break
        cursor = page["pageInfo"]["startCursor"]
    assert backward == newest_first

    only = (await gql(CONTRACTS, filter={"opportunityId": opportunities[1]}))["data"]
    assert [n["customerName"] for n in only["contracts"]["nodes"]] == ["Customer 1"]
    drafts = (await gql(CONTRACTS, filter={"state": ["DRAFT"]}))["data"]["contracts"]
    assert drafts["totalCount"] == 3
    nothing = (await gql(CONTRACTS, filter={"opportunityId": "nonsense"}))["data"]
    assert nothing["contracts"]["totalCount"] == 0
    bad = await gql(CONTRACTS, after="bad")
    assert bad["errors"][0]["extensions"]["code"] == "BAD_CURSOR"


class SelectCounter(StatementCounter):
    """Counts the SELECT statements too (SQLite's reads also send a BEGIN)."""

    selects = 0

    def _seen(self, *args: Any) -> None:
        super()._seen(*args)
        if str(args[2]).lstrip().upper().startswith(("SELECT", "WITH")):
            self.selects += 1


async def _contracts_with_lines(engine: AsyncEngine, count: int) -> None:
    """``count`` won quotes, each with three lines, through the services."""
    uow = UnitOfWork(engine, actor="tester")
    for index in range(count):
        opportunity = await services.create_opportunity(
            uow, name=f"Deal {index}", customer_name="Contoso", currency_code="EUR"
        )
        assert opportunity.id is not None
        quote = await quote_services.create_quote(uow, opportunity_id=opportunity.id, name="Q")
        assert quote.id is not None
        await add_quote_lines(engine, encode_id("Quote", quote.id))
        await quote_services.win_quote(uow, quote_id=quote.id)


async def test_listing_contracts_with_their_lines_is_a_fixed_number_of_statements(
    settings: Settings,
) -> None:
    for compiled in (False, True):
        app = create_app(dataclasses.replace(settings, compiled_reads=compiled))
        engine = app.state.engine
        if not compiled:
            await _contracts_with_lines(engine, 50)
        per_page: dict[int, int] = {}
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as http:
            for first in (5, 50):
                with SelectCounter(engine) as counter:
                    response = await http.post(
                        "/graphql", json={"query": LIST, "variables": {"first": first}}
                    )
                body = response.json()
                assert "errors" not in body, body
                nodes = body["data"]["contracts"]["nodes"]
                assert len(nodes) == first
                assert {n["lines"]["totalCount"] for n in nodes} == {3}
                per_page[first] = counter.selects
        await engine.dispose()
        assert per_page[5] == per_page[50], (compiled, per_page)
        # Plain: the page, its total, lines, opportunities, quotes; compiled: one statement.
        assert per_page[50] <= (1 if compiled else 5), (compiled, per_page)


WIN_COUNTED = """
mutation($id: ID!) {
  winQuote(input: {quoteId: $id, closeDate: "2025-06-30"}) {
    quote { id state }
    lostQuotes { id state }
    contract { id state lines(first: 50) { totalCount nodes { id amount } } }
    errors { __typename }
  }
}"""


async def test_winning_costs_the_same_statements_for_0_3_and_30_lines(
    settings: Settings,
) -> None:
    app = create_app(settings)
    engine = app.state.engine
    uow = UnitOfWork(engine, actor="tester")
    per_size: dict[int, int] = {}
    for size in (0, 3, 30):
        opportunity = await services.create_opportunity(
            uow, name="Deal", customer_name="Contoso", currency_code="EUR"
        )
        assert opportunity.id is not None
        for _ in range(2):
            quote = await quote_services.create_quote(uow, opportunity_id=opportunity.id, name="Q")
        assert quote.id is not None
        await add_quote_lines(engine, encode_id("Quote", quote.id), (LINES * 10)[:size])
        per_size[size], result = await statements_of(
            app, WIN_COUNTED, "winQuote", id=encode_id("Quote", quote.id)
        )
        assert result["contract"]["lines"]["totalCount"] == size
        assert len(result["lostQuotes"]) == 1
    await engine.dispose()
    print(f"winQuote statements by number of lines: {per_size}")
    assert len(set(per_size.values())) == 1, per_size
    # The lock, the quote, the close records, the quotes, the contract, its lines (and
    # SQLite's BEGIN IMMEDIATE).
    assert per_size[3] <= 7, per_size


async def test_line_money_keeps_every_digit_on_both_engines(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    """Regression: 0004 first stored line and contract money as floats (SQLite NUMERIC)."""
    opportunity = await create_opportunity(gql)
    quote = await create_quote(gql, opportunity["id"], totalAmount="123456789012345.6789")
    big = (
        "Big",
        BillingMethod.FIXED_PRICE,
        None,
        "1",
        "123456789012345.6789",
        "0.0001",
        "123456789012345.6788",
    )
    await add_quote_lines(engine, quote["id"], [big])
    contract = ok(await gql(WIN, input={"quoteId": quote["id"]}), "winQuote")["contract"]
    read = (await gql(CONTRACT, id=contract["id"]))["data"]["contract"]
    # The quote's total is the sum of its lines: the entered ...6789 gave way to ...6788.
    assert read["totalAmount"] == "123456789012345.6788"
    [line] = read["lines"]["nodes"]
    assert (line["unitPrice"], line["discount"], line["amount"]) == (
        "123456789012345.6789",
        "0.0001",
        "123456789012345.6788",
    )


PRICED = """
query($n: Int) {
  contracts(first: $n) {
    nodes { id opportunity { id contracts(first: 2) { nodes { id } } } lines(first: 4) {
      nodes { id } } }
  }
}"""


async def test_the_contract_connections_are_priced_by_their_page_sizes(
    gql: GraphQLClient,
) -> None:
    body = await gql(PRICED, n=5)
    # 1 for the connection; per contract: itself, its opportunity, that one's contracts
    # connection with 2 contracts, the lines connection with 4 lines.
    per_contract = 1 + (1 + 1 + 2) + (1 + 4)
    assert body["extensions"]["cost"]["requested"] == 1 + 5 * per_contract
