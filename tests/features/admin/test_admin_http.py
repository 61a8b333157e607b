"""The admin area over HTTP: figures, the user list, a user's page and its actions."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import func, select

from features.admin.schemas import PER_PAGE
from features.assets.models import Asset
from features.sessions.models import BrowserSession
from features.tasks.models import Task
from features.users.models import Role, User
from features.users.service import UserService
from shared import clock
from shared.clock import FrozenClock, use_clock
from tests.accounts import create_account
from tests.features.admin.conftest import fetch_user, make_admin, set_columns, user_id
from tests.features.assets.helpers import image_bytes, upload
from tests.features.audit.helpers import names, wait_for_events
from tests.support import csrf, login, register

FAKE_HASH = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$not-a-real-hash-not-a-real-hash0"


def stat(html: str, name: str) -> str:
    match = re.search(rf'data-stat="{name}">([^<]+)<', html)
    assert match, name
    return match.group(1)


def listed_emails(html: str) -> list[str]:
    return re.findall(r"<td>([^<@]+@[^<]+)</td>", html)


async def add_users(app, specs: list[tuple[str, str]]) -> None:
    """Create users (name, email) directly; they cannot sign in (no real password hash)."""
    async with app.state.db.write() as session:
        users = UserService(session)
        for name, email in specs:
            await users.create(name=name, email=email, password_hash=FAKE_HASH)


async def test_dashboard_shows_real_figures(client, browser_factory, app):
    real_now = clock.now()
    with use_clock(FrozenClock(real_now - timedelta(days=40))) as frozen:
        await register(browser_factory(), "old@example.com", verify=False)  # never verified
        frozen.set(real_now - timedelta(days=10))
        await register(browser_factory(), "mid@example.com")
        frozen.set(real_now)
        await make_admin(app, client)
        newcomer = browser_factory()
        await register(newcomer, "new@example.com")
        token = await csrf(newcomer, "/tasks")
        for title in ("one", "two", "three"):
            await newcomer.post("/tasks", data={"title": title, "_csrf_token": token})
        await set_columns(app, "new@example.com", two_factor_enabled=True)
        await set_columns(app, "mid@example.com", email_verified_at=real_now)
        await set_columns(app, "old@example.com", disabled_at=real_now)
        html = (await client.get("/admin")).text
    assert stat(html, "users") == "4"
    assert stat(html, "new7") == "2"
    assert stat(html, "new30") == "3"
    # Verified: the admin and the newcomer (through the mailed link) and mid (set); not old.
    assert stat(html, "verified") == "75%"
    assert stat(html, "two_factor") == "25%"
    assert stat(html, "sessions") == "2"  # the admin's and the newcomer's; the others idled out
    assert stat(html, "tasks") == "3"
    assert stat(html, "disabled") == "1"


async def test_user_list_search_filters_sort_and_counts(client, app):
    await make_admin(app, client, name="Zed Admin")
    await add_users(
        app,
        [
            ("Ann 100%", "ann@example.com"),
            ("Bob_Builder", "bob@example.org"),
            ("Bobby", "bobby@example.com"),
            ("Carla", "carla@example.net"),
        ],
    )
    await set_columns(app, "carla@example.net", disabled_at=clock.now())
    await set_columns(app, "bobby@example.com", email_verified_at=clock.now())
    await set_columns(app, "ann@example.com", two_factor_enabled=True)

    page = await client.get("/admin/users")
    assert page.status_code == 200
    assert "5 in total · 1 admin · 1 disabled" in page.text
    assert len(listed_emails(page.text)) == 5

    async def emails(query: str) -> list[str]:
        response = await client.get(f"/admin/users?{query}")
        assert response.status_code == 200, query
        return listed_emails(response.text)

    assert await emails("q=BOB") == ["bobby@example.com", "bob@example.org"]
    assert await emails("q=example.org") == ["bob@example.org"]
    # S49: % and _ match literally.
    assert await emails("q=%25") == ["ann@example.com"]
    assert await emails("q=b_b") == ["bob@example.org"]
    assert await emails("role=admin") == ["admin@example.com"]
    assert await emails("status=disabled") == ["carla@example.net"]
    assert "carla@example.net" not in await emails("status=active")
    # The admin verified their address through the mailed link at sign-up.
    assert await emails("verified=yes") == ["bobby@example.com", "admin@example.com"]
    assert await emails("two_factor=on") == ["ann@example.com"]
    assert await emails("q=bob&verified=no") == ["bob@example.org"]
    assert await emails("sort=name") == [
        "ann@example.com",
        "bob@example.org",
        "bobby@example.com",
        "carla@example.net",
        "admin@example.com",
    ]
    assert (await emails("sort=email"))[0] == "admin@example.com"
    assert (await emails("sort=last_login"))[0] == "admin@example.com"  # the only one signed up
    assert "matches" in (await client.get("/admin/users?q=bob")).text


async def test_s49_hostile_list_parameters_are_422_or_404_never_500(client, app):
    await make_admin(app, client)
    for query in (
        "sort=password_hash",
        "role=root",
        "status=%27",
        "verified=maybe",
        "two_factor=1",
    ):
        response = await client.get(f"/admin/users?{query}")
        assert response.status_code == 422, query
        assert "Unknown" in response.text
    for query in ("page=0", "page=-1", "page=abc", "page=2", "page=99999999999"):
        assert (await client.get(f"/admin/users?{query}")).status_code == 404, query
    response = await client.get("/admin/users?q=%27%20OR%201%3D1--%20%22%3Cscript%3E")
    assert response.status_code == 200 and "<script>" not in response.text
    for q in ("%5C", "%5C%25", "a%00b", "x" * 600):
        response = await client.get(f"/admin/users?q={q}")
        assert response.status_code == 200, q
        assert "No users match." in response.text, q


async def test_user_list_pages(client, app):
    await make_admin(app, client)
    await add_users(
        app, [(f"User {n:02d}", f"user{n:02d}@example.com") for n in range(PER_PAGE + 5)]
    )
    first = await client.get("/admin/users?sort=email")
    second = await client.get("/admin/users?sort=email&page=2")
    assert len(listed_emails(first.text)) == PER_PAGE
    assert len(listed_emails(second.text)) == 6
    assert set(listed_emails(first.text)).isdisjoint(listed_emails(second.text))
    assert 'href="/admin/users?sort=email&amp;page=2"' in first.text


async def test_user_page_shows_the_account_but_never_a_password(client, other_client, app):
    await make_admin(app, client)
    # Bob signs in without having verified his address yet.
    await register(other_client, "bob@example.com", name="Bob <b>Builder</b>", verify=False)
    assert (await login(other_client, "bob@example.com")).status_code == 303
    bob = await fetch_user(app, "bob@example.com")
    response = await client.get(f"/admin/users/{bob.id}")
    assert response.status_code == 200
    html = response.text
    assert "Bob &lt;b&gt;Builder&lt;/b&gt;" in html and "<b>Builder" not in html  # S51
    assert "bob@example.com" in html
    assert 'data-field="status"><span class="badge badge-active">Active' in html
    assert 'data-field="two_factor">Off' in html
    assert 'data-field="verified">No' in html
    assert "Active sessions (1)" in html
    assert "argon2" not in html and "password_hash" not in html and 'type="password"' not in html
    assert (await client.get("/admin/users/not-a-uuid")).status_code == 404
    missing = "01a20000-0000-7000-8000-000000000000"
    assert (await client.get(f"/admin/users/{missing}")).status_code == 404
    token = await csrf(client, "/admin")
    for action in ("disable", "enable", "sessions/end", "verify-email", "role", "password-reset"):
        response = await client.post(
            f"/admin/users/{missing}/{action}", data={"_csrf_token": token, "role": "user"}
        )
        assert response.status_code == 404, action


async def test_actions_change_the_account_and_emit_security_events(
    client, other_client, app, events
):
    await make_admin(app, client)
    # Bob signs in without having verified his address yet.
    await register(other_client, "bob@example.com", verify=False)
    assert (await login(other_client, "bob@example.com")).status_code == 303
    bob = await user_id(app, "bob@example.com")
    token = await csrf(client, "/admin")

    async def act(action: str, **data: str):
        response = await client.post(
            f"/admin/users/{bob}/{action}", data={"_csrf_token": token, **data}
        )
        assert response.status_code == 303, (action, response.text[:500])
        return await client.get(response.headers["location"])

    page = await act("verify-email")
    assert "Email marked verified." in page.text
    assert (await fetch_user(app, "bob@example.com")).email_verified_at is not None
    assert "Already verified." in (await act("verify-email")).text

    page = await act("sessions/end")
    assert "1 session(s) ended." in page.text
    assert (await other_client.get("/dashboard")).status_code == 303  # signed out

    assert "Account disabled; 0 session(s) ended." in (await act("disable")).text
    assert (await fetch_user(app, "bob@example.com")).disabled_at is not None
    assert "Already disabled." in (await act("disable")).text
    assert "Account enabled." in (await act("enable")).text
    assert (await fetch_user(app, "bob@example.com")).disabled_at is None

    assert "Role changed to admin." in (await act("role", role="admin")).text
    assert "Nothing changed." in (await act("role", role="admin")).text
    response = await client.post(
        f"/admin/users/{bob}/role", data={"_csrf_token": token, "role": "owner"}
    )
    assert response.status_code == 422 and "Choose user or admin." in response.text
    assert (await fetch_user(app, "bob@example.com")).role == Role.ADMIN

    assert [(e.name, e.details) for e in events] == [
        ("admin_email_verified", {}),
        ("admin_sessions_revoked", {"count": 1}),
        ("user_disabled", {"sessions_ended": 0}),
        ("user_enabled", {}),
        ("authz_role_change", {"old": "user", "new": "admin"}),
    ]
    admin = await user_id(app, "admin@example.com")
    assert {(e.user_id, e.actor_id) for e in events} == {(bob, admin)}


async def test_admin_actions_write_nothing_without_csrf(client, other_client, app):
    await make_admin(app, client)
    await register(other_client, "bob@example.com")
    bob = await user_id(app, "bob@example.com")
    before = await fetch_user(app, "bob@example.com")
    for action in ("disable", "role", "verify-email", "sessions/end", "password-reset"):
        response = await client.post(f"/admin/users/{bob}/{action}", data={"role": "admin"})
        assert response.status_code == 403
    user = await fetch_user(app, "bob@example.com")
    assert user.role == Role.USER and user.disabled_at is None
    assert user.email_verified_at == before.email_verified_at  # set by Bob's own link, unchanged
    assert (await other_client.get("/dashboard")).status_code == 200
    async with app.state.db.reader() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 2
        assert await session.scalar(select(func.count()).select_from(Task)) == 0


async def test_pending_two_factor_logins_are_not_counted_as_live_sessions(
    client, other_client, app
):
    await create_account(app.state.db, "root@example.com", admin=True)
    bob = await create_account(app.state.db, "bob@example.com", name="Bob")
    assert (await login(client, "root@example.com")).status_code == 303
    await set_columns(app, "bob@example.com", two_factor_enabled=True)
    response = await login(other_client, "bob@example.com")  # password right, code still due
    assert response.headers["location"] == "/login/two-factor"
    async with app.state.db.reader() as session:
        assert await session.scalar(select(func.count()).select_from(BrowserSession)) == 2
    assert stat((await client.get("/admin")).text, "sessions") == "1"  # only the admin's
    page = (await client.get(f"/admin/users/{bob}")).text
    assert "Active sessions (0)" in page and "No active sessions." in page


async def test_user_page_lists_the_accounts_recent_audit_events(client, other_client, app):
    await create_account(app.state.db, "root@example.com", admin=True)
    bob = await create_account(app.state.db, "bob@example.com", name="Bob")
    assert (await login(client, "root@example.com")).status_code == 303
    assert (await login(other_client, "bob@example.com", "not bob's password")).status_code == 422
    assert (await login(other_client, "bob@example.com")).status_code == 303
    token = await csrf(client, f"/admin/users/{bob}")
    await client.post(f"/admin/users/{bob}/disable", data={"_csrf_token": token})
    await wait_for_events(app, lambda rows: "user_disabled" in names(rows))
    html = (await client.get(f"/admin/users/{bob}")).text
    assert 'id="audit-h">Recent activity' in html
    section = html[html.index("data-audit-events") :]
    events = re.findall(r"<td><code>([a-z_]+)</code></td>", section)
    assert events[0] == "user_disabled"  # newest first
    assert {"authn_login_fail", "authn_login_success", "authn_login_new_device"} <= set(events)
    assert "authn_login_success" in events and "failure" in section and "127.0.0.1" in section
    root = (await client.get(f"/admin/users/{await user_id(app, 'root@example.com')}")).text
    assert "authn_login_fail" not in root  # only the account's own trail


async def test_user_list_and_user_page_show_avatars(client, other_client, app):
    await create_account(app.state.db, "root@example.com", admin=True)
    bob = await create_account(app.state.db, "bob@example.com", name="Bob")
    await create_account(app.state.db, "cay@example.com", name="Cay")  # no avatar
    assert (await login(other_client, "bob@example.com")).status_code == 303
    token = await csrf(other_client, "/assets")
    assert (await upload(other_client, token, "me.png", image_bytes("PNG"))).status_code == 201
    async with app.state.db.reader() as session:
        asset_id = await session.scalar(select(Asset.id))
    chosen = await other_client.post(f"/assets/{asset_id}/avatar", data={"_csrf_token": token})
    assert chosen.status_code == 303
    assert (await login(client, "root@example.com")).status_code == 303
    avatar = f"/avatars/{bob}?v={asset_id}"
    listing = (await client.get("/admin/users")).text
    assert f'<img class="list-avatar" src="{avatar}"' in listing
    assert listing.count('class="list-avatar"') == 1  # the others have none
    page = (await client.get(f"/admin/users/{bob}")).text
    assert f'<img class="profile-avatar" src="{avatar}"' in page
    image = await client.get(avatar)
    assert image.status_code == 200 and image.headers["content-type"] == "image/webp"
