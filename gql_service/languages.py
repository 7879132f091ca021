"""The language of a request: ``Accept-Language`` negotiated once, and the headers that say so.

English is the default and the language of the source texts; Latvian comes from the gettext
catalogue (messages.py). ``lv-LV`` counts as ``lv``; an unknown language falls back to English.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from functools import lru_cache

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Language(enum.StrEnum):
    EN = "en"
    LV = "lv"


DEFAULT = Language.EN
HEADER = "accept-language"
_BY_TAG = {language.value: language for language in Language}
# Responses whose body holds messages: they say their language (not GraphiQL's HTML page).
_JSON_TYPES = (b"application/json", b"application/graphql-response+json")


@lru_cache(256)
def negotiate(header: str | None) -> Language:
    """The best supported language for an ``Accept-Language`` value (RFC 9110, section 12.5.4).

    The range with the highest quality wins, the earlier one on a tie; ``q=0`` refuses a
    language; ``*`` and unknown languages give the default.
    """
    if not header:
        return DEFAULT
    best, best_quality = DEFAULT, 0.0
    for item in header.split(",")[:32]:
        tag, *params = (part.strip() for part in item.split(";"))
        quality = _quality(params)
        if quality is None or quality <= best_quality:
            continue
        language = _BY_TAG.get(tag.partition("-")[0].lower())
        if language is not None:
            best, best_quality = language, quality
    return best


def _quality(params: Iterable[str]) -> float | None:
    """The ``q`` weight of a language range: 1 without one, None when it is malformed."""
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() != "q":
            continue
        try:
            quality = float(value.strip())
        except ValueError:
            return None
        return quality if 0 <= quality <= 1 else None
    return 1.0


def header_value(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The ``Accept-Language`` of raw ASGI headers, repeated fields joined as RFC 9110 says."""
    values = [
        value.decode("latin-1") for name, value in headers if name.lower() == b"accept-language"
    ]
    return ",".join(values) if values else None


def language_of(scope: Scope) -> Language:
    """The request's language, as ``LanguageNegotiation`` decided it (or from its headers)."""
    found = scope.get("state", {}).get("language")
    if isinstance(found, Language):
        return found
    return negotiate(header_value(scope.get("headers", ())))


@lru_cache(len(Language))
def marks(language: Language) -> tuple[tuple[bytes, bytes], ...]:
    """The raw headers LanguageNegotiation gives a JSON response that has no Vary of its
    own: its language, and that it varies with Accept-Language."""
    return ((b"content-language", language.value.encode()), (b"vary", b"Accept-Language"))


class LanguageNegotiation:
    """Decides each request's language once (in ``scope["state"]["language"]``) and marks
    JSON responses with ``Content-Language`` and ``Vary: Accept-Language``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        language = negotiate(header_value(scope.get("headers", ())))
        scope.setdefault("state", {})["language"] = language
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_language(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if headers.get("content-type", "").encode().startswith(_JSON_TYPES):
                    headers["content-language"] = language.value
                    headers.add_vary_header("Accept-Language")
            await send(message)

        await self.app(scope, receive, send_with_language)
