"""Tasks in a real browser: register, manage tasks, sign out, sign in with "remember me"."""

from __future__ import annotations

import re
import uuid

from playwright.async_api import Page, expect

from tests.e2e.conftest import open_verification_link

PASSWORD = "a long enough passphrase"


async def add_task(page: Page, title: str) -> None:
    await page.get_by_label("New task").fill(title)
    await page.get_by_role("button", name="Add task").click()
    await expect(page.locator(".flash-success")).to_contain_text("Task added.")


async def test_register_manage_tasks_sign_out_and_in_again(mailbox, page: Page, context, shot):
    email = f"e2e-{uuid.uuid4().hex[:8]}@example.com"

    # Register and land signed in on the dashboard.
    await page.goto("/")
    await expect(page).to_have_url(re.compile(r"/login$"))
    await shot(page, "login")
    await page.get_by_role("link", name="Create an account").click()
    await page.get_by_label("Name").fill("Erin Example")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_label("Confirm password").fill("not the same passphrase")
    await page.get_by_role("button", name="Create account").click()
    await expect(page.locator(".field-error")).to_have_text("The two passwords do not match.")
    await shot(page, "register-error")
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_label("Confirm password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page).to_have_url(re.compile(r"/register/check-email$"))
    await open_verification_link(page, mailbox, email)
    await expect(page).to_have_url(re.compile(r"/dashboard$"))
    await expect(page.get_by_role("heading", name="Hello, Erin Example")).to_be_visible()
    await shot(page, "dashboard-empty")

    # Create tasks.
    await page.get_by_role("link", name="Tasks", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/tasks$"))
    await page.get_by_role("button", name="Add task").click()  # empty title
    await expect(page.locator("#e-title")).to_have_text("Enter a title.")
    for title in ("Buy milk", "Write report", "Call the plumber"):
        await add_task(page, title)
    await shot(page, "tasks-three")

    # Edit a title.
    row = page.locator("li.task", has_text="Write report")
    await row.get_by_role("link", name="Edit").click()
    await expect(page.get_by_role("heading", name="Edit task")).to_be_visible()
    await page.get_by_label("Title").fill("Write the quarterly report")
    await shot(page, "edit")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator(".flash-success")).to_contain_text("Task updated.")
    await expect(page.locator("li.task", has_text="Write the quarterly report")).to_be_visible()

    # Mark completed, and back.
    milk = page.locator("li.task", has_text="Buy milk")
    await milk.get_by_role("button", name="Mark “Buy milk” as completed").click()
    await expect(page.locator("li.task-completed", has_text="Buy milk")).to_be_visible()
    await shot(page, "completed")
    await (
        page.locator("li.task", has_text="Buy milk")
        .get_by_role("button", name="Mark “Buy milk” as pending")
        .click()
    )
    await expect(page.locator("li.task-pending", has_text="Buy milk")).to_be_visible()
    await (
        page.locator("li.task", has_text="Call the plumber")
        .get_by_role("button", name="Mark “Call the plumber” as completed")
        .click()
    )

    # Filter pending / completed.
    await (
        page.get_by_role("navigation", name="Filter by status")
        .get_by_role("link", name="Completed")
        .click()
    )
    await expect(page.locator("li.task")).to_have_count(1)
    await expect(page.locator("li.task")).to_contain_text("Call the plumber")
    await shot(page, "filter-completed")
    await (
        page.get_by_role("navigation", name="Filter by status")
        .get_by_role("link", name="Pending")
        .click()
    )
    await expect(page.locator("li.task")).to_have_count(2)
    await shot(page, "filter-pending")
    await (
        page.get_by_role("navigation", name="Filter by status")
        .get_by_role("link", name="All")
        .click()
    )

    # Search by title.
    await page.get_by_label("Search titles").fill("quarterly")
    await page.get_by_role("button", name="Apply").click()
    await expect(page.locator("li.task")).to_have_count(1)
    await expect(page.locator("li.task")).to_contain_text("Write the quarterly report")
    await shot(page, "search")
    await page.get_by_role("link", name="Reset").click()

    # Page through 60 tasks: 57 more through the same form posts the page makes.
    token = await page.locator('input[name="_csrf_token"]').first.get_attribute("value")
    for n in range(1, 58):
        response = await page.request.post(
            "/tasks", form={"title": f"Bulk task {n:02d}", "_csrf_token": token}, max_redirects=0
        )
        assert response.status == 303
    await page.goto("/tasks")
    await expect(page.locator(".page-head")).to_contain_text("60 tasks")
    await expect(page.locator("li.task")).to_have_count(20)
    pages = page.get_by_role("navigation", name="Pages")
    await pages.get_by_role("link", name="Next ›").click()
    await expect(page).to_have_url(re.compile(r"page=2"))
    await expect(pages.locator('[aria-current="page"]')).to_have_text("2")
    await shot(page, "page-2")
    await pages.get_by_role("link", name="3", exact=True).click()
    await expect(page.locator("li.task")).to_have_count(20)
    await expect(
        page.get_by_role("navigation", name="Pages").get_by_text("Next ›")
    ).to_have_attribute("aria-disabled", "true")
    await shot(page, "page-3")

    # Delete one (confirming the dialog).
    await page.goto("/tasks")
    page.once("dialog", lambda dialog: dialog.accept())
    await (
        page.locator("li.task", has_text="Bulk task 57")
        .get_by_role("button", name="Delete")
        .click()
    )
    await expect(page.locator(".flash-success")).to_contain_text("Task deleted.")
    await expect(page.locator(".page-head")).to_contain_text("59 tasks")
    await expect(page.locator("li.task", has_text="Bulk task 57")).to_have_count(0)
    await shot(page, "deleted")

    # Dashboard figures.
    await page.get_by_role("link", name="Dashboard").click()
    await expect(page.locator('[data-stat="total"]')).to_have_text("59")
    await expect(page.locator('[data-stat="completed"]')).to_have_text("1")
    await expect(page.locator('[data-stat="pending"]')).to_have_text("58")
    await expect(page.locator('[data-stat="week"]')).to_have_text("59")
    await shot(page, "dashboard")

    # Theme toggle: dark, remembered across pages.
    await page.locator("[data-theme-toggle]").click()
    theme = await page.evaluate("document.documentElement.dataset.theme")
    assert theme in ("dark", "light")
    await page.reload()
    assert await page.evaluate("document.documentElement.dataset.theme") == theme
    await shot(page, f"dashboard-{theme}")

    # Sign out; pages need signing in again.
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(re.compile(r"/login$"))
    await expect(page.locator(".flash-info")).to_have_text("You have been signed out.")
    await page.goto("/tasks")
    await expect(page).to_have_url(re.compile(r"/login\?next=/tasks$"))

    # Sign in with "remember me": back to where we were going, with a persistent cookie.
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_label("Remember me for 30 days").check()
    await shot(page, "login-remember")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(re.compile(r"/tasks$"))
    await expect(page.locator(".page-head")).to_contain_text("59 tasks")
    session = next(c for c in await context.cookies() if c["name"] == "session")
    assert session["expires"] > 0 and session["httpOnly"] and session["sameSite"] == "Lax"
    await shot(page, "signed-in-again")
