"""Server-side sessions: timeouts (S14, S15), cookie handling (S10), activity writes, S20."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from features.sessions.models import BrowserSession
from shared.clock import FrozenClock, use_clock
from tests.support import csrf, login, register


async def session_row(app) -> BrowserSession | None:
    async with app.state.db.reader() as session:
        return await session.scalar(select(BrowserSession))


async def test_s10_only_a_hash_of_the_token_is_stored(client, app):
    await register(client, "ann@example.com")
    token = client.cookies.get("session")
    row = await session_row(app)
    assert len(token) >= 43  # 256 bits, base64url
    assert row.token_hash != token and len(row.token_hash) == 64


async def test_s10_client_chosen_or_unknown_session_ids_are_never_adopted(client, app):
    client.cookies.set("session", "attacker-chosen-value-" + "a" * 30)
    response = await client.get("/dashboard")
    assert response.status_code == 303
    assert (
        'session=""' in response.headers["set-cookie"]
        or "session=;" in response.headers["set-cookie"]
    )
    client.cookies.clear()
    client.cookies.set("session", "attacker-chosen-value-" + "a" * 30, domain="testserver.local")
    await register(client, "ann@example.com")
    assert (
        client.cookies.get("session", domain="testserver.local")
        != "attacker-chosen-value-" + "a" * 30
    )


async def test_s14_idle_timeout_is_enforced_on_the_server(client, app):
    clock = FrozenClock()
    with use_clock(clock):
        await register(client, "ann@example.com")
        clock.advance(minutes=29, seconds=59)
        assert (
            await client.get("/dashboard")
        ).status_code == 200  # activity renews the idle window
        clock.advance(minutes=30)
        assert (await client.get("/dashboard")).status_code == 200
        clock.advance(minutes=30, milliseconds=1)
        response = await client.get("/dashboard")
        assert response.status_code == 303 and response.headers["location"].startswith("/login")
    assert await session_row(app) is None  # the expired row was deleted


async def test_s15_absolute_timeout_ends_even_an_active_session(client):
    clock = FrozenClock()
    with use_clock(clock):
        await register(client, "ann@example.com")
        for _ in range(24):
            clock.advance(minutes=29)
            assert (await client.get("/dashboard")).status_code == 200
        clock.advance(minutes=25)  # 12 h 1 min after sign-in
        assert (await client.get("/dashboard")).status_code == 303


async def test_remember_me_extends_idle_and_absolute_lifetimes(client, app):
    clock = FrozenClock()
    with use_clock(clock):
        await register(client, "ann@example.com")
        await login(client, "ann@example.com", remember=True)
        clock.advance(days=29, hours=23)
        assert (await client.get("/dashboard")).status_code == 200
        clock.advance(hours=2)
        assert (await client.get("/dashboard")).status_code == 303


async def test_last_activity_is_written_at_most_once_a_minute(client, app):
    clock = FrozenClock()
    with use_clock(clock):
        await register(client, "ann@example.com")
        first = (await session_row(app)).last_activity
        clock.advance(seconds=59)
        await client.get("/dashboard")
        assert (await session_row(app)).last_activity == first
        clock.advance(seconds=1)
        await client.get("/dashboard")
        assert (await session_row(app)).last_activity == first + timedelta(seconds=60)


async def test_s20_password_confirmation_lasts_15_minutes(client, app):
    from features.core.auth.service import recently_confirmed
    from features.sessions.service import resolve

    clock = FrozenClock()
    with use_clock(clock):
        await register(client, "ann@example.com")
        token = client.cookies.get("session")
        _, info = await resolve(app.state.db, app.state.settings, token)
        assert not recently_confirmed(info)
        page = await client.get("/confirm-password?next=/tasks")
        assert page.status_code == 200
        wrong = await client.post(
            "/confirm-password",
            data={
                "password": "not it at all",
                "next": "/tasks",
                "_csrf_token": await csrf(client, "/tasks"),
            },
        )
        assert wrong.status_code == 422 and "That password is not right." in wrong.text
        right = await client.post(
            "/confirm-password",
            data={
                "password": "correct horse battery staple",
                "next": "/tasks",
                "_csrf_token": await csrf(client, "/tasks"),
            },
        )
        assert right.status_code == 303 and right.headers["location"] == "/tasks"
        _, info = await resolve(app.state.db, app.state.settings, token)
        assert recently_confirmed(info)
        clock.advance(minutes=15)
        assert recently_confirmed(info)
        clock.advance(seconds=1)
        assert not recently_confirmed(info)
