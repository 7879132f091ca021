"""The connections that uvicorn accepts on a socket it bound itself, as with several workers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest
import uvicorn
import uvloop

from gql_service.app import create_app
from gql_service.server import server_config
from gql_service.settings import Settings
from tests.live_server import Connection

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.SelectorEventLoop,
    "uvloop": uvloop.new_event_loop,
}


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_connections_on_a_socket_the_supervisor_bound_send_without_delay(
    settings: Settings, loop: str
) -> None:
    """With WORKERS > 1, uvicorn's supervisor binds the listening socket (``bind_socket``,
    protocol number 0) and each worker serves on it. asyncio's loop left Nagle's algorithm on
    for the connections accepted there, so a response's body waited behind its head for the
    client's delayed acknowledgement: 44 ms for every request of a kept-alive connection."""

    async def serve() -> tuple[int, int]:
        config = server_config(
            create_app(settings), settings, host="127.0.0.1", port=0, log_config=None
        )
        listening = config.bind_socket()
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[listening]))
        try:
            while not server.started:
                if task.done():  # pragma: no cover - the server failed to start
                    task.result()
                await asyncio.sleep(0.01)
            connection = await Connection.open(listening.getsockname()[1])
            health = await connection.request("GET", "/healthz")
            (accepted,) = server.server_state.connections
            sock = accepted.transport.get_extra_info("socket")
            no_delay = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            await connection.close()
            return health.status, no_delay
        finally:
            server.should_exit = True
            await task
            listening.close()

    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        status, no_delay = runner.run(serve())

    assert status == 200
    assert no_delay
