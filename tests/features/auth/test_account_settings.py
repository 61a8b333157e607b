"""Settings → Profile, Password, Delete account, the admin's reset mail and the security
notices by mail (SECURITY.md S3, S4, S18, S20, S37, S39, S52)."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import func, select, update

from features.audit.models import AuditEvent
from features.core.auth.models import EmailToken
from features.sessions.models import BrowserSession
from features.tasks.models import Task
from features.users.models import Role, User
from tests.features.assets.helpers import files_under, image_bytes, upload
from tests.features.audit.helpers import names, wait_for_events
from tests.features.auth.two_factor.support import confirm_password, enable_two_factor
from tests.support import (
    DEFAULT_PASSWORD,
    csrf,
    follow_link,
    login,
    mailed_link,
    mails_to,
    post_form,
    register,
)

NEW_PASSWORD = "a brand new passphrase 2"
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"


async def user_row(app, email: str) -> User | None:
    async with app.state.db.reader() as session:
        return await session.scalar(select(User).where(User.email == email))


async def count(app, model, *where) -> int:
    async with app.state.db.reader() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)))


async def wait_for_mail(client, email: str, subject: str) -> None:
    """Mails sent by event listeners leave after the response: poll the outbox."""
    for _ in range(150):
        if any(m.subject == f"Slicestar: {subject}" for m in await mails_to(client, email)):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no mail {subject!r} to {email}")


async def settings_post(client, path: str, data: dict, page: str | None = None):
    return await post_form(client, path, data, token_from=page or path)


# --- profile: name ----------------------------------------------------------------------------


async def test_profile_changes_the_display_name_and_refuses_bad_names(client, app):
    await register(client, "ann@example.com", name="Ann")
    page = await client.get("/settings/profile")
    assert page.status_code == 200 and 'value="Ann"' in page.text
    for bad, message in (
        ("", "Enter your name."),
        ("x" * 101, "at most 100"),
        ("A\x07b", "control"),
        ("A\x7fb", "control"),  # DEL
        ("A\x85b", "control"),  # C1 (NEL): the mailer refuses it in a header too
        ("A\x9fb", "control"),
    ):
        response = await settings_post(client, "/settings/profile", {"name": bad})
        assert response.status_code == 422 and message in response.text
    response = await settings_post(
        client, "/settings/profile", {"name": "Ann Smith", "role": "admin"}
    )
    assert response.status_code == 303
    user = await user_row(app, "ann@example.com")
    assert user.name == "Ann Smith" and user.role == Role.USER
    assert "Ann Smith" in (await client.get("/dashboard")).text


# --- profile: email change ----------------------------------------------------------------------


async def test_s20_changing_the_email_needs_a_recent_password(client, app):
    await register(client, "ann@example.com")
    response = await client.get("/settings/email")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/confirm-password?next=/settings/email")
    token = await csrf(client, "/settings/profile")
    posted = await client.post(
        "/settings/email", data={"email": "new@example.com", "_csrf_token": token}
    )
    assert posted.status_code == 303 and posted.headers["location"].startswith("/confirm-password")
    assert await mails_to(client, "new@example.com") == []


async def test_s37_email_changes_only_when_the_link_is_followed_and_the_old_address_is_told(
    client, other_client, app
):
    await register(client, "ann@example.com", name="Ann")
    await confirm_password(client)
    response = await settings_post(client, "/settings/email", {"email": " New@Example.com "})
    assert response.status_code == 303 and response.headers["location"] == "/settings/profile"
    assert "We sent a link to new@example.com" in (await client.get("/settings/profile")).text
    assert (await user_row(app, "ann@example.com")) is not None  # nothing changed yet
    [mail] = await mails_to(client, "new@example.com")
    assert mail.subject == "Slicestar: Confirm your new email address"
    link = await mailed_link(client, "new@example.com", "/confirm-email/")
    page = await other_client.get(link)  # opened in another browser, signed out
    assert page.status_code == 200 and "ann@example.com" in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    done = await follow_link(other_client, link, "/confirm-email")
    assert done.status_code == 303 and done.headers["location"] == "/login"
    user = await user_row(app, "new@example.com")
    assert user is not None and user.email_verified_at is not None
    assert await user_row(app, "ann@example.com") is None
    [notice] = [m for m in await mails_to(client, "ann@example.com") if "changed" in m.subject]
    assert notice.subject == "Slicestar: Your email address was changed"
    assert "new@example.com" in notice.text
    assert "new@example.com" in (await client.get("/settings/profile")).text  # same session
    assert (await login(other_client, "new@example.com")).status_code == 303
    used = await other_client.get(link)
    assert used.status_code == 410
    await wait_for_events(
        app, lambda r: {"authn_email_change_request", "authn_email_change"} <= set(names(r))
    )


async def test_email_change_to_the_current_address_is_a_field_error(client, app):
    await register(client, "ann@example.com")
    await confirm_password(client)
    for same in ("ann@example.com", " ANN@example.com "):
        response = await settings_post(client, "/settings/email", {"email": same})
        assert response.status_code == 422 and "already your email address" in response.text
    for bad in ("not-an-email", "x@example.com\r\nBcc: eve@evil.test", '"X" <x@example.com>'):
        response = await settings_post(client, "/settings/email", {"email": bad})
        assert response.status_code == 422, bad
    assert [m.subject for m in await mails_to(client, "ann@example.com")] == [
        "Slicestar: Verify your email address"
    ]


async def test_email_change_takes_an_idn_domain_in_ascii_form_and_refuses_a_utf8_local_part(
    client, app
):
    await register(client, "ann@example.com")
    await confirm_password(client)
    refused = await settings_post(client, "/settings/email", {"email": "jörg@example.com"})
    assert refused.status_code == 422 and "plain ASCII letters" in refused.text
    assert await count(app, EmailToken, EmailToken.kind == "change_email") == 0
    done = await settings_post(client, "/settings/email", {"email": "Ann@Bücher.Example"})
    assert done.status_code == 303
    link = await mailed_link(client, "ann@xn--bcher-kva.example", "/confirm-email/")
    assert (await follow_link(client, link, "/confirm-email")).status_code == 303
    assert await user_row(app, "ann@xn--bcher-kva.example") is not None
    assert (await login(client, "ann@bücher.example")).status_code == 303  # either form signs in


async def test_email_change_to_a_taken_address_answers_like_success_and_changes_nothing(
    client, other_client, app
):
    await register(client, "ann@example.com")
    await register(other_client, "bob@example.com", name="Bob")
    await confirm_password(client)
    taken = await settings_post(client, "/settings/email", {"email": "bob@example.com"})
    await confirm_password(other_client)
    free = await settings_post(other_client, "/settings/email", {"email": "free@example.com"})
    assert taken.status_code == free.status_code == 303
    assert taken.headers["location"] == free.headers["location"]
    taken_page = (await client.get("/settings/profile")).text
    assert "We sent a link to bob@example.com" in taken_page
    assert await count(app, EmailToken, EmailToken.kind == "change_email") == 1  # Bob's only
    bob_mails = [m.subject for m in await mails_to(client, "bob@example.com")]
    assert "Slicestar: Someone tried to use your email address" in bob_mails
    assert not any(
        "confirm-email" in link
        for m in await mails_to(client, "bob@example.com")
        for link in m.links
    )
    assert (await user_row(app, "ann@example.com")) is not None


async def test_a_change_link_of_another_account_is_refused_for_a_signed_in_user(
    client, other_client, app
):
    await register(client, "ann@example.com")
    await register(other_client, "bob@example.com")
    await confirm_password(client)
    await settings_post(client, "/settings/email", {"email": "ann2@example.com"})
    link = await mailed_link(client, "ann2@example.com", "/confirm-email/")
    assert (await other_client.get(link)).status_code == 404  # Bob is signed in
    token = link.rsplit("/", 1)[1]
    refused = await post_form(
        other_client, "/confirm-email", {"token": token}, token_from="/dashboard"
    )
    assert refused.status_code == 404
    assert await user_row(app, "ann@example.com") is not None
    assert (await follow_link(client, link, "/confirm-email")).status_code == 303


async def test_s37_changing_the_email_kills_the_old_verification_link(client, app):
    await register(client, "ann@example.com", verify=False)
    old_link = await mailed_link(client, "ann@example.com", "/verify-email/")
    async with app.state.db.write() as session:  # the address changes (e.g. by a change link)
        await session.execute(
            update(User).where(User.email == "ann@example.com").values(email="ann@new.example")
        )
    response = await client.get(old_link)
    assert response.status_code == 410 and "no longer uses" in response.text


# --- password change -----------------------------------------------------------------------------


async def test_s4_s18_password_change_needs_the_current_one_ends_other_sessions_and_rotates(
    client, other_client, app
):
    await register(client, "ann@example.com")
    await login(other_client, "ann@example.com")
    old_cookie = client.cookies.get("session")
    page = await client.get("/settings/password")
    assert page.status_code == 200 and 'aria-current="page">Password' in page.text
    wrong = await settings_post(
        client,
        "/settings/password",
        {
            "current_password": "not my password",
            "password": NEW_PASSWORD,
            "password_confirmation": NEW_PASSWORD,
        },
    )
    assert wrong.status_code == 422 and "That password is not right." in wrong.text
    assert NEW_PASSWORD not in wrong.text
    for new, confirmation, message in (
        ("short", "short", "Use at least 8 characters."),
        ("password123", "password123", "too common"),
        (NEW_PASSWORD, "different passphrase", "do not match"),
    ):
        response = await settings_post(
            client,
            "/settings/password",
            {
                "current_password": DEFAULT_PASSWORD,
                "password": new,
                "password_confirmation": confirmation,
            },
        )
        assert response.status_code == 422 and message in response.text
    done = await settings_post(
        client,
        "/settings/password",
        {
            "current_password": DEFAULT_PASSWORD,
            "password": NEW_PASSWORD,
            "password_confirmation": NEW_PASSWORD,
        },
    )
    assert done.status_code == 303 and done.headers["location"] == "/settings/password"
    new_cookie = client.cookies.get("session")
    assert new_cookie and new_cookie != old_cookie  # this session got a new id
    assert (await client.get("/dashboard")).status_code == 200
    assert (await other_client.get("/dashboard")).headers["location"].startswith("/login")
    assert await count(app, BrowserSession) == 1
    assert (await login(other_client, "ann@example.com", DEFAULT_PASSWORD)).status_code == 422
    assert (await login(other_client, "ann@example.com", NEW_PASSWORD)).status_code == 303
    await wait_for_events(app, lambda r: "authn_password_change" in names(r))
    await wait_for_mail(client, "ann@example.com", "Your password was changed")


async def test_s9_wrong_current_passwords_are_throttled(client, app):
    await register(client, "ann@example.com")
    statuses = []
    for _ in range(6):
        response = await settings_post(
            client,
            "/settings/password",
            {
                "current_password": "wrong one",
                "password": NEW_PASSWORD,
                "password_confirmation": NEW_PASSWORD,
            },
        )
        statuses.append(response.status_code)
    assert statuses == [422] * 5 + [429]


# --- account deletion -----------------------------------------------------------------------------


async def test_s20_deleting_the_account_needs_a_recent_password_and_the_typed_address(client, app):
    await register(client, "ann@example.com")
    response = await client.get("/settings/delete")
    assert response.headers["location"].startswith("/confirm-password?next=/settings/delete")
    await confirm_password(client)
    page = await client.get("/settings/delete")
    assert page.status_code == 200 and "cannot be undone" in page.text
    wrong = await settings_post(client, "/settings/delete", {"confirm_email": "bob@example.com"})
    assert wrong.status_code == 422 and "exactly as shown" in wrong.text
    assert await user_row(app, "ann@example.com") is not None


async def test_deleting_the_account_removes_everything_it_owns_and_says_goodbye(
    client, other_client, app, settings
):
    await register(client, "ann@example.com", name="Ann")
    await register(other_client, "bob@example.com")
    token = await csrf(client, "/tasks")
    await client.post("/tasks", data={"title": "Mine", "_csrf_token": token})
    files_token = await csrf(client, "/assets")
    assert (await upload(client, files_token, "a.png", image_bytes("PNG"))).status_code == 201
    ann = await user_row(app, "ann@example.com")
    assert files_under(settings.storage_dir)
    await confirm_password(client)
    response = await settings_post(
        client, "/settings/delete", {"confirm_email": " ANN@example.com "}
    )
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert "Goodbye" in (await client.get("/login")).text
    assert await user_row(app, "ann@example.com") is None
    assert await count(app, Task, Task.user_id == ann.id) == 0
    assert await count(app, BrowserSession, BrowserSession.user_id == ann.id) == 0
    assert await count(app, EmailToken, EmailToken.user_id == ann.id) == 0
    assert (await client.get("/dashboard")).headers["location"].startswith("/login")
    [goodbye] = [m for m in await mails_to(client, "ann@example.com") if "deleted" in m.subject]
    assert goodbye.to == "Ann <ann@example.com>"
    for _ in range(150):  # the files go through the user_deleted listener, after the response
        if not (settings.storage_dir / str(ann.id)).exists():
            break
        await asyncio.sleep(0.02)
    assert not (settings.storage_dir / str(ann.id)).exists()
    rows = await wait_for_events(app, lambda r: "user_deleted" in names(r))
    deleted = next(r for r in rows if r.event == "user_deleted")
    assert deleted.user_id is None and deleted.details["deleted_user_id"] == str(ann.id)
    assert await count(app, AuditEvent, AuditEvent.event == "user_created") == 2  # kept
    assert (await login(other_client, "bob@example.com")).status_code == 303  # others untouched


async def test_s39_the_last_admin_cannot_delete_their_account(client, app):
    await register(client, "root@example.com")
    async with app.state.db.write() as session:
        await session.execute(
            update(User).where(User.email == "root@example.com").values(role=Role.ADMIN)
        )
    await confirm_password(client)
    response = await settings_post(
        client, "/settings/delete", {"confirm_email": "root@example.com"}
    )
    assert response.status_code == 409 and "last active administrator" in response.text
    assert await user_row(app, "root@example.com") is not None


# --- the admin's reset mail ----------------------------------------------------------------------


async def test_admin_sends_a_password_reset_mail(client, other_client, app):
    await register(client, "root@example.com")
    async with app.state.db.write() as session:
        await session.execute(
            update(User).where(User.email == "root@example.com").values(role=Role.ADMIN)
        )
    await register(other_client, "bob@example.com", name="Bob")
    bob = await user_row(app, "bob@example.com")
    page = await client.get(f"/admin/users/{bob.id}")
    assert "Send password reset link" in page.text
    response = await post_form(
        client, f"/admin/users/{bob.id}/password-reset", {"password": "x"}, token_from="/admin"
    )
    assert response.status_code == 303 and response.headers["location"] == f"/admin/users/{bob.id}"
    [mail] = [m for m in await mails_to(client, "bob@example.com") if "Reset" in m.subject]
    assert "an administrator" in mail.text
    link = await mailed_link(client, "bob@example.com", "/reset-password/")
    assert (await other_client.get(link)).status_code == 200
    rows = await wait_for_events(app, lambda r: "admin_password_reset_sent" in names(r))
    event = next(r for r in rows if r.event == "admin_password_reset_sent")
    assert event.user_id == bob.id and event.actor_id != bob.id
    assert (await user_row(app, "bob@example.com")).password_hash == bob.password_hash
    missing = await post_form(
        client, f"/admin/users/{uuid.uuid4()}/password-reset", {}, token_from="/admin"
    )
    assert missing.status_code == 404


async def test_admin_reset_mail_is_not_sent_to_a_disabled_account(client, other_client, app):
    await register(client, "root@example.com")
    async with app.state.db.write() as session:
        await session.execute(
            update(User).where(User.email == "root@example.com").values(role=Role.ADMIN)
        )
    await register(other_client, "bob@example.com")
    bob = await user_row(app, "bob@example.com")
    await post_form(client, f"/admin/users/{bob.id}/disable", {}, token_from="/admin")
    response = await post_form(
        client, f"/admin/users/{bob.id}/password-reset", {}, token_from="/admin"
    )
    assert response.status_code == 303
    assert "The account is disabled" in (await client.get(response.headers["location"])).text
    assert not [m for m in await mails_to(client, "bob@example.com") if "Reset" in m.subject]


async def test_admin_is_told_when_the_reset_mail_cannot_be_sent(client, other_client, app):
    await register(client, "root@example.com")
    await register(other_client, "bob@example.com", name="Bob")
    async with app.state.db.write() as session:
        await session.execute(
            update(User).where(User.email == "root@example.com").values(role=Role.ADMIN)
        )
        # A name stored before the name rule refused C1 controls: no header can carry it.
        await session.execute(
            update(User).where(User.email == "bob@example.com").values(name="Bob\x85")
        )
    bob = await user_row(app, "bob@example.com")
    response = await post_form(
        client, f"/admin/users/{bob.id}/password-reset", {}, token_from="/admin"
    )
    assert response.status_code == 303
    page = (await client.get(response.headers["location"])).text
    assert "The reset mail could not be sent" in page
    assert "Password reset link sent." not in page
    assert not [m for m in await mails_to(client, "bob@example.com") if "Reset" in m.subject]


# --- security notices by mail --------------------------------------------------------------------


async def test_a_sign_in_from_a_new_device_is_mailed(client, other_client, app):
    await register(client, "ann@example.com")
    await wait_for_events(app, lambda r: "authn_login_success" in names(r))
    other_client.headers["user-agent"] = FIREFOX
    assert (await login(other_client, "ann@example.com")).status_code == 303
    await wait_for_mail(client, "ann@example.com", "New sign-in to your account")
    [mail] = [m for m in await mails_to(client, "ann@example.com") if "New sign-in" in m.subject]
    assert "Firefox 121 on Windows 10 (127.0.0.1)" in mail.text
    assert "http://testserver.local/settings/sessions" in mail.links


async def test_turning_two_factor_off_is_mailed(client, app):
    await register(client, "ann@example.com")
    await enable_two_factor(client)
    response = await post_form(
        client, "/settings/security/two-factor/disable", {}, token_from="/settings/security"
    )
    assert response.status_code == 303
    await wait_for_mail(client, "ann@example.com", "Two-factor authentication was turned off")


async def test_notices_are_not_mailed_to_unverified_addresses(client, other_client, app):
    await register(client, "ann@example.com", verify=False)
    other_client.headers["user-agent"] = FIREFOX
    await login(client, "ann@example.com")
    await login(other_client, "ann@example.com")
    await wait_for_events(app, lambda r: "authn_login_new_device" in names(r))
    await asyncio.sleep(0.2)
    assert [m.subject for m in await mails_to(client, "ann@example.com")] == [
        "Slicestar: Verify your email address"
    ]
