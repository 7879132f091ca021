"""The real service under uvicorn in a subprocess, as ``python -m gql_service serve`` runs it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    """A running server: its address, process and log file (stdout and stderr together)."""

    host: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    log_offset: int = 0

    def new_log(self) -> str:
        """The log written since the previous call."""
        with self.log_path.open("rb") as log:
            log.seek(self.log_offset)
            chunk = log.read()
        # Keep a partial last line for the next call.
        cut = chunk.rfind(b"\n") + 1
        self.log_offset += cut
        return chunk[:cut].decode("utf-8", errors="replace")


@contextlib.contextmanager
def live_server(
    database_url: str, log_path: Path, *, workers: int = 1, **env: str
) -> Iterator[LiveServer]:
    """Serve ``database_url`` (already migrated) on a free port until the block ends."""
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "GQL_ENV": "development",
        "LOG_LEVEL": "INFO",
        **env,
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "gql_service", "serve"),
                *("--port", str(port), "--workers", str(workers)),
            ],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer("127.0.0.1", port, process, log_path)
    try:
        _wait_until_ready(server)
        server.new_log()  # start-up lines are not answers to anything we send
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:  # pragma: no cover - a server that ignores SIGTERM
            process.kill()
            process.wait()


# Several spawned workers each import the whole service; on a loaded 2-core machine that has
# taken over 30 s. The wait ends as soon as /readyz answers, so a long bound costs nothing.
START_TIMEOUT_S = 90


def _wait_until_ready(server: LiveServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            url = f"http://{server.host}:{server.port}/readyz"
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server did not start:\n{server.log_path.read_text()}")
