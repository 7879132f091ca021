"""CORS: a browser on an allowed origin may send trace context, language and request ids."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from gql_service.app import create_app
from gql_service.settings import Settings

ORIGIN = "https://app.example"


@pytest.fixture
async def browser(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[httpx.AsyncClient]:
    path = tmp_path / "cors.sqlite3"
    shutil.copyfile(sqlite_template, path)
    settings = Settings(database_url=f"sqlite+aiosqlite:///{path}", acting_user="tester")
    app = create_app(replace(settings, cors_origins=(ORIGIN,)))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http
    await app.state.engine.dispose()


async def test_a_preflight_asking_for_trace_context_and_request_id_is_allowed(
    browser: httpx.AsyncClient,
) -> None:
    asked = (
        "content-type, authorization, idempotency-key, accept-language, traceparent, "
        "tracestate, baggage, x-request-id"
    )
    response = await browser.options(
        "/graphql",
        headers={
            "origin": ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": asked,
        },
    )

    assert response.status_code == 200, response.text
    allowed = {h.strip() for h in response.headers["access-control-allow-headers"].split(",")}
    assert {h.strip() for h in asked.split(",")} <= {h.lower() for h in allowed}


async def test_the_browser_may_read_the_request_id(browser: httpx.AsyncClient) -> None:
    response = await browser.post(
        "/graphql",
        json={"query": "{ __typename }"},
        headers={"origin": ORIGIN, "traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"},
    )

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    exposed = {h.strip() for h in response.headers["access-control-expose-headers"].split(",")}
    assert "x-request-id" in exposed
    assert response.headers["x-request-id"]
