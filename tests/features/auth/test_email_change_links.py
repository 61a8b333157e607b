"""The life of an email-change link: what kills it before it is used (a password reset or
change, a newer request, its 24-hour lifetime), and the link in the notice to the old address
that undoes a change (7 days), in the services and over HTTP (SECURITY.md S18, S24, S33, S34,
S36, S37). Time is moved with :mod:`shared.clock`, never waited."""

from __future__ import annotations

import pytest

from features.core.auth.account.service import AccountService
from features.core.auth.models import TokenKind
from features.core.auth.schemas import LoginForm
from features.core.auth.service import AuthService, ClientInfo
from features.core.auth.tokens import TokenRefused
from features.sessions.models import BrowserSession
from features.sessions.service import resolve
from shared.clock import FrozenClock, use_clock
from tests.accounts import create_account
from tests.features.audit.helpers import names, wait_for_events
from tests.features.auth.test_account_settings import count, settings_post, user_row, wait_for_mail
from tests.features.auth.test_email_flows import forgot, reset_link, set_new_password, tokens
from tests.features.auth.two_factor.support import confirm_password
from tests.support import (
    DEFAULT_PASSWORD,
    follow_link,
    login,
    mailed_link,
    mails_to,
    post_form,
    register,
)

NEW_PASSWORD = "a brand new passphrase 2"
CLIENT = ClientInfo(ip_address="203.0.113.9", user_agent="a test browser")


async def request_change(app, user_id, new_email: str) -> str:
    """Issue an email-change link for ``user_id`` through the service; returns the raw token."""
    async with app.state.db.writer() as session:
        service = AccountService(session, app.state.settings, app.state.passwords)
        requested = await service.request_email_change(user_id, new_email)
    assert requested.token is not None
    return requested.token


async def check_change(app, raw: str):
    async with app.state.db.writer() as session:
        service = AccountService(session, app.state.settings, app.state.passwords)
        return await service.check_email_change(raw, None)


async def confirm_by_post(browser, link: str):
    """Press "confirm" for ``link`` without its page (as a script holding the token would)."""
    token = link.rsplit("/", 1)[1]
    return await post_form(browser, "/confirm-email", {"token": token}, token_from="/login")


# --- a password reset or change kills pending change links (account takeover) -------------------


async def test_s18_s36_a_password_reset_discards_pending_email_change_links(app, client):
    ann = await create_account(app.state.db, "ann@example.com")
    change = await request_change(app, ann, "eve@evil.example")
    assert (await check_change(app, change))[1] == "eve@evil.example"
    async with app.state.db.writer() as session:
        auth = AuthService(session, app.state.settings, app.state.passwords)
        issued = await auth.request_password_reset("ann@example.com")
        assert issued is not None
        await auth.reset_password(issued[1], NEW_PASSWORD)
    with pytest.raises(TokenRefused) as refused:
        await check_change(app, change)
    assert refused.value.reason == "invalid"
    assert await tokens(app, TokenKind.CHANGE_EMAIL) == []


async def test_s18_a_password_change_discards_pending_email_change_and_reset_links(app, client):
    ann = await create_account(app.state.db, "ann@example.com")
    change = await request_change(app, ann, "eve@evil.example")
    async with app.state.db.writer() as session:
        auth = AuthService(session, app.state.settings, app.state.passwords)
        assert await auth.request_password_reset("ann@example.com") is not None
        form = LoginForm(email="ann@example.com", password=DEFAULT_PASSWORD, remember=False)
        signed_in = await auth.login(form, CLIENT, reads=app.state.db.single_read_engine)
    assert signed_in is not None
    _user, info = await resolve(app.state.db, app.state.settings, signed_in.token)
    async with app.state.db.writer() as session:
        account = AccountService(session, app.state.settings, app.state.passwords)
        await account.change_password(info, DEFAULT_PASSWORD, NEW_PASSWORD, CLIENT)
    with pytest.raises(TokenRefused) as refused:
        await check_change(app, change)
    assert refused.value.reason == "invalid"
    assert await tokens(app, TokenKind.CHANGE_EMAIL) == []
    assert await tokens(app, TokenKind.RESET_PASSWORD) == []


async def test_s18_s36_after_a_reset_the_attackers_change_link_is_dead(
    client, other_client, browser_factory, app
):
    await register(client, "ann@example.com", name="Ann")
    await confirm_password(client)  # someone holding Ann's session asks to move the account
    await settings_post(client, "/settings/email", {"email": "eve@evil.example"})
    link = await mailed_link(client, "eve@evil.example", "/confirm-email/")
    victim = browser_factory()
    await forgot(victim, "ann@example.com")
    done = await set_new_password(victim, await reset_link(victim, "ann@example.com"))
    assert done.status_code == 303
    page = await other_client.get(link)
    assert page.status_code == 404
    assert (await confirm_by_post(other_client, link)).status_code == 404
    assert await user_row(app, "ann@example.com") is not None
    assert await user_row(app, "eve@evil.example") is None


async def test_s18_after_a_password_change_the_attackers_change_link_is_dead(
    client, other_client, app
):
    await register(client, "ann@example.com", name="Ann")
    await confirm_password(client)
    await settings_post(client, "/settings/email", {"email": "eve@evil.example"})
    link = await mailed_link(client, "eve@evil.example", "/confirm-email/")
    changed = await settings_post(
        client,
        "/settings/password",
        {
            "current_password": DEFAULT_PASSWORD,
            "password": NEW_PASSWORD,
            "password_confirmation": NEW_PASSWORD,
        },
    )
    assert changed.status_code == 303
    assert (await other_client.get(link)).status_code == 404
    assert (await confirm_by_post(other_client, link)).status_code == 404
    assert await user_row(app, "ann@example.com") is not None
    assert await user_row(app, "eve@evil.example") is None


# --- lifetime and supersession (S33, S34) --------------------------------------------------------


async def test_s34_a_change_link_lives_24_hours_to_the_second(client, other_client, app):
    frozen = FrozenClock()
    with use_clock(frozen):
        await register(client, "ann@example.com")
        await register(other_client, "bob@example.com")
        await confirm_password(client)
        await settings_post(client, "/settings/email", {"email": "ann@new.example"})
        await confirm_password(other_client)
        await settings_post(other_client, "/settings/email", {"email": "bob@new.example"})
        ann = await mailed_link(client, "ann@new.example", "/confirm-email/")
        bob = await mailed_link(other_client, "bob@new.example", "/confirm-email/")
        frozen.advance(hours=23, minutes=59, seconds=59)
        assert (await client.get(ann)).status_code == 200  # just before the limit
        frozen.advance(seconds=1)  # exactly 24 hours: still valid (S34)
        assert (await follow_link(client, ann, "/confirm-email")).status_code == 303
        assert await user_row(app, "ann@new.example") is not None
        frozen.advance(seconds=1)  # Bob's link, one second past its 24 hours
        late = await other_client.get(bob)
        assert late.status_code == 410 and "expired" in late.text
        assert 'href="/settings/profile"' in late.text  # the way to start again
        assert (await confirm_by_post(other_client, bob)).status_code == 410
    assert await user_row(app, "bob@example.com") is not None
    assert await user_row(app, "bob@new.example") is None


async def test_s34_an_expired_change_link_is_refused_by_the_service(app, client):
    frozen = FrozenClock()
    with use_clock(frozen):
        ann = await create_account(app.state.db, "ann@example.com")
        change = await request_change(app, ann, "ann@new.example")
        frozen.advance(days=3)
        with pytest.raises(TokenRefused) as refused:
            await check_change(app, change)
        assert refused.value.reason == "expired"
        async with app.state.db.writer() as session:
            service = AccountService(session, app.state.settings, app.state.passwords)
            with pytest.raises(TokenRefused):
                await service.confirm_email_change(change, None)
    assert await user_row(app, "ann@example.com") is not None


async def test_s33_a_newer_change_request_supersedes_the_older_link(client, app):
    frozen = FrozenClock()
    with use_clock(frozen):
        await register(client, "ann@example.com")
        await confirm_password(client)
        await settings_post(client, "/settings/email", {"email": "first@new.example"})
        first = await mailed_link(client, "first@new.example", "/confirm-email/")
        frozen.advance(seconds=61)  # past the once-a-minute limit (S35)
        await settings_post(client, "/settings/email", {"email": "second@new.example"})
        second = await mailed_link(client, "second@new.example", "/confirm-email/")
        assert (await client.get(first)).status_code == 404
        assert (await confirm_by_post(client, first)).status_code == 404
        assert len(await tokens(app, TokenKind.CHANGE_EMAIL)) == 1
        assert (await follow_link(client, second, "/confirm-email")).status_code == 303
    assert await user_row(app, "second@new.example") is not None
    assert await user_row(app, "first@new.example") is None


# --- undoing a change from the old address -------------------------------------------------------


async def change_email(client, new_email: str, password: str = DEFAULT_PASSWORD) -> None:
    """Change the signed-in account's address to ``new_email`` through the pages."""
    await confirm_password(client, password)
    await settings_post(client, "/settings/email", {"email": new_email})
    link = await mailed_link(client, new_email, "/confirm-email/")
    assert (await follow_link(client, link, "/confirm-email")).status_code == 303


async def test_s18_s37_undo_link_restores_the_address_signs_out_and_demands_a_new_password(
    client, other_client, app
):
    await register(client, "ann@example.com", name="Ann")
    # Whoever holds Ann's session moves the account to their address and changes the password.
    await change_email(client, "eve@evil.example")
    await settings_post(
        client,
        "/settings/password",
        {
            "current_password": DEFAULT_PASSWORD,
            "password": NEW_PASSWORD,
            "password_confirmation": NEW_PASSWORD,
        },
    )
    [notice] = [m for m in await mails_to(client, "ann@example.com") if "changed" in m.subject]
    assert "7 days" in notice.text and "undo the change" in notice.html
    link = await mailed_link(client, "ann@example.com", "/revert-email/")
    page = await other_client.get(link)  # Ann, in her own browser, signed out
    assert page.status_code == 200 and page.headers["referrer-policy"] == "no-referrer"
    assert "ann@example.com" in page.text and "eve@evil.example" in page.text
    assert await user_row(app, "eve@evil.example") is not None  # opening changed nothing (S24)
    done = await follow_link(other_client, link, "/revert-email")
    assert done.status_code == 303 and done.headers["location"] == "/login"
    ann = await user_row(app, "ann@example.com")
    assert ann is not None and ann.email_verified_at is not None
    assert ann.password_hash is None  # no password signs in until a reset sets one
    assert await user_row(app, "eve@evil.example") is None
    assert await count(app, BrowserSession) == 0  # every session ended (S18)
    assert (await client.get("/dashboard")).headers["location"].startswith("/login")
    for password in (DEFAULT_PASSWORD, NEW_PASSWORD):
        assert (await login(client, "ann@example.com", password)).status_code == 422
        assert (await login(client, "eve@evil.example", password)).status_code == 422
    assert (await other_client.get(link)).status_code == 404  # single use
    await wait_for_mail(
        client, "ann@example.com", "Your email address was restored: choose a new password"
    )
    reset = await reset_link(other_client, "ann@example.com")
    assert (
        await set_new_password(other_client, reset, "Ann's own new passphrase")
    ).status_code == 303
    assert (
        await login(other_client, "ann@example.com", "Ann's own new passphrase")
    ).status_code == 303
    await wait_for_events(app, lambda r: "authn_email_change_revert" in names(r))


async def test_s34_an_undo_link_lives_7_days_to_the_second(client, other_client, app):
    frozen = FrozenClock()
    with use_clock(frozen):
        await register(client, "ann@example.com")
        await register(other_client, "bob@example.com")
        await change_email(client, "ann@new.example")
        await change_email(other_client, "bob@new.example")
        ann = await mailed_link(client, "ann@example.com", "/revert-email/")
        bob = await mailed_link(other_client, "bob@example.com", "/revert-email/")
        frozen.advance(days=7)
        assert (await follow_link(client, ann, "/revert-email")).status_code == 303
        frozen.advance(seconds=1)
        late = await other_client.get(bob)
        assert late.status_code == 410 and "expired" in late.text
        assert (
            await post_form(
                other_client, "/revert-email", {"token": bob.rsplit("/", 1)[1]}, token_from="/login"
            )
        ).status_code == 410
    assert await user_row(app, "ann@example.com") is not None
    assert await user_row(app, "bob@new.example") is not None


async def test_a_second_change_does_not_take_the_first_addresss_undo_link_away(client, app):
    frozen = FrozenClock()
    with use_clock(frozen):
        await register(client, "ann@example.com")
        await change_email(client, "eve1@evil.example")
        frozen.advance(seconds=61)  # past the once-a-minute limit of change requests (S35)
        await change_email(client, "eve2@evil.example")
        first = await mailed_link(client, "ann@example.com", "/revert-email/")
        second = await mailed_link(client, "eve1@evil.example", "/revert-email/")
        assert (await follow_link(client, first, "/revert-email")).status_code == 303
        assert await user_row(app, "ann@example.com") is not None
        # The other undo link (to the intermediate address) died with the restore.
        assert (await client.get(second)).status_code == 404


async def test_undo_is_refused_when_another_account_took_the_old_address(client, other_client, app):
    await register(client, "ann@example.com")
    await change_email(client, "ann@new.example")
    link = await mailed_link(client, "ann@example.com", "/revert-email/")
    await register(other_client, "ann@example.com", name="Someone else")
    refused = await follow_link(other_client, link, "/revert-email")
    assert refused.status_code == 409 and "Another account uses that address" in refused.text
    moved = await user_row(app, "ann@new.example")
    assert moved is not None and moved.password_hash is not None  # nothing changed
    assert await count(app, BrowserSession, BrowserSession.user_id == moved.id) == 1


async def test_revert_service_discards_every_pending_link_of_the_account(app, client):
    ann = await create_account(app.state.db, "ann@example.com")
    async with app.state.db.writer() as session:
        service = AccountService(session, app.state.settings, app.state.passwords)
        changed = await service.confirm_email_change(
            await request_change(app, ann, "eve@evil.example"), None
        )
    pending = await request_change(app, ann, "eve2@evil.example")
    async with app.state.db.writer() as session:
        service = AccountService(session, app.state.settings, app.state.passwords)
        restored = await service.revert_email_change(changed.revert_token)
    assert restored.email == "ann@example.com"
    with pytest.raises(TokenRefused):
        await check_change(app, pending)
    assert [t.kind for t in await tokens(app)] == [TokenKind.RESET_PASSWORD]
