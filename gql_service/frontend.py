"""The close-opportunity page at ``/app``: a small single-page frontend of this API.

It is plain HTML, CSS and one JavaScript module, served from the package: no build step, no CDN,
no Node at run time. The page speaks to ``/graphql`` as any frontend would (queries, mutations
with typed errors, subscriptions over graphql-transport-ws). Its language follows the request's
``Accept-Language``, as the API's messages do; the server writes it into ``<html lang>``, and the
page takes its own strings (``strings.json``) and the enum labels (``enumLabels``) in it.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from gql_service.languages import language_of

ASSETS = Path(__file__).parent / "static" / "app"

# Only this origin's script, styles and connections (the WebSocket included): nothing inline.
APP_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


class AppPage:
    """``GET /app``: index.html with the negotiated language filled in."""

    def __init__(self) -> None:
        self.template = (ASSETS / "index.html").read_text(encoding="utf-8")

    async def render(self, request: Request) -> Response:
        language = language_of(request.scope)
        return HTMLResponse(
            self.template.replace("{{lang}}", language),
            headers={
                "content-security-policy": APP_POLICY,
                "content-language": language,
                "vary": "Accept-Language",
                "cache-control": "no-cache",
            },
        )


def app_routes() -> list[BaseRoute]:
    page = AppPage()

    async def to_page(_: Request) -> Response:
        return RedirectResponse("/app/", status_code=308)

    return [
        Route("/app", to_page, methods=["GET"]),
        Route("/app/", page.render, methods=["GET"]),
        Mount("/app/static", app=StaticFiles(directory=ASSETS), name="app-static"),
    ]
