"""Helpers for tests: reading CSRF tokens, signing up (through the mailed verification link)
and in, reading the mail outbox, PostgreSQL admin statements."""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from httpx import AsyncClient, Response
from litestar import Litestar

from shared.mail import OutboxMessage, read_outbox

TOKEN_RE = re.compile(r'name="_csrf_token" value="([^"]+)"')
DEFAULT_PASSWORD = "correct horse battery staple"


def csrf_from(html: str) -> str:
    """The CSRF token embedded in a rendered page."""
    match = TOKEN_RE.search(html)
    assert match, "page has no CSRF field"
    return match.group(1)


async def csrf(client: AsyncClient, path: str = "/login") -> str:
    """GET ``path`` and return its CSRF token (sets the guest CSRF cookie when needed)."""
    response = await client.get(path)
    while response.is_redirect:
        response = await client.get(response.headers["location"])
    return csrf_from(response.text)


async def post_form(
    client: AsyncClient, path: str, data: dict[str, Any], *, token_from: str | None = None
) -> Response:
    """POST ``data`` with a valid CSRF token taken from ``token_from`` (default: ``path``'s page)."""
    token = await csrf(client, token_from or _page_for(path))
    return await client.post(path, data={**data, "_csrf_token": token})


def _page_for(path: str) -> str:
    if path in ("/login", "/register"):
        return path
    return "/dashboard"


def app_of(client: AsyncClient) -> Litestar | None:
    """The app an in-process test client calls (``httpx.ASGITransport`` or Litestar's test
    client), or ``None`` for a client of a server process."""
    app = getattr(client, "app", None) or getattr(client._transport, "app", None)
    return app if isinstance(app, Litestar) else None


def server_outbox() -> Path:
    """The outbox folder of server processes the tests start: they inherit ``MAIL_OUTBOX_DIR``
    from the test process (set once per run in ``tests/conftest.py``)."""
    return Path(os.environ["MAIL_OUTBOX_DIR"])


async def outbox(client: AsyncClient) -> list[OutboxMessage]:
    """Every mail the app behind ``client`` sent so far, newest first. In-process, once its
    delivery queue is empty; for a server process, what its outbox folder holds now."""
    app = app_of(client)
    if app is None:
        return read_outbox(server_outbox(), limit=10_000)
    await app.state.mail.join()
    return read_outbox(app.state.settings.mail_outbox_dir, limit=10_000)


async def mails_to(client: AsyncClient, email: str) -> list[OutboxMessage]:
    """The mails sent to ``email`` (newest first)."""
    return [m for m in await outbox(client) if f"<{email}>" in m.to or m.to == email]


def local_path(link: str) -> str:
    """``/path`` of an absolute ``http(s)://host/path`` link."""
    return "/" + link.split("://", 1)[1].partition("/")[2]


async def mailed_link(
    client: AsyncClient, email: str, path: str, *, after_ns: int = 0, timeout: float = 10
) -> str:
    """The path (``/verify-email/<token>`` …) of the newest link starting with ``path`` mailed
    to ``email``, in a mail written after ``after_ns`` (``time.time_ns()``; server processes
    share one outbox folder), waiting up to ``timeout`` seconds for a server process's mail.
    Asserts there is one."""
    for _ in range(int(timeout / 0.05)):
        for message in await mails_to(client, email):
            if message.written_ns < after_ns:
                continue
            for link in message.links:
                if local_path(link).startswith(path):
                    return local_path(link)
        if app_of(client) is not None:
            break  # in-process: the queue was already empty
        await asyncio.sleep(0.05)
    raise AssertionError(f"no mail to {email} with a {path} link")


async def follow_link(client: AsyncClient, link_path: str, confirm: str) -> Response:
    """Open a mailed link (GET) and press its button (POST ``confirm`` with the page's token)."""
    page = await client.get(link_path)
    assert page.status_code == 200, page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    token = re.search(r'name="token" value="([^"]+)"', page.text)
    assert token, "the link page has no token field"
    return await client.post(
        confirm, data={"token": token.group(1), "_csrf_token": csrf_from(page.text)}
    )


async def verify_email(client: AsyncClient, email: str, *, after_ns: int = 0) -> Response:
    """Follow the newest verification link mailed to ``email``; the client ends signed in."""
    link = await mailed_link(client, email, "/verify-email/", after_ns=after_ns)
    response = await follow_link(client, link, "/verify-email/confirm")
    assert response.status_code == 303, response.text
    return response


async def verify_on_server(
    client: AsyncClient, base_url: str, email: str, *, after_ns: int = 0
) -> None:
    """Like :func:`verify_email` for a client without a base URL talking to a server process."""
    link = await mailed_link(client, email, "/verify-email/", after_ns=after_ns)
    page = await client.get(base_url + link)
    token = re.search(r'name="token" value="([^"]+)"', page.text)
    assert page.status_code == 200 and token, page.text
    response = await client.post(
        base_url + "/verify-email/confirm",
        data={"token": token.group(1), "_csrf_token": csrf_from(page.text)},
    )
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"


async def register(
    client: AsyncClient,
    email: str,
    *,
    name: str = "Test User",
    password: str = DEFAULT_PASSWORD,
    verify: bool = True,
) -> Response:
    """Sign up through the form and, with ``verify`` (the default), follow the verification
    link from the mail, so the client ends signed in; returns that last 303 (to the dashboard).
    Without ``verify`` it returns the sign-up's 303 (to "check your inbox"), signed out."""
    started = time.time_ns()
    response = await post_form(
        client,
        "/register",
        {"name": name, "email": email, "password": password, "password_confirmation": password},
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/register/check-email"
    if not verify:
        return response
    return await verify_email(client, email.strip().lower(), after_ns=started)


async def login(
    client: AsyncClient, email: str, password: str = DEFAULT_PASSWORD, remember: bool = False
) -> Response:
    """Sign in through the form and return the response (303 on success, 422 on failure)."""
    data = {"email": email, "password": password}
    if remember:
        data["remember"] = "1"
    return await post_form(client, "/login", data)


def pg_url_with_database(url: str, database: str) -> str:
    """``url`` pointing at ``database`` instead."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def pg_admin_execute(url: str, *statements: str) -> None:
    """Run statements outside a transaction on ``url``'s server (CREATE/DROP DATABASE)."""
    dsn = pg_url_with_database(url, "postgres").replace("postgresql+asyncpg://", "postgresql://")

    async def run() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(run())
        return
    import threading

    errors: list[BaseException] = []

    def in_thread() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
