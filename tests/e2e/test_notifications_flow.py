"""Live notifications in a real browser: the same user in two browser windows; a notification
created for that user makes the bell count rise and a toast appear in both, without a reload.

The notification is written through the notification service on the live server's database
file, as any other process (another worker, a CLI job) would; delivery still goes through the
server's poller and stream.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from playwright.async_api import Browser, Page, expect
from sqlalchemy import select

from features.notifications.service import notify_user
from features.users.models import User
from shared.database import Database
from tests.e2e.conftest import open_verification_link

PASSWORD = "a long enough passphrase"


async def open_signed_in(browser: Browser, live_server: str) -> Page:
    context = await browser.new_context(
        base_url=live_server, viewport={"width": 1200, "height": 800}
    )
    context.set_default_timeout(10_000)
    return await context.new_page()


async def test_notification_appears_live_in_every_window(
    mailbox, browser, live_server, live_server_dir: Path, shot
):
    email = f"bell-{uuid.uuid4().hex[:8]}@example.com"
    first = await open_signed_in(browser, live_server)
    await first.goto("/register")
    await first.get_by_label("Name").fill("Bella Bell")
    await first.get_by_label("Email").fill(email)
    await first.get_by_label("Password", exact=True).fill(PASSWORD)
    await first.get_by_label("Confirm password").fill(PASSWORD)
    await first.get_by_role("button", name="Create account").click()
    await expect(first).to_have_url(re.compile(r"/register/check-email$"))
    await open_verification_link(first, mailbox, email)
    await expect(first).to_have_url(re.compile(r"/dashboard$"))

    second = await open_signed_in(browser, live_server)
    await second.goto("/login")
    await second.get_by_label("Email").fill(email)
    await second.get_by_label("Password").fill(PASSWORD)
    async with second.expect_request(re.compile(r"/notifications/stream")):
        await second.get_by_role("button", name="Sign in").click()
    await expect(second).to_have_url(re.compile(r"/dashboard$"))
    async with first.expect_request(re.compile(r"/notifications/stream")):
        await first.reload()
    count = second.locator("[data-bell-count]")
    await expect(count).to_be_hidden()
    await shot(second, "before")

    db = Database(f"sqlite+aiosqlite:///{live_server_dir / 'app.sqlite'}")
    try:
        async with db.reader() as session:
            owner = await session.scalar(select(User.id).where(User.email == email))
        await notify_user(
            db, owner, "success", "Two-factor authentication enabled",
            "Signing in now needs a code from your authenticator app.", "/settings",
        )  # fmt: skip
    finally:
        await db.dispose()

    for page in (second, first):
        await expect(page.locator("[data-bell-count]")).to_have_text("1")
        await expect(page.locator("[data-bell-count]")).to_be_visible()
        await expect(page.locator(".toast")).to_have_text("Two-factor authentication enabled")
    await shot(second, "toast")

    # The dropdown lists it (added live), and works as a plain <details> element.
    await second.locator(".bell-button").click()
    await expect(second.locator(".bell-list .note-title").first).to_have_text(
        "Two-factor authentication enabled"
    )
    await shot(second, "dropdown")

    # "Mark all read" is a plain form post; the count is gone after it, in this window.
    await second.get_by_role("button", name="Mark all read").click()
    await expect(second.locator(".flash-success")).to_contain_text("Marked 1 notification as read.")
    await expect(second.locator("[data-bell-count]")).to_be_hidden()

    # The full list shows it as read.
    await second.goto("/notifications")
    await expect(second.locator("main .note-title")).to_have_text(
        ["Two-factor authentication enabled"]
    )
    await expect(second.locator("main .note-unread")).to_have_count(0)
    await shot(second, "list")
    for page in (first, second):
        await page.context.close()


async def test_bell_and_list_work_without_javascript(
    mailbox, browser, live_server, live_server_dir: Path, shot
):
    email = f"nojs-{uuid.uuid4().hex[:8]}@example.com"
    context = await browser.new_context(base_url=live_server, java_script_enabled=False)
    context.set_default_timeout(10_000)
    page = await context.new_page()
    await page.goto("/register")
    await page.get_by_label("Name").fill("Nora Nojs")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_label("Confirm password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page).to_have_url(re.compile(r"/register/check-email$"))
    await open_verification_link(page, mailbox, email)
    await expect(page).to_have_url(re.compile(r"/dashboard$"))

    db = Database(f"sqlite+aiosqlite:///{live_server_dir / 'app.sqlite'}")
    try:
        async with db.reader() as session:
            owner = await session.scalar(select(User.id).where(User.email == email))
        for title in ("Password changed", "Email address changed"):
            await notify_user(db, owner, "info", title, "Details.")
    finally:
        await db.dispose()

    # No script: the next page load shows the count, and <details> opens the list.
    await page.goto("/tasks")
    await expect(page.locator("[data-bell-count]")).to_have_text("2")
    await page.locator(".bell-button").click()
    await expect(page.locator(".bell-list .note-title")).to_have_text(
        ["Email address changed", "Password changed"]
    )
    await shot(page, "bell-open")
    await page.get_by_role("link", name="See all notifications").click()
    await page.get_by_role("button", name="Mark “Password changed” as read").click()
    await expect(page.locator("[data-bell-count]")).to_have_text("1")
    await page.get_by_role("link", name="Unread").click()
    await expect(page.locator("main .note-title")).to_have_text(["Email address changed"])
    await page.get_by_role("button", name="Delete “Email address changed”").click()
    await expect(page.locator(".flash-success")).to_contain_text("Notification deleted.")
    await expect(page.locator("[data-bell-count]")).to_be_hidden()
    await shot(page, "list-after")
    await context.close()
