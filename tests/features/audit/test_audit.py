"""Audit trail (SECURITY.md S52), the security activity page and new-device sign-ins."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from datetime import timedelta

import pytest
from litestar import get

from features.audit.models import AuditEvent
from features.audit.repository import seen_origin
from shared import clock
from shared.clock import FrozenClock, use_clock
from shared.config import ROOT_DIR
from shared.web.guards import requires_admin
from tests.accounts import create_account
from tests.conftest import SECRET_KEY
from tests.features.audit.helpers import audit_rows, names, wait_for_events
from tests.features.auth.two_factor.support import (
    code_now,
    enable_two_factor,
    password_step,
    sign_out,
    step_start,
    submit_code,
    submit_recovery,
)
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
    client, other_client, browser_factory, app, caplog
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
    # Two-factor (S25, S28, S30): the secret, the codes that turned it on and signed in, a
    # recovery code used at sign-in, and the other recovery codes shown once.
    with use_clock(FrozenClock(step_start())):
        totp_secret, recovery_codes = await enable_two_factor(client)
        setup_code = code_now(totp_secret, -1)
        phone = browser_factory()
        await password_step(phone, "ann@example.com")
        sign_in_code = code_now(totp_secret)
        assert (await submit_code(phone, sign_in_code)).status_code == 303
        await sign_out(phone)
        await password_step(phone, "ann@example.com")
        assert (await submit_recovery(phone, recovery_codes[0])).status_code == 303
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
            {
                "session_revoked_all",
                "malicious_csrf",
                "authn_mfa_recovery_used",
                "authn_email_change",
                "authn_password_reset",
            }
            <= set(names(r))
        ),
    )
    async with app.state.db.reader() as session:
        ids = [str(s) for s in (await session.execute(_session_ids())).scalars()]
    dump = json.dumps(
        [{c.name: str(getattr(r, c.name)) for c in AuditEvent.__table__.columns} for r in rows]
    )
    # Every app log record: its message and every extra field (the test's own HTTP client,
    # httpx, logs the URLs it requests and is left out).
    records = [r for r in caplog.records if r.name != "httpx"]
    extras = [{k: v for k, v in vars(r).items() if k not in _LOG_RECORD_FIELDS} for r in records]
    assert any("path" in e and "user_id" in e for e in extras)  # the access log was captured
    haystack = dump + "\n".join(
        f"{r.getMessage()} {json.dumps(e, default=str)}"
        for r, e in zip(records, extras, strict=True)
    )
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
    secrets += [totp_secret, *recovery_codes, *(c.replace("-", "") for c in recovery_codes)]
    for secret in secrets:
        assert secret and secret not in haystack
    for code in (setup_code, sign_in_code):  # six digits: as a number of its own
        assert len(code) == 6 and not re.search(rf"(?<!\d){code}(?!\d)", haystack)


_LOG_RECORD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


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


async def test_s52_sign_in_throttle_is_recorded_as_authn_login_lock_about_the_account(client, app):
    ann = await create_account(app.state.db, "ann@example.com")
    frozen = FrozenClock()
    with use_clock(frozen):
        for _ in range(5):
            assert (await login(client, "ann@example.com", WRONG_PASSWORD)).status_code == 422
        assert (await login(client, "Ann@Example.com", WRONG_PASSWORD)).status_code == 429
        for _ in range(6):
            await login(client, "nobody@example.com", WRONG_PASSWORD)
        rows = await wait_for_events(app, lambda r: names(r).count("authn_login_lock") == 2)
        locks = [r for r in rows if r.event == "authn_login_lock"]
        mine = next(r for r in locks if r.user_id is not None)
        assert mine.user_id == ann and mine.actor_id is None and mine.outcome == "failure"
        assert mine.details == {"context": "login", "retry_after": 60}
        assert mine.ip_address == "127.0.0.1" and mine.request_id
        assert [r.user_id for r in locks if r is not mine] == [None]  # no such account
        frozen.advance(seconds=60)
        assert (await login(client, "ann@example.com")).status_code == 303
    page = await client.get("/settings/activity")
    assert "Sign-in blocked (too many attempts)" in page.text  # on the owner's activity page


async def test_s52_confirmation_and_two_factor_throttles_are_recorded(client, app):
    ann = await create_account(app.state.db, "ann@example.com")
    assert (await login(client, "ann@example.com")).status_code == 303
    with use_clock(FrozenClock(step_start())):
        for _ in range(6):
            await post_form(client, "/confirm-password", {"password": WRONG_PASSWORD})
    rows = await wait_for_events(app, lambda r: "authn_login_lock" in names(r))
    lock = next(r for r in rows if r.event == "authn_login_lock")
    assert lock.user_id == lock.actor_id == ann
    assert lock.details == {"context": "confirm_password", "retry_after": 60}
    with use_clock(FrozenClock(step_start(10))):
        await post_form(client, "/confirm-password", {"password": DEFAULT_PASSWORD})
        secret, _ = await enable_two_factor(client)
        await sign_out(client)
        await password_step(client, "ann@example.com")
        wrong = next(c for c in ("000000", "111111") if c != code_now(secret))
        statuses = [(await submit_code(client, wrong)).status_code for _ in range(6)]
    assert statuses == [422] * 5 + [429]
    rows = await wait_for_events(app, lambda r: names(r).count("authn_login_lock") == 2)
    lock = [r for r in rows if r.event == "authn_login_lock"][-1]
    assert lock.user_id == ann and lock.actor_id is None  # nobody is signed in yet
    assert lock.outcome == "failure" and lock.details["context"] == "two_factor"


async def test_audit_retention_must_be_positive_and_prune_prints_the_real_age(
    client, app, settings
):
    from pydantic import ValidationError

    from shared.config import Settings

    for bad in (0, -1):
        with pytest.raises(ValidationError, match="at least 1"):
            Settings(secret_key=SECRET_KEY, audit_retention_days=bad)
    async with app.state.db.write() as session:
        for hours in (13, 11):
            session.add(
                AuditEvent(
                    occurred_at=clock.now() - timedelta(hours=hours),
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
    for bad in ("0", "-30"):  # would have deleted every fresh event
        refused = subprocess.run(
            command,
            cwd=ROOT_DIR,
            env={**env, "AUDIT_RETENTION_DAYS": bad},
            capture_output=True,
            text=True,
        )
        assert refused.returncode == 1, refused.stdout
        assert f"AUDIT_RETENTION_DAYS: must be a whole number of days, at least 1 (got {bad})" in (
            refused.stderr
        )
        assert "Traceback" not in refused.stderr
    assert len(await audit_rows(app)) == 2
    result = subprocess.run(
        [*command, "--older-than", "12h"], cwd=ROOT_DIR, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "Deleted 1 audit event(s) older than 12 hour(s)." in result.stdout
    for age, line in (
        ("1d", "0 audit event(s) older than 1 day(s)"),
        ("90m", "1 audit event(s) older than 90 minute(s)"),
    ):
        result = subprocess.run(
            [*command, "--older-than", age], cwd=ROOT_DIR, env=env, capture_output=True, text=True
        )
        assert f"Deleted {line}." in result.stdout
    assert await audit_rows(app) == []


async def test_a_device_counts_as_seen_only_with_the_same_ip_browser_and_os_among_the_last_200(
    client, app
):
    user_id = await create_account(app.state.db, "ann@example.com")
    now = clock.now()

    def sign_in(minutes_ago: int, ip: str | None, browser: str, os_name: str) -> AuditEvent:
        return AuditEvent(
            occurred_at=now - timedelta(minutes=minutes_ago),
            event="authn_login_success",
            user_id=user_id,
            actor_id=user_id,
            ip_address=ip,
            outcome="success",
            details={"browser": browser, "os": os_name, "via": "password"},
        )

    async with app.state.db.write() as session:
        session.add(sign_in(500, "198.51.100.7", "Safari 17", "macOS"))  # older than the last 200
        session.add_all(sign_in(m, "203.0.113.5", "Firefox 121", "Linux") for m in range(1, 200))
        session.add(sign_in(0, None, "Chrome 120", "Android"))  # no IP known

    async def seen(ip: str | None, browser: str, os_name: str) -> bool:
        return await seen_origin(
            app.state.db.single_read_engine,
            user_id,
            200,
            ["authn_login_success"],
            ip_address=ip,
            browser=browser,
            os=os_name,
        )

    assert await seen("203.0.113.5", "Firefox 121", "Linux") is True
    assert await seen("203.0.113.6", "Firefox 121", "Linux") is False  # another IP
    assert await seen("203.0.113.5", "Firefox 122", "Linux") is False  # another browser
    assert await seen("203.0.113.5", "Firefox 121", "Windows 10") is False  # another OS
    assert await seen("198.51.100.7", "Safari 17", "macOS") is False  # not among the last 200
    assert await seen(None, "Chrome 120", "Android") is True  # no IP matches no IP
    assert await seen(None, "Firefox 121", "Linux") is False
