"""Light and dark themes in a real browser: the system setting by default, a stored choice
over it from the very first frame (no flash of the wrong theme), and the toggle."""

from __future__ import annotations

from playwright.async_api import Browser, Page, expect

LIGHT_BG = "rgb(246, 247, 251)"  # --bg of app.css, light
DARK_BG = "rgb(15, 17, 23)"  # --bg of app.css, dark

# Runs in the page before any of its own scripts. It stores a choice when the test asks for
# one (only if none is stored, so the toggle's choice survives a reload), and writes down the
# theme the document has at the moment <body> is created, before anything can be painted,
# and in the first animation frame.
WATCH = """
(() => {
  const wanted = %s;
  if (wanted && !localStorage.getItem("theme")) localStorage.setItem("theme", wanted);
  window.__theme = {};
  const theme = () => document.documentElement.dataset.theme || null;
  new MutationObserver((_, observer) => {  // the document is still empty here: watch it
    if (document.body) {
      window.__theme.atBody = theme();
      observer.disconnect();
    }
  }).observe(document, { childList: true, subtree: true });
  requestAnimationFrame(() => {
    window.__theme.firstFrame = theme();
    window.__theme.firstFrameBg = document.body && getComputedStyle(document.body).backgroundColor;
  });
})();
"""


async def themed_page(browser: Browser, live_server: str, stored: str | None) -> Page:
    context = await browser.new_context(base_url=live_server, color_scheme="dark")
    context.set_default_timeout(10_000)
    await context.add_init_script(WATCH % (f'"{stored}"' if stored else "null"))
    return await context.new_page()


async def first_seen(page: Page) -> dict:
    """What the watcher wrote down, once the first frame has run (polled: the page's CSP
    forbids the string evaluation ``wait_for_function`` uses)."""
    for _ in range(100):
        seen = await page.evaluate("window.__theme")
        if "firstFrame" in seen:
            return seen
        await page.wait_for_timeout(50)
    raise AssertionError(f"no animation frame ran: {seen}")


async def background(page: Page) -> str:
    return await page.evaluate("getComputedStyle(document.body).backgroundColor")


async def test_system_dark_with_stored_light_shows_light_from_the_first_frame(
    browser: Browser, live_server: str, shot
):
    page = await themed_page(browser, live_server, "light")
    try:
        await page.goto("/login")
        assert await page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
        seen = await first_seen(page)
        assert seen == {"atBody": "light", "firstFrame": "light", "firstFrameBg": LIGHT_BG}
        assert await background(page) == LIGHT_BG
        await shot(page, "stored-light-over-system-dark")

        # The toggle switches to dark at once and the choice holds on the next page load,
        # again from the first frame.
        toggle = page.locator("[data-theme-toggle]")
        await expect(toggle).to_have_attribute("aria-label", "Switch to dark theme")
        await toggle.click()
        assert await page.evaluate("document.documentElement.dataset.theme") == "dark"
        assert await page.evaluate("localStorage.getItem('theme')") == "dark"
        assert await background(page) == DARK_BG
        await expect(toggle).to_have_attribute("aria-label", "Switch to light theme")
        await page.reload()
        seen = await first_seen(page)
        assert seen == {"atBody": "dark", "firstFrame": "dark", "firstFrameBg": DARK_BG}
        await shot(page, "toggled-dark")
        await page.locator("[data-theme-toggle]").click()
        assert await background(page) == LIGHT_BG
    finally:
        await page.context.close()


async def test_without_a_stored_choice_the_system_setting_decides(
    browser: Browser, live_server: str
):
    page = await themed_page(browser, live_server, None)
    try:
        await page.goto("/login")
        seen = await first_seen(page)
        assert seen == {"atBody": None, "firstFrame": None, "firstFrameBg": DARK_BG}
        await page.emulate_media(color_scheme="light")
        assert await background(page) == LIGHT_BG
    finally:
        await page.context.close()
