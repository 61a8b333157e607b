"""The account mails: what each says and where its link points (templates ``auth/mail/*``).

Each function queues one mail through :class:`shared.mail.Mailer` and returns at once (True
when queued). Call them after the database commit. Links are built from ``APP_URL`` (S37); a
link's token appears only in the mail body, never in a log line or an audit event.
"""

from __future__ import annotations

from typing import Any

from shared.mail import Mailer

VERIFY_PATH = "/verify-email/"
RESET_PATH = "/reset-password/"
CONFIRM_EMAIL_PATH = "/confirm-email/"
REVERT_EMAIL_PATH = "/revert-email/"


def _send(mailer: Mailer, to: str, name: str, subject: str, template: str, **context: Any) -> bool:
    return mailer.send(
        to=to,
        name=name,
        subject=subject,
        template=f"auth/mail/{template}",
        context={"name": name, **context},
    )


def verify_email(mailer: Mailer, email: str, name: str, token: str) -> bool:
    """The link that verifies ``email`` and signs its owner in (valid 24 hours)."""
    link = mailer.link(VERIFY_PATH + token)
    return _send(mailer, email, name, "Verify your email address", "verify_email", link=link)


def account_exists(mailer: Mailer, email: str, name: str) -> bool:
    """To an account's owner when someone tries to register their address again (S7)."""
    return _send(
        mailer,
        email,
        name,
        "You already have an account",
        "account_exists",
        login_link=mailer.link("/login"),
        reset_link=mailer.link("/forgot-password"),
    )


def reset_password(mailer: Mailer, email: str, name: str, token: str, *, by_admin: bool) -> bool:
    """The link that sets a new password (valid 60 minutes, single use, S33, S34)."""
    link = mailer.link(RESET_PATH + token)
    return _send(
        mailer, email, name, "Reset your password", "reset_password", link=link, by_admin=by_admin
    )


def password_was_reset(mailer: Mailer, email: str, name: str) -> bool:
    """Confirmation after a reset: every session was signed out."""
    return _send(
        mailer,
        email,
        name,
        "Your password was reset",
        "password_reset_done",
        reset_link=mailer.link("/forgot-password"),
    )


def password_was_changed(mailer: Mailer, email: str, name: str) -> bool:
    """Confirmation after a change in the settings: other sessions were signed out."""
    return _send(
        mailer,
        email,
        name,
        "Your password was changed",
        "password_changed",
        reset_link=mailer.link("/forgot-password"),
    )


def new_sign_in(mailer: Mailer, email: str, name: str, details: dict[str, Any]) -> bool:
    """A sign-in from a browser, system and address not seen before for the account."""
    return _send(
        mailer,
        email,
        name,
        "New sign-in to your account",
        "new_device",
        browser=details.get("browser") or "an unknown browser",
        os=details.get("os") or "an unknown system",
        ip=details.get("ip") or "an unknown address",
        sessions_link=mailer.link("/settings/sessions"),
        reset_link=mailer.link("/forgot-password"),
    )


def two_factor_disabled(mailer: Mailer, email: str, name: str) -> bool:
    """Two-factor authentication was turned off (S31)."""
    return _send(
        mailer,
        email,
        name,
        "Two-factor authentication was turned off",
        "two_factor_disabled",
        security_link=mailer.link("/settings/security"),
        reset_link=mailer.link("/forgot-password"),
    )


def confirm_new_email(mailer: Mailer, new_email: str, name: str, token: str) -> bool:
    """To the new address: the link that completes an email change (valid 24 hours)."""
    link = mailer.link(CONFIRM_EMAIL_PATH + token)
    return _send(
        mailer, new_email, name, "Confirm your new email address", "confirm_email", link=link
    )


def email_was_changed(
    mailer: Mailer, old_email: str, name: str, new_email: str, revert_token: str
) -> bool:
    """To the old address once the change is done (S37), with the link that undoes it (valid
    7 days, single use): the old address comes back, every session ends, a new password is due."""
    return _send(
        mailer,
        old_email,
        name,
        "Your email address was changed",
        "email_changed",
        new_email=new_email,
        revert_link=mailer.link(REVERT_EMAIL_PATH + revert_token),
    )


def email_restored(mailer: Mailer, email: str, name: str, reset_token: str) -> bool:
    """To the restored address after an email change was undone: every session was signed
    out and the password removed; the link sets a new one (60 minutes, single use)."""
    return _send(
        mailer,
        email,
        name,
        "Your email address was restored: choose a new password",
        "email_restored",
        link=mailer.link(RESET_PATH + reset_token),
    )


def address_in_use(mailer: Mailer, email: str, name: str) -> bool:
    """To an account's owner when another account asked to move onto their address."""
    return _send(mailer, email, name, "Someone tried to use your email address", "address_in_use")


def goodbye(mailer: Mailer, email: str, name: str) -> bool:
    """After the account and everything in it were deleted."""
    return _send(mailer, email, name, "Your account was deleted", "goodbye")
