"""Audit trail (SECURITY.md S52), the security activity page and new-device sign-ins."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import timedelta

from litestar import get

from features.audit.models import AuditEvent
from shared import clock
from shared.config import ROOT_DIR
from shared.web.guards import requires_admin
from tests.conftest import SECRET_KEY
from tests.features.audit.helpers import audit_rows, names, wait_for_events
from tests.support import (
    DEFAULT_PASSWORD,
    csrf,
    follow_link,
    login,
    mailed_link,
    post_form,
    register,
)

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"
WRONG_PASSWORD = "not-the-password-4711"
NEW_PASSWORD = "a new passphrase for the audit test"
# A sign-up through the mailed link records user_created, authn_email_verified and
# authn_login_success.
SIGN_UP_EVENTS = 3


async def test_s52_login_ok_fail_and_logout_are_recorded_with_context(client, app):
    client.headers["user-agent"] = CHROME
    await register(client, "ann@example.com")
    user_rows = await wait_for_events(app, lambda r: "authn_login_success" in names(r))
    user_id = user_rows[0].user_id
    await post_form(client, "/logout", {})
    assert (await login(client, "ann@example.com", WRONG_PASSWORD)).status_code == 422
    assert (await login(client, "ann@example.com")).status_code == 303
    rows = await wait_for_events(app, lambda r: names(r).count("authn_login_success") == 2)
    rows = await wait_for_events(
        app, lambda r: {"authn_logout", "authn_login_fail"} <= set(names(r))
    )
    by_name = {r.event: r for r in rows}
    fail = by_name["authn_login_fail"]
    assert fail.outcome == "failure" and fail.user_id == user_id and fail.actor_id is None
    logout = by_name["authn_logout"]
    assert logout.user_id == logout.actor_id == user_id and logout.outcome == "success"
    for row in rows:
        assert row.ip_address == "127.0.0.1"
        assert row.user_agent == CHROME
        assert row.request_id and len(row.request_id) >= 8
        assert row.occurred_at.tzinfo is not None
    assert by_name["authn_login_success"].details["browser"].startswith("Chrome")


async def test_s52_csrf_failures_are_recorded_as_malicious_csrf(client, app):
    await register(client, "ann@example.com")
    response = await client.post("/tasks", data={"title": "x", "_csrf_token": "forged"})
    assert response.status_code == 403
    rows = await wait_for_events(app, lambda r: "malicious_csrf" in names(r))
    event = next(r for r in rows if r.event == "malicious_csrf")
    assert event.outcome == "failure" and event.user_id is not None
    assert event.details == {"method": "POST", "path": "/tasks"}


async def test_s52_authorization_failures_are_recorded_as_authz_fail(client, app):
    @get("/admin-probe", guards=[requires_admin])
    async def admin_probe() -> str:
        return "admin"

    app.register(admin_probe)
    await register(client, "ann@example.com")
    assert (await client.get("/admin-probe")).status_code == 403
    rows = await wait_for_events(app, lambda r: "authz_fail" in names(r))
    event = next(r for r in rows if r.event == "authz_fail")
    assert event.outcome == "failure" and event.details["path"] == "/admin-probe"


async def test_s52_no_password_code_token_or_session_id_reaches_the_table_or_logs(
    client, other_client, app, caplog
):
    caplog.set_level(logging.DEBUG)
    await register(client, "ann@example.com")
    verify_token = (await mailed_link(client, "ann@example.com", "/verify-email/")).rsplit("/", 1)[
        1
    ]
    session_token = client.cookies.get("session")
    csrf_token = await csrf(client, "/settings/sessions")
    await login(other_client, "ann@example.com", WRONG_PASSWORD)
    await login(other_client, "ann@example.com")
    other_token = other_client.cookies.get("session")
    await post_form(client, "/confirm-password", {"password": WRONG_PASSWORD, "next": "/"})
    await post_form(client, "/confirm-password", {"password": DEFAULT_PASSWORD, "next": "/"})
    await post_form(client, "/settings/sessions/end-others", {}, token_from="/settings/sessions")
    await client.post("/tasks", data={"title": "x", "_csrf_token": "forged-" + csrf_token[:8]})
    # Mailed one-time tokens (S37): an email change link, used, and a reset link, used.
    await post_form(
        client, "/settings/email", {"email": "ann2@example.com"}, token_from="/settings/email"
    )
    change_link = await mailed_link(client, "ann2@example.com", "/confirm-email/")
    await follow_link(client, change_link, "/confirm-email")
    await post_form(
        other_client,
        "/forgot-password",
        {"email": "ann2@example.com"},
        token_from="/forgot-password",
    )
    reset_link = await mailed_link(other_client, "ann2@example.com", "/reset-password/")
    await post_form(
        other_client,
        "/reset-password",
        {
            "token": reset_link.rsplit("/", 1)[1],
            "password": NEW_PASSWORD,
            "password_confirmation": NEW_PASSWORD,
        },
        token_from=reset_link,
    )
    rows = await wait_for_events(
        app,
        lambda r: (
            {"session_revoked_all", "malicious_csrf", "authn_email_change", "authn_password_reset"}
            <= set(names(r))
        ),
    )
    async with app.state.db.reader() as session:
        ids = [str(s) for s in (await session.execute(_session_ids())).scalars()]
    dump = json.dumps(
        [{c.name: str(getattr(r, c.name)) for c in AuditEvent.__table__.columns} for r in rows]
    )
    # The test's own HTTP client (httpx) logs the URLs it requests; the app's logs are searched.
    app_logs = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records if r.name != "httpx")
    haystack = dump + app_logs
    tokens = [link.rsplit("/", 1)[1] for link in (change_link, reset_link)] + [verify_token]
    assert all(len(t) == 43 for t in tokens)
    secrets = [
        DEFAULT_PASSWORD,
        WRONG_PASSWORD,
        NEW_PASSWORD,
        session_token,
        other_token,
        csrf_token,
        *ids,
        *tokens,
    ]
    for secret in secrets:
        assert secret and secret not in haystack


def _session_ids():
    from sqlalchemy import select

    from features.sessions.models import BrowserSession

    return select(BrowserSession.id)


async def test_activity_page_lists_the_users_recent_events_with_ip_and_device(
    client, other_client, app
):
    client.headers["user-agent"] = FIREFOX
    await register(client, "ann@example.com", name="Ann")
    await login(other_client, "ann@example.com", WRONG_PASSWORD)
    await register(other_client, "bob@example.com", name="Bob")
    # A sign-up records user_created, authn_email_verified and authn_login_success.
    await wait_for_events(app, lambda r: len(r) >= 3 + 1 + 3)
    page = await client.get("/settings/activity")
    assert page.status_code == 200
    assert "Signed in" in page.text and "Failed sign-in" in page.text
    assert "127.0.0.1" in page.text and "Firefox 121 on Windows 10" in page.text
    assert page.text.count("<tr") == 1 + 4  # header + Ann's four events, none of Bob's
    assert 'href="/settings/activity" aria-current="page"' in page.text


async def test_activity_page_shows_at_most_fifty_events(client, app):
    await register(client, "ann@example.com")
    rows = await wait_for_events(app, lambda r: len(r) == SIGN_UP_EVENTS)
    async with app.state.db.write() as session:
        for n in range(60):
            session.add(
                AuditEvent(
                    occurred_at=clock.now() - timedelta(minutes=n + 1),
                    event="authn_login_fail",
                    user_id=rows[0].user_id,
                    outcome="failure",
                    details={},
                )
            )
    page = await client.get("/settings/activity")
    assert page.text.count("<tr") == 1 + 50


async def test_new_device_sign_in_is_announced_once(client, other_client, app):
    client.headers["user-agent"] = CHROME
    await register(client, "ann@example.com")
    await wait_for_events(app, lambda r: len(r) == SIGN_UP_EVENTS)
    await post_form(client, "/logout", {})
    await login(client, "ann@example.com")  # same browser, OS and IP as at sign-up
    await wait_for_events(app, lambda r: names(r).count("authn_login_success") == 2)
    other_client.headers["user-agent"] = FIREFOX
    await login(other_client, "ann@example.com")
    rows = await wait_for_events(app, lambda r: "authn_login_new_device" in names(r))
    event = next(r for r in rows if r.event == "authn_login_new_device")
    assert event.details == {"browser": "Firefox 121", "os": "Windows 10", "ip": "127.0.0.1"}
    await wait_for_events(app, lambda r: names(r).count("authn_login_success") == 3)
    await post_form(other_client, "/logout", {})
    await login(other_client, "ann@example.com")  # now a known device
    rows = await wait_for_events(app, lambda r: names(r).count("authn_login_success") == 4)
    assert names(rows).count("authn_login_new_device") == 1


async def test_s52_audit_prune_cli_deletes_events_past_retention(client, app, settings):
    await register(client, "ann@example.com")
    await wait_for_events(app, lambda r: len(r) == SIGN_UP_EVENTS)
    async with app.state.db.write() as session:
        for days in (400, 366, 30):
            session.add(
                AuditEvent(
                    occurred_at=clock.now() - timedelta(days=days),
                    event="authn_login_fail",
                    outcome="failure",
                    details={},
                )
            )
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "APP_ENV": "test",
        "SECRET_KEY": SECRET_KEY,
    }
    command = [sys.executable, "-m", "litestar", "--app-dir", "src", "audit", "prune"]
    result = subprocess.run(command, cwd=ROOT_DIR, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Deleted 2 audit event(s)" in result.stdout
    assert len(await audit_rows(app)) == SIGN_UP_EVENTS + 1
    result = subprocess.run(
        [*command, "--older-than", "7d"], cwd=ROOT_DIR, env=env, capture_output=True, text=True
    )
    assert "Deleted 1 audit event(s)" in result.stdout
    bad = subprocess.run(
        [*command, "--older-than", "soon"], cwd=ROOT_DIR, env=env, capture_output=True, text=True
    )
    assert bad.returncode != 0 and len(await audit_rows(app)) == SIGN_UP_EVENTS
