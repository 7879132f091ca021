"""Security headers on every response, and the Content-Security-Policy that GraphiQL needs."""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# An API answers JSON: nothing in it may run, load or be framed.
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "content-security-policy": API_POLICY,
}

# As raw ASGI header pairs, for the middleware to append without parsing the response's.
RAW_HEADERS = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in HEADERS.items()]

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def graphiql_policy(html: str) -> str:
    """A CSP that lets this GraphiQL page run and nothing else.

    Its inline scripts are allowed by their SHA-256 (no 'unsafe-inline' for scripts); its
    libraries are served by this service ('self'), pinned by their SRI hashes; no other host.
    Styles stay 'unsafe-inline' because GraphiQL's React components set style attributes.
    """
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
        for s in _INLINE_SCRIPT.findall(html)
    )
    return (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "font-src data:; img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )


class SecurityHeaders:
    """Add ``HEADERS`` to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", ())
                present = {name.lower() for name, _ in headers}
                message["headers"] = [
                    *headers,
                    *(pair for pair in RAW_HEADERS if pair[0] not in present),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)
