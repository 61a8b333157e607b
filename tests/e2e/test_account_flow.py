"""Email verification and password reset in a real browser, with the links taken from the
mail a real SMTP server received (SECURITY.md S7, S8, S11, S33, S36): S7 by signing up again
with a taken address, S8 by a reset request for an unknown one."""

from __future__ import annotations

import re
import uuid

from playwright.async_api import Page, expect

from tests.e2e.conftest import mailed_link, open_verification_link

PASSWORD = "a long enough passphrase"
NEW_PASSWORD = "another long passphrase"


async def sign_in(page: Page, email: str, password: str) -> None:
    await page.goto("/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()


async def test_register_verify_sign_out_reset_password_and_sign_in_again(page: Page, mailbox, shot):
    email = f"life-{uuid.uuid4().hex[:8]}@example.com"

    # Register: "check your inbox", not signed in.
    await page.goto("/register")
    await page.get_by_label("Name").fill("Liv Lifecycle")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_label("Confirm password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page).to_have_url(re.compile(r"/register/check-email$"))
    await expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    await expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    await shot(page, "check-your-inbox")

    # Signed in but unverified: only the "verify your email" page.
    await sign_in(page, email, PASSWORD)
    await expect(page).to_have_url(re.compile(r"/verify-email$"))
    await page.goto("/tasks")
    await expect(page).to_have_url(re.compile(r"/verify-email$"))
    await expect(page.get_by_role("link", name="Tasks")).to_have_count(0)
    await shot(page, "verify-your-email")

    # The link from the mail: verified and signed in.
    [received] = mailbox.to(email)
    assert received.message["Subject"] == "Slicestar: Verify your email address"
    assert "Verify my email address" in received.html
    await open_verification_link(page, mailbox, email)
    await expect(page).to_have_url(re.compile(r"/dashboard$"))
    await expect(page.locator(".flash-success")).to_contain_text("Your email address is verified.")
    await expect(page.get_by_role("heading", name="Hello, Liv Lifecycle")).to_be_visible()
    await shot(page, "verified-dashboard")

    # Sign out; forgot password → link → new password.
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(re.compile(r"/login$"))
    await page.get_by_role("link", name="Forgot your password?").click()
    await page.get_by_label("Email").fill(email)
    await shot(page, "forgot-password")
    await page.get_by_role("button", name="Send me a link").click()
    await expect(page).to_have_url(re.compile(r"/login$"))
    await expect(page.locator(".flash-info")).to_contain_text("we have sent it a link")
    link = mailed_link(mailbox, email, "/reset-password/")
    await page.goto(link)
    await expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    await page.get_by_label("New password", exact=True).fill("short")
    await page.get_by_label("Confirm new password").fill("short")
    await page.get_by_role("button", name="Set new password").click()
    await expect(page.locator("#e-password")).to_have_text("Use at least 8 characters.")
    await page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    await page.get_by_label("Confirm new password").fill(NEW_PASSWORD)
    await shot(page, "new-password")
    await page.get_by_role("button", name="Set new password").click()
    await expect(page).to_have_url(re.compile(r"/login$"))  # nobody is signed in (S36)
    await expect(page.locator(".flash-success")).to_contain_text("Sign in with your new password")

    # The link is used up; the old password fails, the new one works.
    await page.goto(link)
    await expect(page.get_by_role("heading", name="This link cannot be used")).to_be_visible()
    await shot(page, "used-link")
    await sign_in(page, email, PASSWORD)
    await expect(page.locator(".flash-error")).to_have_text("The email or password is incorrect.")
    await sign_in(page, email, NEW_PASSWORD)
    await expect(page).to_have_url(re.compile(r"/dashboard$"))
    await shot(page, "signed-in-with-new-password")
    confirmation = mailbox.wait_for(
        lambda _: any(
            m.message["Subject"] == "Slicestar: Your password was reset" for m in mailbox.to(email)
        )
    )
    assert confirmation

    # S7: signing up again with the address answers exactly like a new sign-up; the owner
    # gets a mail instead of a second account.
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(re.compile(r"/login$"))
    await page.goto("/register")
    await page.get_by_label("Name").fill("Someone Else")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_label("Confirm password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page).to_have_url(re.compile(r"/register/check-email$"))
    await expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    await expect(page.get_by_text(f"We sent a link to {email}.")).to_be_visible()
    await expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    notice = mailbox.wait_for(
        lambda _: any(
            m.message["Subject"] == "Slicestar: You already have an account"
            for m in mailbox.to(email)
        )
    )
    assert notice
    await sign_in(page, email, PASSWORD)  # the second sign-up set no password
    await expect(page.locator(".flash-error")).to_have_text("The email or password is incorrect.")

    # S8: a reset request for an unknown address gets the same answer, and no mail.
    unknown = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
    await page.goto("/forgot-password")
    await page.get_by_label("Email").fill(unknown)
    await page.get_by_role("button", name="Send me a link").click()
    await expect(page).to_have_url(re.compile(r"/login$"))
    await expect(page.locator(".flash-info")).to_contain_text(
        f"If an account uses {unknown}, we have sent it a link"
    )
    assert mailbox.to(unknown) == []
