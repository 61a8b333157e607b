"""Files in a real browser: upload two images (file picker) and a PDF (drag and drop) with
progress bars, choose an avatar that shows in the navigation, delete a file."""

from __future__ import annotations

import re
import uuid

from playwright.async_api import Page, expect

from tests.e2e.conftest import open_verification_link
from tests.features.assets.helpers import PDF_BYTES, image_bytes

PASSWORD = "a long enough passphrase"


async def test_upload_with_progress_set_avatar_and_delete(mailbox, page: Page, shot, tmp_path):
    first = tmp_path / "Sunset at the beach.jpg"
    first.write_bytes(image_bytes("JPEG", (2400, 1600), (240, 120, 40), quality=95))
    second = tmp_path / "portrait.png"
    second.write_bytes(image_bytes("PNG", (500, 500), (40, 90, 200)))

    email = f"files-{uuid.uuid4().hex[:8]}@example.com"
    await page.goto("/register")
    await page.get_by_label("Name").fill("Frida Files")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_label("Confirm password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page).to_have_url(re.compile(r"/register/check-email$"))
    await open_verification_link(page, mailbox, email)
    await expect(page).to_have_url(re.compile(r"/dashboard$"))
    await expect(page.locator(".nav-avatar")).to_have_count(0)

    await page.get_by_role("link", name="Files", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/assets$"))
    await expect(page.get_by_text("No files yet.")).to_be_visible()
    await shot(page, "files-empty")

    # Two images through the file picker: the script uploads each with its own progress bar.
    await page.get_by_label("Choose files to upload").set_input_files([first, second])
    # The PDF by drag and drop onto the drop zone.
    drop = await page.evaluate_handle(
        """([bytes, name]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], name, {type: "application/pdf"}));
            return transfer;
        }""",
        [list(PDF_BYTES), "Invoice 2026.pdf"],
    )
    await page.dispatch_event("[data-dropzone]", "drop", {"dataTransfer": drop})
    items = page.locator(".upload-item")
    await expect(items).to_have_count(3)
    await expect(page.locator('.upload-item[data-upload-state="done"]')).to_have_count(3)
    for index in range(3):
        await expect(items.nth(index).locator("progress")).to_have_js_property("value", 100)
        await expect(items.nth(index).locator(".upload-status")).to_have_text("Uploaded")
    await shot(page, "uploaded-with-progress")

    await page.get_by_role("link", name="Show my files").click()
    cards = page.locator("li.asset")
    await expect(cards).to_have_count(3)
    await expect(page.locator("[data-usage]")).to_contain_text("3 files")
    sunset = cards.filter(has_text="Sunset at the beach.jpg")
    await expect(sunset).to_contain_text("1920×1280")
    thumb = sunset.locator("img")
    await expect(thumb).to_be_visible()
    await thumb.evaluate(
        "img => img.complete || new Promise(done => img.addEventListener('load', done))"
    )
    assert await thumb.evaluate("img => img.naturalWidth") == 320
    await expect(cards.filter(has_text="Invoice 2026.pdf").locator(".asset-icon")).to_have_text(
        "PDF"
    )
    await shot(page, "grid")

    # Open the image (its WebP rendition) with the safe serving headers.
    href = await sunset.get_by_role("link", name="Open").get_attribute("href")
    response = await page.request.get(href)
    assert response.status == 200
    assert response.headers["content-type"] == "image/webp"
    assert response.headers["content-security-policy"].startswith("sandbox")
    assert response.headers["content-disposition"].startswith("inline;")
    await page.goto(href)  # a sandboxed document that shows the image
    assert await page.evaluate("document.images[0].naturalWidth") == 1920
    await shot(page, "open-image")
    await page.go_back()

    # Choose the portrait as avatar: it appears in the navigation.
    await cards.filter(has_text="portrait.png").get_by_role("button", name="Use as avatar").click()
    await expect(page.locator(".flash-success")).to_have_text("Your avatar is set.")
    avatar = page.locator("img.nav-avatar")
    await expect(avatar).to_be_visible()
    await page.wait_for_function(
        "() => document.querySelector('img.nav-avatar').naturalWidth === 320"
    )
    await expect(page.locator("li.asset", has_text="portrait.png").locator(".badge")).to_have_text(
        "Avatar"
    )
    await shot(page, "avatar-set")

    # Delete the PDF after confirming.
    await (
        page.locator("li.asset", has_text="Invoice 2026.pdf")
        .get_by_role("link", name="Delete")
        .click()
    )
    await expect(page.get_by_role("heading", name="Delete “Invoice 2026.pdf”?")).to_be_visible()
    await shot(page, "confirm-delete")
    await page.get_by_role("button", name="Delete file").click()
    await expect(page.locator(".flash-success")).to_have_text("Deleted Invoice 2026.pdf.")
    await expect(page.locator("li.asset")).to_have_count(2)

    # Deleting the avatar's image removes the avatar too.
    await (
        page.locator("li.asset", has_text="portrait.png").get_by_role("link", name="Delete").click()
    )
    await page.get_by_role("button", name="Delete file").click()
    await expect(page.locator("li.asset")).to_have_count(1)
    await expect(page.locator("img.nav-avatar")).to_have_count(0)
    await shot(page, "after-delete")
