"""Sign-in rules below the pages: where Argon2 runs (S1), the cookie over https (S13), the one
entry every sign-in path goes through (S32), a sign-in racing a reset or a disabling (S18,
S19)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from app import create_app
from features.core.auth.service import LOGIN_FAILED, AuthService, ClientInfo
from features.sessions.models import BrowserSession
from features.sessions.service import PendingLogin, SessionInfo, resolve
from features.users.models import User
from features.users.service import UserService
from shared.clock import FrozenClock, now, use_clock
from shared.security.passwords import Passwords
from tests.accounts import create_account
from tests.conftest import running
from tests.support import DEFAULT_PASSWORD, csrf, login


class RecordingVerifier:
    """The real Argon2 verify of :class:`Passwords`, noting the thread of every call and how
    many run at once."""

    def __init__(self, verify: Callable[[str, str], bool]) -> None:
        self.verify = verify
        self.lock = threading.Lock()
        self.threads: set[str] = set()
        self.loop_threads = 0
        self.active = self.peak = 0

    def __call__(self, password_hash: str, password: str) -> bool:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.threads.add(threading.current_thread().name)
        try:
            asyncio.get_running_loop()
            self.loop_threads += 1  # an event loop runs in this thread: it would be blocked
        except RuntimeError:
            pass
        try:
            return self.verify(password_hash, password)
        finally:
            with self.lock:
                self.active -= 1


async def test_s1_argon2_runs_off_the_event_loop_in_a_pool_no_larger_than_the_cpu_count():
    cpus = os.cpu_count() or 2
    passwords = Passwords()  # OWASP baseline: m = 19 MiB, t = 2, p = 1
    assert 1 <= passwords.threads <= cpus
    password_hash = await passwords.hash(DEFAULT_PASSWORD)
    recorder = RecordingVerifier(passwords._verify)
    passwords._verify = recorder  # type: ignore[method-assign]
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:  # the event loop keeps serving other work meanwhile
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    ticking = asyncio.create_task(ticker())
    burst = [passwords.verify(password_hash, DEFAULT_PASSWORD) for _ in range(4 * cpus)]
    results = await asyncio.gather(*burst, passwords.verify(None, DEFAULT_PASSWORD))
    done.set()
    await ticking
    assert results == [True] * (4 * cpus) + [False]  # the dummy verify (S6) ran too
    assert recorder.loop_threads == 0
    assert recorder.threads and all(name.startswith("argon2") for name in recorder.threads)
    assert len(recorder.threads) <= cpus and 1 <= recorder.peak <= cpus
    assert ticks > 4 * cpus


async def test_s13_over_https_the_cookie_is_host_prefixed_and_secure(settings):
    settings.app_url = "https://testserver.local"
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with (
        running(app),
        httpx.AsyncClient(transport=transport, base_url="https://testserver.local") as browser,
    ):
        guest = await browser.get("/login")
        csrf_cookie = next(
            v for v in guest.headers.get_list("set-cookie") if v.startswith("__Host-csrf=")
        )
        assert "secure" in csrf_cookie.lower()
        await create_account(app.state.db, "ann@example.com")
        response = await login(browser, "ann@example.com")
        assert response.status_code == 303
        cookies = response.headers.get_list("set-cookie")
        assert not any(v.startswith("session=") for v in cookies)
        cookie = next(v for v in cookies if v.startswith("__Host-session="))
        lowered = cookie.lower()
        assert "; secure" in lowered and "httponly" in lowered and "samesite=lax" in lowered
        assert "path=/" in lowered and "domain=" not in lowered
        dashboard = await browser.get("/dashboard")
        assert dashboard.status_code == 200
        assert dashboard.headers["strict-transport-security"].startswith("max-age=")
        assert await csrf(browser, "/tasks")  # the signed-in page works over the cookie


async def test_s32_start_session_gives_a_two_factor_user_only_a_pending_login(app, client):
    db, settings = app.state.db, app.state.settings
    ann = await create_account(db, "ann@example.com")
    bob = await create_account(db, "bob@example.com")
    async with db.write() as session:
        await session.execute(update(User).where(User.id == ann).values(two_factor_enabled=True))
    client_info = ClientInfo(ip_address="203.0.113.5", user_agent="an OAuth callback")
    clock = FrozenClock()
    with use_clock(clock):
        async with db.writer() as session:
            service = AuthService(session, settings, app.state.passwords)
            users = UserService(session)
            pending = await service.start_session(
                await users.get(ann), remember=True, client=client_info
            )
            signed_in = await service.start_session(
                await users.get(bob), remember=False, client=client_info
            )
        assert pending.two_factor_pending and not signed_in.two_factor_pending
        assert pending.session.pending_2fa_until == now() + timedelta(minutes=5)
        assert signed_in.session.pending_2fa_until is None
        resolved = await resolve(db, settings, pending.token)
        assert isinstance(resolved, PendingLogin)  # not a user: it opens only the challenge
        assert resolved.user_id == ann and resolved.remember
        user, info = await resolve(db, settings, signed_in.token)
        assert user.id == bob and isinstance(info, SessionInfo)
        client.cookies.set("session", pending.token)
        page = await client.get("/dashboard")
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
        clock.advance(minutes=5, milliseconds=1)
        assert await resolve(db, settings, pending.token) is None


@pytest.mark.parametrize("change", ["password_reset", "disabled"])
async def test_s18_s19_a_reset_or_disabling_while_argon2_runs_beats_the_sign_in(
    app, client, change
):
    """The password is checked outside any transaction; the sign-in's write then finds the
    account changed and writes nothing (no session, no ``last_login_at``, no re-hash)."""
    db, passwords = app.state.db, app.state.passwords
    ann = await create_account(db, "ann@example.com")
    check = passwords.verify

    async def verify_then_change(password_hash: str | None, password: str) -> bool:
        right = await check(password_hash, password)
        if change == "password_reset":
            values = {"password_hash": await passwords.hash("a new and long passphrase")}
        else:
            values = {"disabled_at": now()}
        async with db.write() as session:
            await session.execute(update(User).where(User.id == ann).values(**values))
        return right

    passwords.verify = verify_then_change  # type: ignore[method-assign]
    try:
        response = await login(client, "ann@example.com")
    finally:
        del passwords.verify
    assert response.status_code == 422
    assert LOGIN_FAILED in response.text
    async with db.reader() as session:
        user = await session.get(User, ann)
        sessions = await session.scalar(
            select(func.count()).select_from(BrowserSession).where(BrowserSession.user_id == ann)
        )
    assert user is not None and user.last_login_at is None and sessions == 0
    if change == "password_reset":  # the reset's hash stands, not a re-hash of the old password
        response = await login(client, "ann@example.com", "a new and long passphrase")
        assert response.status_code == 303
