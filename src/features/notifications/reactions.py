"""Security events that tell a user something about their own account become notifications
(new-device sign-ins, password/email changes, two-factor changes, recovery codes, a sign-in
stopped after too many wrong two-factor codes (SECURITY.md S29), role changes).

The features that emit these events (login, password, email, two-factor, admin) do not know
this module exists (``shared.events``). Each listener runs after the response is sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from litestar.datastructures import State
from litestar.events import listener

from features.notifications.models import NotificationType
from features.notifications.service import notify_user
from shared.events import SECURITY_EVENT, SecurityEvent

logger = logging.getLogger(__name__)

SECURITY_LINK = "/settings"


def _succeeded(event: SecurityEvent) -> bool:
    return event.outcome == "success"


@dataclass(frozen=True, slots=True)
class Template:
    """How one event reads as a notification; ``message`` formats the event's details.

    ``when`` decides from the event whether it becomes a notification at all (default: only
    successful events).
    """

    type: NotificationType
    title: str
    message: Callable[[dict[str, Any]], str]
    link: str | None = SECURITY_LINK
    when: Callable[[SecurityEvent], bool] = _succeeded


def _new_device(details: dict[str, Any]) -> str:
    browser = details.get("browser") or "an unknown browser"
    os_name = details.get("os") or "an unknown system"
    ip = details.get("ip") or "an unknown address"
    return (
        f"Someone signed in to your account from {browser} on {os_name} ({ip}). "
        "If this was not you, change your password now."
    )


def _two_factor_lock(event: SecurityEvent) -> bool:
    """Only the first pending login a failure streak ends: not a plain sign-in throttle (429),
    which emits the same event name with a ``context`` instead of this ``reason``."""
    return event.details.get("reason") == "two_factor_failures" and bool(event.details.get("first"))


def _remaining(details: dict[str, Any]) -> str:
    remaining = details.get("remaining")
    return "" if remaining is None else f" {remaining} left."


TEMPLATES: dict[str, Template] = {
    "authn_login_new_device": Template(
        NotificationType.WARNING, "New sign-in to your account", _new_device
    ),
    "authn_password_change": Template(
        NotificationType.SUCCESS,
        "Password changed",
        lambda _: (
            "Your password was changed and your other sessions were signed out. "
            "If this was not you, reset your password now."
        ),
    ),
    "authn_password_reset": Template(
        NotificationType.WARNING,
        "Password reset",
        lambda _: "Your password was reset and every session was signed out.",
    ),
    "authn_email_change": Template(
        NotificationType.INFO,
        "Email address changed",
        lambda _: "The email address of your account was changed.",
    ),
    "authn_mfa_enabled": Template(
        NotificationType.SUCCESS,
        "Two-factor authentication enabled",
        lambda _: "Signing in now needs a code from your authenticator app.",
    ),
    "authn_mfa_disabled": Template(
        NotificationType.WARNING,
        "Two-factor authentication disabled",
        lambda _: (
            "Signing in no longer needs an authenticator code. "
            "If this was not you, change your password now."
        ),
    ),
    "authn_mfa_recovery_low": Template(
        NotificationType.WARNING,
        "Recovery codes running low",
        lambda d: "Generate new recovery codes soon." + _remaining(d),
    ),
    "authn_mfa_recovery_used": Template(
        NotificationType.INFO,
        "Recovery code used",
        lambda d: "A recovery code was used to sign in." + _remaining(d),
    ),
    "authn_mfa_recovery_regenerated": Template(
        NotificationType.INFO,
        "New recovery codes",
        lambda _: (
            "New recovery codes were created for your account; the old ones no longer work. "
            "If this was not you, change your password now."
        ),
    ),
    "authn_login_lock": Template(
        NotificationType.WARNING,
        "Sign-in blocked after wrong codes",
        lambda d: (
            f"Someone entered your password, then {d.get('failures', 'too many')} wrong "
            "two-factor codes in a row, so that sign-in was stopped. "
            "If this was not you, change your password now."
        ),
        when=_two_factor_lock,
    ),
    "authz_role_change": Template(
        NotificationType.INFO,
        "Your role changed",
        lambda d: (
            f"An administrator changed your role from {d.get('old', '?')} to {d.get('new', '?')}."
        ),
        link="/dashboard",
    ),
}


@listener(SECURITY_EVENT)
async def notify_on_security_event(event: SecurityEvent, state: State) -> None:
    """Store a notification for ``event.user_id`` when ``event.name`` is in :data:`TEMPLATES`
    and the template's ``when`` accepts the event.

    Failures are logged, never raised: the action that emitted the event has already succeeded.
    """
    template = TEMPLATES.get(event.name)
    if template is None or event.user_id is None or not template.when(event):
        return
    try:
        await notify_user(
            state.db,
            event.user_id,
            template.type,
            template.title,
            template.message(event.details),
            template.link,
            data={"event": event.name, "request_id": event.request_id},
        )
    except Exception:
        logger.exception("could not store the notification for %s", event.name)
