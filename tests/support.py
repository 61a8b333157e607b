"""Helpers for tests: reading CSRF tokens, signing up and in, PostgreSQL admin statements."""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from httpx import AsyncClient, Response

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


async def register(
    client: AsyncClient,
    email: str,
    *,
    name: str = "Test User",
    password: str = DEFAULT_PASSWORD,
) -> Response:
    """Sign up through the form; the client ends signed in. Asserts the 303."""
    response = await post_form(
        client,
        "/register",
        {"name": name, "email": email, "password": password, "password_confirmation": password},
    )
    assert response.status_code == 303, response.text
    return response


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
