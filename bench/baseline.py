"""The raw baseline: a minimal Starlette app on asyncpg, no GraphQL, no ORM.

It answers the benchmark's operations (bench/scenarios.py), chosen by ``operationName``, with
the SQL a careful engineer would write by hand, and returns the data the service returns for
the same document (bench/run.py checks that before the load):

- R1 and R2: one statement each; PostgreSQL builds the whole nested JSON (json_build_object,
  json_agg), Python only wraps it in ``{"data": ...}``.
- W1, W2, W3: one transaction of four statements: BEGIN; an UPDATE that bumps the
  opportunity's version and so takes its row lock first (as the service does), returning its
  state and its number of open quotes; one statement of data-modifying CTEs that does the whole
  write set-based (UPDATE ... RETURNING, INSERT ... SELECT); COMMIT. The payload is built from
  what the statements returned.

It checks that a bearer token is present, but does not verify it (the service's check is a
cached hash comparison). Run as ``uvicorn baseline:app --app-dir bench --workers N`` with
BASELINE_DSN set (a libpq URL); BASELINE_POOL_SIZE defaults to 10, as the service's
DB_POOL_SIZE.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Any

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

CLOSE_DATE = date(2025, 6, 30)  # the closeDate in bench/scenarios.py's mutations
ACTOR = "bench"
OPEN_STATES = "('DRAFT', 'ACTIVE')"


def gid(type_name: str, column: str) -> str:
    """SQL for the Relay global id: unpadded URL-safe base64 of "<Type>:<id>"."""
    return (
        f"rtrim(translate(encode(convert_to('{type_name}:' || {column}, 'UTF8'), 'base64'), "
        "'+/', '-_'), '=')"
    )


TREE = f"""json_build_object(
    'id', {gid("Opportunity", "o.id")}, 'name', o.name, 'customerName', o.customer_name,
    'currencyCode', o.currency_code, 'estimatedRevenue', o.estimated_revenue::text,
    'estimatedCloseDate', o.estimated_close_date, 'state', o.state,
    'statusReason', o.status_reason, 'forecastCategory', o.forecast_category,
    'actualRevenue', o.actual_revenue::text, 'actualCloseDate', o.actual_close_date,
    'description', o.description, 'version', o.version,
    'quotes', json_build_object('nodes', (
        SELECT coalesce(json_agg(x.item ORDER BY x.id), '[]'::json) FROM (
            SELECT q.id, json_build_object(
                'id', {gid("Quote", "q.id")}, 'quoteNumber', q.quote_number,
                'revisionNumber', q.revision_number, 'name', q.name,
                'totalAmount', q.total_amount::text, 'state', q.state,
                'statusReason', q.status_reason, 'isOpen', q.state IN {OPEN_STATES},
                'closedOn', q.closed_on, 'version', q.version,
                'closeRecord', CASE WHEN qc.id IS NOT NULL THEN json_build_object(
                    'id', {gid("QuoteClose", "qc.id")}, 'statusReason', qc.status_reason,
                    'closeDate', qc.close_date, 'description', qc.description,
                    'batchId', qc.batch_id) END) AS item
            FROM quote q LEFT JOIN quote_close qc ON qc.quote_id = q.id
            WHERE q.opportunity_id = o.id ORDER BY q.id LIMIT 10) x)),
    'closeHistory', (
        SELECT coalesce(json_agg(json_build_object(
            'id', {gid("OpportunityClose", "c.id")}, 'outcome', c.outcome,
            'statusReason', c.status_reason, 'actualRevenue', c.actual_revenue::text,
            'closeDate', c.close_date, 'description', c.description, 'state', c.state,
            'competitor', CASE WHEN k.id IS NOT NULL THEN json_build_object(
                'id', {gid("Competitor", "k.id")}, 'name', k.name) END)
            ORDER BY c.id DESC), '[]'::json)
        FROM opportunity_close c LEFT JOIN competitor k ON k.id = c.competitor_id
        WHERE c.opportunity_id = o.id))"""

R1_SQL = f"SELECT {TREE}::text FROM opportunity o WHERE o.id = $1"
# R2: by estimated close date, earliest first, those without one last, ties by id.
R2_SQL = f"""SELECT coalesce(json_agg({TREE}
    ORDER BY o.estimated_close_date ASC NULLS LAST, o.id ASC), '[]'::json)::text
FROM (SELECT * FROM opportunity WHERE state = 'OPEN'
      ORDER BY estimated_close_date ASC NULLS LAST, id ASC LIMIT 50) o"""

LOCK_SQL = f"""UPDATE opportunity SET version = version + 1, modified_at = now(), modified_by = $2
WHERE id = $1
RETURNING state, version,
  (SELECT count(*) FROM quote WHERE opportunity_id = $1 AND state IN {OPEN_STATES}) AS open"""

CLOSE_QUOTES_CTE = f"""closed AS (
    UPDATE quote SET state = 'CLOSED', status_reason = 'LOST', closed_on = $2,
        version = version + 1, modified_at = now(), modified_by = $3
    WHERE opportunity_id = $1 AND state IN {OPEN_STATES}
    RETURNING id, quote_number, revision_number, state, status_reason, closed_on, version
), records AS (
    INSERT INTO quote_close (quote_id, quote_number, revision_number, status_reason,
        close_date, description, batch_id, created_at, created_by)
    SELECT id, quote_number, revision_number, 'LOST', $2, NULL, $4, now(), $3 FROM closed
)"""

CLOSE_QUOTES_SQL = f"""WITH {CLOSE_QUOTES_CTE}
SELECT id, state, status_reason, closed_on, version FROM closed ORDER BY id"""

CLOSE_OPPORTUNITY_SQL = """WITH opportunity_closed AS (
    UPDATE opportunity SET state = 'LOST', status_reason = 'CANCELED',
        forecast_category = 'LOST', actual_revenue = NULL, actual_close_date = $2
    WHERE id = $1
    RETURNING id, state, status_reason, forecast_category, actual_revenue, actual_close_date,
        version
), record AS (
    INSERT INTO opportunity_close (opportunity_id, outcome, status_reason, actual_revenue,
        close_date, competitor_id, description, state, created_at, created_by)
    VALUES ($1, 'LOST', 'CANCELED', NULL, $2, NULL, NULL, 'COMPLETED', now(), $3)
    RETURNING id, outcome, status_reason, actual_revenue, close_date, state
)
SELECT o.*, r.id AS record_id, r.outcome, r.status_reason AS record_reason,
    r.actual_revenue AS record_revenue, r.close_date, r.state AS record_state
FROM opportunity_closed o, record r"""

# W3: the quotes' CTEs, then the opportunity's; quotes come back as rows beside the close.
CLOSE_ALL_SQL = f"""WITH {CLOSE_QUOTES_CTE},
{CLOSE_OPPORTUNITY_SQL.removeprefix("WITH ").split("SELECT o.*")[0]}
SELECT o.*, r.id AS record_id, r.outcome, r.status_reason AS record_reason,
    r.actual_revenue AS record_revenue, r.close_date, r.state AS record_state,
    coalesce((SELECT json_agg(json_build_object('id', {gid("Quote", "q.id")}, 'state', q.state,
        'statusReason', q.status_reason, 'closedOn', q.closed_on, 'version', q.version)
        ORDER BY q.id) FROM closed q), '[]'::json)::text AS quotes
FROM opportunity_closed o, record r"""


def global_id(type_name: str, pk: int) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")


def parse_id(value: Any, type_name: str) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except ValueError:
        return None
    name, _, pk = raw.partition(":")
    if name != type_name or not pk.isascii() or not pk.isdigit() or int(pk) > 2**31 - 1:
        return None
    return int(pk)


def json_response(payload: Any) -> Response:
    return Response(orjson.dumps(payload), media_type="application/json")


def raw_response(data: bytes) -> Response:
    return Response(data, media_type="application/json")


def failed(field: str, error: str, **empty: Any) -> Response:
    return json_response({"data": {field: {**empty, "errors": [{"__typename": error}]}}})


class Connection(asyncpg.Connection):  # type: ignore[misc]
    """No reset query on release: this app leaves no session state (asyncpg's default reset
    sends four statements, advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL, per request)."""

    def get_reset_query(self) -> str:
        return ""


async def r1(pool: asyncpg.Pool, variables: dict[str, Any]) -> Response:
    pk = parse_id(variables.get("id"), "Opportunity")
    tree = await pool.fetchval(R1_SQL, pk) if pk is not None else None
    body = tree.encode() if tree is not None else b"null"
    return raw_response(b'{"data":{"opportunity":' + body + b"}}")


async def r2(pool: asyncpg.Pool, variables: dict[str, Any]) -> Response:
    nodes: str = await pool.fetchval(R2_SQL)
    return raw_response(b'{"data":{"opportunities":{"nodes":' + nodes.encode() + b"}}}")


def closed_opportunity(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": global_id("Opportunity", row["id"]),
        "state": row["state"],
        "statusReason": row["status_reason"],
        "forecastCategory": row["forecast_category"],
        "actualRevenue": None if row["actual_revenue"] is None else str(row["actual_revenue"]),
        "actualCloseDate": row["actual_close_date"],
        "version": row["version"],
    }


def close_record(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": global_id("OpportunityClose", row["record_id"]),
        "outcome": row["outcome"],
        "statusReason": row["record_reason"],
        "actualRevenue": None if row["record_revenue"] is None else str(row["record_revenue"]),
        "closeDate": row["close_date"],
        "state": row["record_state"],
    }


async def close_opportunity(
    pool: asyncpg.Pool, variables: dict[str, Any], *, close_open_quotes: bool
) -> Response:
    field = "closeOpportunity"
    empty: dict[str, Any] = {"opportunity": None, "opportunityClose": None}
    if close_open_quotes:
        empty["closedQuotes"] = []
    pk = parse_id(variables.get("id"), "Opportunity")
    if pk is None:
        return failed(field, "NotFoundError", **empty)
    async with pool.acquire() as connection, connection.transaction():
        locked = await connection.fetchrow(LOCK_SQL, pk, ACTOR)
        if locked is None:
            return failed(field, "NotFoundError", **empty)
        if locked["state"] != "OPEN":
            return failed(field, "OpportunityAlreadyClosedError", **empty)
        if not close_open_quotes and locked["open"]:
            return failed(field, "OpportunityHasOpenQuotesError", **empty)
        if close_open_quotes:
            row = await connection.fetchrow(CLOSE_ALL_SQL, pk, CLOSE_DATE, ACTOR, str(uuid.uuid4()))
        else:
            row = await connection.fetchrow(CLOSE_OPPORTUNITY_SQL, pk, CLOSE_DATE, ACTOR)
    payload: dict[str, Any] = {
        "opportunity": closed_opportunity(row),
        "opportunityClose": close_record(row),
    }
    if close_open_quotes:
        payload["closedQuotes"] = orjson.Fragment(row["quotes"])
    payload["errors"] = []
    return json_response({"data": {field: payload}})


async def w1(pool: asyncpg.Pool, variables: dict[str, Any]) -> Response:
    return await close_opportunity(pool, variables, close_open_quotes=False)


async def w3(pool: asyncpg.Pool, variables: dict[str, Any]) -> Response:
    return await close_opportunity(pool, variables, close_open_quotes=True)


async def w2(pool: asyncpg.Pool, variables: dict[str, Any]) -> Response:
    field = "closeQuotes"
    pk = parse_id(variables.get("id"), "Opportunity")
    if pk is None:
        return failed(field, "NotFoundError", opportunity=None, closedQuotes=[])
    async with pool.acquire() as connection, connection.transaction():
        locked = await connection.fetchrow(LOCK_SQL, pk, ACTOR)
        if locked is None:
            return failed(field, "NotFoundError", opportunity=None, closedQuotes=[])
        if locked["state"] != "OPEN":
            return failed(field, "OpportunityAlreadyClosedError", opportunity=None, closedQuotes=[])
        rows = await connection.fetch(CLOSE_QUOTES_SQL, pk, CLOSE_DATE, ACTOR, str(uuid.uuid4()))
    payload = {
        "opportunity": {"id": global_id("Opportunity", pk), "version": locked["version"]},
        "closedQuotes": [
            {
                "id": global_id("Quote", row["id"]),
                "state": row["state"],
                "statusReason": row["status_reason"],
                "closedOn": row["closed_on"],
                "version": row["version"],
            }
            for row in rows
        ],
        "errors": [],
    }
    return json_response({"data": {field: payload}})


HANDLERS = {"R1": r1, "R2": r2, "W1": w1, "W2": w2, "W3": w3}


async def graphql(request: Request) -> Response:
    if not request.headers.get("authorization", "").startswith("Bearer "):
        return json_response({"errors": [{"message": "Unauthenticated."}]})
    body = orjson.loads(await request.body())
    handler = HANDLERS.get(body.get("operationName"))
    if handler is None:
        return json_response({"data": {"__typename": "Query"}})
    pool: asyncpg.Pool = request.app.state.pool
    return await handler(pool, body.get("variables") or {})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    size = int(os.environ.get("BASELINE_POOL_SIZE", "10"))
    app.state.pool = await asyncpg.create_pool(
        os.environ["BASELINE_DSN"], min_size=size, max_size=size, connection_class=Connection
    )
    try:
        yield
    finally:
        await app.state.pool.close()


app = Starlette(routes=[Route("/graphql", graphql, methods=["POST"])], lifespan=lifespan)
