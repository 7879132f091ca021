"""Every worker process logs its operations and the tracebacks behind masked errors."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gql_service.settings import Settings
from tests.subprocess_server import live_server

REQUESTS = 24
PING = "query Ping { __typename }"
COUNT = "query Count { competitors { totalCount } }"


def serve_and_post(database_url: str, log_path: Path) -> dict[str, Any]:
    """Run ``serve --workers 2``, ping it REQUESTS times and break one query; its last body."""
    with live_server(database_url, log_path, workers=2) as server:
        base = f"http://{server.host}:{server.port}"
        # A fresh connection per request, so that both workers get some.
        for _ in range(REQUESTS):
            response = httpx.post(f"{base}/graphql", json={"query": PING}, timeout=30)
            assert response.status_code == 200, log_path.read_text()
        body: dict[str, Any] = httpx.post(
            f"{base}/graphql", json={"query": COUNT}, timeout=30
        ).json()
        return body


# PostgreSQL: a missing table there is an ordinary unexpected error, masked and logged.
@pytest.mark.parametrize("settings", ["postgres"], indirect=True)
async def test_two_workers_log_every_operation_and_masked_tracebacks(
    settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("ALTER TABLE competitor RENAME TO competitor_gone"))
    log_path = tmp_path / "server.log"

    broken = await asyncio.to_thread(serve_and_post, settings.database_url, log_path)

    output = log_path.read_text()
    operations = [line for line in output.splitlines() if "gql_service.operations" in line]
    assert len(operations) == REQUESTS + 1
    assert sum("operation=Ping type=query" in line for line in operations) == REQUESTS
    assert broken["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    request_id = broken["errors"][0]["extensions"]["requestId"]
    assert f"ERROR gql_service.errors: unexpected error [request {request_id}]" in output
    assert "Traceback (most recent call last)" in output
