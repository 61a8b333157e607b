"""Authorization (SECURITY.md S39), account status (S19) and sign-in of disabled users (S5)."""

from __future__ import annotations

import asyncio
import re

import pytest
from litestar import Litestar
from sqlalchemy import func, select

from features.admin.service import AdminService, LastAdmin
from features.sessions.models import BrowserSession
from features.users.models import Role
from features.users.service import UserService
from shared import clock
from shared.clock import FrozenClock, use_clock
from shared.web.guards import requires_admin, requires_user
from tests.features.admin.conftest import fetch_user, make_admin, set_columns, user_id
from tests.support import csrf, login, register

# Every route anyone may reach without signing in, as (method, path). Adding a public route
# means adding it here, on purpose.
PUBLIC = {
    ("GET", "/"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/register"),
    ("POST", "/register"),
    # The two-factor challenge: reachable only with a pending login (checked by its handlers, S12).
    ("GET", "/login/two-factor"),
    ("POST", "/login/two-factor"),
    ("POST", "/login/two-factor/recovery"),
    ("POST", "/login/two-factor/cancel"),
    # Sign-up, email verification, password reset and email change: the pages behind mailed
    # links (their tokens are checked by the handlers, S33) and the pages that send them.
    ("GET", "/register/check-email"),
    ("GET", "/verify-email/{token:str}"),
    ("POST", "/verify-email/confirm"),
    ("GET", "/forgot-password"),
    ("POST", "/forgot-password"),
    ("GET", "/reset-password/{token:str}"),
    ("POST", "/reset-password"),
    ("GET", "/confirm-email/{token:str}"),
    ("POST", "/confirm-email"),
    ("GET", "/revert-email/{token:str}"),
    ("POST", "/revert-email"),
    # The development outbox (404 unless APP_ENV=development).
    ("GET", "/dev/mail"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/static/{file_path:path}"),
    ("HEAD", "/static/{file_path:path}"),
    ("OPTIONS", "/static/{file_path:path}"),
}


def guards_of(handler) -> list:
    return [getattr(g, "func", g) for g in handler.resolve_guards()]


def handlers(app: Litestar):
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            for method in sorted(handler.http_methods):
                yield method, route.path, handler


def admin_routes(app: Litestar) -> list[tuple[str, str]]:
    return [
        (method, path)
        for method, path, _ in handlers(app)
        if path.startswith("/admin") and method not in ("OPTIONS", "HEAD")
    ]


def test_s39_every_route_is_on_the_public_allow_list_or_guarded(app):
    seen_public = set()
    for method, path, handler in handlers(app):
        guards = guards_of(handler)
        if handler.opt.get("public"):
            assert (method, path) in PUBLIC, f"{method} {path} is public but not allow-listed"
            seen_public.add((method, path))
        else:
            assert requires_user in guards, f"{method} {path} is not guarded"
        if path.startswith("/admin"):
            assert requires_admin in guards and not handler.opt.get("public"), (method, path)
    assert seen_public == PUBLIC  # the allow-list names nothing that does not exist
    assert ("GET", "/admin") in admin_routes(app)
    assert ("POST", "/admin/users/{user_id:str}/disable") in admin_routes(app)


async def test_s39_role_matrix_over_every_admin_route(client, browser_factory, app):
    anonymous, plain, disabled = browser_factory(), browser_factory(), browser_factory()
    await make_admin(app, client)
    await register(plain, "user@example.com")
    await register(disabled, "gone@example.com")
    target = await user_id(app, "user@example.com")
    plain_verified_at = (await fetch_user(app, "user@example.com")).email_verified_at
    routes = admin_routes(app)
    assert len(routes) == 9

    def concrete(path: str) -> str:
        return path.replace("{user_id:str}", str(target))

    # Anonymous: the sign-in page (with a way back), for pages and actions alike.
    guest_token = await csrf(anonymous, "/login")
    for method, path in routes:
        response = await anonymous.request(
            method, concrete(path), data={"_csrf_token": guest_token} if method == "POST" else None
        )
        assert response.status_code == 303, (method, path)
        assert response.headers["location"].startswith("/login?next=/admin"), (method, path)

    # An ordinary user: 403 everywhere, and nothing changes.
    token = await csrf(plain, "/dashboard")
    for method, path in routes:
        data = {"_csrf_token": token, "role": "admin"} if method == "POST" else None
        response = await plain.request(method, concrete(path), data=data)
        assert response.status_code == 403, (method, path)
        assert "This area is for administrators." in response.text
    user = await fetch_user(app, "user@example.com")
    assert user.role == Role.USER and user.disabled_at is None
    assert user.email_verified_at == plain_verified_at  # set by their own link, unchanged

    # A disabled user: signed out on the very next request, on every route. Pages send the
    # browser to sign in; actions are refused (403) because the form's token belonged to the
    # session that no longer exists.
    gone_token = await csrf(disabled, "/dashboard")
    async with app.state.db.writer() as session:
        await AdminService(session, app.state.settings).disable(
            None, await user_id(app, "gone@example.com")
        )
    for method, path in routes:
        data = {"_csrf_token": gone_token} if method == "POST" else None
        response = await disabled.request(method, concrete(path), data=data)
        assert response.status_code in (303, 403), (method, path)
        if method == "GET":
            assert response.headers["location"].startswith("/login"), (method, path)
    assert (await disabled.get("/dashboard")).headers["location"].startswith("/login")

    # The admin: every page renders, every action answers with a redirect back.
    for method, path in routes:
        if method == "GET":
            response = await client.get(concrete(path))
            assert response.status_code == 200, (method, path)
    token = await csrf(client, "/admin")
    for method, path in routes:
        if method == "POST":
            response = await client.post(
                concrete(path), data={"_csrf_token": token, "role": "user"}
            )
            assert response.status_code == 303, (method, path, response.text[:300])
            assert response.headers["location"] == f"/admin/users/{target}"


async def test_admin_link_is_shown_to_admins_only(client, other_client, app):
    await make_admin(app, client)
    await register(other_client, "user@example.com")
    assert 'href="/admin"' in (await client.get("/dashboard")).text
    assert 'href="/admin"' not in (await other_client.get("/dashboard")).text


async def test_s19_role_change_applies_on_the_next_request(client, other_client, app, events):
    await make_admin(app, client)
    await register(other_client, "bob@example.com")
    bob = await user_id(app, "bob@example.com")
    assert (await other_client.get("/admin")).status_code == 403
    token = await csrf(client, "/admin")
    response = await client.post(
        f"/admin/users/{bob}/role", data={"_csrf_token": token, "role": "admin"}
    )
    assert response.status_code == 303
    assert (await other_client.get("/admin")).status_code == 200  # same session, new role
    response = await client.post(
        f"/admin/users/{bob}/role", data={"_csrf_token": token, "role": "user"}
    )
    assert (await other_client.get("/admin")).status_code == 403
    changes = [(e.name, e.user_id, e.details) for e in events]
    assert changes == [
        ("authz_role_change", bob, {"old": "user", "new": "admin"}),
        ("authz_role_change", bob, {"old": "admin", "new": "user"}),
    ]
    admin = await user_id(app, "admin@example.com")
    assert all(e.actor_id == admin for e in events)


async def test_s19_disabling_ends_every_session_at_once(client, browser_factory, app, events):
    await make_admin(app, client)
    laptop, phone = browser_factory(), browser_factory()
    await register(laptop, "bob@example.com")
    assert (await login(phone, "bob@example.com")).status_code == 303
    bob = await user_id(app, "bob@example.com")
    token = await csrf(client, "/admin")
    response = await client.post(f"/admin/users/{bob}/disable", data={"_csrf_token": token})
    assert response.status_code == 303
    for browser in (laptop, phone):
        response = await browser.get("/tasks")
        assert response.status_code == 303 and response.headers["location"].startswith("/login")
        assert 'session=""' in response.headers.get("set-cookie", "") or "Max-Age=0" in (
            response.headers.get("set-cookie", "")
        )
    async with app.state.db.reader() as session:
        rows = await session.scalar(
            select(func.count()).select_from(BrowserSession).where(BrowserSession.user_id == bob)
        )
    assert rows == 0
    assert [(e.name, e.user_id, e.details) for e in events] == [
        ("user_disabled", bob, {"sessions_ended": 2})
    ]


async def test_s19_a_surviving_session_row_of_a_disabled_user_does_not_resolve(
    client, other_client, app
):
    await register(other_client, "bob@example.com")
    assert (await other_client.get("/dashboard")).status_code == 200
    # Only the flag, no session deletion: the per-request lookup alone must refuse it.
    async with app.state.db.write() as session:
        await UserService(session).disable(await user_id(app, "bob@example.com"))
    response = await other_client.get("/dashboard")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    async with app.state.db.write() as session:
        await UserService(session).enable(await user_id(app, "bob@example.com"))


async def test_s5_disabled_account_gets_the_wrong_password_answer(client, other_client, app):
    await register(client, "ann@example.com")
    await register(other_client, "bob@example.com")
    await set_columns(
        app, "bob@example.com", disabled_at=(await fetch_user(app, "ann@example.com")).created_at
    )
    disabled = await login(other_client, "bob@example.com")  # the right password
    wrong = await login(other_client, "ann@example.com", "wrong password!")
    assert disabled.status_code == wrong.status_code == 422
    strip = lambda html: html.split("<main", 1)[1].split("</main>", 1)[0]  # noqa: E731
    token = re.compile(r'value="[^"]*"')
    assert token.sub("", strip(disabled.text)) == token.sub("", strip(wrong.text))
    assert "The email or password is incorrect." in disabled.text
    # Enabled again, the same password works.
    await set_columns(app, "bob@example.com", disabled_at=None)
    assert (await login(other_client, "bob@example.com")).status_code == 303


async def test_last_sign_in_is_recorded(client, other_client, app):
    with use_clock(FrozenClock()) as frozen:
        await register(client, "ann@example.com")
        signed_up = await fetch_user(app, "ann@example.com")
        assert signed_up.last_login_at == signed_up.created_at
        frozen.advance(minutes=5)
        assert (await login(other_client, "ann@example.com", "wrong password!")).status_code == 422
        assert (await fetch_user(app, "ann@example.com")).last_login_at == signed_up.created_at
        assert (await login(other_client, "ann@example.com")).status_code == 303
        assert (await fetch_user(app, "ann@example.com")).last_login_at == clock.now()


async def test_s39_admins_cannot_disable_or_demote_themselves(client, app):
    await make_admin(app, client)
    me = await user_id(app, "admin@example.com")
    token = await csrf(client, "/admin")
    for action, data in (("disable", {}), ("role", {"role": "user"})):
        response = await client.post(
            f"/admin/users/{me}/{action}", data={"_csrf_token": token, **data}
        )
        assert response.status_code == 409
        assert "You cannot disable or demote your own account." in response.text
    user = await fetch_user(app, "admin@example.com")
    assert user.role == Role.ADMIN and user.disabled_at is None


async def test_s39_the_last_admin_cannot_be_demoted_or_disabled(client, app):
    await make_admin(app, client)
    me = await user_id(app, "admin@example.com")
    settings = app.state.settings
    for change in ("demote", "disable"):
        async with app.state.db.writer() as session:
            service = AdminService(session, settings)
            with pytest.raises(LastAdmin):
                if change == "demote":
                    await service.change_role(None, me, Role.USER)
                else:
                    await service.disable(None, me)
    user = await fetch_user(app, "admin@example.com")
    assert user.role == Role.ADMIN and user.disabled_at is None
    # A disabled admin does not count: with a second admin disabled, the first is still last.
    await register(client, "second@example.com")  # the client is now signed in as second
    await set_columns(app, "second@example.com", role=Role.ADMIN, disabled_at=user.created_at)
    async with app.state.db.writer() as session:
        with pytest.raises(LastAdmin):
            await AdminService(session, settings).change_role(None, me, Role.USER)
    # Once another admin is enabled, the first can go.
    await set_columns(app, "second@example.com", disabled_at=None)
    async with app.state.db.writer() as session:
        assert await AdminService(session, settings).change_role(None, me, Role.USER) == Role.ADMIN


@pytest.mark.parametrize("admins", [2, 4])
async def test_s39_concurrent_demotions_and_disables_keep_one_admin(client, app, admins):
    ids = []
    for n in range(admins):
        await register(client, f"admin{n}@example.com")
        await set_columns(app, f"admin{n}@example.com", role=Role.ADMIN)
        ids.append(await user_id(app, f"admin{n}@example.com"))
    settings = app.state.settings

    async def remove(n: int) -> str:
        async with app.state.db.writer() as session:
            service = AdminService(session, settings)
            try:
                if n % 2:
                    await service.disable(None, ids[n])
                else:
                    await service.change_role(None, ids[n], Role.USER)
            except LastAdmin:
                return "refused"
            return "done"

    outcomes = await asyncio.gather(*(remove(n) for n in range(admins)))
    assert sorted(outcomes) == ["done"] * (admins - 1) + ["refused"]
    async with app.state.db.reader() as session:
        stats = await UserService(session).stats()
    assert stats.active_admins == 1


async def test_s39_two_admins_disabling_each_other_at_once_leave_one(client, other_client, app):
    await make_admin(app, client, "a@example.com")
    await make_admin(app, other_client, "b@example.com")
    a, b = await user_id(app, "a@example.com"), await user_id(app, "b@example.com")
    token_a, token_b = await csrf(client, "/admin"), await csrf(other_client, "/admin")
    first, second = await asyncio.gather(
        client.post(f"/admin/users/{b}/disable", data={"_csrf_token": token_a}),
        other_client.post(f"/admin/users/{a}/disable", data={"_csrf_token": token_b}),
    )
    statuses = sorted([first.status_code, second.status_code])
    assert statuses[0] == 303  # one of them won
    async with app.state.db.reader() as session:
        stats = await UserService(session).stats()
    assert stats.active_admins == 1 and stats.disabled == 1


def test_s39_guards_run_on_the_event_loop(app):
    # Litestar wraps a synchronous guard in a thread hop (``AsyncCallable``) on every request;
    # every guard of every route is ``async def``, so none is wrapped.
    for method, path, handler in handlers(app):
        for guard in handler.resolve_guards():
            assert asyncio.iscoroutinefunction(guard), (method, path, guard)
