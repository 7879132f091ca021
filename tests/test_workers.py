"""The invariant holds across several server worker processes, over real HTTP."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gql_service.settings import Settings
from tests.operations import CLOSE_OPPORTUNITY, CREATE_OPPORTUNITY, CREATE_QUOTE, WIN_QUOTE

pytestmark = pytest.mark.race

ROUNDS = int(os.environ.get("WORKER_RACE_ROUNDS", "40"))
WORKERS = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = (tmp_path / "server.log").open("wb")
    env = {**os.environ, "DATABASE_URL": settings.database_url, "LOG_LEVEL": "WARNING"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gql_service",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(WORKERS),
        ],
        env=env,
        stdout=log,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:  # pragma: no cover - diagnostics for a server that never came up
        process.kill()
        process.wait()
        log.close()
        raise RuntimeError((tmp_path / "server.log").read_text())
    try:
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


async def post(http: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    response = await http.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body["data"]


async def test_races_across_worker_processes_keep_the_invariant(
    server: str, engine: AsyncEngine
) -> None:
    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(base_url=server, limits=limits, timeout=60) as http:
        for _ in range(ROUNDS):
            created = [
                (
                    await post(
                        http,
                        CREATE_OPPORTUNITY,
                        input={"name": "Race", "customerName": "C", "currencyCode": "EUR"},
                    )
                )["createOpportunity"]["opportunity"]["id"]
                for _ in range(2)
            ]
            quote = (
                await post(http, CREATE_QUOTE, input={"opportunityId": created[1], "name": "Q"})
            )["createQuote"]["quote"]["id"]
            await asyncio.gather(
                post(
                    http, CLOSE_OPPORTUNITY, input={"opportunityId": created[0], "outcome": "WON"}
                ),
                post(http, CREATE_QUOTE, input={"opportunityId": created[0], "name": "Late"}),
                post(
                    http,
                    CLOSE_OPPORTUNITY,
                    input={"opportunityId": created[1], "outcome": "LOST", "closeOpenQuotes": True},
                ),
                post(http, CREATE_QUOTE, input={"opportunityId": created[1], "name": "Late"}),
                post(http, WIN_QUOTE, input={"quoteId": quote}),
            )

    async with engine.connect() as connection:
        violations = (
            await connection.execute(
                text(
                    "SELECT count(*) FROM opportunity o JOIN quote q ON q.opportunity_id = o.id "
                    "WHERE o.state IN ('WON', 'LOST') AND q.state IN ('DRAFT', 'ACTIVE')"
                )
            )
        ).scalar()
        closed = (
            await connection.execute(text("SELECT count(*) FROM opportunity WHERE state <> 'OPEN'"))
        ).scalar()
    assert violations == 0
    assert closed
    assert closed > 0
