"""How uvicorn serves the app: bounded request heads, no server header, logging in every worker."""

from __future__ import annotations

import asyncio
import functools
import logging
import logging.config
import socket
from typing import Any

from uvicorn.config import LOGGING_CONFIG, Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gql_service import messages
from gql_service.languages import Language, header_value, negotiate
from gql_service.limits import refusal
from gql_service.settings import Settings
from gql_service.watchdog import watchdog

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def logging_config(settings: Settings) -> dict[str, Any]:
    """uvicorn's logging, plus our own loggers; applied in the supervisor and in each worker."""
    config: dict[str, Any] = {
        **LOGGING_CONFIG,
        "formatters": {**LOGGING_CONFIG["formatters"], "plain": {"format": LOG_FORMAT}},
        "handlers": {
            **LOGGING_CONFIG["handlers"],
            "plain": {
                "formatter": "plain",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            **LOGGING_CONFIG["loggers"],
            "gql_service": {
                "handlers": ["plain"],
                "level": settings.log_level.upper(),
                "propagate": False,
            },
        },
    }
    return config


def logs_access(settings: Settings) -> bool:
    """Whether LOG_LEVEL lets uvicorn's access lines (INFO) through."""
    level = logging.getLevelName(settings.log_level.upper())
    return not isinstance(level, int) or level <= logging.INFO


def configure_logging(settings: Settings) -> None:
    logging.config.dictConfig(logging_config(settings))


def _raw_response(
    status: int, reason: str, code: str, message: messages.Message, language: Language
) -> bytes:
    """The refusal the app would send, written straight to a connection the server closes."""
    body = bytes(refusal(status, code, message, language=language).body)
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-language: {language}\r\nvary: Accept-Language\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class HeadersTooLargeError(Exception):
    pass


def no_delay(transport: asyncio.BaseTransport) -> None:
    """Turn Nagle's algorithm off on a TCP connection, as uvloop does for every one.

    asyncio's loop does it only for sockets whose protocol number says TCP. With more than one
    worker, uvicorn binds the listening socket itself (protocol 0), so the connections it
    accepts kept Nagle on: the response's body, written after its head, waited for the client
    to acknowledge the head, which a client delays by up to 40 ms. On EVENT_LOOP=asyncio every
    request on a kept-alive connection took 44 ms.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits it lacks on a request's head.

    httptools buffers any number of header bytes and waits forever for the blank line that ends
    them. Here the request line and headers are capped in bytes and in count (431 and close), and
    must arrive within ``header_timeout_s`` of the connection or of the request's first byte (408
    and close); the body has its own deadline in the app.
    """

    def __init__(
        self,
        *args: Any,
        max_header_bytes: int,
        max_headers: int,
        header_timeout_s: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers
        self.header_timeout_s = header_timeout_s
        self.header_bytes = 0
        self.head_refused = False
        self.header_timer: int | None = None  # its watchdog key

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        no_delay(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.header_bytes = 0
        self._arm_header_timer()

    def on_url(self, url: bytes) -> None:
        self.header_bytes += len(url)
        if self.header_bytes > self.max_header_bytes:
            self._refuse_head()
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # (Inline, not through a method: this runs for every header of every request.)
        self.header_bytes += len(name) + len(value) + 4
        if self.header_bytes > self.max_header_bytes or len(self.headers) >= self.max_headers:
            self._refuse_head()
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if not self.head_refused:
            super().send_400_response(msg)
            return
        self.transport.write(
            _raw_response(
                431,
                "Request Header Fields Too Large",
                "REQUEST_HEADER_FIELDS_TOO_LARGE",
                messages.msg(
                    "The request line and headers exceed {maximum} bytes or {fields} fields.",
                    maximum=self.max_header_bytes,
                    fields=self.max_headers,
                ),
                self._language(),
            )
        )
        self.transport.close()

    def _language(self) -> Language:
        """The language the headers received so far ask for."""
        return negotiate(header_value(self.headers or ()))

    def _refuse_head(self) -> None:
        # Raised inside a parser callback: httptools turns it into a parser error, which
        # uvicorn answers through send_400_response.
        self.head_refused = True
        raise HeadersTooLargeError

    def _arm_header_timer(self) -> None:
        if self.header_timer is None and self.header_timeout_s > 0:
            self.header_timer = watchdog(self.loop).after(
                self.header_timeout_s, self._head_timed_out
            )

    def _disarm_header_timer(self) -> None:
        if self.header_timer is not None:
            watchdog(self.loop).forget(self.header_timer)
            self.header_timer = None

    def _head_timed_out(self) -> None:
        self.header_timer = None
        if self.transport.is_closing():
            return
        self.transport.write(
            _raw_response(
                408,
                "Request Timeout",
                "REQUEST_TIMEOUT",
                messages.msg(
                    "The request headers did not arrive within {seconds} s.",
                    seconds=f"{self.header_timeout_s:g}",
                ),
                self._language(),
            )
        )
        self.transport.close()


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config`` that every server uses."""
    return {
        "http": functools.partial(
            BoundedHttpToolsProtocol,
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
            header_timeout_s=settings.header_read_timeout_ms / 1000,
        ),
        "server_header": False,
        # Above INFO uvicorn's access lines are dropped anyway; off, it does not work out
        # their client address and quoted path for every response first.
        "access_log": logs_access(settings),
        # A WebSocket message is held to the request body's cap (uvicorn's default is 16 MiB).
        "ws_max_size": settings.max_body_bytes,
        "loop": settings.event_loop,
        "log_config": logging_config(settings),
        "log_level": settings.log_level.lower(),
    }


def server_config(app: Any, settings: Settings, **options: Any) -> Config:
    """A uvicorn ``Config`` for ``app`` with our options; ``options`` override them."""
    return Config(app, **{**uvicorn_options(settings), **options})
