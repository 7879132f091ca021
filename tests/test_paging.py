"""Cursor paging walks every list forwards and backwards: every row once, in order, on ties."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import GraphQLClient
from tests.operations import (
    create_competitor,
    create_opportunity,
    create_quote,
)

PAGE = """
query($first: Int, $after: String, $last: Int, $before: String, $order: OpportunityOrder) {
  opportunities(first: $first, after: $after, last: $last, before: $before, orderBy: $order) {
    totalCount
    edges { cursor node { id name createdAt modifiedAt estimatedCloseDate estimatedRevenue
                          actualCloseDate } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""

QUOTES_PAGE = """
query($id: ID!, $first: Int, $after: String) {
  opportunity(id: $id) {
    quotes(first: $first, after: $after) {
      totalCount
      edges { cursor node { id } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }
}"""

COMPETITORS_PAGE = """
query($first: Int, $after: String) {
  competitors(first: $first, after: $after) {
    totalCount
    edges { cursor node { id name } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""

# Names, creation, modification and close dates chosen so that every order has ties of two
# and three; four opportunities have no estimated close date (None), interleaved by id.
NAMES = ["Beta", "Alpha", "Beta", "Gamma", "Alpha", "Beta", "Delta", "Alpha", "Gamma", "Beta"]
CREATED_GROUP = [0, 0, 1, 1, 1, 2, 3, 3, 4, 0]
MODIFIED_GROUP = [2, 1, 1, 0, 2, 0, 1, 2, 0, 1]
CLOSE_DATE_GROUP = [None, 1, None, 0, 1, None, 1, 0, None, 2]
# Amounts whose text order differs from their numeric order (SQLite stores money as text).
REVENUE = ["9.5", None, "10", "100", "9.5", None, "10", "0.25", None, "9.5"]
ACTUAL_CLOSE_GROUP = [2, None, 0, 2, None, 1, 0, None, 2, 1]
BASE = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)

FIELDS = {
    "CREATED_AT": "createdAt",
    "MODIFIED_AT": "modifiedAt",
    "NAME": "name",
    "ESTIMATED_CLOSE_DATE": "estimatedCloseDate",
    "ESTIMATED_REVENUE": "estimatedRevenue",
    "ACTUAL_CLOSE_DATE": "actualCloseDate",
}


def pk(global_id: str) -> int:
    raw = base64.urlsafe_b64decode(global_id + "=" * (-len(global_id) % 4)).decode()
    return int(raw.partition(":")[2])


async def tied_opportunities(gql: GraphQLClient, engine: AsyncEngine) -> None:
    ids = [
        pk((await create_opportunity(gql, name=name, estimatedRevenue=revenue))["id"])
        for name, revenue in zip(NAMES, REVENUE, strict=True)
    ]
    groups = zip(
        ids, CREATED_GROUP, MODIFIED_GROUP, CLOSE_DATE_GROUP, ACTUAL_CLOSE_GROUP, strict=True
    )
    async with engine.begin() as connection:
        for key, created, modified, closing, closed in groups:
            await connection.execute(
                text(
                    "UPDATE opportunity SET created_at = :c, modified_at = :m,"
                    " estimated_close_date = :d, actual_close_date = :a WHERE id = :id"
                ),
                {
                    "c": _stored(engine, BASE + timedelta(minutes=created)),
                    "m": _stored(engine, BASE + timedelta(hours=1, minutes=modified)),
                    "d": None if closing is None else (BASE + timedelta(days=closing)).date(),
                    "a": None if closed is None else (BASE - timedelta(days=closed)).date(),
                    "id": key,
                },
            )


def _stored(engine: AsyncEngine, moment: datetime) -> Any:
    # Raw SQL bypasses the column type: SQLite keeps the text SQLAlchemy would have written.
    if engine.dialect.name == "sqlite":
        return moment.replace(tzinfo=None).isoformat(sep=" ")
    return moment


async def walk_forwards(
    gql: GraphQLClient, size: int, order: dict[str, str]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    after = None
    while True:
        body = await gql(PAGE, first=size, after=after, order=order)
        assert "errors" not in body, body
        page = body["data"]["opportunities"]
        info = page["pageInfo"]
        assert info["hasPreviousPage"] is (after is not None)
        assert len(page["edges"]) <= size
        rows += [edge["node"] for edge in page["edges"]]
        if not info["hasNextPage"]:
            return rows
        assert len(page["edges"]) == size
        after = info["endCursor"]


async def walk_backwards(
    gql: GraphQLClient, size: int, order: dict[str, str]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    before = None
    while True:
        body = await gql(PAGE, last=size, before=before, order=order)
        assert "errors" not in body, body
        page = body["data"]["opportunities"]
        info = page["pageInfo"]
        assert info["hasNextPage"] is (before is not None)
        assert len(page["edges"]) <= size
        rows = [edge["node"] for edge in page["edges"]] + rows
        if not info["hasPreviousPage"]:
            return rows
        assert len(page["edges"]) == size
        before = info["startCursor"]


def in_order(rows: list[dict[str, Any]], key: str, descending: bool) -> list[dict[str, Any]]:
    """Rows by (key, id) in the direction, rows without a value last in both directions."""
    valued = [r for r in rows if r[key] is not None]
    empty = [r for r in rows if r[key] is None]
    # Money is compared as a number, never as its text.
    value = (lambda r: Decimal(r[key])) if key == "estimatedRevenue" else (lambda r: r[key])
    return sorted(valued, key=lambda r: (value(r), pk(r["id"])), reverse=descending) + sorted(
        empty, key=lambda r: pk(r["id"]), reverse=descending
    )


@pytest.mark.parametrize("field", list(FIELDS))
@pytest.mark.parametrize("direction", ["ASC", "DESC"])
async def test_paging_walks_every_order_forwards_and_backwards_over_ties(
    gql: GraphQLClient, engine: AsyncEngine, field: str, direction: str
) -> None:
    await tied_opportunities(gql, engine)
    order = {"field": field, "direction": direction}
    everything = (await gql(PAGE, first=100, order=order))["data"]["opportunities"]
    rows = [edge["node"] for edge in everything["edges"]]
    key = FIELDS[field]
    expected = in_order(rows, key, descending=direction == "DESC")
    assert len(rows) == len(NAMES)
    assert rows == expected
    assert len({r[key] for r in rows}) < len(rows), "the rows must tie on the sort key"

    for size in (1, 2, 3):
        assert await walk_forwards(gql, size, order) == expected, (size, "forwards")
        assert await walk_backwards(gql, size, order) == expected, (size, "backwards")


async def test_paging_by_the_default_order_follows_the_end_cursor(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    await tied_opportunities(gql, engine)
    query = "query($after: String) { opportunities(first: 2, after: $after) { %s } }"
    fields = "nodes { id } pageInfo { endCursor hasNextPage }"
    first = (await gql(query % fields))["data"]["opportunities"]
    second = await gql(query % fields, after=first["pageInfo"]["endCursor"])

    assert "errors" not in second, second
    assert second["data"]["opportunities"]["nodes"]
    assert not {n["id"] for n in first["nodes"]} & {
        n["id"] for n in second["data"]["opportunities"]["nodes"]
    }


async def test_quotes_of_an_opportunity_page_forwards_in_creation_order(
    gql: GraphQLClient,
) -> None:
    opportunity = await create_opportunity(gql)
    created = [(await create_quote(gql, opportunity["id"]))["id"] for _ in range(5)]

    for size in (1, 2, 3):
        seen: list[str] = []
        after = None
        while True:
            body = await gql(QUOTES_PAGE, id=opportunity["id"], first=size, after=after)
            assert "errors" not in body, body
            page = body["data"]["opportunity"]["quotes"]
            assert page["totalCount"] == 5
            assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
            seen += [edge["node"]["id"] for edge in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        assert seen == created, size


async def test_competitors_page_forwards_by_name(gql: GraphQLClient) -> None:
    names = ["Northwind", "Adventure Works", "Proseware", "Contoso", "Litware"]
    for name in names:
        await create_competitor(gql, name)

    for size in (1, 2, 3):
        seen: list[str] = []
        after = None
        while True:
            body = await gql(COMPETITORS_PAGE, first=size, after=after)
            assert "errors" not in body, body
            page = body["data"]["competitors"]
            assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
            seen += [edge["node"]["name"] for edge in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        assert seen == sorted(names), size


@pytest.mark.parametrize(
    "cursor",
    [
        '["created_at","2026-03-01T09:30:15",1]',
        '["created_at","not a time",1]',
        '["created_at",12,1]',
        '["created_at","0001-01-01T00:00:00+05:00",1]',
        '["created_at","2026-03-01T09:30:15+00:00",2147483648]',
        '["created_at","2026-03-01T09:30:15+00:00",true]',
        '["name","Beta",1]',
        '["created_at",null,1]',
    ],
)
async def test_a_forged_cursor_is_refused_with_bad_cursor(gql: GraphQLClient, cursor: str) -> None:
    forged = base64.urlsafe_b64encode(cursor.encode()).decode()

    body = await gql(PAGE, first=2, after=forged)

    assert body["errors"][0]["extensions"]["code"] == "BAD_CURSOR", body


@pytest.mark.parametrize("value", ["Be\u0000ta", "\ud800", "x" * 5000])
async def test_a_forged_name_cursor_is_refused_or_harmless(gql: GraphQLClient, value: str) -> None:
    raw = json.dumps(["name", value, 1])
    forged = base64.urlsafe_b64encode(raw.encode("utf-8", "surrogatepass")).decode()

    body = await gql(PAGE, first=2, after=forged, order={"field": "NAME", "direction": "ASC"})

    if "errors" in body:
        assert body["errors"][0]["extensions"]["code"] == "BAD_CURSOR", body
    else:
        assert body["data"]["opportunities"]["edges"] == []


async def test_opportunities_without_a_close_date_come_last_in_both_directions(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    await tied_opportunities(gql, engine)
    for direction in ("ASC", "DESC"):
        order = {"field": "ESTIMATED_CLOSE_DATE", "direction": direction}
        edges = (await gql(PAGE, first=100, order=order))["data"]["opportunities"]["edges"]
        dates = [edge["node"]["estimatedCloseDate"] for edge in edges]
        known = [d for d in dates if d is not None]
        assert dates == known + [None] * CLOSE_DATE_GROUP.count(None), direction
        assert known == sorted(known, reverse=direction == "DESC"), direction


@pytest.mark.parametrize(
    ("field", "key", "nulls"),
    [
        ("ESTIMATED_REVENUE", "estimatedRevenue", REVENUE.count(None)),
        ("ACTUAL_CLOSE_DATE", "actualCloseDate", ACTUAL_CLOSE_GROUP.count(None)),
    ],
)
async def test_revenue_and_actual_close_date_sort_as_values_with_empty_ones_last(
    gql: GraphQLClient, engine: AsyncEngine, field: str, key: str, nulls: int
) -> None:
    await tied_opportunities(gql, engine)
    for direction in ("ASC", "DESC"):
        order = {"field": field, "direction": direction}
        edges = (await gql(PAGE, first=100, order=order))["data"]["opportunities"]["edges"]
        values = [edge["node"][key] for edge in edges]
        known = [v for v in values if v is not None]
        assert values == known + [None] * nulls, direction
        as_values = [Decimal(v) for v in known] if key == "estimatedRevenue" else known
        assert as_values == sorted(as_values, reverse=direction == "DESC"), direction
    ascending = {"field": "ESTIMATED_REVENUE", "direction": "ASC"}
    edges = (await gql(PAGE, first=100, order=ascending))["data"]["opportunities"]["edges"]
    # 9.5 before 10 before 100: a number's order, not its text's.
    assert [e["node"]["estimatedRevenue"] for e in edges][:7] == [
        "0.2500",
        "9.5000",
        "9.5000",
        "9.5000",
        "10.0000",
        "10.0000",
        "100.0000",
    ]


@pytest.mark.parametrize(
    ("field", "cursor"),
    [
        ("ESTIMATED_REVENUE", '["estimated_revenue","NaN",1]'),
        ("ESTIMATED_REVENUE", '["estimated_revenue","-1.0000",1]'),
        ("ESTIMATED_REVENUE", '["estimated_revenue","1e999999999",1]'),
        ("ESTIMATED_REVENUE", '["estimated_revenue","1.00001",1]'),
        ("ESTIMATED_REVENUE", '["estimated_revenue","ten",1]'),
        ("ESTIMATED_REVENUE", '["estimated_revenue",10,1]'),
        ("ACTUAL_CLOSE_DATE", '["actual_close_date","2026-02-30",1]'),
        ("ACTUAL_CLOSE_DATE", '["estimated_close_date","2026-03-01",1]'),
    ],
)
async def test_a_forged_revenue_or_actual_close_date_cursor_is_refused_with_bad_cursor(
    gql: GraphQLClient, field: str, cursor: str
) -> None:
    forged = base64.urlsafe_b64encode(cursor.encode()).decode()
    order = {"field": field, "direction": "ASC"}

    for arguments in ({"first": 2, "after": forged}, {"last": 2, "before": forged}):
        body = await gql(PAGE, order=order, **arguments)

        assert body["errors"][0]["extensions"]["code"] == "BAD_CURSOR", body


@pytest.mark.parametrize(
    "cursor",
    [
        '["estimated_close_date","2026-13-01",1]',
        '["estimated_close_date","2026-03-01T00:00:00+00:00",1]',
        '["estimated_close_date",20260301,1]',
        '["estimated_close_date",false,1]',
        '["estimated_close_date",null,-1]',
        '["estimated_close_date",["2026-03-01"],1]',
    ],
)
async def test_a_forged_close_date_cursor_is_refused_with_bad_cursor(
    gql: GraphQLClient, cursor: str
) -> None:
    forged = base64.urlsafe_b64encode(cursor.encode()).decode()
    order = {"field": "ESTIMATED_CLOSE_DATE", "direction": "ASC"}

    for arguments in ({"first": 2, "after": forged}, {"last": 2, "before": forged}):
        body = await gql(PAGE, order=order, **arguments)

        assert body["errors"][0]["extensions"]["code"] == "BAD_CURSOR", body
