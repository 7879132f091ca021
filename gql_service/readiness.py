"""The readiness probe: does the database answer within the readiness timeout?"""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gql_service import deadlines
from gql_service.outages import OutageLog

# The deadline cuts off an unanswered round trip at the timeout; this margin past it bounds only
# a wait for a pooled connection, which can be cancelled cleanly.
POOL_WAIT_MARGIN_SECONDS = 0.25


async def database_ready(engine: AsyncEngine, *, timeout_ms: int, outages: OutageLog) -> bool:
    """True when ``SELECT 1`` answers in time; otherwise one (rate-limited) log line."""
    seconds = timeout_ms / 1000
    try:
        with deadlines.deadline(seconds):
            async with asyncio.timeout(seconds + POOL_WAIT_MARGIN_SECONDS):
                async with engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
    except Exception as exc:
        outages.report(exc, request_id="readyz")
        return False
    return True
