"""Cursor paging walks every list forwards and backwards: every row once, in order, on ties."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import GraphQLClient
from tests.operations import create_competitor, create_opportunity, create_quote

PAGE = """
query($first: Int, $after: String, $last: Int, $before: String, $order: OpportunityOrder) {
  opportunities(first: $first, after: $after, last: $last, before: $before, orderBy: $order) {
    totalCount
    edges { cursor node { id name createdAt modifiedAt } }
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

# Names, creation and modification times chosen so that every order has ties of two and three.
NAMES = ["Beta", "Alpha", "Beta", "Gamma", "Alpha", "Beta", "Delta"]
CREATED_GROUP = [0, 0, 1, 1, 1, 2, 3]
MODIFIED_GROUP = [2, 1, 1, 0, 2, 0, 1]
BASE = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)

FIELDS = {"CREATED_AT": "createdAt", "MODIFIED_AT": "modifiedAt", "NAME": "name"}


def pk(global_id: str) -> int:
    raw = base64.urlsafe_b64decode(global_id + "=" * (-len(global_id) % 4)).decode()
    return int(raw.partition(":")[2])


async def tied_opportunities(gql: GraphQLClient, engine: AsyncEngine) -> None:
    ids = [pk((await create_opportunity(gql, name=name))["id"]) for name in NAMES]
    async with engine.begin() as connection:
        for key, created, modified in zip(ids, CREATED_GROUP, MODIFIED_GROUP, strict=True):
            await connection.execute(
                text("UPDATE opportunity SET created_at = :c, modified_at = :m WHERE id = :id"),
                {
                    "c": _stored(engine, BASE + timedelta(minutes=created)),
                    "m": _stored(engine, BASE + timedelta(hours=1, minutes=modified)),
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
    expected = sorted(rows, key=lambda r: (r[key], pk(r["id"])), reverse=direction == "DESC")
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
