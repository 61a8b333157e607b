"""Helpers for two-factor tests: enable 2FA through the pages, compute codes, read events."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

import pyotp
from httpx import AsyncClient, Response
from sqlalchemy import select

from features.core.auth.two_factor.service import STEP_SECONDS, time_step, totp_at_step
from features.sessions.models import BrowserSession
from features.users.models import User
from shared import clock
from shared.clock import FrozenClock
from tests.support import DEFAULT_PASSWORD, csrf, login, post_form

SECRET_RE = re.compile(r'data-secret="([A-Z2-7]{32})"')
CODE_RE = re.compile(r"<li><code>([0-9a-z]{5}(?:-[0-9a-z]{5}){4})</code></li>")
CHALLENGE = "/login/two-factor"


def step_start(offset_steps: int = 0) -> datetime:
    """The first instant of a time step near now (plus ``offset_steps``), as aware UTC."""
    current = time_step(datetime.now(UTC)) + offset_steps
    return datetime.fromtimestamp(current * STEP_SECONDS, UTC)


def frozen_at_step_start() -> FrozenClock:
    return FrozenClock(step_start())


def code_now(secret: str, offset: int = 0) -> str:
    """The code of the current step of the app clock, plus ``offset`` steps."""
    return totp_at_step(secret, time_step(clock.now()) + offset)


async def away_from_step_end(margin_seconds: float = 5.0) -> None:
    """On the real clock, wait for the next time step when fewer than ``margin_seconds`` of the
    current one remain, so a code computed now is still the same step when a server (perhaps
    another process, behind a page load) checks it. A frozen app clock needs no wait."""
    now = clock.now()
    if abs((now - datetime.now(UTC)).total_seconds()) > 1:  # a FrozenClock far from real time
        return
    left = (time_step(now) + 1) * STEP_SECONDS - now.timestamp()
    if left < margin_seconds:
        await asyncio.sleep(left + 0.05)


async def confirm_password(client: AsyncClient, password: str = DEFAULT_PASSWORD) -> None:
    response = await post_form(
        client, "/confirm-password", {"password": password, "next": "/settings/security"}
    )
    assert response.status_code == 303, response.text


async def security_post(client: AsyncClient, path: str, data: dict | None = None) -> Response:
    """POST to a Security settings action with the page's CSRF token."""
    return await post_form(client, path, data or {}, token_from="/settings/security")


async def start_setup(client: AsyncClient) -> str:
    """Confirm the password, start the setup and return the key shown on the setup page."""
    await confirm_password(client)
    response = await security_post(client, "/settings/security/two-factor/setup")
    assert response.status_code == 303
    assert response.headers["location"] == "/settings/security/two-factor/setup"
    page = await client.get("/settings/security/two-factor/setup")
    assert page.status_code == 200, page.text
    match = SECRET_RE.search(page.text)
    assert match, "setup page shows no key"
    return match.group(1)


async def enable_two_factor(client: AsyncClient) -> tuple[str, list[str]]:
    """Turn 2FA on for the signed-in client; returns ``(secret, recovery codes)``.

    Uses the code of the *previous* step (accepted, S27), so the current and next steps stay
    free for the test's first sign-in.
    """
    secret = await start_setup(client)
    await away_from_step_end()
    response = await security_post(
        client, "/settings/security/two-factor/confirm", {"code": code_now(secret, -1)}
    )
    assert response.status_code == 200, response.text
    codes = CODE_RE.findall(response.text)
    assert len(codes) == 10
    return secret, codes


async def sign_out(client: AsyncClient) -> None:
    await client.post("/logout", data={"_csrf_token": await csrf(client, "/dashboard")})
    client.cookies.clear()


async def password_step(client: AsyncClient, email: str, **kwargs) -> Response:
    """Sign in with the password; asserts the redirect to the challenge."""
    response = await login(client, email, **kwargs)
    assert response.status_code == 303, response.text
    assert response.headers["location"].startswith(CHALLENGE), response.headers["location"]
    return response


async def submit_code(client: AsyncClient, code: str, **extra: str) -> Response:
    return await post_form(client, CHALLENGE, {"code": code, **extra}, token_from=CHALLENGE)


async def submit_recovery(client: AsyncClient, code: str) -> Response:
    return await post_form(
        client, f"{CHALLENGE}/recovery", {"recovery_code": code}, token_from=CHALLENGE
    )


async def user_row(app, email: str) -> User:
    async with app.state.db.reader() as session:
        return await session.scalar(select(User).where(User.email == email))


async def session_rows(app) -> list[BrowserSession]:
    async with app.state.db.reader() as session:
        return list((await session.scalars(select(BrowserSession))).all())


def record_events(app, monkeypatch) -> list:
    """Capture every security event the two-factor pages emit (they are still emitted),
    including the sign-in they report through ``login_guard``."""
    import features.core.auth.login_guard as login_guard
    import features.core.auth.two_factor.handlers as handlers

    events: list = []
    original = handlers.emit_security_event

    def spy(connection, name, **kwargs):
        event = original(connection, name, **kwargs)
        events.append(event)
        return event

    monkeypatch.setattr(handlers, "emit_security_event", spy)
    monkeypatch.setattr(login_guard, "emit_security_event", spy)
    return events


def names(events: list) -> list[str]:
    return [e.name for e in events]


def pyotp_now(secret: str) -> str:
    """A code computed independently of the app (pyotp at the app clock's time)."""
    return pyotp.TOTP(secret).at(clock.now())
