"""Email verification, password reset and the mails of the account lifecycle over HTTP
(SECURITY.md S7, S8, S11, S18, S24, S33–S37; R3).

Mail goes to the test outbox folder; ``tests.support`` takes the links from there.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy import func, select, update

from features.core.auth.models import EmailToken, TokenKind
from features.sessions.models import BrowserSession
from features.users.models import User
from shared import clock
from shared.clock import FrozenClock, use_clock
from shared.security.tokens import token_hash
from tests.features.audit.helpers import names, wait_for_events
from tests.support import (
    DEFAULT_PASSWORD,
    csrf,
    follow_link,
    login,
    mailed_link,
    mails_to,
    outbox,
    post_form,
    register,
)

NEW_PASSWORD = "a brand new passphrase 2"


async def tokens(app, kind: TokenKind | None = None) -> list[EmailToken]:
    async with app.state.db.reader() as session:
        stmt = select(EmailToken).order_by(EmailToken.created_at)
        if kind is not None:
            stmt = stmt.where(EmailToken.kind == kind)
        return list(await session.scalars(stmt))


async def user_row(app, email: str) -> User | None:
    async with app.state.db.reader() as session:
        return await session.scalar(select(User).where(User.email == email))


async def session_rows(app) -> int:
    async with app.state.db.reader() as session:
        return int(await session.scalar(select(func.count()).select_from(BrowserSession)))


async def forgot(client, email: str):
    return await post_form(
        client, "/forgot-password", {"email": email}, token_from="/forgot-password"
    )


async def reset_link(client, email: str) -> str:
    return await mailed_link(client, email, "/reset-password/")


async def set_new_password(client, link: str, password: str = NEW_PASSWORD):
    page = await client.get(link)
    assert page.status_code == 200, page.text
    token = link.rsplit("/", 1)[1]
    return await post_form(
        client,
        "/reset-password",
        {"token": token, "password": password, "password_confirmation": password},
        token_from=link,
    )


# --- registration and verification ---------------------------------------------------------------


async def test_registration_mails_a_link_and_signs_nobody_in(client, app):
    response = await register(client, "ann@example.com", name="Ann", verify=False)
    assert response.headers["location"] == "/register/check-email"
    assert "session" not in response.cookies
    page = await client.get("/register/check-email")
    assert "Check your inbox" in page.text and "We sent a link to ann@example.com." in page.text
    assert (await client.get("/dashboard")).headers["location"].startswith("/login")
    [mail] = await mails_to(client, "ann@example.com")
    assert mail.subject == "Slicestar: Verify your email address"
    assert mail.to == "Ann <ann@example.com>"
    [link] = [x for x in mail.links if "/verify-email/" in x]
    assert link.startswith("http://testserver.local/verify-email/")
    assert f'href="{link}"' in mail.html and "24 hours" in mail.text
    user = await user_row(app, "ann@example.com")
    assert user.email_verified_at is None


async def test_s11_the_verification_link_verifies_and_signs_in_with_a_new_session(client, app):
    await register(client, "ann@example.com", name="Ann", verify=False)
    guest_cookies = dict(client.cookies)
    link = await mailed_link(client, "ann@example.com", "/verify-email/")
    page = await client.get(link)  # opening the link changes nothing (S24)
    assert page.status_code == 200 and "Verify and sign in" in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert (await user_row(app, "ann@example.com")).email_verified_at is None
    response = await follow_link(client, link, "/verify-email/confirm")
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"
    assert client.cookies.get("session") and "session" not in guest_cookies
    dashboard = await client.get("/dashboard")
    assert dashboard.status_code == 200 and "Your email address is verified." in dashboard.text
    assert (await user_row(app, "ann@example.com")).email_verified_at is not None
    rows = await wait_for_events(
        app,
        lambda r: {"user_created", "authn_email_verified", "authn_login_success"} <= set(names(r)),
    )
    login_event = next(r for r in rows if r.event == "authn_login_success")
    assert login_event.details["via"] == "email_verification"


async def test_s33_the_verification_link_is_single_use(client, other_client, app):
    await register(client, "ann@example.com", verify=False)
    link = await mailed_link(client, "ann@example.com", "/verify-email/")
    token = link.rsplit("/", 1)[1]
    assert (await follow_link(client, link, "/verify-email/confirm")).status_code == 303
    again = await other_client.get(link)
    assert again.status_code == 410 and "already used" in again.text
    assert again.headers["referrer-policy"] == "no-referrer"
    replay = await post_form(
        other_client, "/verify-email/confirm", {"token": token}, token_from="/login"
    )
    assert replay.status_code == 410 and "session" not in replay.cookies


async def test_unverified_accounts_sign_in_but_see_only_the_verify_page(client, app):
    await register(client, "ann@example.com", verify=False)
    assert (await login(client, "ann@example.com")).status_code == 303
    for path in ("/dashboard", "/tasks", "/settings/profile", "/assets", "/admin"):
        response = await client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/verify-email", path
    token = await csrf(client, "/verify-email")
    posted = await client.post("/tasks", data={"title": "x", "_csrf_token": token})
    assert posted.status_code == 303 and posted.headers["location"] == "/verify-email"
    page = await client.get("/verify-email")
    assert page.status_code == 200 and "Send the link again" in page.text
    assert 'href="/tasks"' not in page.text  # no navigation into the app
    assert (await post_form(client, "/logout", {}, token_from="/verify-email")).status_code == 303


async def test_s35_resend_mails_a_new_link_once_a_minute_and_the_old_one_dies(client, app):
    frozen = FrozenClock()
    with use_clock(frozen):
        await register(client, "ann@example.com", verify=False)
        first = await mailed_link(client, "ann@example.com", "/verify-email/")
        await login(client, "ann@example.com")
        sent = await post_form(client, "/verify-email/resend", {}, token_from="/verify-email")
        assert sent.status_code == 303
        second = await mailed_link(client, "ann@example.com", "/verify-email/")
        assert second != first
        assert len(await mails_to(client, "ann@example.com")) == 2
        again = await post_form(client, "/verify-email/resend", {}, token_from="/verify-email")
        assert again.status_code == 429 and int(again.headers["retry-after"]) >= 1
        assert len(await mails_to(client, "ann@example.com")) == 2  # nothing sent
        frozen.advance(seconds=61)
        later = await post_form(client, "/verify-email/resend", {}, token_from="/verify-email")
        assert later.status_code == 303
        assert len(await mails_to(client, "ann@example.com")) == 3
        third = await mailed_link(client, "ann@example.com", "/verify-email/")
        superseded = await client.get(first)
        assert superseded.status_code == 404 and "newer link" in superseded.text
        assert (await client.get(second)).status_code == 404
        assert (await follow_link(client, third, "/verify-email/confirm")).status_code == 303
        assert (await client.get("/dashboard")).status_code == 200


async def test_s34_verification_link_lives_24_hours_to_the_second(client, other_client, app):
    frozen = FrozenClock()
    with use_clock(frozen):
        await register(client, "ann@example.com", verify=False)
        await register(other_client, "bob@example.com", verify=False)
        ann = await mailed_link(client, "ann@example.com", "/verify-email/")
        bob = await mailed_link(other_client, "bob@example.com", "/verify-email/")
        frozen.advance(hours=24)
        assert (await follow_link(client, ann, "/verify-email/confirm")).status_code == 303
        frozen.advance(seconds=1)
        late = await other_client.get(bob)
        assert late.status_code == 410 and "expired" in late.text


async def test_malformed_unknown_and_foreign_kind_links_are_404(client, app):
    await register(client, "ann@example.com", verify=False)
    verify = await mailed_link(client, "ann@example.com", "/verify-email/")
    token = verify.rsplit("/", 1)[1]
    for path in (
        "/verify-email/short",
        "/verify-email/" + "A" * 43,  # well-formed, unknown
        "/verify-email/" + token[:-1] + "!",
        "/reset-password/" + token,  # a verification token on the reset page
        "/confirm-email/" + token,
    ):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert "not valid" in response.text and response.headers["referrer-policy"] == "no-referrer"
    assert (await user_row(app, "ann@example.com")).email_verified_at is None


async def test_s33_tokens_have_256_bits_and_only_their_hash_is_stored(client, app):
    await register(client, "ann@example.com", verify=False)
    link = await mailed_link(client, "ann@example.com", "/verify-email/")
    token = link.rsplit("/", 1)[1]
    assert len(token) == 43  # 32 random bytes, base64url
    [row] = await tokens(app)
    assert row.token_hash == token_hash(token) and token not in row.token_hash
    assert row.kind == TokenKind.VERIFY_EMAIL and row.email == "ann@example.com"
    assert row.expires_at - row.created_at == timedelta(hours=24)


# --- password reset ---------------------------------------------------------------------------------


async def test_s8_reset_request_answers_the_same_for_known_unknown_and_disabled(
    client, other_client, app
):
    await register(client, "ann@example.com")
    await register(other_client, "off@example.com")
    async with app.state.db.write() as session:
        await session.execute(
            update(User).where(User.email == "off@example.com").values(disabled_at=clock.now())
        )
    answers = []
    for email in ("ann@example.com", "nobody@example.com", "off@example.com"):
        response = await forgot(other_client, email)
        page = await other_client.get(response.headers["location"])
        answers.append(
            (response.status_code, response.headers["location"], page.text.replace(email, "E"))
        )
    assert answers[0][:2] == answers[1][:2] == answers[2][:2] == (303, "/login")
    strip = lambda html: html.split("<main", 1)[1].split("</main>", 1)[0]  # noqa: E731
    import re

    value = re.compile(r'value="[^"]*"')
    assert len({value.sub("", strip(text)) for _, _, text in answers}) == 1
    assert "we have sent it a link" in answers[0][2]
    assert len(await mails_to(client, "ann@example.com")) == 2  # verification + reset
    assert await mails_to(client, "nobody@example.com") == []
    assert len(await mails_to(client, "off@example.com")) == 1  # only its verification
    assert len(await tokens(app, TokenKind.RESET_PASSWORD)) == 1


async def test_s18_s36_reset_sets_the_password_ends_every_session_and_signs_nobody_in(
    client, other_client, browser_factory, app
):
    await register(client, "ann@example.com", name="Ann")
    await login(other_client, "ann@example.com")
    assert await session_rows(app) == 2
    stranger = browser_factory()
    assert (await forgot(stranger, "ann@example.com")).status_code == 303
    [mail, *_] = await mails_to(client, "ann@example.com")
    assert mail.subject == "Slicestar: Reset your password" and "60 minutes" in mail.text
    link = await reset_link(client, "ann@example.com")
    page = await stranger.get(link)
    assert page.headers["referrer-policy"] == "no-referrer" and "ann@example.com" in page.text
    response = await set_new_password(stranger, link)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert "session" not in response.cookies  # nobody is signed in (S36)
    assert await session_rows(app) == 0  # every session ended (S18)
    for browser in (client, other_client, stranger):
        assert (await browser.get("/dashboard")).headers["location"].startswith("/login")
    assert (await login(stranger, "ann@example.com", DEFAULT_PASSWORD)).status_code == 422
    assert (await login(stranger, "ann@example.com", NEW_PASSWORD)).status_code == 303
    await wait_for_events(app, lambda r: "authn_password_reset" in names(r))
    for _ in range(100):  # the confirmation is mailed by a listener, after the response
        mails = await mails_to(client, "ann@example.com")
        if any(m.subject == "Slicestar: Your password was reset" for m in mails):
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("no reset confirmation mail")


async def test_s3_reset_refuses_weak_or_mismatched_passwords_and_keeps_the_link(client, app):
    await register(client, "ann@example.com")
    await forgot(client, "ann@example.com")
    link = await reset_link(client, "ann@example.com")
    token = link.rsplit("/", 1)[1]
    for password, confirmation, message in (
        ("short", "short", "Use at least 8 characters."),
        ("password123", "password123", "too common"),
        (NEW_PASSWORD, NEW_PASSWORD + "!", "do not match"),
    ):
        response = await post_form(
            client,
            "/reset-password",
            {"token": token, "password": password, "password_confirmation": confirmation},
            token_from=link,
        )
        assert response.status_code == 422 and message in response.text
        assert f'value="{token}"' in response.text and password not in response.text
    assert (await set_new_password(client, link)).status_code == 303


async def test_s33_r3_a_reset_link_works_once_even_when_submitted_concurrently(
    client, browser_factory, app
):
    await register(client, "ann@example.com")
    await forgot(client, "ann@example.com")
    link = await reset_link(client, "ann@example.com")
    token = link.rsplit("/", 1)[1]
    browsers = [browser_factory() for _ in range(8)]
    forms = [await csrf(b, link) for b in browsers]
    responses = await asyncio.gather(
        *(
            b.post(
                "/reset-password",
                data={
                    "token": token,
                    "password": f"{NEW_PASSWORD} {n}",
                    "password_confirmation": f"{NEW_PASSWORD} {n}",
                    "_csrf_token": form,
                },
            )
            for n, (b, form) in enumerate(zip(browsers, forms, strict=True))
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [303] + [410] * 7, statuses
    winner = next(n for n, r in enumerate(responses) if r.status_code == 303)
    assert (await login(client, "ann@example.com", f"{NEW_PASSWORD} {winner}")).status_code == 303
    used = await client.get(link)
    assert used.status_code == 410 and "already used" in used.text


async def test_s34_reset_link_is_valid_at_60_minutes_and_refused_one_second_later(
    client, other_client, app
):
    frozen = FrozenClock()
    with use_clock(frozen):
        await register(client, "ann@example.com")
        await register(other_client, "bob@example.com")
        await forgot(client, "ann@example.com")
        await forgot(other_client, "bob@example.com")
        ann, bob = (
            await reset_link(client, "ann@example.com"),
            await reset_link(other_client, "bob@example.com"),
        )
        frozen.advance(minutes=60)
        assert (await set_new_password(client, ann)).status_code == 303  # at the limit: valid
        frozen.advance(seconds=1)
        late = await other_client.get(bob)
        assert late.status_code == 410 and "expired" in late.text
        assert 'href="/forgot-password"' in late.text  # the way to a new link
        refused = await post_form(
            other_client,
            "/reset-password",
            {
                "token": bob.rsplit("/", 1)[1],
                "password": NEW_PASSWORD,
                "password_confirmation": NEW_PASSWORD,
            },
            token_from="/login",
        )
        assert refused.status_code == 410
    assert (await login(other_client, "bob@example.com", DEFAULT_PASSWORD)).status_code == 303


async def test_s33_a_newer_reset_link_supersedes_the_older(client, app):
    frozen = FrozenClock()
    with use_clock(frozen):
        await register(client, "ann@example.com")
        await forgot(client, "ann@example.com")
        first = await reset_link(client, "ann@example.com")
        frozen.advance(seconds=61)
        await forgot(client, "ann@example.com")
        second = await reset_link(client, "ann@example.com")
    assert first != second
    assert (await client.get(first)).status_code == 404
    assert (await client.get(second)).status_code == 200
    assert len(await tokens(app, TokenKind.RESET_PASSWORD)) == 1


async def test_s35_reset_requests_are_throttled_per_address(client, other_client, app):
    frozen = FrozenClock()
    with use_clock(frozen):
        await register(client, "ann@example.com")
        assert (await forgot(other_client, "ann@example.com")).status_code == 303
        again = await forgot(other_client, " ANN@example.com ")
        assert again.status_code == 429 and int(again.headers["retry-after"]) >= 1
        assert "Wait a minute" in again.text
        assert (await forgot(other_client, "bob@example.com")).status_code == 303  # its own budget
        frozen.advance(seconds=61)
        assert (await forgot(other_client, "ann@example.com")).status_code == 303
    reset_mails = [m for m in await mails_to(client, "ann@example.com") if "Reset" in m.subject]
    assert len(reset_mails) == 2


async def test_reset_request_refuses_malformed_addresses_without_mail(client, app):
    for bad in (
        "",
        "not-an-email",
        "ann@example.com\r\nBcc: eve@evil.test",
        '"Ann" <ann@example.com>',
    ):
        response = await forgot(client, bad)
        assert response.status_code == 422, bad
    assert await outbox(client) == []


async def test_s37_a_reset_link_dies_when_the_email_changes(client, app):
    await register(client, "ann@example.com")
    await forgot(client, "ann@example.com")
    link = await reset_link(client, "ann@example.com")
    async with app.state.db.write() as session:
        await session.execute(
            update(User).where(User.email == "ann@example.com").values(email="ann@elsewhere.org")
        )
    response = await client.get(link)
    assert response.status_code == 410 and "no longer uses" in response.text


async def test_reset_verifies_an_unverified_address(client, app):
    await register(client, "ann@example.com", verify=False)
    await forgot(client, "ann@example.com")
    link = await reset_link(client, "ann@example.com")
    assert (await set_new_password(client, link)).status_code == 303
    assert (await user_row(app, "ann@example.com")).email_verified_at is not None
    assert (await login(client, "ann@example.com", NEW_PASSWORD)).status_code == 303
    assert (await client.get("/dashboard")).status_code == 200


async def test_s37_token_pages_send_no_referrer_and_the_access_log_redacts_tokens(
    client, app, caplog
):
    caplog.set_level(logging.INFO, logger="slicestar.access")
    await register(client, "ann@example.com")
    await forgot(client, "ann@example.com")
    link = await reset_link(client, "ann@example.com")
    token = link.rsplit("/", 1)[1]
    page = await client.get(link)
    assert page.headers["referrer-policy"] == "no-referrer"
    access = [r for r in caplog.records if r.name == "slicestar.access"]
    assert any(r.path == "/reset-password/[redacted]" for r in access)
    assert not any(token in r.getMessage() or token in str(vars(r)) for r in access)
