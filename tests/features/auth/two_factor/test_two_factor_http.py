"""Two-factor authentication over HTTP: settings pages and the login challenge
(SECURITY.md S2, S12, S20, S26–S31)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import httpx
from sqlalchemy import select

from features.core.auth import login_guard
from features.core.auth.two_factor.models import RecoveryCode
from features.core.auth.two_factor.service import TwoFactorService, normalise_recovery_code
from features.users.models import User
from shared.security import throttle
from shared.security.passwords import Passwords
from tests.features.auth.two_factor.support import (
    CHALLENGE,
    code_now,
    confirm_password,
    enable_two_factor,
    names,
    password_step,
    pyotp_now,
    record_events,
    security_post,
    session_rows,
    sign_out,
    start_setup,
    submit_code,
    submit_recovery,
    user_row,
)
from tests.features.notifications.support import rows, wait_for_rows
from tests.support import DEFAULT_PASSWORD, csrf, login, register

EMAIL = "ann@example.com"


async def two_factor_user(client, app) -> tuple[str, list[str]]:
    await register(client, EMAIL, name="Ann")
    secret, codes = await enable_two_factor(client)
    await sign_out(client)
    return secret, codes


async def follow(client, response) -> httpx.Response:
    return await client.get(response.headers["location"])


# --- settings -----------------------------------------------------------------------------


async def test_security_page_is_in_the_settings_nav_and_shows_two_factor_off(client):
    await register(client, EMAIL)
    response = await client.get("/settings/profile")
    assert 'href="/settings/security"' in response.text
    page = await client.get("/settings/security")
    assert page.status_code == 200
    assert 'data-2fa-status="off"' in page.text
    assert "Enable two-factor authentication" in page.text


async def test_s20_enabling_needs_a_recent_password(client, app, frozen):
    await register(client, EMAIL)
    token = await csrf(client, "/settings/security")
    response = await client.post(
        "/settings/security/two-factor/setup",
        data={"_csrf_token": token},
        headers={"referer": "http://testserver.local/settings/security"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/confirm-password?next=/settings/security"
    assert (await user_row(app, EMAIL)).two_factor_secret is None
    get = await client.get("/settings/security/two-factor/setup")
    assert get.headers["location"].startswith("/confirm-password?next=")
    await confirm_password(client)
    frozen.advance(minutes=15, seconds=1)  # the confirmation is stale now
    response = await security_post(client, "/settings/security/two-factor/setup")
    assert response.headers["location"].startswith("/confirm-password")
    assert (await user_row(app, EMAIL)).two_factor_secret is None


async def test_setup_page_without_a_started_setup_goes_back_to_security(client, frozen):
    await register(client, EMAIL)
    await confirm_password(client)
    page = await client.get("/settings/security/two-factor/setup")
    assert page.status_code == 303 and page.headers["location"] == "/settings/security"
    assert "Start the setup" in (await follow(client, page)).text
    confirm = await security_post(
        client, "/settings/security/two-factor/confirm", {"code": "123456"}
    )
    assert confirm.status_code == 303 and confirm.headers["location"] == "/settings/security"
    regenerate = await security_post(client, "/settings/security/two-factor/recovery-codes")
    assert regenerate.status_code == 303
    assert "Two-factor authentication is off." in (await follow(client, regenerate)).text


async def test_a_secret_that_cannot_be_decrypted_still_allows_recovery_codes(
    client, app, frozen, monkeypatch
):
    secret, codes = await two_factor_user(client, app)
    monkeypatch.setattr(app.state.settings, "secret_key", "a-rotated-secret-key-" + "r" * 30)
    await password_step(client, EMAIL)
    response = await submit_code(client, code_now(secret))
    assert response.status_code == 422
    assert (await submit_recovery(client, codes[0])).status_code == 303


async def test_s26_two_factor_stays_off_until_one_valid_code_is_confirmed(client, app, frozen):
    await register(client, EMAIL)
    secret = await start_setup(client)
    page = await client.get("/settings/security/two-factor/setup")
    assert "<svg" in page.text and 'class="qr-code"' in page.text  # QR made on the server
    assert " ".join(secret[i : i + 4] for i in range(0, 32, 4)) in page.text  # grouped key
    user = await user_row(app, EMAIL)
    assert user.two_factor_secret and not user.two_factor_enabled
    # A pending secret changes nothing at sign-in.
    await sign_out(client)
    assert (await login(client, EMAIL)).headers["location"] == "/dashboard"
    await confirm_password(client)
    # Wrong, malformed and too old codes keep it off.
    for bad in ("000000", "12a456", "12345", "1234567", code_now(secret, -2)):
        if bad == code_now(secret, 0):
            continue
        response = await security_post(
            client, "/settings/security/two-factor/confirm", {"code": bad}
        )
        assert response.status_code == 422, bad
        assert 'id="e-code"' in response.text
    assert not (await user_row(app, EMAIL)).two_factor_enabled
    # The setup page shows the same key on a reload (the scanned QR code stays valid).
    assert secret in (await client.get("/settings/security/two-factor/setup")).text
    response = await security_post(
        client, "/settings/security/two-factor/confirm", {"code": pyotp_now(secret)}
    )
    assert response.status_code == 200
    assert "Save these recovery codes now" in response.text
    assert 'download="slicestar-recovery-codes.txt"' in response.text
    user = await user_row(app, EMAIL)
    assert user.two_factor_enabled and user.two_factor_confirmed_at == frozen()
    page = await client.get("/settings/security")
    assert 'data-2fa-status="on"' in page.text and "10 of 10 recovery codes left." in page.text


async def test_s26_opening_setup_again_never_disables_or_replaces_active_two_factor(
    client, app, monkeypatch
):
    await register(client, EMAIL)
    events = record_events(app, monkeypatch)
    await enable_two_factor(client)
    assert "authn_mfa_enabled" in names(events)
    before = await user_row(app, EMAIL)
    response = await security_post(client, "/settings/security/two-factor/setup")
    assert response.status_code == 303 and response.headers["location"] == "/settings/security"
    assert "already on" in (await follow(client, response)).text
    page = await client.get("/settings/security/two-factor/setup")
    assert page.status_code == 303 and page.headers["location"] == "/settings/security"
    confirm = await security_post(
        client, "/settings/security/two-factor/confirm", {"code": "123456"}
    )
    assert confirm.status_code == 303
    after = await user_row(app, EMAIL)
    assert after.two_factor_enabled
    assert after.two_factor_secret == before.two_factor_secret
    assert after.two_factor_confirmed_at == before.two_factor_confirmed_at


async def test_s31_disabling_needs_a_recent_password_and_deletes_secret_and_codes(
    client, app, frozen, monkeypatch
):
    await register(client, EMAIL)
    await enable_two_factor(client)
    events = record_events(app, monkeypatch)
    frozen.advance(minutes=16)
    response = await security_post(client, "/settings/security/two-factor/disable")
    assert response.headers["location"].startswith("/confirm-password")
    assert (await user_row(app, EMAIL)).two_factor_enabled
    await confirm_password(client)
    response = await security_post(client, "/settings/security/two-factor/disable")
    assert response.status_code == 303 and response.headers["location"] == "/settings/security"
    user = await user_row(app, EMAIL)
    assert not user.two_factor_enabled
    assert user.two_factor_secret is None and user.two_factor_last_step is None
    async with app.state.db.reader() as session:
        assert (await session.scalars(select(RecoveryCode))).all() == []
    assert names(events) == ["authn_mfa_disabled"]
    await sign_out(client)
    assert (await login(client, EMAIL)).headers["location"] == "/dashboard"


async def test_s30_regenerating_codes_needs_a_password_and_kills_the_old_ones(
    client, app, frozen, monkeypatch
):
    secret, old_codes = await two_factor_user(client, app)
    await password_step(client, EMAIL)
    assert (await submit_code(client, code_now(secret))).status_code == 303
    events = record_events(app, monkeypatch)
    response = await security_post(client, "/settings/security/two-factor/recovery-codes")
    assert response.headers["location"].startswith("/confirm-password")
    await confirm_password(client)
    response = await security_post(client, "/settings/security/two-factor/recovery-codes")
    assert response.status_code == 200 and "Your old codes no longer work." in response.text
    new_codes = re.findall(r"<li><code>([0-9a-z-]{29})</code></li>", response.text)
    assert len(new_codes) == 10 and not set(new_codes) & set(old_codes)
    assert names(events) == ["authn_mfa_recovery_regenerated"]
    user_id = (await user_row(app, EMAIL)).id  # the owner is told (notification)
    notes = await wait_for_rows(app.state.db, user_id, 2)  # "enabled", then "new codes"
    assert [n.title for n in notes][:2] == [
        "New recovery codes",
        "Two-factor authentication enabled",
    ]
    await sign_out(client)
    await password_step(client, EMAIL)
    assert (await submit_recovery(client, old_codes[0])).status_code == 422
    assert (await submit_recovery(client, new_codes[0])).status_code == 303


# --- the login challenge --------------------------------------------------------------------


async def test_s12_the_password_step_opens_nothing_but_the_challenge(client, app, frozen):
    await two_factor_user(client, app)
    response = await password_step(client, EMAIL, remember=True)
    assert response.headers["location"] == CHALLENGE
    cookie = next(v for v in response.headers.get_list("set-cookie") if v.startswith("session="))
    lowered = cookie.lower()
    assert "httponly" in lowered and "samesite=lax" in lowered and "max-age" not in lowered
    pending = [r for r in await session_rows(app) if r.pending_2fa_until is not None]
    assert len(pending) == 1
    for path in ("/dashboard", "/tasks", "/settings/security", "/settings/profile"):
        page = await client.get(path)
        assert page.status_code == 303, path
        assert page.headers["location"].startswith("/login?next="), path
    logout = await client.post("/logout", data={"_csrf_token": await csrf(client, CHALLENGE)})
    assert logout.status_code == 303 and logout.headers["location"].startswith("/login?next=")
    challenge = await client.get(CHALLENGE)
    assert challenge.status_code == 200
    assert "Enter the 6-digit code" in challenge.text
    assert "Sign out" not in challenge.text  # the layout does not treat it as signed in


async def test_s12_pending_login_lasts_five_minutes(client, app, frozen):
    secret, _ = await two_factor_user(client, app)
    await password_step(client, EMAIL)
    frozen.advance(minutes=5)  # the last valid instant
    assert (await client.get(CHALLENGE)).status_code == 200
    frozen.advance(milliseconds=1)
    response = await client.get(CHALLENGE)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert "Your sign-in has expired" in (await follow(client, response)).text
    assert [r for r in await session_rows(app) if r.pending_2fa_until is not None] == []
    # A code posted after expiry signs nobody in.
    response = await submit_code(client, code_now(secret))
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert await session_rows(app) == []


async def test_challenge_page_sends_a_signed_in_user_on(client, frozen):
    await register(client, EMAIL)
    response = await client.get(f"{CHALLENGE}?next=/tasks")
    assert response.status_code == 303 and response.headers["location"] == "/tasks"


async def test_s12_challenge_without_a_pending_login_sends_to_sign_in(client):
    response = await client.get(CHALLENGE)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert "Your sign-in has expired or was not started" in (await follow(client, response)).text
    response = await submit_code(client, "123456")
    assert response.status_code == 303 and response.headers["location"] == "/login"
    response = await submit_recovery(client, "abcde-abcde-abcde-abcde-abcde")
    assert response.status_code == 303 and response.headers["location"] == "/login"


async def test_s12_completing_the_challenge_rotates_the_session_and_keeps_remember_me(
    client, app, frozen, monkeypatch
):
    secret, _ = await two_factor_user(client, app)
    events = record_events(app, monkeypatch)
    await password_step(client, EMAIL, remember=True)
    pending_token = client.cookies.get("session")
    response = await submit_code(client, code_now(secret))
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"
    cookie = next(v for v in response.headers.get_list("set-cookie") if v.startswith("session="))
    assert f"Max-Age={30 * 86400}" in cookie
    signed_in_token = client.cookies.get("session")
    assert signed_in_token and signed_in_token != pending_token
    rows = await session_rows(app)
    assert len(rows) == 1 and rows[0].pending_2fa_until is None and rows[0].remember
    assert (await client.get("/dashboard")).status_code == 200
    assert names(events) == ["authn_login_success"]
    # The pending cookie is dead.
    client.cookies.clear()
    client.cookies.set("session", pending_token)
    assert (await client.get(CHALLENGE)).headers["location"] == "/login"


async def test_s12_without_remember_me_the_cookie_ends_with_the_browser(client, app, frozen):
    secret, _ = await two_factor_user(client, app)
    await password_step(client, EMAIL)
    response = await submit_code(client, code_now(secret))
    cookie = next(v for v in response.headers.get_list("set-cookie") if v.startswith("session="))
    assert "Max-Age" not in cookie
    assert not (await session_rows(app))[0].remember


async def test_next_survives_the_challenge_and_stays_local(client, app, frozen):
    secret, _ = await two_factor_user(client, app)
    for target, expected in (("/tasks?status=pending", "/tasks?status=pending"),):
        response = await login_with_next(client, target)
        assert response.headers["location"] == "/login/two-factor?next=/tasks%3Fstatus%3Dpending"
        page = await follow(client, response)
        assert 'name="next" value="/tasks?status=pending"' in page.text
        done = await submit_code(client, code_now(secret), next=target)
        assert done.headers["location"] == expected
    await sign_out(client)
    await password_step(client, EMAIL)
    done = await submit_code(client, code_now(secret, 1), next="//evil.example/")
    assert done.headers["location"] == "/dashboard"


async def login_with_next(client, target: str) -> httpx.Response:
    from tests.support import post_form

    return await post_form(
        client, "/login", {"email": EMAIL, "password": DEFAULT_PASSWORD, "next": target}
    )


async def test_s2_outdated_hash_is_rehashed_before_the_challenge(client, app, frozen):
    await two_factor_user(client, app)
    old = await Passwords(time_cost=1, memory_kib=8192).hash(DEFAULT_PASSWORD)
    async with app.state.db.writer() as session:
        user = await session.scalar(select(User))
        user.password_hash = old
        await session.commit()
    await password_step(client, EMAIL)  # only the password step: no code entered yet
    new_hash = (await user_row(app, EMAIL)).password_hash
    assert new_hash != old and new_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


async def test_s27_codes_outside_t_minus_1_to_t_plus_1_are_refused(client, app, frozen):
    secret, _ = await two_factor_user(client, app)
    await password_step(client, EMAIL)
    for offset in (-2, 2, -3, 3):
        response = await submit_code(client, code_now(secret, offset))
        assert response.status_code == 422
        assert "That code is not right." in response.text
    assert (await submit_code(client, code_now(secret, 1))).status_code == 303


async def test_s28_a_used_code_is_refused_on_the_next_sign_in(client, app, frozen, monkeypatch):
    secret, _ = await two_factor_user(client, app)
    await password_step(client, EMAIL)
    code = code_now(secret)
    assert (await submit_code(client, code)).status_code == 303
    await sign_out(client)
    events = record_events(app, monkeypatch)
    await password_step(client, EMAIL)
    response = await submit_code(client, code)
    assert response.status_code == 422
    assert "That code was already used." in response.text
    assert names(events) == ["authn_mfa_replay"]
    # The previous step's code is older than the used one: refused as well.
    assert (await submit_code(client, code_now(secret, -1))).status_code == 422
    # The next step's code works.
    assert (await submit_code(client, code_now(secret, 1))).status_code == 303


async def test_s28_twenty_concurrent_sign_ins_with_one_code_exactly_one_wins(
    app, client, frozen, monkeypatch
):
    # Let all twenty reach the code check (S29 would stop fifteen of them first and end the
    # pending logins after the tenth replay).
    monkeypatch.setitem(throttle.BUDGETS, "two_factor", throttle.Budget(50, 60))
    monkeypatch.setattr(throttle, "BACKOFF_FREE", 50)
    monkeypatch.setattr(login_guard, "CHALLENGE_LOCK_AFTER", 50)
    secret, _ = await two_factor_user(client, app)
    transport = httpx.ASGITransport(app=app)
    browsers = [
        httpx.AsyncClient(transport=transport, base_url="http://testserver.local")
        for _ in range(20)
    ]
    try:
        for browser in browsers:
            await password_step(browser, EMAIL)
        tokens = [await csrf(b, CHALLENGE) for b in browsers]
        code = code_now(secret)
        responses = await asyncio.gather(
            *(
                b.post(CHALLENGE, data={"code": code, "_csrf_token": t})
                for b, t in zip(browsers, tokens, strict=True)
            )
        )
    finally:
        for browser in browsers:
            await browser.aclose()
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [303] + [422] * 19
    assert sum("That code was already used." in r.text for r in responses) == 19
    signed_in = [r for r in await session_rows(app) if r.pending_2fa_until is None]
    assert len(signed_in) == 1


def wrong_code(secret: str) -> str:
    """A 6-digit code that is not valid in T-1..T+1 of the app clock."""
    valid = {code_now(secret, offset) for offset in (-1, 0, 1)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)


async def test_s29_five_codes_a_minute_per_account_then_429_then_back_off_and_lock(
    client, app, frozen, monkeypatch
):
    secret, _ = await two_factor_user(client, app)
    user_id = (await user_row(app, EMAIL)).id
    await password_step(client, EMAIL)
    events = record_events(app, monkeypatch)
    wrong = wrong_code(secret)
    for _ in range(5):
        assert (await submit_code(client, wrong)).status_code == 422
        frozen.advance(seconds=2)
    throttled = await submit_code(client, code_now(secret))  # even a right code waits
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "50"  # the window began 10 s ago
    assert "Too many wrong codes. Wait a minute" in throttled.text
    # A new password step buys no new guesses: the budget is the account's.
    await password_step(client, EMAIL)
    assert (await submit_code(client, code_now(secret))).status_code == 429
    frozen.advance(seconds=49)
    assert (await submit_code(client, wrong)).headers["retry-after"] == "1"
    frozen.advance(seconds=1)  # a new minute, but five wrong codes in a row: the back-off
    assert (await submit_code(client, wrong)).status_code == 422  # 6th: after a 1 s wait
    backed_off = await submit_code(client, wrong)
    assert backed_off.status_code == 429 and backed_off.headers["retry-after"] == "2"
    for wait in (2, 4, 8):  # 7th, 8th, 9th wrong codes, each after the wait it earned
        frozen.advance(seconds=wait)
        assert (await submit_code(client, wrong)).status_code == 422
    frozen.advance(seconds=46)  # past the 16 s wait and into the next minute
    response = await submit_code(client, wrong)  # the 10th wrong code in a row
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert "Too many wrong codes. Please sign in again." in (await follow(client, response)).text
    assert await session_rows(app) == []
    fails = [e for e in events if e.name == "authn_mfa_fail"]
    assert [e.details["failures"] for e in fails] == list(range(1, 11))
    throttles = [e for e in events if e.name == "authn_login_lock" and "context" in e.details]
    assert len(throttles) == 4  # every 429 is on the audit trail (S52)
    assert all(e.details["context"] == "two_factor" and e.user_id == user_id for e in throttles)
    lock = events[-1]
    assert lock.name == "authn_login_lock" and lock.outcome == "failure"
    assert lock.details == {"reason": "two_factor_failures", "failures": 10, "first": True}
    assert lock.user_id == lock.actor_id == user_id
    # After the lock, the right code still waits for the back-off (32 s), then works.
    await password_step(client, EMAIL)
    assert (await submit_code(client, code_now(secret))).status_code == 429
    frozen.advance(seconds=32)
    assert (await submit_code(client, code_now(secret))).status_code == 303


async def test_s29_new_pending_logins_do_not_reset_the_code_budget(client, app, frozen):
    secret, _ = await two_factor_user(client, app)
    wrong = wrong_code(secret)
    statuses = []
    for _ in range(6):  # six pending logins, five wrong codes each
        await password_step(client, EMAIL)
        for _ in range(5):
            statuses.append((await submit_code(client, wrong)).status_code)
    assert statuses == [422] * 5 + [429] * 25


async def test_s29_concurrent_wrong_codes_get_exactly_the_budget(client, app, frozen):
    secret, _ = await two_factor_user(client, app)
    await password_step(client, EMAIL)
    token = await csrf(client, CHALLENGE)
    data = {"code": wrong_code(secret), "_csrf_token": token}
    responses = await asyncio.gather(*(client.post(CHALLENGE, data=data) for _ in range(20)))
    assert sorted(r.status_code for r in responses) == [422] * 5 + [429] * 15


async def test_s29_a_recovery_code_counts_against_the_same_budget(client, app, frozen):
    secret, codes = await two_factor_user(client, app)
    await password_step(client, EMAIL)
    for _ in range(5):
        assert (await submit_recovery(client, "abcde-abcde-abcde-abcde-abcde")).status_code == 422
    assert (await submit_recovery(client, codes[0])).status_code == 429
    assert (await submit_code(client, code_now(secret))).status_code == 429


async def test_s29_the_lock_notifies_the_user_once_per_failure_streak(client, app, frozen):
    secret, _ = await two_factor_user(client, app)
    user_id = (await user_row(app, EMAIL)).id
    wrong = wrong_code(secret)

    async def attempt(code: Callable[[], str]) -> httpx.Response:
        """Submit ``code()``, first waiting out any 429 (the clock moves by ``Retry-After``)."""
        while (response := await submit_code(client, code())).status_code == 429:
            frozen.advance(seconds=int(response.headers["retry-after"]))
        return response

    async def fail_until_locked() -> int:
        await password_step(client, EMAIL)
        failures = 0
        while (response := await attempt(lambda: wrong)).status_code == 422:
            failures += 1
        assert response.status_code == 303 and response.headers["location"] == "/login"
        assert (
            "Too many wrong codes. Please sign in again." in (await follow(client, response)).text
        )
        return failures + 1

    async def lock_notes(count: int) -> list:
        for _ in range(100):
            notes = [
                n for n in await rows(app.state.db, user_id) if "two-factor codes" in n.message
            ]
            if len(notes) >= count:
                return notes
            await asyncio.sleep(0.02)
        return notes

    assert await fail_until_locked() == 10
    [note] = await lock_notes(1)
    assert note.type == "warning" and note.title == "Sign-in blocked after wrong codes"
    assert "10 wrong two-factor codes in a row" in note.message
    assert await fail_until_locked() == 1  # the 11th wrong code in a row ends it at once
    await asyncio.sleep(0.3)
    assert len(await lock_notes(2)) == 1  # not announced again in the same streak
    # A successful challenge ends the streak; the next lock is announced again.
    await password_step(client, EMAIL)
    signed_in = await attempt(lambda: code_now(secret))
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/dashboard"
    await sign_out(client)
    assert await fail_until_locked() == 10
    assert len(await lock_notes(2)) == 2


async def test_malformed_codes_are_refused_without_counting_as_failures(client, app, frozen):
    secret, _ = await two_factor_user(client, app)
    await password_step(client, EMAIL)
    for bad in ("", "12345", "1234567", "12a456", "١٢٣٤٥٦", "123-456", "12345678901234567890"):
        response = await submit_code(client, bad)
        assert response.status_code == 422, bad
        assert "Enter the 6-digit code from your authenticator app (digits only)." in response.text
    for bad in ("", "abc", "abcde-abcde-abcde-abcde-abcdi", "abcde_abcde_abcde_abcde_abcde"):
        response = await submit_recovery(client, bad)
        assert response.status_code == 422, bad
        assert "A recovery code has 25 letters and digits" in response.text
    user_id = (await user_row(app, EMAIL)).id
    assert await throttle.check(app.state, "two_factor", str(user_id), limit=1) is None
    assert (
        await submit_code(client, code_now(secret)[:3] + " " + code_now(secret)[3:])
    ).status_code == 303


async def test_s30_recovery_code_signs_in_once_with_spaces_dashes_and_case_forgiven(
    client, app, frozen, monkeypatch
):
    _, codes = await two_factor_user(client, app)
    await password_step(client, EMAIL)
    switch = await client.get(f"{CHALLENGE}?method=recovery")
    assert "Enter one of your recovery codes." in switch.text
    events = record_events(app, monkeypatch)
    typed = "  " + codes[0].upper().replace("-", " - ") + " "
    response = await submit_recovery(client, typed)
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"
    assert names(events) == ["authn_login_success", "authn_mfa_recovery_used"]
    assert events[1].details == {"remaining": 9}
    page = await client.get("/settings/security")
    assert "9 of 10 recovery codes left." in page.text
    await sign_out(client)
    await password_step(client, EMAIL)
    again = await submit_recovery(client, codes[0].replace("-", ""))
    assert again.status_code == 422
    assert "That recovery code is not valid or was already used." in again.text


async def test_s30_low_recovery_codes_warn_the_user(client, app, frozen, monkeypatch):
    _, codes = await two_factor_user(client, app)
    user_id = (await user_row(app, EMAIL)).id
    async with app.state.db.writer() as session:
        service = TwoFactorService(session, app.state.settings)
        for code in codes[:7]:
            assert await service.use_recovery_code(user_id, normalise_recovery_code(code))
        await session.commit()
    events = record_events(app, monkeypatch)
    await password_step(client, EMAIL)
    response = await submit_recovery(client, codes[7])
    assert response.status_code == 303
    assert names(events)[-1] == "authn_mfa_recovery_low"
    assert events[-1].details == {"remaining": 2}
    dashboard = await follow(client, response)
    assert "Only 2 recovery codes are left" in dashboard.text
    page = await client.get("/settings/security")
    assert "You are running out of recovery codes." in page.text


async def test_cancel_ends_the_pending_login(client, app, frozen):
    await two_factor_user(client, app)
    await password_step(client, EMAIL)
    token = await csrf(client, CHALLENGE)
    response = await client.post(f"{CHALLENGE}/cancel", data={"_csrf_token": token})
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert await session_rows(app) == []


async def test_a_new_password_step_replaces_the_pending_login(client, app, frozen):
    await two_factor_user(client, app)
    await password_step(client, EMAIL)
    await password_step(client, EMAIL)
    assert len(await session_rows(app)) == 1


async def test_challenge_post_without_csrf_is_refused(client, app, frozen):
    secret, _ = await two_factor_user(client, app)
    await password_step(client, EMAIL)
    response = await client.post(CHALLENGE, data={"code": code_now(secret)})
    assert response.status_code == 403
    assert all(r.pending_2fa_until is not None for r in await session_rows(app))
