"""Slow and abusive clients, and the headers every response carries."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gql_service.app import create_app
from gql_service.limits import ConcurrencyLimit
from gql_service.security_headers import graphiql_policy
from gql_service.settings import Settings
from tests.live_server import Connection, live_server

COUNT = b'{"query": "{ competitors { totalCount } }"}'
JSON = {"content-type": "application/json"}

# What the server itself does needs one engine only.
SERVER_ON_SQLITE = pytest.mark.parametrize("settings", ["sqlite"], indirect=True)


@SERVER_ON_SQLITE
async def test_a_body_slower_than_the_deadline_is_cut_off_with_408(settings: Settings) -> None:
    async with live_server(replace(settings, body_read_timeout_ms=300)) as port:
        connection = await Connection.open(port)
        await connection.send(
            b"POST /graphql HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n" % len(COUNT) + COUNT[:10]
        )
        response = await connection.response()
        closed = await connection.closed_by_server()
        await connection.close()

    assert response.status == 408
    assert response.json()["errors"][0]["extensions"]["code"] == "REQUEST_TIMEOUT"  # type: ignore[index]
    assert response.headers["connection"] == "close"
    assert closed


@SERVER_ON_SQLITE
async def test_a_body_within_the_deadline_is_served(settings: Settings) -> None:
    async with live_server(replace(settings, body_read_timeout_ms=5_000)) as port:
        connection = await Connection.open(port)
        await connection.send(
            b"POST /graphql HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n" % len(COUNT) + COUNT[:10]
        )
        await asyncio.sleep(0.1)
        await connection.send(COUNT[10:])
        response = await connection.response()
        await connection.close()

    assert response.status == 200


@SERVER_ON_SQLITE
async def test_oversized_or_too_many_headers_get_431_and_a_closed_connection(
    settings: Settings,
) -> None:
    many = {f"x-h{i}": "v" for i in range(120)}
    large = {"x-big": "v" * 20_000}
    async with live_server(settings) as port:
        results = []
        for headers in (many, large):
            connection = await Connection.open(port)
            response = await connection.request("GET", "/healthz", headers=headers)
            results.append((response, await connection.closed_by_server()))
            await connection.close()
        normal = await Connection.open(port)
        fine = await normal.request("GET", "/healthz", headers={f"x-h{i}": "v" for i in range(50)})
        await normal.close()

    for response, closed in results:
        assert response.status == 431
        assert response.json()["errors"][0]["extensions"]["code"] == (  # type: ignore[index]
            "REQUEST_HEADER_FIELDS_TOO_LARGE"
        )
        assert closed
    assert fine.status == 200


@SERVER_ON_SQLITE
async def test_headers_slower_than_the_deadline_get_408(settings: Settings) -> None:
    async with live_server(replace(settings, header_read_timeout_ms=300)) as port:
        connection = await Connection.open(port)
        await connection.send(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        response = await connection.response()
        closed = await connection.closed_by_server()
        await connection.close()

    assert response.status == 408
    assert closed


@SERVER_ON_SQLITE
async def test_the_server_sends_no_server_header_and_the_security_headers(
    settings: Settings,
) -> None:
    async with live_server(settings) as port:
        connection = await Connection.open(port)
        api = await connection.request("POST", "/graphql", COUNT, JSON)
        health = await connection.request("GET", "/healthz")
        await connection.close()

    for response in (api, health):
        assert "server" not in response.headers
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_refusals_carry_the_security_headers_too(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", content=b"null", headers=JSON)

    assert response.status_code == 400
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_graphiql_gets_a_policy_that_allows_its_own_scripts_only(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/graphql", headers={"accept": "text/html"})

    policy = response.headers["content-security-policy"]
    assert response.status_code == 200
    assert policy == graphiql_policy(response.text)
    assert "script-src 'self' 'sha256-" in policy
    assert "https:" not in policy  # GraphiQL's files are served by this service
    assert "http:" not in policy
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    assert "connect-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy


async def test_a_hash_only_get_from_a_browser_is_not_mistaken_for_graphiql(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(
        "/graphql",
        params={
            "extensions": '{"persistedQuery": {"version": 1, "sha256Hash": "' + "0" * 64 + '"}}'
        },
        headers={"accept": "*/*"},
    )

    assert response.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


async def test_requests_past_the_concurrency_cap_get_503_with_retry_after() -> None:
    release = asyncio.Event()
    both_in = asyncio.Event()
    entered = 0

    async def slow(_: Request) -> JSONResponse:
        nonlocal entered
        entered += 1
        if entered == 2:
            both_in.set()
        await release.wait()
        return JSONResponse({"ok": True})

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    app = ConcurrencyLimit(
        Starlette(routes=[Route("/slow", slow), Route("/healthz", healthz)]),
        max_requests=2,
        exempt=frozenset({"/healthz"}),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        held = [asyncio.create_task(http.get("/slow")) for _ in range(2)]
        await both_in.wait()
        refused = await http.get("/slow")
        health = await http.get("/healthz")
        release.set()
        done = await asyncio.gather(*held)
        after = await http.get("/slow")

    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    error = refused.json()["errors"][0]
    assert error["extensions"] == {"code": "SERVICE_UNAVAILABLE", "retryAfter": 1}
    assert health.status_code == 200
    assert [r.status_code for r in done] == [200, 200]
    assert after.status_code == 200


@SERVER_ON_SQLITE
async def test_the_app_caps_concurrent_requests_from_its_settings(settings: Settings) -> None:
    app = create_app(replace(settings, max_concurrent_requests=0))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.post("/graphql", content=COUNT, headers=JSON)
    await app.state.engine.dispose()

    assert response.status_code == 200
