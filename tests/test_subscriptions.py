"""Subscriptions over graphql-transport-ws: across server processes, transactional, guarded."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gql_service import api_keys
from gql_service.announcements import Broker, Change
from gql_service.app import create_app
from gql_service.database import create_engine
from gql_service.graphql.ids import parse_id
from gql_service.languages import Language
from gql_service.messages import msg
from gql_service.settings import Settings
from gql_service.unit_of_work import UnitOfWork
from tests.live_server import live_server as in_process_server
from tests.operations import (
    CLOSE_OPPORTUNITY,
    CLOSE_QUOTES,
    CREATE_OPPORTUNITY,
    CREATE_QUOTE,
    REOPEN_OPPORTUNITY,
    UPDATE_OPPORTUNITY,
    UPDATE_QUOTE,
)
from tests.subprocess_server import live_server

PROTOCOL = "graphql-transport-ws"
LV = Language.LV
WAIT = 20.0  # seconds: a generous bound on an event's arrival, never a measure of speed

OPPORTUNITY_CHANGED = """
subscription($id: ID!) {
  opportunityChanged(id: $id) { id state statusReason openQuoteCount description version }
}"""

QUOTES_CHANGED = """
subscription($id: ID!) {
  quotesChanged(opportunityId: $id) { id name state statusReason version closeRecord { batchId } }
}"""


class Socket:
    """A graphql-transport-ws client: each operation's messages in their own queue."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.ws:
                message = json.loads(raw)
                self.queue(message.get("id", "")).put_nowait(message)

    def queue(self, op_id: str) -> asyncio.Queue[dict[str, Any]]:
        return self.queues.setdefault(op_id, asyncio.Queue())

    async def subscribe(self, op_id: str, query: str, **variables: Any) -> None:
        payload = {"query": query, "variables": variables}
        await self.ws.send(json.dumps({"type": "subscribe", "id": op_id, "payload": payload}))

    async def next(self, op_id: str, wait: float = WAIT) -> dict[str, Any]:
        return await asyncio.wait_for(self.queue(op_id).get(), wait)

    async def data(self, op_id: str, wait: float = WAIT) -> Any:
        message = await self.next(op_id, wait)
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message
        return next(iter(message["payload"]["data"].values()))


@contextlib.asynccontextmanager
async def socket(url: str, **init: Any) -> AsyncIterator[Socket]:
    async with connect(url, subprotocols=[PROTOCOL]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": init}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        assert ack == {"type": "connection_ack"}, ack
        client = Socket(ws)
        try:
            yield client
        finally:
            client.reader.cancel()


async def post(http: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    response = await http.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    payload: dict[str, Any] = next(iter(body["data"].values()))
    return payload


async def live(poke: Callable[[int], Awaitable[int]], client: Socket, op_id: str) -> None:
    """Write until the subscription shows a write, then skip what earlier writes announced.

    A subscription starts listening some time after its subscribe message; there is no
    message that says when. ``poke`` writes and returns the version the event will show.
    """
    for attempt in range(100):
        version = await poke(attempt)
        with contextlib.suppress(TimeoutError):
            shown = await client.data(op_id, wait=0.3)
            while _version(shown) != version:
                shown = await client.data(op_id)
            return
    raise AssertionError("the subscription never became live")


def _version(shown: Any) -> int:
    return int(shown[0]["version"] if isinstance(shown, list) else shown["version"])


@pytest.fixture
def servers(settings: Settings, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two server processes on one PostgreSQL database (one process on SQLite, which one
    process suffices for): the base URLs to subscribe through and to write through."""
    with live_server(settings.database_url, tmp_path / "a.log") as first:
        if settings.is_sqlite:
            base = f"{first.host}:{first.port}"
            yield base, base
            return
        with live_server(settings.database_url, tmp_path / "b.log") as second:
            yield f"{first.host}:{first.port}", f"{second.host}:{second.port}"


async def test_a_change_written_through_one_server_reaches_a_subscriber_of_the_other(
    servers: tuple[str, str],
) -> None:
    listen_at, write_at = servers
    async with httpx.AsyncClient(base_url=f"http://{write_at}", timeout=WAIT) as http:
        created = await post(
            http,
            CREATE_OPPORTUNITY,
            input={"name": "Live", "customerName": "Contoso", "currencyCode": "EUR"},
        )
        opportunity = created["opportunity"]["id"]
        quote = (await post(http, CREATE_QUOTE, input={"opportunityId": opportunity, "name": "Q"}))[
            "quote"
        ]["id"]

        async def edit_opportunity(attempt: int) -> int:
            update = {"opportunityId": opportunity, "description": f"probe {attempt}"}
            payload = await post(http, UPDATE_OPPORTUNITY, input=update)
            return int(payload["opportunity"]["version"])

        async def edit_quote(attempt: int) -> int:
            payload = await post(
                http, UPDATE_QUOTE, input={"quoteId": quote, "name": f"Q{attempt}"}
            )
            return int(payload["quote"]["version"])

        async with socket(f"ws://{listen_at}/graphql") as client:
            await client.subscribe("o", OPPORTUNITY_CHANGED, id=opportunity)
            await live(edit_opportunity, client, "o")
            await client.subscribe("q", QUOTES_CHANGED, id=opportunity)
            await live(edit_quote, client, "q")
            assert await open_subscriptions(listen_at) == 2
            while (await client.data("o"))["version"] < _version(await _current(http, opportunity)):
                pass  # the quote edits' announcements of the opportunity

            refused = await post(
                http, CLOSE_OPPORTUNITY, input={"opportunityId": opportunity, "outcome": "LOST"}
            )
            assert refused["errors"][0]["code"] == "OPPORTUNITY_HAS_OPEN_QUOTES"
            closed = await post(http, CLOSE_QUOTES, input={"opportunityId": opportunity})
            [closed_quote] = await client.data("q")
            assert (closed_quote["id"], closed_quote["state"]) == (quote, "CLOSED")
            assert closed_quote["closeRecord"]["batchId"]
            shown = await client.data("o")
            assert shown["openQuoteCount"] == 0
            assert shown["version"] == closed["opportunity"]["version"]

            lost = await post(
                http,
                CLOSE_OPPORTUNITY,
                input={"opportunityId": opportunity, "outcome": "LOST", "statusReason": "OUT_SOLD"},
            )
            shown = await client.data("o")
            assert (shown["state"], shown["statusReason"]) == ("LOST", "OUT_SOLD")
            assert shown["version"] == lost["opportunity"]["version"]

            await post(http, REOPEN_OPPORTUNITY, input={"opportunityId": opportunity})
            assert (await client.data("o"))["state"] == "OPEN"
            # Neither the refused close, nor the close and the reopen, touched a quote.
            assert client.queue("q").empty()
        for _ in range(100):  # the server ends the closed socket's subscriptions shortly
            if await open_subscriptions(listen_at) == 0:
                break
            await asyncio.sleep(0.05)
        assert await open_subscriptions(listen_at) == 0


async def open_subscriptions(base: str) -> int:
    """The gql_subscriptions_open gauge that the server at ``base`` exposes on /metrics."""
    async with httpx.AsyncClient(base_url=f"http://{base}", timeout=WAIT) as http:
        exposition = (await http.get("/metrics")).text
    [line] = [x for x in exposition.splitlines() if x.startswith("gql_subscriptions_open ")]
    return int(float(line.split()[1]))


async def _current(http: httpx.AsyncClient, opportunity: str) -> dict[str, Any]:
    response = await http.post(
        "/graphql",
        json={
            "query": "query($id: ID!) { opportunity(id: $id) { version } }",
            "variables": {"id": opportunity},
        },
    )
    current: dict[str, Any] = response.json()["data"]["opportunity"]
    return current


def _stamp(modified_at: str) -> datetime:
    return datetime.fromisoformat(modified_at)


MODIFIED = """
mutation($input: UpdateOpportunityInput!) {
  updateOpportunity(input: $input) { opportunity { id version modifiedAt } errors { __typename } }
}"""

REFUSED_CLOSE = """
mutation($id: ID!) {
  closeOpportunity(input: {opportunityId: $id, outcome: WON}) {
    errors { ... on UserError { code } }
  }
}"""

REFUSED_REOPEN = """
mutation($id: ID!) {
  reopenOpportunity(input: {opportunityId: $id}) { errors { ... on UserError { code } } }
}"""


async def test_a_write_that_rolls_back_after_its_change_announces_nothing(
    settings: Settings,
) -> None:
    """The refused close and reopen lock (and, on PostgreSQL, NOTIFY) before they are refused:
    the first announcement a subscriber gets is the committed edit that follows them."""
    app = create_app(settings)
    broker: Broker = app.state.broker
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        created = await post(
            http,
            CREATE_OPPORTUNITY,
            input={"name": "Rollback", "customerName": "Contoso", "currencyCode": "EUR"},
        )
        opportunity = created["opportunity"]["id"]
        await post(http, CREATE_QUOTE, input={"opportunityId": opportunity, "name": "Open"})
        parsed = parse_id(opportunity)
        assert parsed is not None
        pk = parsed[1]

        async with broker.subscribe(pk) as changes:
            refused = await post(http, REFUSED_CLOSE, id=opportunity)
            assert refused["errors"] == [{"code": "OPPORTUNITY_HAS_OPEN_QUOTES"}]
            refused = await post(http, REFUSED_REOPEN, id=opportunity)
            assert refused["errors"] == [{"code": "OPPORTUNITY_NOT_CLOSED"}]
            edited = await post(
                http, MODIFIED, input={"opportunityId": opportunity, "description": "committed"}
            )
            first = await asyncio.wait_for(anext(changes), WAIT)
    await broker.close()
    await app.state.engine.dispose()
    assert first == Change(pk, _stamp(edited["opportunity"]["modifiedAt"]))


async def test_subscriptions_need_credentials_and_the_read_scope_in_production(
    settings: Settings,
) -> None:
    engine = create_engine(settings)
    uow = UnitOfWork(engine, actor="tester")
    reader = await api_keys.create_api_key(uow, name="reader", scopes=["opportunities:read"])
    writer = await api_keys.create_api_key(uow, name="writer", scopes=["opportunities:write"])
    production = dataclasses.replace(settings, environment="production", api_keys_enabled=True)
    async with in_process_server(production) as port:
        url = f"ws://127.0.0.1:{port}/graphql"
        for init in (
            {},
            {"Authorization": "Bearer gqs_0000000000000000_nonsense"},
            {"Authorization": f"Bearer {writer.token}"},
            {"Authorization": ["not", "a", "string"]},
        ):
            async with connect(url, subprotocols=[PROTOCOL]) as ws:  # type: ignore[list-item]
                await ws.send(json.dumps({"type": "connection_init", "payload": init}))
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), WAIT)
                assert closed.value.rcvd is not None
                assert closed.value.rcvd.code == 4403, init
        async with socket(url, authorization=f"Bearer {reader.token}"):
            pass
    await engine.dispose()


async def test_bad_input_gets_protocol_errors_and_the_limits_hold(settings: Settings) -> None:
    limited = dataclasses.replace(
        settings,
        max_subscriptions_per_connection=2,
        max_websocket_connections=3,
        connection_init_timeout_ms=300,
        max_query_depth=3,
    )
    async with in_process_server(limited) as port:
        url = f"ws://127.0.0.1:{port}/graphql"

        async def closed_with(*messages: str | bytes) -> int:
            async with connect(url, subprotocols=[PROTOCOL]) as ws:  # type: ignore[list-item]
                for message in messages:
                    await ws.send(message)
                await asyncio.wait_for(ws.wait_closed(), WAIT)
                assert ws.close_code is not None
                return ws.close_code

        init = json.dumps({"type": "connection_init"})
        assert await closed_with("[1, 2]") == 4400
        assert await closed_with("not json") == 4400
        assert await closed_with(b"\x00binary") == 4400
        assert await closed_with("[" * 100 + "]" * 100) == 4400
        assert await closed_with(json.dumps({"type": 7})) == 4400
        assert await closed_with(init, json.dumps({"type": "subscribe", "id": ["x"]})) == 4400
        assert await closed_with(init, json.dumps({"type": "subscribe", "id": "x" * 65})) == 4400
        assert (
            await closed_with(init, json.dumps({"type": "subscribe", "id": "1", "payload": 5}))
            == 4400
        )
        assert await closed_with(init, init) == 4429
        assert await closed_with() == 4408  # no connection_init within the timeout
        subscribe = {"type": "subscribe", "id": "1", "payload": {"query": "subscription {"}}
        assert await closed_with(json.dumps(subscribe)) == 4401  # before connection_init

        async with socket(url) as client:
            deep = (
                'subscription { opportunityChanged(id: "x") '
                "{ quotes { nodes { opportunity { id } } } } }"
            )
            await client.subscribe("deep", deep)
            [error] = (await client.next("deep"))["payload"]
            assert error["extensions"]["code"] == "QUERY_TOO_DEEP"
            await client.subscribe("query", "{ competitors { totalCount } }")
            [error] = (await client.next("query"))["payload"]
            assert error["extensions"]["code"] == "BAD_REQUEST"
            await client.subscribe("missing", OPPORTUNITY_CHANGED, id="T3Bwb3J0dW5pdHk6OTk5")
            [error] = (await client.next("missing"))["payload"]
            assert error["extensions"]["code"] == "NOT_FOUND"
            assert error["message"] == "No opportunity has this id."
            # A browser cannot send headers with the handshake: connection_init names the language.
            async with socket(url, **{"Accept-Language": "lv"}) as latvian:
                await latvian.subscribe("missing", OPPORTUNITY_CHANGED, id="T3Bwb3J0dW5pdHk6OTk5")
                [error_lv] = (await latvian.next("missing"))["payload"]
            assert error_lv["extensions"] == error["extensions"]
            assert error_lv["message"] == str(msg("No opportunity has this id.").translate(LV))
            assert error_lv["message"] != error["message"]

            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                created = await post(
                    http,
                    CREATE_OPPORTUNITY,
                    input={"name": "Limits", "customerName": "C", "currencyCode": "EUR"},
                )
                opportunity = created["opportunity"]["id"]
                over_http = await http.post(
                    "/graphql",
                    json={"query": OPPORTUNITY_CHANGED, "variables": {"id": opportunity}},
                )
                assert over_http.status_code < 500, over_http.text
                assert over_http.json()["errors"]

            await client.subscribe("a", OPPORTUNITY_CHANGED, id=opportunity)
            await client.subscribe("b", QUOTES_CHANGED, id=opportunity)
            await client.subscribe("c", OPPORTUNITY_CHANGED, id=opportunity)
            [error] = (await client.next("c"))["payload"]
            assert error["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"

            async with socket(url), socket(url):
                with pytest.raises(InvalidStatus) as refused:
                    async with connect(url, subprotocols=[PROTOCOL]):  # type: ignore[list-item]
                        pass
                assert refused.value.response.status_code == 503
