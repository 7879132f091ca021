"""A real uvicorn server on 127.0.0.1, in the test's event loop, and a raw HTTP/1.1 connection."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import orjson
import uvicorn

from gql_service.app import create_app
from gql_service.server import server_config
from gql_service.settings import Settings


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        value: dict[str, object] = orjson.loads(self.body)
        return value


@asynccontextmanager
async def live_server(settings: Settings) -> AsyncIterator[int]:
    """Serve a fresh app with the production uvicorn options; yields the port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    app = create_app(settings)
    # log_config=None: the test process keeps its own logging (caplog relies on it).
    config = server_config(app, settings, host="127.0.0.1", port=port, log_config=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():  # pragma: no cover - the server failed to start
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


class Connection:
    """One persistent HTTP/1.1 connection; each request must get a response on it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> RawResponse:
        head = {"host": "127.0.0.1", "content-length": str(len(body)), **(headers or {})}
        lines = "".join(f"{name}: {value}\r\n" for name, value in head.items())
        await self.send(f"{method} {path} HTTP/1.1\r\n{lines}\r\n".encode() + body)
        return await self.response()

    async def response(self) -> RawResponse:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout=30)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await asyncio.wait_for(self.reader.readexactly(length), timeout=30)
        return RawResponse(int(status_line.split()[1]), headers, body)

    async def closed_by_server(self) -> bool:
        return await asyncio.wait_for(self.reader.read(1), timeout=30) == b""

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()
