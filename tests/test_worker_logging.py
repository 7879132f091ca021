"""Every worker process logs its operations and the tracebacks behind masked errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gql_service.settings import Settings

REQUESTS = 24
COUNT = "query Count { competitors { totalCount } }"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_ready(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()  # pragma: no cover - diagnostics for a server that never came up
    process.wait()  # pragma: no cover
    raise RuntimeError(log.read_text())  # pragma: no cover


# PostgreSQL: a missing table there is an ordinary unexpected error, masked and logged.
@pytest.mark.parametrize("settings", ["postgres"], indirect=True)
async def test_two_workers_log_every_operation_and_masked_tracebacks(
    settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    port = free_port()
    log_path = tmp_path / "server.log"
    env = {**os.environ, "DATABASE_URL": settings.database_url, "LOG_LEVEL": "INFO"}
    command = [sys.executable, "-m", "gql_service", "serve", "--port", str(port), "--workers", "2"]
    base = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        try:
            wait_until_ready(base, process, log_path)
            # A fresh connection per request, so that both workers get some.
            for _ in range(REQUESTS):
                response = httpx.post(f"{base}/graphql", json={"query": COUNT}, timeout=30)
                assert response.status_code == 200
            async with engine.begin() as connection:
                await connection.execute(text("ALTER TABLE competitor RENAME TO competitor_gone"))
            broken = httpx.post(f"{base}/graphql", json={"query": COUNT}, timeout=30).json()
        finally:
            process.terminate()
            process.wait(timeout=30)
    output = log_path.read_text()

    operations = [line for line in output.splitlines() if "gql_service.operations" in line]
    assert len(operations) == REQUESTS + 1
    assert all("operation=Count type=query" in line for line in operations)
    assert broken["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    request_id = broken["errors"][0]["extensions"]["requestId"]
    assert f"ERROR gql_service.errors: unexpected error [request {request_id}]" in output
    assert "Traceback (most recent call last)" in output
