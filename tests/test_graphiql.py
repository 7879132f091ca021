"""GraphiQL works without internet access: its page names only files this service serves."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import replace
from pathlib import Path

import httpx
import strawberry
from sqlalchemy.ext.asyncio import AsyncEngine

from gql_service.app import create_app
from gql_service.seed import seed_demo
from gql_service.settings import Settings

HTML = {"accept": "text/html"}
STRAWBERRY_PAGE = Path(strawberry.__file__).parent / "static" / "graphiql.html"
# Every URL the page loads: src= and href= attributes (the favicon is a data: URL).
URL_ATTRIBUTE = re.compile(r"""\b(?:src|href)="([^"]*)\"""")
ASSET = re.compile(r"""(?:src|href)="([^"]+)"\s+integrity="([^"]+)\"""")
MEDIA_TYPE = {".js": "text/javascript", ".css": "text/css"}

DESCRIPTIONS = """
query {
  __schema { description }
  date: __type(name: "Date") { specifiedByURL }
  dateTime: __type(name: "DateTime") { specifiedByURL }
  decimal: __type(name: "Decimal") { specifiedByURL }
}
"""


def _sri(body: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode()


def _pins(html: str) -> dict[str, str]:
    """The page's files: file name -> integrity."""
    return {url.rsplit("/", 1)[1]: integrity for url, integrity in ASSET.findall(html)}


async def _page(client: httpx.AsyncClient) -> str:
    response = await client.get("/graphql", headers=HTML)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    return response.text


async def test_the_graphiql_page_names_no_other_host(client: httpx.AsyncClient) -> None:
    html = await _page(client)

    urls = URL_ATTRIBUTE.findall(html)
    assert len(urls) == 8  # the favicon and seven files
    for url in urls:
        assert url.startswith(("/static/graphiql/", "data:")), url
    assert "unpkg" not in html
    policy = (await client.get("/graphql", headers=HTML)).headers["content-security-policy"]
    assert "http" not in policy
    assert "script-src 'self' 'sha256-" in policy


async def test_every_file_the_page_names_is_served_and_matches_its_hash(
    client: httpx.AsyncClient,
) -> None:
    html = await _page(client)
    assets = ASSET.findall(html)
    assert len(assets) == 7

    for url, integrity in assets:
        plain = await client.get(url, headers={"accept-encoding": "identity"})
        assert plain.status_code == 200, url
        assert plain.headers["content-type"].startswith(MEDIA_TYPE[Path(url).suffix]), url
        assert plain.headers["x-content-type-options"] == "nosniff"
        assert "immutable" in plain.headers["cache-control"]
        assert "content-encoding" not in plain.headers
        assert _sri(plain.content) == integrity, url

        zipped = await client.get(url, headers={"accept-encoding": "gzip"})
        assert zipped.headers["content-encoding"] == "gzip"
        assert _sri(zipped.content) == integrity, url  # httpx decodes it


async def test_the_files_are_the_versions_and_hashes_strawberry_pins(
    client: httpx.AsyncClient,
) -> None:
    html = await _page(client)
    theirs = STRAWBERRY_PAGE.read_text()
    assert _pins(theirs) == _pins(html)
    versions = set(re.findall(r"/([\w-]+@[\d.]+)/", theirs))
    assert len(versions) == 5
    for version in versions:  # e.g. "graphiql@3.8.3", "plugin-explorer@1.0.2"
        assert f"/static/graphiql/{version}/" in html


async def test_the_licences_are_served_beside_the_files(client: httpx.AsyncClient) -> None:
    html = await _page(client)
    folders = {url.rsplit("/", 1)[0] for url, _ in ASSET.findall(html)}
    for folder in folders:
        licence = await client.get(f"{folder}/LICENSE")
        assert licence.status_code == 200, folder
        assert "MIT License" in licence.text
        assert licence.headers["content-type"].startswith("text/plain")
    notice = await client.get("/static/graphiql/NOTICE.md")
    assert notice.status_code == 200
    for folder in folders:
        assert folder.rsplit("/", 1)[1] in notice.text


async def test_only_the_files_beside_the_page_are_served(client: httpx.AsyncClient) -> None:
    for path in (
        "/static/graphiql/nothing.js",
        "/static/graphiql/index.html",
        "/static/graphiql/../graphiql.py",
        "/static/graphiql/..%2f..%2fsettings.py",
        "/static/graphiql/%2e%2e/graphiql.py",
        "/static/graphiql/graphiql@3.8.3/",
    ):
        response = await client.get(path)
        assert response.status_code == 404, path


async def test_no_file_is_served_while_graphiql_is_off(settings: Settings) -> None:
    app = create_app(replace(settings, graphiql=False))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        page = await http.get("/graphql", headers=HTML)
        asset = await http.get("/static/graphiql/react@18.2.0/react.production.min.js")
    await app.state.engine.dispose()
    assert page.status_code == 404
    assert asset.status_code == 404


async def test_the_default_tab_lists_open_opportunities_with_their_quotes(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await seed_demo(engine)
    html = await _page(client)
    query = re.search(r"const EXAMPLE_QUERY = `(.*?)`;", html, re.DOTALL)
    variables = re.search(r"const EXAMPLE_VARIABLES = `(.*?)`;", html, re.DOTALL)
    assert query
    assert variables

    response = await client.post(
        "/graphql", json={"query": query[1], "variables": json.loads(variables[1])}
    )

    body = response.json()
    assert "errors" not in body, body
    page = body["data"]["opportunities"]
    assert page["nodes"]
    assert {node["state"] for node in page["nodes"]} == {"OPEN"}
    assert any(node["quotes"]["nodes"] for node in page["nodes"])


async def test_the_schema_describes_itself_and_its_scalars_specifications(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/graphql", json={"query": DESCRIPTIONS})

    data = response.json()["data"]
    assert "Errors are data" in data["__schema"]["description"]
    assert "Authorization: Bearer" in data["__schema"]["description"]
    assert data["date"]["specifiedByURL"].startswith(
        "https://datatracker.ietf.org/doc/html/rfc3339"
    )
    assert data["dateTime"]["specifiedByURL"] == data["date"]["specifiedByURL"]
    assert data["decimal"]["specifiedByURL"] is None  # no specification fits a decimal string
