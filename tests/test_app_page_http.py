"""The close-opportunity page's files, as HTTP serves them (the browser tests drive the page)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from gql_service.app import create_app
from gql_service.frontend import APP_POLICY, ASSETS
from gql_service.settings import Settings


def page_settings(tmp_path: Path) -> Settings:
    # The page's files touch no database: one engine is enough.
    return Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/page.sqlite3")


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(page_settings(tmp_path))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        yield http
    await app.state.engine.dispose()


async def test_the_page_is_served_in_the_request_language(client: httpx.AsyncClient) -> None:
    english = await client.get("/app/")
    latvian = await client.get("/app/", headers={"accept-language": "lv-LV,lv;q=0.9,en;q=0.5"})
    assert english.status_code == latvian.status_code == 200
    assert '<html lang="en">' in english.text
    assert '<html lang="lv">' in latvian.text
    assert latvian.headers["content-language"] == "lv"
    assert "accept-language" in latvian.headers["vary"].lower()
    assert english.headers["content-security-policy"] == APP_POLICY


async def test_app_without_slash_redirects(client: httpx.AsyncClient) -> None:
    response = await client.get("/app")
    assert response.status_code == 308
    assert response.headers["location"] == "/app/"


async def test_every_asset_the_page_names_is_served_from_this_origin(
    client: httpx.AsyncClient,
) -> None:
    page = (await client.get("/app/")).text
    names = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert names, "the page names its script and style sheet"
    for name in names:
        assert name.startswith("/app/static/"), f"{name} is not served by this service"
        response = await client.get(name)
        assert response.status_code == 200, name
        expected = "text/css" if name.endswith(".css") else "javascript"
        assert expected in response.headers["content-type"], name
    script = (ASSETS / "app.js").read_text(encoding="utf-8")
    assert "http://" not in script
    assert "https://" not in script


def test_every_page_string_has_both_languages() -> None:
    strings = json.loads((ASSETS / "strings.json").read_text(encoding="utf-8"))
    assert set(strings) == {"en", "lv"}
    assert strings["en"].keys() == strings["lv"].keys()
    for language, table in strings.items():
        for key, value in table.items():
            assert value.strip(), f"{language}.{key} is empty"
            assert re.findall(r"\{\w+\}", value) == re.findall(r"\{\w+\}", strings["en"][key])
    used = set(re.findall(r'data-text="(\w+)"', (ASSETS / "index.html").read_text()))
    used |= set(re.findall(r'text\("(\w+)"', (ASSETS / "app.js").read_text()))
    assert used <= strings["en"].keys(), used - strings["en"].keys()


async def test_the_page_can_be_turned_off(tmp_path: Path) -> None:
    app = create_app(replace(page_settings(tmp_path), app_page=False))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        assert (await http.get("/app/")).status_code == 404
        assert (await http.get("/app/static/app.js")).status_code == 404
    await app.state.engine.dispose()
