"""Notifications in a real browser.

- The same user in two browser windows: enabling two-factor authentication in one (the real
  pages: password confirmation, the key read from the setup page, a TOTP code computed with
  pyotp) makes the bell count rise and a toast appear in the other, without a reload.
- The stream drops (the server restarts): the page's script reconnects by itself after a
  back-off, resumes after the last notification it saw (``?last_event_id=``) and shows what
  was created meanwhile, once each.
- Without JavaScript the next page load shows the count, and the list works with plain forms.
"""

from __future__ import annotations

import re
import shutil
import time
import uuid
from pathlib import Path

from playwright.async_api import Browser, Page, expect
from sqlalchemy import select

from features.notifications.models import Notification
from features.notifications.service import notify_user
from features.users.models import User
from shared.database import Database
from tests.e2e.conftest import open_verification_link
from tests.e2e.test_two_factor_flow import confirm_password_if_asked, fresh_code
from tests.features.notifications.servers import free_port, start_server
from tests.mail_server import Recorder

PASSWORD = "a long enough passphrase"


async def new_window(browser: Browser, base_url: str) -> Page:
    context = await browser.new_context(base_url=base_url, viewport={"width": 1200, "height": 800})
    context.set_default_timeout(10_000)
    return await context.new_page()


async def register(page: Page, name: str, email: str, mailbox: Recorder) -> None:
    """Sign up through the form and follow the mailed verification link: signed in."""
    await page.goto("/register")
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_label("Confirm password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page).to_have_url(re.compile(r"/register/check-email$"))
    await open_verification_link(page, mailbox, email)
    await expect(page).to_have_url(re.compile(r"/dashboard$"))


async def test_enabling_two_factor_in_one_window_shows_live_in_the_other(
    mailbox, browser, live_server, shot
):
    email = f"bell-{uuid.uuid4().hex[:8]}@example.com"
    first = await new_window(browser, live_server)
    await register(first, "Bella Bell", email, mailbox)

    second = await new_window(browser, live_server)
    await second.goto("/login")
    await second.get_by_label("Email").fill(email)
    await second.get_by_label("Password").fill(PASSWORD)
    async with second.expect_request(re.compile(r"/notifications/stream")):
        await second.get_by_role("button", name="Sign in").click()
    await expect(second).to_have_url(re.compile(r"/dashboard$"))
    await expect(second.locator("[data-bell-count]")).to_be_hidden()
    await second.evaluate("window.__sameDocument = true")  # gone if the page reloads
    await shot(second, "before")

    # In the first window: Settings → Security → enable, as a person does.
    await first.get_by_role("link", name="Settings").click()
    await (
        first.get_by_role("navigation", name="Settings sections")
        .get_by_role("link", name="Security")
        .click()
    )
    await first.get_by_role("button", name="Enable two-factor authentication").click()
    await expect(first).to_have_url(re.compile(r"/confirm-password"))
    await confirm_password_if_asked(first)
    await expect(first).to_have_url(re.compile(r"/settings/security$"))
    await first.get_by_role("button", name="Enable two-factor authentication").click()
    await expect(first).to_have_url(re.compile(r"/settings/security/two-factor/setup$"))
    secret = await first.locator("#tfa-key").get_attribute("data-secret")
    code, _ = await fresh_code(secret, 0)
    await first.get_by_label("Code from the app").fill(code)
    await first.get_by_role("button", name="Turn on").click()
    await expect(
        first.get_by_role("heading", name="Two-factor authentication is on")
    ).to_be_visible()

    # The second window, untouched: the count rises and a toast shows the title.
    count = second.locator("[data-bell-count]")
    await expect(count).to_have_text("1")
    await expect(count).to_be_visible()
    await expect(second.locator(".toast")).to_have_text("Two-factor authentication enabled")
    assert await second.evaluate("window.__sameDocument === true"), "the page was reloaded"
    await shot(second, "toast")

    # The dropdown lists it (added live), and works as a plain <details> element.
    await second.locator(".bell-button").click()
    await expect(second.locator(".bell-list .note-title")).to_have_text(
        ["Two-factor authentication enabled"]
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


def uuid7_at(unix_ms: int, rand: int) -> uuid.UUID:
    """A UUIDv7 made at ``unix_ms`` (RFC 9562 §5.7)."""
    return uuid.UUID(int=(unix_ms << 80) | (0x7 << 76) | (0b10 << 62) | rand)


async def add_notification(db: Database, owner: uuid.UUID, title: str, seconds_ago: int) -> str:
    """Store a notification whose id was made ``seconds_ago``: older than the poller's
    look-back window, so only the stream's resume can deliver it."""
    made = uuid7_at(time.time_ns() // 1_000_000 - seconds_ago * 1000, rand=seconds_ago)
    async with db.writer() as session:
        session.add(Notification(id=made, user_id=owner, type="info", title=title, message="m"))
        await session.commit()
    return str(made)


async def test_the_script_reconnects_after_the_stream_drops_and_shows_what_was_missed(
    browser, mail_server, sqlite_template: Path, tmp_path: Path, shot
):
    mailbox, smtp_port = mail_server
    mail_url = f"smtp://127.0.0.1:{smtp_port}"
    db_path = tmp_path / "app.sqlite"
    shutil.copyfile(sqlite_template, db_path)
    port = free_port()
    server = start_server(db_path, tmp_path, "restart", port=port, MAIL_URL=mail_url)
    db = Database(f"sqlite+aiosqlite:///{db_path}")
    page = await new_window(browser, server.url)
    streams: list[str] = []
    page.on(
        "request", lambda r: streams.append(r.url) if "/notifications/stream" in r.url else None
    )
    try:
        await register(page, "Rita Reconnect", "rita@example.com", mailbox)
        async with db.reader() as session:
            owner = await session.scalar(select(User.id).where(User.email == "rita@example.com"))
        seen = await add_notification(db, owner, "Seen before", seconds_ago=60)
        async with page.expect_request(re.compile(rf"/notifications/stream\?last_event_id={seen}")):
            await page.reload()  # the page shows it; the script resumes after it
        await expect(page.locator("[data-bell-count]")).to_have_text("1")
        await page.evaluate("window.__sameDocument = true")

        # The server goes away (a restart, a deploy): the open stream ends.
        assert server.stop() in (0, -15)
        missed = [
            await add_notification(db, owner, f"Missed {n}", seconds_ago=40 - n) for n in (1, 2)
        ]
        server = start_server(db_path, tmp_path, "restart", port=port, MAIL_URL=mail_url)

        # No reload: the script's own reconnect (1 s, 2 s, 4 s … back-off) brings them.
        count = page.locator("[data-bell-count]")
        await expect(count).to_have_text("3", timeout=30_000)
        await expect(page.locator(".toast")).to_have_text(["Missed 1", "Missed 2"])
        assert await page.evaluate("window.__sameDocument === true"), "the page was reloaded"
        await shot(page, "after-reconnect")
        await page.locator(".bell-button").click()
        await expect(page.locator(".bell-list .note-title")).to_have_text(
            ["Missed 2", "Missed 1", "Seen before"]  # each once, newest first
        )
        await shot(page, "dropdown")
        resumed = [url for url in streams if f"last_event_id={seen}" in url]
        assert len(resumed) >= 2, streams  # the first connection and at least one reconnect
        assert missed[1] > missed[0] > seen
    finally:
        await page.context.close()
        await db.dispose()
        server.stop()


async def test_bell_and_list_work_without_javascript(
    mailbox, browser, live_server, live_server_dir: Path, shot
):
    email = f"nojs-{uuid.uuid4().hex[:8]}@example.com"
    context = await browser.new_context(base_url=live_server, java_script_enabled=False)
    context.set_default_timeout(10_000)
    page = await context.new_page()
    await register(page, "Nora Nojs", email, mailbox)

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
