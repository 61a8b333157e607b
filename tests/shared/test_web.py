"""Request integrity and responses: CSRF (S21–S24), headers (S47), errors (S48), probes (R9)."""

from __future__ import annotations

import asyncio
import re

import pytest
from litestar import get
from sqlalchemy import func, select

from app import create_app
from features.tasks.models import Task
from tests.accounts import create_account
from tests.features.audit.helpers import names, wait_for_events
from tests.features.notifications.support import wait_for_rows
from tests.support import csrf, login, register

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def concrete_path(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "00000000-0000-7000-8000-000000000000", path)


CSRF_REFUSED = "The form has expired or was not sent from this site. Please try again."


async def test_s21_every_unsafe_route_rejects_missing_or_wrong_csrf_token(client, app):
    # As an administrator, so no role guard can answer 403 in CSRF's place.
    admin = await create_account(app.state.db, "root@example.com", admin=True)
    assert (await login(client, "root@example.com")).status_code == 303
    await client.post(
        "/tasks", data={"title": "keep me", "_csrf_token": await csrf(client, "/tasks")}
    )
    known = {"user_id": str(admin)}  # a real target, so a handler would have work to do
    # The sign-in's new-device notice is written after its response: count after it.
    assert len(await wait_for_rows(app.state.db, admin, 1)) == 1
    before = await _row_counts(app)
    checked = []
    for route in app.routes:
        for method in sorted(getattr(route, "methods", set()) & UNSAFE):
            path = re.sub(
                r"\{([^}:]+)[^}]*\}",
                lambda m: known.get(m.group(1), "00000000-0000-7000-8000-000000000000"),
                route.path,
            )
            for data in ({}, {"_csrf_token": "forged"}):
                response = await client.request(
                    method, path, data={**data, "title": "x", "status": "completed", "role": "user"}
                )
                assert response.status_code == 403, (method, route.path, data)
                assert CSRF_REFUSED in response.text, (method, route.path, data)
            header = await client.request(method, path, headers={"X-CSRF-Token": "forged"})
            assert header.status_code == 403 and CSRF_REFUSED in header.text, (method, path)
            checked.append((method, route.path))
    assert {("POST", "/tasks"), ("POST", "/logout"), ("POST", "/login")} <= set(checked)
    assert ("POST", "/admin/users/{user_id:str}/role") in checked
    rows = await wait_for_events(
        app, lambda r: names(r).count("malicious_csrf") == 3 * len(checked)
    )
    assert "authz_fail" not in names(rows)  # every refusal was CSRF's
    assert await _row_counts(app) == {**before, "audit_events": len(rows)}  # nothing else
    assert (await client.get("/dashboard")).status_code == 200  # logout was refused too
    assert (await client.get(f"/admin/users/{admin}")).status_code == 200  # still an admin


async def test_s21_guest_forms_need_the_token_of_their_own_cookie(client, other_client):
    token = await csrf(client, "/login")
    # A token minted for another browser's cookie does not work here.
    response = await other_client.post(
        "/login", data={"email": "a@b.c", "password": "x" * 10, "_csrf_token": token}
    )
    assert response.status_code == 403


async def test_s22_csrf_token_is_bound_to_the_session_and_renewed_at_login(client, other_client):
    guest_token = await csrf(client, "/login")
    await register(client, "ann@example.com")
    signed_in_token = await csrf(client, "/tasks")
    assert signed_in_token != guest_token
    refused = await client.post("/tasks", data={"title": "x", "_csrf_token": guest_token})
    assert refused.status_code == 403
    await register(other_client, "bob@example.com")
    cross = await other_client.post("/tasks", data={"title": "x", "_csrf_token": signed_in_token})
    assert cross.status_code == 403
    await client.post("/logout", data={"_csrf_token": signed_in_token})
    from tests.support import login

    await login(client, "ann@example.com")
    assert await csrf(client, "/tasks") != signed_in_token


async def test_s23_cross_origin_unsafe_requests_are_refused(client):
    await register(client, "ann@example.com")
    token = await csrf(client, "/tasks")
    data = {"title": "x", "_csrf_token": token}
    for headers in (
        {"Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "null"},
        {"Origin": "null", "Sec-Fetch-Site": "same-site"},
        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
    ):
        assert (await client.post("/tasks", data=data, headers=headers)).status_code == 403, headers
    ok = await client.post(
        "/tasks",
        data=data,
        headers={"Origin": "http://testserver.local", "Sec-Fetch-Site": "same-origin"},
    )
    assert ok.status_code == 303
    # What a browser sends from a page with Referrer-Policy: no-referrer (the mailed-link pages).
    no_referrer = await client.post(
        "/tasks", data=data, headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"}
    )
    assert no_referrer.status_code == 303


async def test_s24_get_never_changes_state_and_unused_methods_are_405(client, app):
    await register(client, "ann@example.com")
    token = await csrf(client, "/tasks")
    await client.post("/tasks", data={"title": "x", "_csrf_token": token})
    async with app.state.db.reader() as session:
        task_id = await session.scalar(select(Task.id))
    assert (await client.get(f"/tasks/{task_id}/delete")).status_code == 405
    assert (await client.get(f"/tasks/{task_id}/status?status=completed")).status_code == 405
    assert (await client.put("/tasks", data={"_csrf_token": token})).status_code == 405
    async with app.state.db.reader() as session:
        assert await session.scalar(select(func.count()).select_from(Task)) == 1


async def test_s47_security_headers_on_every_response(client):
    await register(client, "ann@example.com")
    for path in ("/login", "/dashboard", "/static/app.css", "/healthz", "/does-not-exist"):
        response = await client.get(path)
        csp = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp, path
        assert re.search(r"script-src 'self' 'nonce-[A-Za-z0-9_-]{16,}'", csp), path
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"
        assert "strict-transport-security" not in response.headers  # plain http here
        assert response.headers["x-request-id"]


async def test_s47_nonce_in_page_matches_header_and_hsts_over_https(client, settings):
    response = await client.get("/login")
    nonce = re.search(r"'nonce-([^']+)'", response.headers["content-security-policy"]).group(1)
    assert f'nonce="{nonce}"' in response.text
    https_app = create_app(settings.model_copy(update={"app_url": "https://app.example"}))
    from tests.conftest import make_browser, running

    async with running(https_app), make_browser(https_app) as browser:
        secure = await browser.get("/login")
    assert secure.headers["strict-transport-security"].startswith("max-age=")
    cookie = secure.headers["set-cookie"]
    assert cookie.startswith("__Host-csrf=") and "Secure" in cookie


async def test_s48_error_pages_have_real_status_and_leak_nothing(client, app):
    missing = await client.get("/nope/../../etc/passwd")
    assert missing.status_code == 404 and "Page not found" in missing.text

    @get("/boom", opt={"public": True})
    async def boom() -> None:
        raise RuntimeError("SELECT password_hash FROM users -- /srv/secret/path")

    app.register(boom)
    response = await client.get("/boom")
    assert response.status_code == 500
    assert "Something went wrong" in response.text
    assert response.headers["x-request-id"] in response.text
    for leak in ("Traceback", "password_hash", "/srv/secret/path", "RuntimeError"):
        assert leak not in response.text


async def test_s48_403_and_405_pages(client):
    forbidden = await client.post("/login", data={})
    assert forbidden.status_code == 403 and "<h1>Forbidden</h1>" in forbidden.text
    wrong_method = await client.delete("/login")
    assert wrong_method.status_code == 405


async def test_r9_health_and_readiness(client, app):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "migrations": "ok"}


async def test_r9_readiness_fails_when_schema_is_behind_head(client, app):
    app.state.migration_head = "9999_future"
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "not ready"


async def test_r9_readiness_fails_when_the_database_is_unreachable(tmp_path, settings):
    broken = create_app(
        settings.model_copy(
            update={"database_url": f"sqlite+aiosqlite:///{tmp_path}/missing/dir/x.sqlite"}
        )
    )
    from tests.conftest import make_browser, running

    async with running(broken), make_browser(broken) as browser:
        response = await browser.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"].startswith("unavailable")


@pytest.mark.parametrize("path", ["/login", "/register"])
async def test_signed_in_visitors_skip_guest_pages(client, path):
    await register(client, "ann@example.com")
    response = await client.get(path)
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"


async def test_s24_head_answers_like_get_on_every_get_route_with_no_body(client, app):
    admin = await create_account(app.state.db, "root@example.com", admin=True)
    assert (await login(client, "root@example.com")).status_code == 303
    token = await csrf(client, "/tasks")
    await client.post("/tasks", data={"title": "keep me", "_csrf_token": token})
    async with app.state.db.reader() as session:
        task_id = await session.scalar(select(Task.id))
    known = {"task_id": str(task_id), "user_id": str(admin), "file_path": "app.css"}

    def fill(path: str) -> str:
        return re.sub(
            r"\{([^}:]+)[^}]*\}",
            lambda m: known.get(m.group(1), "00000000-0000-7000-8000-000000000000"),
            path,
        )

    # The sign-in's audit events, its new-device notice and mail land after the responses:
    # let them, so the snapshot below holds only what a HEAD could still change.
    await wait_for_events(
        app, lambda rows: {"authn_login_success", "authn_login_new_device"} <= set(names(rows))
    )
    await wait_for_rows(app.state.db, admin, 1)
    await app.state.mail.join()
    before = await _row_counts(app)
    checked, refused = [], []
    for route in app.routes:
        path = fill(route.path)
        if "GET" not in route.methods:
            head = await client.head(path)
            assert head.status_code == 405 and head.content == b"", route.path
            refused.append(route.path)
            continue
        head = await asyncio.wait_for(client.head(path), timeout=10)
        assert head.content == b"", route.path
        if _streams(route):  # a GET would never end: HEAD returns the headers at once
            assert head.status_code == 200, route.path
            assert head.headers["content-type"].startswith("text/event-stream")
            continue
        got = await client.get(path)
        assert head.status_code == got.status_code, route.path
        for name in ("content-type", "location", "cache-control", "content-security-policy"):
            if name != "content-security-policy":  # the CSP carries a per-request nonce
                assert head.headers.get(name) == got.headers.get(name), (route.path, name)
            else:
                assert (name in head.headers) == (name in got.headers), route.path
        checked.append((route.path, head.status_code))
    assert ("/login", 303) in checked and ("/dashboard", 200) in checked
    assert ("/admin/users/{user_id:str}", 200) in checked and ("/healthz", 200) in checked
    assert "/logout" in refused and "/tasks/{task_id:str}/delete" in refused
    assert await _row_counts(app) == before  # HEAD changed nothing (S24)
    assert (await client.get("/dashboard")).status_code == 200  # still signed in
    unused = await client.request("PUT", "/dashboard")
    assert unused.status_code == 405


def _streams(route) -> bool:
    return any(
        "ServerSentEvent" in str(h.parsed_fn_signature.return_type.annotation)
        for h in route.route_handlers
        if "GET" in h.http_methods
    )


async def _row_counts(app) -> dict[str, int]:
    from models import metadata

    async with app.state.db.reader() as session:
        return {
            name: await session.scalar(select(func.count()).select_from(table))
            for name, table in metadata.tables.items()
        }


@pytest.mark.parametrize(("env", "reload"), [("development", True), ("test", False)])
def test_templates_are_rechecked_on_disk_only_in_development(settings, env, reload):
    # Outside development a compiled template is reused without stat()ing its file per render.
    app = create_app(settings.model_copy(update={"app_env": env}))
    assert app.template_engine.engine.auto_reload is reload
    assert app.state.mail.templates.auto_reload is reload


async def test_s13_guest_csrf_cookie_is_set_once_with_its_attributes(client):
    first = await client.get("/login")
    (cookie,) = [v for v in first.headers.get_list("set-cookie") if v.startswith("csrf=")]
    value, *attributes = cookie.split("; ")
    assert re.fullmatch(r"csrf=[A-Za-z0-9_\-]{43}", value)  # 256 random bits, base64url
    assert attributes == ["HttpOnly", "Path=/", "SameSite=lax"]  # no Domain; http: no Secure
    again = await client.get("/login")  # the browser sends it back: no new secret
    assert not [v for v in again.headers.get_list("set-cookie") if v.startswith("csrf=")]


@pytest.mark.parametrize("https", [False, True])
def test_s13_set_cookie_header_is_the_cookie_make_cookie_describes(https):
    from shared.web.cookies import make_cookie, set_cookie_header

    name = "__Host-csrf" if https else "csrf"
    expected = make_cookie(name, "AbC_-09", https=https).to_header(header="")
    assert set_cookie_header(name, "AbC_-09", https=https) == expected
    for unsafe in ("", "a;b", 'a"b', "a b", "a,b"):
        with pytest.raises(ValueError):
            set_cookie_header(name, unsafe, https=https)


async def test_flash_message_shows_once_and_a_forged_one_never(client):
    await register(client, "flash@example.com")
    await login(client, "flash@example.com")
    signed_out = await client.post(
        "/logout", data={"_csrf_token": await csrf(client, "/dashboard")}
    )
    assert signed_out.status_code == 303
    shown = await client.get("/login")
    assert "You have been signed out." in shown.text
    deleted = 'flash=""; HttpOnly; Max-Age=0; Path=/; SameSite=lax'
    assert deleted in shown.headers.get_list("set-cookie")  # shown once, then deleted
    assert "You have been signed out." not in (await client.get("/login")).text
    client.cookies.set("flash", "W1siaW5mbyIsImZvcmdlZCJdXQ.bm90LWEtbWFj")  # [["info","forged"]]
    forged = await client.get("/login")
    assert forged.status_code == 200 and "forged" not in forged.text
