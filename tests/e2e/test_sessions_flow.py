"""Browser sessions in a real browser: two browsers of one user; the first ends the other's session
(after confirming the password) and the second is sent to sign in on its next click."""

from __future__ import annotations

import re
import uuid

from playwright.async_api import Browser, Page, expect

from tests.e2e.conftest import open_verification_link

PASSWORD = "a long enough passphrase"
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"


async def sign_in(page: Page, email: str) -> None:
    await page.goto("/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(re.compile(r"/dashboard$"))


async def test_end_another_session_from_the_sessions_page(
    mailbox, page: Page, browser: Browser, live_server: str, shot
):
    email = f"e2e-{uuid.uuid4().hex[:8]}@example.com"
    await page.goto("/register")
    await page.get_by_label("Name").fill("Sam Sessions")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_label("Confirm password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page).to_have_url(re.compile(r"/register/check-email$"))
    await open_verification_link(page, mailbox, email)
    await expect(page).to_have_url(re.compile(r"/dashboard$"))

    second_context = await browser.new_context(base_url=live_server, user_agent=FIREFOX)
    try:
        second = await second_context.new_page()
        await sign_in(second, email)

        await page.goto("/settings")
        await page.get_by_role("link", name="Sessions").click()
        await expect(page).to_have_url(re.compile(r"/settings/sessions$"))
        items = page.locator(".session-item")
        await expect(items).to_have_count(2)
        await expect(page.locator(".session-current")).to_contain_text("This device")
        other = page.locator(".session-item", has_text="Firefox 121 on Windows 10")
        await expect(other).to_contain_text("127.0.0.1")
        await shot(page, "two-sessions")

        await other.get_by_role("button", name="End session").click()
        await expect(page).to_have_url(re.compile(r"/confirm-password"))
        await page.get_by_label("Password").fill(PASSWORD)
        await shot(page, "confirm-password")
        await page.get_by_role("button", name="Confirm").click()
        await expect(page).to_have_url(re.compile(r"/settings/sessions$"))
        await (
            page.locator(".session-item", has_text="Firefox")
            .get_by_role("button", name="End session")
            .click()
        )
        await expect(page.locator(".flash-success")).to_contain_text("The session was ended.")
        await expect(items).to_have_count(1)
        await shot(page, "one-session")

        await second.get_by_role("link", name="Tasks", exact=True).click()
        await expect(second).to_have_url(re.compile(r"/login\?next=/tasks$"))
        await shot(second, "second-browser-signed-out")

        await page.get_by_role("link", name="Activity").click()
        await expect(page.locator(".activity-table")).to_contain_text("Session ended")
        await expect(page.locator(".activity-table")).to_contain_text("Signed in")
        await shot(page, "activity")
    finally:
        await second_context.close()
