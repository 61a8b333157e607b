"""Two-factor authentication in a real browser: enable two-factor authentication with a key read from the page,
sign in with a TOTP code and with a recovery code, see a used recovery code refused, disable."""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import pyotp
from playwright.async_api import Page, expect

from tests.e2e.conftest import open_verification_link

PASSWORD = "a long enough passphrase"


def current_step() -> int:
    return int(time.time()) // 30


async def fresh_code(secret: str, last_step: int) -> tuple[str, int]:
    """A code the server has not seen: for a step after ``last_step`` and inside T-1..T+1.

    The server refuses any step at or before the last accepted one (S28) and accepts T+1,
    so this waits only when the last accepted step is already ahead of the clock.
    """
    while True:
        step = max(last_step + 1, current_step())
        if step <= current_step() + 1:
            return pyotp.TOTP(secret).at(step * 30), step
        await asyncio.sleep(30 - time.time() % 30 + 0.2)


async def sign_in_with_password(page: Page, email: str) -> None:
    await page.goto("/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(re.compile(r"/login/two-factor$"))


async def sign_out(page: Page) -> None:
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(re.compile(r"/login$"))


async def confirm_password_if_asked(page: Page) -> None:
    if "/confirm-password" in page.url:
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Confirm").click()


async def test_enable_sign_in_with_code_and_recovery_code_then_disable(mailbox, page: Page, shot):
    email = f"tfa-{uuid.uuid4().hex[:8]}@example.com"
    page.on("dialog", lambda dialog: dialog.accept())

    # Register and open Settings → Security.
    await page.goto("/register")
    await page.get_by_label("Name").fill("Tia Two-Factor")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_label("Confirm password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page).to_have_url(re.compile(r"/register/check-email$"))
    await open_verification_link(page, mailbox, email)
    await expect(page).to_have_url(re.compile(r"/dashboard$"))
    await page.get_by_role("link", name="Settings").click()
    await (
        page.get_by_role("navigation", name="Settings sections")
        .get_by_role("link", name="Security")
        .click()
    )
    await expect(page.locator('[data-2fa-status="off"]')).to_be_visible()
    await shot(page, "security-off")

    # Enable: the password is confirmed first (S20), then the setup page.
    await page.get_by_role("button", name="Enable two-factor authentication").click()
    await expect(page).to_have_url(re.compile(r"/confirm-password"))
    await shot(page, "confirm-password")
    await confirm_password_if_asked(page)
    await expect(page).to_have_url(re.compile(r"/settings/security$"))
    await page.get_by_role("button", name="Enable two-factor authentication").click()
    await expect(page).to_have_url(re.compile(r"/settings/security/two-factor/setup$"))
    await expect(page.locator("figure.qr svg")).to_be_visible()
    await expect(page.get_by_role("button", name="Copy key")).to_be_visible()  # copy.js ran
    secret = await page.locator("#tfa-key").get_attribute("data-secret")
    grouped = await page.locator("#tfa-key").inner_text()
    assert secret and grouped.replace(" ", "") == secret and len(secret) == 32
    await shot(page, "setup")

    # A wrong code keeps it off; the right one turns it on and shows the codes once.
    await page.get_by_label("Code from the app").fill("12345x")
    await page.get_by_role("button", name="Turn on").click()
    await expect(page.locator("#e-code")).to_contain_text("6-digit code")
    await shot(page, "setup-bad-code")
    code, last_step = await fresh_code(secret, 0)
    await page.get_by_label("Code from the app").fill(code)
    await page.get_by_role("button", name="Turn on").click()
    await expect(
        page.get_by_role("heading", name="Two-factor authentication is on")
    ).to_be_visible()
    codes = await page.locator(".recovery-codes code").all_inner_texts()
    assert len(codes) == 10 and all(re.fullmatch(r"[0-9a-z]{5}(-[0-9a-z]{5}){4}", c) for c in codes)
    await expect(page.get_by_role("button", name="Copy codes")).to_be_visible()
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Download (.txt)").click()
    download = await download_info.value
    assert download.suggested_filename == "slicestar-recovery-codes.txt"
    with open(await download.path(), encoding="utf-8") as saved:
        assert saved.read().split() == codes
    await shot(page, "recovery-codes")
    await page.get_by_role("link", name="I have saved them").click()
    await expect(page.locator('[data-2fa-status="on"]')).to_be_visible()
    await expect(page.locator("[data-recovery-remaining]")).to_have_text(
        "10 of 10 recovery codes left."
    )
    await shot(page, "security-on")

    # Sign out; sign in with the password, then a code from the app.
    await sign_out(page)
    await sign_in_with_password(page, email)
    await page.goto("/dashboard")  # the pending login opens nothing else (S12)
    await expect(page).to_have_url(re.compile(r"/login\?next=/dashboard$"))
    await sign_in_with_password(page, email)
    await shot(page, "challenge")
    code, last_step = await fresh_code(secret, last_step)
    await page.get_by_label("Authentication code").fill(code)
    await page.get_by_role("button", name="Verify").click()
    await expect(page).to_have_url(re.compile(r"/dashboard$"))
    await expect(page.locator(".flash-success")).to_have_text("You are signed in.")
    await shot(page, "signed-in-with-code")

    # Sign out; sign in with a recovery code, typed loosely.
    await sign_out(page)
    await sign_in_with_password(page, email)
    await page.get_by_role("link", name="Use a recovery code").click()
    await expect(page).to_have_url(re.compile(r"method=recovery"))
    await page.get_by_label("Recovery code").fill(" " + codes[0].upper().replace("-", " ") + " ")
    await shot(page, "challenge-recovery")
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/dashboard$"))
    await shot(page, "signed-in-with-recovery-code")

    # The same recovery code never works again.
    await sign_out(page)
    await sign_in_with_password(page, email)
    await page.get_by_role("link", name="Use a recovery code").click()
    await page.get_by_label("Recovery code").fill(codes[0])
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page.locator("#e-recovery_code")).to_have_text(
        "That recovery code is not valid or was already used."
    )
    await shot(page, "recovery-code-reused")
    await page.get_by_role("link", name="Use a code from your authenticator app").click()
    code, last_step = await fresh_code(secret, last_step)
    await page.get_by_label("Authentication code").fill(code)
    await page.get_by_role("button", name="Verify").click()
    await expect(page).to_have_url(re.compile(r"/dashboard$"))

    # Disable (password confirmation again: this is a new session, S31).
    await page.goto("/settings/security")
    await expect(page.locator("[data-recovery-remaining]")).to_have_text(
        "9 of 10 recovery codes left."
    )
    await page.get_by_role("button", name="Turn off two-factor authentication").click()
    await expect(page).to_have_url(re.compile(r"/confirm-password"))
    await confirm_password_if_asked(page)
    await expect(page).to_have_url(re.compile(r"/settings/security$"))
    await page.get_by_role("button", name="Turn off two-factor authentication").click()
    await expect(page.locator(".flash-success")).to_have_text("Two-factor authentication is off.")
    await expect(page.locator('[data-2fa-status="off"]')).to_be_visible()
    await shot(page, "security-off-again")

    # Signing in needs only the password again.
    await sign_out(page)
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(re.compile(r"/dashboard$"))
    await shot(page, "signed-in-password-only")
