"""ASGI messages for calling an app directly, without an HTTP client (tests and bench)."""

from __future__ import annotations

from typing import Any


def graphql_post_scope() -> dict[str, Any]:
    """The ASGI scope of a JSON POST to /graphql."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1234),
        "server": ("test", 80),
        "state": {},
    }
