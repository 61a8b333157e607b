"""Tasks in a real browser with JavaScript turned off: every page and form works as plain HTML
(DESIGN.md §5). The account is made in the database; the browser signs in, manages tasks,
pages, deletes, reads the dashboard, signs out and in again with "remember me"."""

from __future__ import annotations

import re
import uuid

from playwright.async_api import Browser, Page, expect

from shared.database import Database
from tests.accounts import create_account

PASSWORD = "a long enough passphrase"


async def add_task(page: Page, title: str) -> None:
    await page.get_by_label("New task").fill(title)
    await page.get_by_role("button", name="Add task").click()
    await expect(page.locator(".flash-success")).to_contain_text("Task added.")


async def sign_in(page: Page, email: str, *, remember: bool = False) -> None:
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    if remember:
        await page.get_by_label("Remember me for 30 days").check()
    await page.get_by_role("button", name="Sign in").click()


async def test_tasks_flow_works_without_javascript(
    browser: Browser, live_server: str, live_server_dir, shot
):
    email = f"nojs-{uuid.uuid4().hex[:8]}@example.com"
    db = Database(f"sqlite+aiosqlite:///{live_server_dir / 'app.sqlite'}")
    try:
        await create_account(db, email, name="Noor Plain", password=PASSWORD)
    finally:
        await db.dispose()
    context = await browser.new_context(
        base_url=live_server, java_script_enabled=False, viewport={"width": 1200, "height": 900}
    )
    context.set_default_timeout(10_000)
    page = await context.new_page()
    try:
        await page.goto("/tasks")
        await expect(page).to_have_url(re.compile(r"/login\?next=/tasks$"))
        await sign_in(page, email)
        await expect(page).to_have_url(re.compile(r"/tasks$"))
        # Scripts never ran: the theme toggle (shown by app.js) stays hidden.
        await expect(page.locator("[data-theme-toggle]")).to_be_hidden()
        await shot(page, "tasks-empty")

        await page.get_by_role("button", name="Add task").click()  # empty title: 422 page
        await expect(page.locator("#e-title")).to_have_text("Enter a title.")
        for title in ("Buy milk", "Write report", "Call the plumber"):
            await add_task(page, title)

        row = page.locator("li.task", has_text="Write report")
        await row.get_by_role("link", name="Edit").click()
        await page.get_by_label("Title").fill("Write the quarterly report")
        await page.get_by_role("button", name="Save").click()
        await expect(page.locator(".flash-success")).to_contain_text("Task updated.")

        milk = page.locator("li.task", has_text="Buy milk")
        await milk.get_by_role("button", name="Mark “Buy milk” as completed").click()
        await expect(page.locator("li.task-completed", has_text="Buy milk")).to_be_visible()
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
        filters = page.get_by_role("navigation", name="Filter by status")
        await filters.get_by_role("link", name="Completed").click()
        await expect(page.locator("li.task")).to_have_count(1)
        await filters.get_by_role("link", name="All").click()

        await page.get_by_label("Search titles").fill("quarterly")
        await page.get_by_label("Sort by").select_option("title")
        await page.get_by_role("button", name="Apply").click()  # a plain GET form
        await expect(page).to_have_url(re.compile(r"q=quarterly"))
        await expect(page.locator("li.task")).to_have_count(1)
        await shot(page, "search")
        await page.get_by_role("link", name="Reset").click()

        token = await page.locator('input[name="_csrf_token"]').first.get_attribute("value")
        for n in range(1, 58):  # 60 tasks in all, through the form's own post
            response = await page.request.post(
                "/tasks",
                form={"title": f"Bulk task {n:02d}", "_csrf_token": token},
                max_redirects=0,
            )
            assert response.status == 303
        await page.goto("/tasks")
        await expect(page.locator(".page-head")).to_contain_text("60 tasks")
        pages = page.get_by_role("navigation", name="Pages")
        await pages.get_by_role("link", name="3", exact=True).click()
        await expect(page.locator("li.task")).to_have_count(20)
        await shot(page, "page-3")

        # Delete: without JavaScript there is no confirm dialog; the form posts at once.
        await page.goto("/tasks")
        await (
            page.locator("li.task", has_text="Bulk task 57")
            .get_by_role("button", name="Delete")
            .click()
        )
        await expect(page.locator(".flash-success")).to_contain_text("Task deleted.")
        await expect(page.locator(".page-head")).to_contain_text("59 tasks")

        await page.get_by_role("link", name="Dashboard").click()
        await expect(page.locator('[data-stat="total"]')).to_have_text("59")
        await expect(page.locator('[data-stat="completed"]')).to_have_text("1")
        await shot(page, "dashboard")

        await page.get_by_role("button", name="Sign out").click()
        await expect(page).to_have_url(re.compile(r"/login$"))
        await sign_in(page, email, remember=True)
        await expect(page).to_have_url(re.compile(r"/dashboard$"))
        session = next(c for c in await context.cookies() if c["name"] == "session")
        assert session["expires"] > 0 and session["httpOnly"]
        await shot(page, "signed-in-again")
    finally:
        await context.close()
