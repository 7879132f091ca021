"""The benchmark's data, generated in SQL on PostgreSQL (generate_series), and write targets.

Base data set: 50 competitors; 10,000 opportunities (60% OPEN, 20% WON, 20% LOST); 50,000
quotes, five per opportunity; a quote_close row for every closed or won quote; close histories
(a COMPLETED opportunity_close for every WON and LOST opportunity, a CANCELED one before it for
every third, and a CANCELED one for some OPEN opportunities, which were closed and reopened).
The domain's invariant holds: no WON or LOST opportunity has an open (DRAFT or ACTIVE) quote;
half of the OPEN opportunities have three open quotes, the other half none.

Write targets ("pools") are fresh OPEN opportunities, each with a given number of open quotes,
created just before a write run so that every request closes a different one.
"""

from __future__ import annotations

import psycopg

OPPORTUNITIES = 10_000
QUOTES_EACH = 5
COMPETITORS = 50

# The class of opportunity g: g % 10 in 0..5 OPEN, 6..7 WON, 8..9 LOST.
_STATE = "CASE WHEN g % 10 < 6 THEN 'OPEN' WHEN g % 10 < 8 THEN 'WON' ELSE 'LOST' END"
_REVENUE = "((g * 7919) % 1000000) + 0.25"

BASE_DATA = [
    f"""
    INSERT INTO competitor (id, name, website, notes, created_at, created_by)
    SELECT g, 'Competitor ' || g, 'https://competitor' || g || '.example',
           CASE WHEN g % 2 = 0 THEN 'Notes on competitor ' || g END,
           timestamptz '2024-01-01 00:00:00+00', 'bench'
    FROM generate_series(1, {COMPETITORS}) g
    """,
    f"""
    INSERT INTO opportunity (
        id, name, customer_name, currency_code, estimated_revenue, estimated_close_date, state,
        status_reason, forecast_category, actual_revenue, actual_close_date, description,
        version, created_at, created_by, modified_at, modified_by)
    SELECT g, 'Opportunity ' || g, 'Customer ' || (g % 500),
           (ARRAY['EUR', 'USD', 'GBP'])[1 + g % 3],
           {_REVENUE},
           CASE WHEN g % 17 = 0 THEN NULL ELSE date '2025-01-01' + (g * 37) % 730 END,
           {_STATE},
           CASE WHEN g % 10 < 6 THEN (CASE WHEN g % 7 = 0 THEN 'ON_HOLD' ELSE 'IN_PROGRESS' END)
                WHEN g % 10 < 8 THEN 'WON' WHEN g % 10 = 8 THEN 'OUT_SOLD' ELSE 'CANCELED' END,
           CASE WHEN g % 10 < 6
                THEN (ARRAY['PIPELINE', 'BEST_CASE', 'COMMITTED', 'OMITTED'])[1 + g % 4]
                WHEN g % 10 < 8 THEN 'WON' ELSE 'LOST' END,
           CASE WHEN g % 10 IN (6, 7) THEN {_REVENUE} END,
           CASE WHEN g % 10 >= 6 THEN date '2024-06-01' + g % 365 END,
           CASE WHEN g % 3 = 0 THEN 'Description of opportunity ' || g END,
           CASE WHEN g % 10 < 6 THEN 1 ELSE 3 END,
           timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute', 'bench',
           timestamptz '2024-01-02 00:00:00+00' + g * interval '1 minute', 'bench'
    FROM generate_series(1, {OPPORTUNITIES}) g
    """,
    # Quote k (1..5) of opportunity g. OPEN with even g: k=1 CLOSED/LOST, k=2 CLOSED/CANCELED,
    # k=3 DRAFT, k=4 ACTIVE/IN_PROGRESS, k=5 ACTIVE/OPEN. OPEN with odd g and LOST: all CLOSED.
    # WON: k=1 WON, the others CLOSED/LOST.
    f"""
    INSERT INTO quote (
        id, opportunity_id, quote_number, revision_number, name, currency_code, total_amount,
        state, status_reason, effective_from, effective_to, closed_on, version,
        created_at, created_by, modified_at, modified_by)
    SELECT (g - 1) * {QUOTES_EACH} + k, g, 'Q-' || lpad(g::text, 5, '0') || '-' || k, 0,
           'Quote ' || k || ' of opportunity ' || g, (ARRAY['EUR', 'USD', 'GBP'])[1 + g % 3],
           CASE WHEN k = 4 THEN NULL ELSE ((g * 31 + k * 1009) % 100000) + 0.5 END,
           s.state, s.reason,
           CASE WHEN k % 2 = 0 THEN date '2024-03-01' + g % 200 END,
           CASE WHEN k % 2 = 0 THEN date '2024-09-01' + g % 200 END,
           CASE WHEN s.state IN ('WON', 'CLOSED') THEN date '2024-06-01' + g % 365 END,
           CASE WHEN s.state IN ('WON', 'CLOSED') THEN 2 ELSE 1 END,
           timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute' + k * interval '1 s',
           'bench',
           timestamptz '2024-01-03 00:00:00+00' + g * interval '1 minute' + k * interval '1 s',
           'bench'
    FROM generate_series(1, {OPPORTUNITIES}) g
    CROSS JOIN generate_series(1, {QUOTES_EACH}) k
    CROSS JOIN LATERAL (
        SELECT CASE
            WHEN g % 10 < 6 AND g % 2 = 0 AND k = 3 THEN 'DRAFT'
            WHEN g % 10 < 6 AND g % 2 = 0 AND k >= 4 THEN 'ACTIVE'
            WHEN g % 10 IN (6, 7) AND k = 1 THEN 'WON'
            ELSE 'CLOSED' END AS state,
        CASE
            WHEN g % 10 < 6 AND g % 2 = 0 AND k = 3 THEN 'IN_PROGRESS'
            WHEN g % 10 < 6 AND g % 2 = 0 AND k = 4 THEN 'IN_PROGRESS'
            WHEN g % 10 < 6 AND g % 2 = 0 AND k = 5 THEN 'OPEN'
            WHEN g % 10 IN (6, 7) AND k = 1 THEN 'WON'
            WHEN k % 2 = 0 THEN 'CANCELED'
            ELSE 'LOST' END AS reason
    ) s
    """,
    """
    INSERT INTO quote_close (
        quote_id, quote_number, revision_number, status_reason, close_date, description,
        batch_id, created_at, created_by)
    SELECT q.id, q.quote_number, q.revision_number, q.status_reason, q.closed_on,
           CASE WHEN q.id % 4 = 0 THEN 'Closed by the bench data set' END,
           md5('batch ' || q.opportunity_id)::uuid::text,
           q.modified_at, 'bench'
    FROM quote q WHERE q.state IN ('WON', 'CLOSED') ORDER BY q.id
    """,
    f"""
    INSERT INTO opportunity_close (
        opportunity_id, outcome, status_reason, actual_revenue, close_date, competitor_id,
        description, state, created_at, created_by, canceled_at, canceled_by)
    SELECT g, c.outcome, c.reason, c.revenue, c.close_date, c.competitor, c.description,
           c.state, c.created_at, 'bench', c.canceled_at, c.canceled_by
    FROM generate_series(1, {OPPORTUNITIES}) g
    CROSS JOIN LATERAL (
        -- an earlier close, canceled by a reopen: every third closed opportunity, and OPEN
        -- opportunities with g % 4 = 1
        SELECT 1 AS n, 'LOST' AS outcome, 'CANCELED' AS reason, NULL::numeric AS revenue,
               date '2024-02-01' + g % 100 AS close_date, NULL::int AS competitor,
               'First close of ' || g AS description, 'CANCELED' AS state,
               timestamptz '2024-02-01 00:00:00+00' + g * interval '1 minute' AS created_at,
               timestamptz '2024-03-01 00:00:00+00' + g * interval '1 minute' AS canceled_at,
               'bench' AS canceled_by
        WHERE (g % 10 >= 6 AND g % 3 = 0) OR (g % 10 < 6 AND g % 4 = 1)
        UNION ALL
        SELECT 2, CASE WHEN g % 10 < 8 THEN 'WON' ELSE 'LOST' END,
               CASE WHEN g % 10 < 8 THEN 'WON' WHEN g % 10 = 8 THEN 'OUT_SOLD' ELSE 'CANCELED' END,
               CASE WHEN g % 10 < 8 THEN {_REVENUE} END,
               date '2024-06-01' + g % 365,
               CASE WHEN g % 10 = 8 OR g % 5 = 1 THEN 1 + g % {COMPETITORS} END,
               CASE WHEN g % 2 = 0 THEN 'Final close of ' || g END, 'COMPLETED',
               timestamptz '2024-06-01 00:00:00+00' + g * interval '1 minute', NULL, NULL
        WHERE g % 10 >= 6
    ) c
    ORDER BY g, c.n
    """,
    "SELECT setval(pg_get_serial_sequence('competitor', 'id'), (SELECT max(id) FROM competitor))",
    "SELECT setval(pg_get_serial_sequence('opportunity', 'id'), (SELECT max(id) FROM opportunity))",
    "SELECT setval(pg_get_serial_sequence('quote', 'id'), (SELECT max(id) FROM quote))",
    # As pgbench does before its runs: otherwise autovacuum came to the freshly loaded tables
    # of each database in the first minutes of the runs (R1 at 8 connections had a p99 of
    # 1,084 ms in one run, the baseline's 135), and the copies inherit the frozen pages.
    "VACUUM (FREEZE, ANALYZE)",
]

INVARIANT = """
SELECT count(*) FROM opportunity o JOIN quote q ON q.opportunity_id = o.id
WHERE o.state IN ('WON', 'LOST') AND q.state IN ('DRAFT', 'ACTIVE')
"""

POOL = """
WITH o AS (
    INSERT INTO opportunity (
        name, customer_name, currency_code, estimated_revenue, estimated_close_date, state,
        status_reason, forecast_category, version, created_at, created_by, modified_at,
        modified_by)
    SELECT 'Pool ' || %(tag)s || ' ' || g, 'Pool customer', 'EUR', 1000.5, date '2026-12-31',
           'OPEN', 'IN_PROGRESS', 'PIPELINE', 1, now(), 'bench', now(), 'bench'
    FROM generate_series(1, %(count)s) g
    RETURNING id
), q AS (
    INSERT INTO quote (
        opportunity_id, quote_number, revision_number, name, currency_code, total_amount,
        state, status_reason, version, created_at, created_by, modified_at, modified_by)
    SELECT o.id, 'P-' || o.id || '-' || k, 0, 'Pool quote ' || k, 'EUR', 100.25,
           CASE WHEN k %% 2 = 0 THEN 'ACTIVE' ELSE 'DRAFT' END, 'IN_PROGRESS', 1,
           now(), 'bench', now(), 'bench'
    FROM o CROSS JOIN generate_series(1, %(quotes)s) k
)
SELECT id FROM o ORDER BY id
"""


def load_base_data(dsn: str) -> dict[str, int]:
    """Fill a migrated, empty database; return row counts per table."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        for statement in BASE_DATA:
            connection.execute(statement)
        broken = connection.execute(INVARIANT).fetchone()
        if broken is None or broken[0] != 0:
            raise RuntimeError("the data set breaks the invariant: a closed deal has open quotes")
        counts = {}
        for table in ("competitor", "opportunity", "quote", "quote_close", "opportunity_close"):
            row = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
            counts[table] = int(row[0]) if row else 0
    return counts


def make_pool(dsn: str, tag: str, count: int, open_quotes: int) -> list[int]:
    """``count`` fresh OPEN opportunities with ``open_quotes`` open quotes each; their ids."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        rows = connection.execute(
            POOL, {"tag": tag, "count": count, "quotes": open_quotes}
        ).fetchall()
        connection.execute("ANALYZE opportunity, quote")
    return [int(row[0]) for row in rows]
