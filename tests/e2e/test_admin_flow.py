"""The admin area in a real browser: an administrator (created with the CLI) finds a user and
disables them; the user's open browser is signed out on its next click (SECURITY.md S19)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid

from playwright.async_api import Browser, Page, expect

from shared.config import ROOT_DIR
from tests.conftest import SECRET_KEY
from tests.e2e.conftest import open_verification_link

PASSWORD = "a long enough passphrase"


def create_admin(live_server_dir, email: str) -> None:
    """``litestar users create --admin`` against the live server's database, as an operator would."""
    env = {
        **os.environ,
        "APP_ENV": "test",
        "SECRET_KEY": SECRET_KEY,
        "DATABASE_URL": f"sqlite+aiosqlite:///{live_server_dir / 'app.sqlite'}",
    }
    result = subprocess.run(
        [sys.executable, "-m", "litestar", "--app-dir", "src", "users", "create", "--admin",
         "--email", email, "--name", "Ada Admin", "--password-stdin"],
        cwd=ROOT_DIR, env=env, input=PASSWORD + "\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


async def sign_in(page: Page, email: str) -> None:
    await page.goto("/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(re.compile(r"/dashboard$"))


async def test_admin_disables_a_user_whose_open_browser_is_signed_out(
    mailbox, page: Page, browser: Browser, live_server: str, live_server_dir, shot
):
    run = uuid.uuid4().hex[:8]
    admin_email, victim_email = f"admin-{run}@example.com", f"vic-{run}@example.com"
    create_admin(live_server_dir, admin_email)

    # The user signs up in their own browser and keeps it open.
    victim_context = await browser.new_context(base_url=live_server)
    victim_context.set_default_timeout(10_000)
    victim = await victim_context.new_page()
    try:
        await victim.goto("/register")
        await victim.get_by_label("Name").fill("Victor Victim")
        await victim.get_by_label("Email").fill(victim_email)
        await victim.get_by_label("Password", exact=True).fill(PASSWORD)
        await victim.get_by_label("Confirm password").fill(PASSWORD)
        await victim.get_by_role("button", name="Create account").click()
        await expect(victim).to_have_url(re.compile(r"/register/check-email$"))
        await open_verification_link(victim, mailbox, victim_email)
        await expect(victim).to_have_url(re.compile(r"/dashboard$"))
        await expect(victim.get_by_role("link", name="Admin")).to_have_count(0)

        # The admin signs in, opens the admin area and finds the user.
        await sign_in(page, admin_email)
        await page.get_by_role("link", name="Admin", exact=True).click()
        await expect(page.get_by_role("heading", name="Admin")).to_be_visible()
        await shot(page, "admin-dashboard")
        await (
            page.get_by_role("navigation", name="Admin sections")
            .get_by_role("link", name="Users")
            .click()
        )
        await page.get_by_label("Name or email").fill(f"vic-{run}")
        await page.get_by_role("button", name="Apply").click()
        rows = page.locator("table.data-table tbody tr")
        await expect(rows).to_have_count(1)
        await shot(page, "search-result")
        await rows.get_by_role("link", name="Victor Victim").click()
        await expect(page.get_by_role("heading", name="Victor Victim")).to_be_visible()
        await expect(page.get_by_text("Active sessions (1)")).to_be_visible()

        # Disable (the page asks for confirmation first).
        page.once("dialog", lambda dialog: dialog.accept())
        await page.get_by_role("button", name="Disable account").click()
        await expect(page.locator(".flash-success")).to_contain_text(
            "Account disabled; 1 session(s) ended."
        )
        await expect(page.locator('[data-field="status"]')).to_contain_text("Disabled")
        await shot(page, "disabled")

        # The user's next click lands on the sign-in page, and signing in again fails.
        await victim.get_by_role("link", name="Tasks", exact=True).click()
        await expect(victim).to_have_url(re.compile(r"/login\?next=/tasks$"))
        await victim.get_by_label("Email").fill(victim_email)
        await victim.get_by_label("Password").fill(PASSWORD)
        await victim.get_by_role("button", name="Sign in").click()
        await expect(victim.get_by_role("alert")).to_contain_text(
            "The email or password is incorrect."
        )
        await shot(victim, "victim-signed-out")
    finally:
        await victim_context.close()
