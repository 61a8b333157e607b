"""Settings → Sessions (SECURITY.md S17, S20, S38), S10 adoption, S18 rotation, pruning."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from features.sessions.models import BrowserSession
from features.sessions.service import SessionService, prune_expired, resolve
from shared.clock import FrozenClock, use_clock
from shared.config import ROOT_DIR
from tests.conftest import SECRET_KEY
from tests.features.audit.helpers import names, wait_for_events
from tests.support import DEFAULT_PASSWORD, csrf, login, post_form, register

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"
SESSION_ID = re.compile(r'data-session="([0-9a-f-]{36})"')


async def session_count(app) -> int:
    async with app.state.db.reader() as session:
        return await session.scalar(select(func.count()).select_from(BrowserSession))


async def confirm(client) -> None:
    response = await post_form(
        client, "/confirm-password", {"password": DEFAULT_PASSWORD, "next": "/settings/sessions"}
    )
    assert response.status_code == 303


async def two_browsers(client, other_client) -> None:
    client.headers["user-agent"] = CHROME
    other_client.headers["user-agent"] = FIREFOX
    await register(client, "ann@example.com")
    assert (await login(other_client, "ann@example.com")).status_code == 303


async def test_s17_sessions_page_lists_each_session_with_device_ip_and_times(client, other_client):
    await two_browsers(client, other_client)
    page = await client.get("/settings/sessions")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert "Chrome 120 on Linux" in page.text and "Firefox 121 on Windows 10" in page.text
    listing = page.text.split('<ul class="session-list">', 1)[1].split("</ul>", 1)[0]
    assert listing.count("127.0.0.1") == 2
    assert listing.count("This device") == 1
    assert listing.index("This device") < listing.index("Firefox")  # this one first
    assert "just now" in page.text and " UTC" in page.text  # relative time, exact on hover
    assert len(SESSION_ID.findall(page.text)) == 2
    assert 'href="/settings/sessions" aria-current="page"' in page.text
    assert page.text.count("End session") == 1  # not offered for this device


async def test_s17_s20_ending_another_session_needs_the_password_and_is_immediate(
    client, other_client, app
):
    await two_browsers(client, other_client)
    page = await client.get("/settings/sessions")
    current, other = SESSION_ID.findall(page.text)
    token = await csrf(client, "/settings/sessions")
    path = f"/settings/sessions/{other}/end"
    refused = await client.post(
        path,
        data={"_csrf_token": token},
        headers={"referer": "http://testserver.local/settings/sessions"},
    )
    assert refused.status_code == 303
    assert refused.headers["location"] == "/confirm-password?next=/settings/sessions"
    assert (await other_client.get("/dashboard")).status_code == 200  # nothing ended yet
    await confirm(client)
    ended = await client.post(path, data={"_csrf_token": token})
    assert ended.status_code == 303 and ended.headers["location"] == "/settings/sessions"
    response = await other_client.get("/dashboard")  # its very next request
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    assert (await client.get("/dashboard")).status_code == 200
    assert (await client.post(path, data={"_csrf_token": token})).status_code == 404  # gone
    rows = await wait_for_events(app, lambda r: "session_revoked" in names(r))
    assert current not in str([r.details for r in rows])


async def test_s17_sign_out_everywhere_else_keeps_only_this_session(
    client, other_client, browser_factory, app
):
    await two_browsers(client, other_client)
    third = browser_factory()
    await login(third, "ann@example.com")
    await confirm(client)
    response = await post_form(
        client, "/settings/sessions/end-others", {}, token_from="/settings/sessions"
    )
    assert response.status_code == 303
    assert (await client.get("/settings/sessions")).text.count("data-session=") == 1
    for browser in (other_client, third):
        assert (await browser.get("/dashboard")).status_code == 303
    assert await session_count(app) == 1
    rows = await wait_for_events(app, lambda r: "session_revoked_all" in names(r))
    assert next(r for r in rows if r.event == "session_revoked_all").details == {"ended": 2}


async def test_s17_sign_out_everywhere_else_needs_a_recent_password(client, other_client):
    await two_browsers(client, other_client)
    response = await post_form(
        client, "/settings/sessions/end-others", {}, token_from="/settings/sessions"
    )
    assert response.status_code == 303 and response.headers["location"].startswith(
        "/confirm-password"
    )
    assert (await other_client.get("/dashboard")).status_code == 200


async def test_s38_another_users_session_id_is_404_and_nothing_ends(client, other_client, app):
    await register(client, "ann@example.com")
    ann_session = SESSION_ID.findall((await client.get("/settings/sessions")).text)[0]
    await register(other_client, "bob@example.com")
    await confirm(other_client)
    token = await csrf(other_client, "/settings/sessions")
    response = await other_client.post(
        f"/settings/sessions/{ann_session}/end", data={"_csrf_token": token}
    )
    assert response.status_code == 404
    assert (await client.get("/dashboard")).status_code == 200
    assert "Firefox" not in (await other_client.get("/settings/sessions")).text
    assert (await other_client.get("/settings/sessions")).text.count("data-session=") == 1
    await wait_for_events(app, lambda r: "authz_fail" in names(r))


async def test_s17_user_agent_text_is_escaped(client):
    client.headers["user-agent"] = "<script>alert(1)</script>"
    await register(client, "ann@example.com")
    page = await client.get("/settings/sessions")
    assert "<script>alert(1)" not in page.text


async def test_s10_attacker_chosen_cookie_is_not_adopted_at_sign_in(client, other_client, app):
    chosen = "attacker-chosen-" + "b" * 40
    await register(other_client, "ann@example.com")
    client.cookies.set("session", chosen, domain="testserver.local")
    assert (await login(client, "ann@example.com")).status_code == 303
    issued = client.cookies.get("session", domain="testserver.local")
    assert issued != chosen
    assert await resolve(app.state.db, app.state.settings, chosen) is None
    other_client.cookies.clear()
    other_client.cookies.set("session", chosen, domain="testserver.local")
    assert (await other_client.get("/dashboard")).status_code == 303  # the chosen id opens nothing


async def test_s18_password_change_ends_other_sessions_and_rotates_the_current_one(
    client, other_client, app
):
    await two_browsers(client, other_client)
    old_token = client.cookies.get("session")
    _, info = await resolve(app.state.db, app.state.settings, old_token)
    async with app.state.db.write() as session:
        service = SessionService(session, app.state.settings)
        new_token, row = await service.rotate_after_password_change(
            info, ip_address="127.0.0.1", user_agent=CHROME
        )
    assert new_token != old_token and row.id != info.id and row.user_id == info.user_id
    assert await resolve(app.state.db, app.state.settings, old_token) is None
    assert (
        await resolve(app.state.db, app.state.settings, other_client.cookies.get("session")) is None
    )
    user, new_info = await resolve(app.state.db, app.state.settings, new_token)
    assert user.email == "ann@example.com" and new_info.remember == info.remember
    assert await session_count(app) == 1


async def test_s18_password_reset_ends_every_session(client, other_client, app):
    await two_browsers(client, other_client)
    _, info = await resolve(app.state.db, app.state.settings, client.cookies.get("session"))
    async with app.state.db.write() as session:
        assert await SessionService(session, app.state.settings).end_all_for_user(info.user_id) == 2
    for browser in (client, other_client):
        assert (await browser.get("/dashboard")).status_code == 303


async def test_expired_sessions_are_pruned_by_function_and_cli(
    client, other_client, browser_factory, app, settings
):
    clock = FrozenClock(datetime.now(UTC) - timedelta(days=40))
    with use_clock(clock):
        await register(client, "ann@example.com")
        await login(other_client, "ann@example.com", remember=True)
        clock.advance(minutes=31)
        third = browser_factory()
        await login(third, "ann@example.com")
        assert await session_count(app) == 3
        assert await prune_expired(app.state.db, app.state.settings) == 1  # the idle one
        assert await session_count(app) == 2
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "APP_ENV": "test",
        "SECRET_KEY": SECRET_KEY,
    }
    result = await asyncio.to_thread(  # the loop finishes in-flight writes meanwhile
        subprocess.run,
        [sys.executable, "-m", "litestar", "--app-dir", "src", "sessions", "prune"],
        cwd=ROOT_DIR,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "Deleted 2 expired session(s)" in result.stdout  # 40 days later, both are past
    assert await session_count(app) == 0


async def test_sign_in_prunes_expired_sessions_now_and_then(client, other_client, app):
    import features.sessions.service as sessions_service

    clock = FrozenClock()
    with use_clock(clock):
        await register(client, "ann@example.com")
        clock.advance(hours=13)
        sessions_service._last_prune.clear()
        await login(other_client, "ann@example.com")
        assert await session_count(app) == 1  # the first browser's expired row is gone
        clock.advance(hours=13)
        await login(client, "ann@example.com")  # within the prune interval: no second prune
        assert await session_count(app) == 2


async def test_ending_this_very_session_signs_out_here(client, app):
    await register(client, "ann@example.com")
    current = SESSION_ID.findall((await client.get("/settings/sessions")).text)[0]
    await confirm(client)
    response = await post_form(
        client, f"/settings/sessions/{current}/end", {}, token_from="/settings/sessions"
    )
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert await session_count(app) == 0
    assert (await client.get("/dashboard")).status_code == 303
