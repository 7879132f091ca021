"""The close-opportunity page (/app) in a real headless Chromium, on both engines.

Two browsers watch one opportunity: a Latvian user works through the whole close flow (create,
add a quote, try to close, see the refusal with the blocking quote and the field error, close
the quotes, close as Lost / Out-Sold, reopen) while an English colleague's page follows every
step live, over the subscription. Each step is saved as a screenshot under test-artifacts/.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Locator, Page, expect

from gql_service.settings import Settings
from tests.browser import OfflinePage, isolated_page
from tests.subprocess_server import LiveServer, live_server

pytestmark = pytest.mark.browser

TIMEOUT_MS = 15_000


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    """`python -m gql_service serve` on a fresh migrated database of each engine."""
    with live_server(settings.database_url, tmp_path / "server.log") as live:
        yield live


async def open_page(
    browser: Browser, server: LiveServer, locale: str, shots: Path
) -> tuple[BrowserContext, OfflinePage]:
    origin = f"http://{server.host}:{server.port}"
    context = await browser.new_context(
        base_url=origin, locale=locale, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(TIMEOUT_MS)
    offline = await isolated_page(context, origin, shots)
    page = offline.page
    await page.goto("/app/")
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    await expect(page.locator("#live-status")).to_have_attribute("data-state", "on")
    return context, offline


def detail(page: Page, field: str) -> Locator:
    return page.locator(f'#detail-fields dd[data-field="{field}"]')


async def test_the_close_flow_in_two_browsers(
    browser: Browser, server: LiveServer, screenshots: Path
) -> None:
    (screenshots / "lv").mkdir()
    (screenshots / "en").mkdir()
    context_lv, user = await open_page(browser, server, "lv-LV", screenshots / "lv")
    context_en, colleague = await open_page(browser, server, "en-GB", screenshots / "en")
    page, other = user.page, colleague.page
    name = f"Rail signalling {uuid.uuid4().hex[:6]}"
    try:
        # The page speaks the browser's language.
        await expect(page.locator("h1")).to_have_text("Iespējas slēgšana")
        await expect(other.locator("h1")).to_have_text("Close an opportunity")

        # Create an opportunity and a draft quote.
        await page.click("#new-opportunity")
        form = page.locator("#create-form")
        await form.locator('[name="name"]').fill(name)
        await form.locator('[name="customerName"]').fill("Baltic Rail")
        await form.locator('[name="estimatedRevenue"]').fill("12000.00")
        await form.locator('button[type="submit"]').click()
        await expect(page.locator("#detail-name")).to_have_text(name)
        await expect(detail(page, "state")).to_have_text("Atvērta")
        await page.locator('#quote-form [name="name"]').fill("Signalling, phase 1")
        await page.locator('#quote-form [name="totalAmount"]').fill("11000.00")
        await page.locator('#quote-form button[type="submit"]').click()
        await expect(page.locator("#quotes tbody tr[data-quote-id]")).to_have_count(1)
        await user.screenshot("created")

        # The colleague loads the list again and opens the same opportunity.
        await other.reload()
        await expect(other.locator("body")).to_have_attribute("data-ready", "true")
        await other.locator("#opportunities tbody tr", has_text=name).click()
        await expect(other.locator("#detail-name")).to_have_text(name)
        await expect(other.locator("#quotes tbody tr[data-quote-id]")).to_have_count(1)
        await colleague.screenshot("opened")

        # Try to close as Won with a negative revenue: the error stands next to its field.
        await page.click("#open-close-dialog")
        dialog = page.locator("#close-dialog")
        await expect(dialog).to_be_visible()
        close_date = await dialog.locator('[name="closeDate"]').input_value()
        assert len(close_date) == 10  # today, prefilled
        await expect(dialog.locator('[name="actualRevenue"]')).to_have_value("12000.00")
        await dialog.locator('[name="actualRevenue"]').fill("-5")
        await dialog.locator("#confirm-close").click()
        revenue_error = dialog.locator('[data-error-for="actualRevenue"]')
        await expect(revenue_error).to_have_attribute("data-code", "INVALID_VALUE")
        await expect(revenue_error).to_have_text("Nedrīkst būt negatīvs.")
        await user.screenshot("field-error")

        # With a valid revenue the open quote refuses the close, and the dialog lists it.
        await dialog.locator('[name="actualRevenue"]').fill("11500.00")
        await dialog.locator("#confirm-close").click()
        blocking = dialog.locator("#blocking-quotes")
        await expect(blocking).to_be_visible()
        await expect(revenue_error).to_be_empty()
        await expect(blocking.locator("li")).to_have_count(1)
        await expect(blocking.locator("li")).to_contain_text("Signalling, phase 1")
        await expect(blocking.locator("#blocking-message")).to_have_attribute(
            "data-code", "OPPORTUNITY_HAS_OPEN_QUOTES"
        )
        await user.screenshot("refused")

        # Close the quotes from the dialog; the colleague sees the quote close.
        await dialog.locator("#dialog-close-quotes").click()
        await expect(blocking).to_be_hidden()
        await expect(page.locator("#quotes td[data-field=state]")).to_have_text("Slēgts")
        await expect(other.locator("#quotes td[data-field=state]")).to_have_text("Closed")
        await colleague.screenshot("quotes-closed-live")

        # Close as Lost / Out-Sold: only the outcome's reasons are offered.
        await dialog.locator('input[name="outcome"][value="LOST"]').check()
        reasons = dialog.locator('[name="statusReason"] option')
        assert set(await reasons.evaluate_all("os => os.map(o => o.value)")) == {
            "CANCELED",
            "OUT_SOLD",
        }
        await expect(dialog.locator('[name="actualRevenue"]')).to_have_value("")
        await dialog.locator('[name="statusReason"]').select_option("OUT_SOLD")
        await dialog.locator('[name="description"]').fill("Lost on price.")
        await user.screenshot("closing-as-lost")
        await dialog.locator("#confirm-close").click()
        await expect(dialog).to_be_hidden()
        await expect(detail(page, "state")).to_have_text("Zaudēta")
        await expect(page.locator("#close-history li")).to_have_count(1)
        await user.screenshot("lost")

        # The colleague's page follows, and says who changed it.
        await expect(detail(other, "state")).to_have_text("Lost")
        await expect(detail(other, "statusReason")).to_have_text("Out-sold")
        await expect(other.locator("#live-notice")).to_be_visible()
        await colleague.screenshot("lost-live")

        # Reopen; the close record is canceled, and the colleague sees it open again.
        await page.click("#reopen")
        await expect(detail(page, "state")).to_have_text("Atvērta")
        await expect(page.locator("#close-history li[data-state=CANCELED]")).to_have_count(1)
        await expect(detail(other, "state")).to_have_text("Open")
        await user.screenshot("reopened")
        await colleague.screenshot("reopened-live")

        # The user's own changes are not announced to the user as a colleague's.
        await expect(page.locator("#live-notice")).to_be_hidden()
        assert user.blocked == colleague.blocked == []
        assert user.errors == colleague.errors == []
    finally:
        await context_lv.close()
        await context_en.close()
