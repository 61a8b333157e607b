"""Security events that tell a user something about their own account become notifications.

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


@dataclass(frozen=True, slots=True)
class Template:
    """How one event reads as a notification; ``message`` formats the event's details."""

    type: NotificationType
    title: str
    message: Callable[[dict[str, Any]], str]
    link: str | None = SECURITY_LINK


def _new_device(details: dict[str, Any]) -> str:
    browser = details.get("browser") or "an unknown browser"
    os_name = details.get("os") or "an unknown system"
    ip = details.get("ip") or "an unknown address"
    return (
        f"Someone signed in to your account from {browser} on {os_name} ({ip}). "
        "If this was not you, change your password now."
    )


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
    """Store a notification for ``event.user_id`` when ``event.name`` is in :data:`TEMPLATES`.

    Failures are logged, never raised: the action that emitted the event has already succeeded.
    """
    template = TEMPLATES.get(event.name)
    if template is None or event.user_id is None or event.outcome != "success":
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
