"""Browser-test fixtures: one real server process for the whole run, and Playwright over
Debian's Chromium (no browser download; DESIGN.md §8).

``live_server`` is the base URL of a uvicorn process serving ``create_app`` on a copy of the
migrated template database; it sends its mail to ``mail_server``, a real SMTP server (aiosmtpd)
in the test process, and :func:`open_verification_link` follows a mailed link as a person would. ``browser`` is one headless Chromium; each test gets fresh
``context``/``page`` objects (own cookies). ``shot(page, name)`` saves a screenshot under
``test-artifacts/<test name>/``.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from shared.config import ROOT_DIR
from tests.conftest import SECRET_KEY
from tests.mail_server import Recorder, smtp_server

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = ROOT_DIR / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def live_server_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("live")


@pytest.fixture(scope="session")
def mail_server() -> Iterator[tuple[Recorder, int]]:
    """The SMTP server (127.0.0.1, free port) the live server sends its mail to."""
    with smtp_server() as running_server:
        yield running_server


def mailed_link(recorder: Recorder, email: str, path: str) -> str:
    """The newest link starting with ``path`` (e.g. ``/verify-email/``) in a mail to ``email``;
    waits up to 10 seconds for it."""
    found: list[str] = []

    def has_link(_messages) -> bool:
        for received in reversed(recorder.to(email)):
            for word in received.text.split():
                if word.startswith("http") and path in word:
                    found.append(word)
                    return True
        return False

    recorder.wait_for(has_link, timeout=10)
    return found[0]


async def open_verification_link(page: Page, recorder: Recorder, email: str) -> None:
    """Take the verification link from the mail to ``email``, open it and press its button:
    the person lands on the dashboard, verified and signed in."""
    await page.goto(mailed_link(recorder, email, "/verify-email/"))
    await page.get_by_role("button", name="Verify and sign in").click()


@pytest.fixture(scope="session")
def live_server(
    sqlite_template: Path, live_server_dir: Path, mail_server: tuple[Recorder, int]
) -> Iterator[str]:
    """Start the app in its own process on 127.0.0.1 and return its base URL."""
    db_path = live_server_dir / "app.sqlite"
    shutil.copyfile(sqlite_template, db_path)
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "APP_ENV": "test",
        "APP_URL": base_url,
        "SECRET_KEY": SECRET_KEY,
        "DATABASE_URL": f"sqlite+aiosqlite:///{db_path}",
        "STORAGE_DIR": str(live_server_dir / "assets"),
        "MAIL_URL": f"smtp://127.0.0.1:{mail_server[1]}",
    }
    log = (live_server_dir / "server.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-OO",  # no docstrings or asserts, as production serves (docker/entrypoint.sh)
            "-m",
            "uvicorn",
            "app:create_app",
            "--factory",
            "--app-dir",
            "src",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--no-proxy-headers",  # as `make run`: the app alone reads X-Forwarded-For (S9)
        ],
        cwd=ROOT_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(
                f"server did not start: {(live_server_dir / 'server.log').read_text()[-2000:]}"
            )
        time.sleep(0.1)
    yield base_url
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (see README, System packages)"
        )
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        await chromium.close()


@pytest.fixture
def mailbox(mail_server: tuple[Recorder, int]) -> Recorder:
    """What the SMTP server received (every test's mail; filter by address)."""
    return mail_server[0]


@pytest.fixture
async def context(browser: Browser, live_server: str) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(base_url=live_server, viewport={"width": 1200, "height": 900})
    ctx.set_default_timeout(10_000)
    yield ctx
    await ctx.close()


@pytest.fixture
async def page(context: BrowserContext) -> Page:
    return await context.new_page()


@pytest.fixture
def shot(request: pytest.FixtureRequest):
    """``await shot(page, "name")`` saves ``test-artifacts/<test>/<nn>-<name>.png``."""
    folder = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    counter = iter(range(1, 1000))

    async def take(page: Page, name: str) -> Path:
        path = folder / f"{next(counter):02d}-{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path

    return take
