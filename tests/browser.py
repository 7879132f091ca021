"""Browser-test fixtures: Debian's Chromium driven by Playwright, a demo server, screenshots.

Playwright never downloads a browser here (`playwright install` is not used): it drives
/usr/bin/chromium, which `.ci/run` and `make test` install with apt-get when it is missing.
Under CI=true a missing Chromium fails the browser tests; elsewhere it skips them.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, BrowserContext, Page, Route, async_playwright

from gql_service.database import create_engine
from gql_service.seed import seed_demo
from gql_service.settings import Settings
from tests.subprocess_server import LiveServer, live_server

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """The machine's Chromium; a failure under CI=true when it is missing, else a skip."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium (make test does)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return str(CHROMIUM)


@pytest.fixture(scope="session")
async def browser(chromium_executable: str) -> AsyncIterator[Browser]:
    """One headless Chromium for the whole session (per xdist worker)."""
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=chromium_executable, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        await chromium.close()


@dataclass
class OfflinePage:
    """A page in its own browser context that may only talk to one origin.

    Every request for another origin is aborted and recorded in ``blocked``; page errors and
    console errors (CSP violations among them) are recorded in ``errors``.
    """

    page: Page
    origin: str
    shots: Path
    blocked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _step: int = 0

    async def screenshot(self, name: str) -> Path:
        """Save a full-page screenshot as the test's next numbered step."""
        self._step += 1
        path = self.shots / f"{self._step:02d}-{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@pytest.fixture(scope="session")
async def demo_server(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> AsyncIterator[LiveServer]:
    """`python -m gql_service serve` on SQLite with the demo data, as `make run` serves it."""
    folder = tmp_path_factory.mktemp("demo-server")
    database = folder / "demo.sqlite3"
    shutil.copyfile(sqlite_template, database)
    url = f"sqlite+aiosqlite:///{database}"
    engine = create_engine(Settings(database_url=url))
    await seed_demo(engine)
    await engine.dispose()
    with live_server(url, folder / "server.log") as server:
        yield server


@pytest.fixture
def screenshots(request: pytest.FixtureRequest) -> Path:
    """test-artifacts/screenshots/<test name>/, emptied first (git-ignored)."""
    folder = SCREENSHOTS / re.sub(r"[^\w.-]+", "_", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


async def isolated_page(context: BrowserContext, origin: str, shots: Path) -> OfflinePage:
    """A new page of ``context`` that can reach ``origin`` and nothing else."""
    page = await context.new_page()
    offline = OfflinePage(page, origin, shots)

    async def only_the_server(route: Route) -> None:
        url = route.request.url
        if url.startswith("data:") or origin_of(url) == origin:
            await route.continue_()
        else:
            offline.blocked.append(url)
            await route.abort("internetdisconnected")

    await context.route("**/*", only_the_server)
    page.on("pageerror", lambda exc: offline.errors.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: offline.errors.append(f"console: {msg.text}") if msg.type == "error" else None,
    )
    return offline


@pytest.fixture
async def offline_page(
    browser: Browser, demo_server: LiveServer, screenshots: Path
) -> AsyncIterator[OfflinePage]:
    """A fresh page that can reach the demo server and nothing else."""
    origin = f"http://{demo_server.host}:{demo_server.port}"
    context: BrowserContext = await browser.new_context(
        base_url=origin, viewport={"width": 1400, "height": 900}
    )
    offline = await isolated_page(context, origin, screenshots)
    try:
        yield offline
    finally:
        await context.close()
