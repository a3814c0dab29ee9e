"""The Settings page's API keys section, in headless Chromium."""

from __future__ import annotations

import re

import httpx
from playwright.async_api import Page, Route, expect

PASSWORD = "correct horse battery"


async def call_me(base_url: str, key: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url) as client:
        return await client.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"})


async def sign_up(page: Page, email: str = "ada@example.com") -> None:
    await page.goto("/signup")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page).to_have_url(re.compile(r"/settings$"))


async def create_key(page: Page, name: str) -> str:
    await page.get_by_role("button", name="Create API key").first.click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Name").fill(name)
    await dialog.get_by_label("Name").press("Enter")
    await expect(dialog).to_be_hidden()
    key = (await page.locator("#new-key-value").inner_text()).strip()
    assert re.fullmatch(r"or_[0-9A-Za-z]{38}", key)
    return key


async def test_create_copy_reveal_and_delete_a_key(page: Page, live_server: str) -> None:
    await sign_up(page)
    await expect(page.get_by_text("No API keys yet")).to_be_visible()
    await expect(page.locator("#usage-example")).to_contain_text(
        f'curl -H "Authorization: Bearer <key>" {live_server}/api/v1/me'
    )

    # A blank name is refused by the server; the error shows inside the open dialog.
    await page.get_by_role("button", name="Create API key").first.click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Name").fill("   ")
    await dialog.get_by_role("button", name="Create", exact=True).click()
    await expect(
        dialog.get_by_text("Couldn't create the key: name must not be blank.")
    ).to_be_visible()
    await expect(dialog).to_be_visible()
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_be_hidden()

    key = await create_key(page, "ci-bot")
    banner = page.locator(".key-banner")
    await expect(banner).to_contain_text("it will not be shown again")
    await banner.get_by_role("button", name="Copy").click()
    await expect(banner.get_by_text("Copied to the clipboard.")).to_be_visible()
    assert await page.evaluate("navigator.clipboard.readText()") == key

    row = page.get_by_role("row", name=re.compile("ci-bot"))
    await expect(row).to_contain_text("tasks:read")
    await expect(row).to_contain_text("Never")
    start = row.locator("code[data-start]")
    await expect(start).not_to_contain_text(key[:8])
    await row.get_by_role("button", name="Show the start of key ci-bot").click()
    await expect(start).to_have_text(f"{key[:8]}…")
    await row.get_by_role("button", name="Show the start of key ci-bot").click()
    await expect(start).not_to_contain_text(key[:8])

    await banner.get_by_role("button", name="Dismiss").click()
    await expect(page.locator(".key-banner")).to_have_count(0)

    # Using the key shows up as "just now" once the list is reloaded.
    me = await call_me(live_server, key)
    assert me.status_code == 200
    await page.reload()
    await expect(page.get_by_role("row", name=re.compile("ci-bot"))).to_contain_text("just now")

    row = page.get_by_role("row", name=re.compile("ci-bot"))
    await row.get_by_role("button", name="Delete").click()
    await expect(row.get_by_role("button", name="Confirm")).to_be_visible()
    await row.get_by_role("button", name="Cancel").click()
    await expect(row.get_by_role("button", name="Confirm")).to_be_hidden()
    await row.get_by_role("button", name="Delete").click()
    await row.get_by_role("button", name="Confirm").click()
    await expect(page.get_by_text("No API keys yet")).to_be_visible()
    await expect(page.get_by_role("row", name=re.compile("ci-bot"))).to_have_count(0)
    revoked = await call_me(live_server, key)
    assert revoked.status_code == 401


async def test_when_the_clipboard_is_refused_the_key_is_selected_for_manual_copy(
    page: Page,
) -> None:
    await page.add_init_script(
        "navigator.clipboard.writeText = () => Promise.reject(new DOMException('denied'));"
    )
    await sign_up(page)
    key = await create_key(page, "manual")
    await page.locator(".key-banner").get_by_role("button", name="Copy").click()
    await expect(page.get_by_text("The text is selected: press Ctrl+C")).to_be_visible()
    assert (await page.evaluate("window.getSelection().toString()")).strip() == key


async def test_a_failed_list_load_shows_an_error_banner_and_no_empty_state(page: Page) -> None:
    await sign_up(page)

    async def fail_list(route: Route) -> None:
        if route.request.method == "GET":
            await route.fulfill(status=500, body="boom")
        else:
            await route.continue_()

    await page.route("**/settings/api-keys", fail_list)
    await page.reload()
    await expect(page.get_by_role("alert")).to_have_text(
        "Couldn't load your API keys. Reload the page to try again."
    )
    await expect(page.get_by_text("No API keys yet")).to_have_count(0)


async def test_a_failed_delete_keeps_the_row_and_says_so(page: Page, live_server: str) -> None:
    await sign_up(page)
    key = await create_key(page, "keeper")

    async def fail_delete(route: Route) -> None:
        await route.fulfill(status=503, body="down")

    await page.route(re.compile(r".*/settings/api-keys/[0-9a-f-]+$"), fail_delete)
    row = page.get_by_role("row", name=re.compile("keeper"))
    await row.get_by_role("button", name="Delete").click()
    await row.get_by_role("button", name="Confirm").click()
    await expect(row.get_by_text("Couldn't delete this key; it still works.")).to_be_visible()
    await expect(row.get_by_role("button", name="Confirm")).to_be_enabled()
    me = await call_me(live_server, key)
    assert me.status_code == 200


async def test_the_page_is_usable_by_keyboard_and_labels_every_input(page: Page) -> None:
    await sign_up(page)
    await page.get_by_role("button", name="Create API key").first.focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("dialog").get_by_label("Name")).to_be_focused()
    await page.keyboard.type("keyboard-only")
    await page.keyboard.press("Enter")
    await expect(page.locator("#new-key-value")).to_be_visible()
    unlabelled = await page.evaluate(
        """[...document.querySelectorAll('input:not([type=hidden]), select')]
             .filter(el => !el.labels || el.labels.length === 0).map(el => el.name)"""
    )
    assert unlabelled == []
