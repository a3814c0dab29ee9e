"""The Settings page's Webhooks section, in headless Chromium, against the live server
(whose worker delivers to a real receiver on loopback)."""

from __future__ import annotations

import asyncio
import re

import httpx
from playwright.async_api import Page, expect

from tests.support.receiver import Receiver
from tests.web.test_api_keys_page import create_key, sign_up


async def test_endpoints_secrets_deliveries_and_redelivery(
    page: Page, live_server: str, receiver: Receiver
) -> None:
    await sign_up(page)
    section = page.get_by_role("region", name="Webhooks")
    await expect(section.get_by_text("No webhook endpoints yet")).to_be_visible()
    await expect(section.get_by_text("No deliveries yet")).to_be_visible()

    # A refused URL: the reason shows in the dialog, which stays open.
    await section.get_by_role("button", name="Add endpoint").first.click()
    dialog = page.get_by_role("dialog", name="Add webhook endpoint")
    await dialog.get_by_label("URL").fill("http://10.0.0.1/hook")
    await dialog.get_by_role("button", name="Add", exact=True).click()
    await expect(dialog.get_by_text("not a public address")).to_be_visible()
    await expect(dialog).to_be_visible()

    url = receiver.respond("/ui")
    await dialog.get_by_label("URL").fill(url)
    await dialog.get_by_label("Description (optional)").fill("CI bot")
    await dialog.get_by_label("task.created").check()
    await dialog.get_by_label("URL").press("Enter")
    await expect(dialog).to_be_hidden()
    banner = page.locator("#new-endpoint-banner .secret-banner")
    await expect(banner).to_contain_text("it will not be shown again")
    secret = (await banner.locator("code").inner_text()).strip()
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", secret)
    await banner.get_by_role("button", name="Copy").click()
    assert await page.evaluate("navigator.clipboard.readText()") == secret
    row = section.locator("#webhook-endpoints").get_by_role("row", name=url)
    await expect(row).to_contain_text("Enabled")
    await expect(row).to_contain_text("task.created")
    await expect(row).to_contain_text("CI bot")

    # The account signing secret: masked until shown.
    signing = page.locator("#account-signing-secret")
    await expect(signing).to_have_text("whsec_••••••••••••")
    await section.get_by_role("button", name="Show").click()
    await expect(signing).to_have_text(re.compile(r"^whsec_[A-Za-z0-9+/]{43}=$"))

    # A task is created: its task.created delivery shows up, live, as succeeded.
    key = await create_key(page, "hooks")
    async with httpx.AsyncClient(base_url=live_server) as client:
        created = await client.post(
            "/api/v1/tasks",
            json={"prompt": "Say hi"},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert created.status_code == 201
    await asyncio.to_thread(receiver.wait_for, "/ui", 1)
    await section.get_by_role("button", name="Refresh").click()
    deliveries = page.locator("#webhook-deliveries")
    delivery = deliveries.get_by_role("row", name=re.compile("task.created"))
    await expect(delivery).to_contain_text("Succeeded")
    await delivery.get_by_text("1 attempt").click()
    await expect(delivery).to_contain_text("HTTP 200")

    await delivery.get_by_role("button", name=re.compile("Redeliver")).click()
    await expect(deliveries.get_by_text("Redelivery scheduled.")).to_be_visible()
    first, second = await asyncio.to_thread(receiver.wait_for, "/ui", 2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    # Pending after a redelivery, the list refreshes itself until it settles.
    await expect(delivery).to_contain_text("2 attempts", timeout=15_000)
    await expect(delivery).to_contain_text("Succeeded")

    # Disable, enable, rotate, delete.
    await row.get_by_role("button", name=f"Disable {url}").click()
    await expect(row).to_contain_text("Disabled")
    await row.get_by_role("button", name=f"Enable {url}").click()
    await expect(row).to_contain_text("Enabled")
    await row.get_by_role("button", name=f"Rotate the secret of {url}").click()
    await expect(banner).to_contain_text("The old one keeps signing for 24 hours")
    rotated = (await banner.locator("code").inner_text()).strip()
    assert rotated.startswith("whsec_") and rotated != secret
    await banner.get_by_role("button", name="Dismiss").click()
    await row.get_by_role("button", name=f"Delete {url}").click()
    await row.get_by_role("button", name="Confirm").click()
    await expect(section.get_by_text("No webhook endpoints yet")).to_be_visible()
